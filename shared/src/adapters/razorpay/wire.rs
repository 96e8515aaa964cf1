//! Razorpay's JSON, as Razorpay sends and accepts it. These are
//! wire types: services turn them into domain types, never the other way round.
//!
//! Tolerant where Razorpay is inconsistent: `notes` is an object, `[]` or `null`; a link's
//! `customer` may be `[]`; unset link timestamps are `0`, unset invoice timestamps `null`.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// Razorpay `notes`: at most 15 string pairs. Deserializes from an object, `[]`, `null`, or the
/// docs' occasional list of `{"key","value"}` objects; non-string values become strings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Notes(pub BTreeMap<String, String>);

impl Notes {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.0.insert(key.into(), value.into());
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<const N: usize> From<[(&str, &str); N]> for Notes {
    fn from(pairs: [(&str, &str); N]) -> Notes {
        Notes(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }
}

fn value_text(value: serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s,
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

impl<'de> Deserialize<'de> for Notes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde_json::Value;
        let notes = match Value::deserialize(deserializer)? {
            Value::Null => BTreeMap::new(),
            Value::Object(map) => map.into_iter().map(|(k, v)| (k, value_text(v))).collect(),
            Value::Array(items) => items
                .into_iter()
                .filter_map(|item| match item {
                    Value::Object(mut pair) => {
                        let key = pair.remove("key").map(value_text)?;
                        Some((
                            key,
                            pair.remove("value").map(value_text).unwrap_or_default(),
                        ))
                    }
                    _ => None,
                })
                .collect(),
            other => {
                return Err(serde::de::Error::custom(format!(
                    "notes must be an object, a list or null, not {other}"
                )));
            }
        };
        Ok(Notes(notes))
    }
}

/// `null` reads as the type's default (0, ""): Razorpay sends `null` for fields it does not
/// fill, and a read must not fail on one. Whoever uses a value checks it makes sense.
pub(crate) fn nullable<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(
    deserializer: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// `null` and `""` both mean "absent".
pub(crate) fn non_empty<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.filter(|s| !s.is_empty()))
}

/// `0` and `null` both mean "not set" (links use 0, invoices null).
fn timestamp<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    Ok(Option::<u64>::deserialize(deserializer)?.filter(|t| *t != 0))
}

/// A link's `customer` is an object, or `[]` when none was given.
fn link_customer<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<LinkCustomer>, D::Error> {
    use serde_json::Value;
    match Value::deserialize(deserializer)? {
        Value::Object(map) => serde_json::from_value(Value::Object(map))
            .map(Some)
            .map_err(serde::de::Error::custom),
        _ => Ok(None),
    }
}

// ---------- statuses ----------

/// A Razorpay status as a closed set of the values Razorpay documents, plus `Other` for a
/// value it may add later (kept as sent, never an error: a new status must not stop events).
macro_rules! razorpay_status {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(from = "String", into = "String")]
        pub enum $name {
            $($variant,)+
            Other(String),
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)+
                    $name::Other(text) => text,
                }
            }
        }

        impl From<String> for $name {
            fn from(text: String) -> $name {
                match text.as_str() {
                    $($text => $name::$variant,)+
                    _ => $name::Other(text),
                }
            }
        }

        impl From<$name> for String {
            fn from(status: $name) -> String {
                status.as_str().to_owned()
            }
        }

        impl Default for $name {
            fn default() -> $name {
                $name::Other(String::new())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}

razorpay_status!(
    /// A payment link's status.
    LinkStatus {
        Created => "created",
        PartiallyPaid => "partially_paid",
        Paid => "paid",
        Expired => "expired",
        Cancelled => "cancelled",
    }
);

razorpay_status!(
    /// An invoice's status.
    InvoiceStatus {
        Draft => "draft",
        Issued => "issued",
        PartiallyPaid => "partially_paid",
        Paid => "paid",
        Cancelled => "cancelled",
        Expired => "expired",
        Deleted => "deleted",
    }
);

razorpay_status!(
    /// A payment's status.
    PaymentStatus {
        Created => "created",
        Authorized => "authorized",
        Captured => "captured",
        Refunded => "refunded",
        Failed => "failed",
    }
);

razorpay_status!(
    /// A refund's status: `pending`, then `processed` or `failed`.
    RefundStatus {
        Pending => "pending",
        Processed => "processed",
        Failed => "failed",
    }
);

impl InvoiceStatus {
    /// Money came in on it.
    pub fn has_payments(&self) -> bool {
        matches!(self, InvoiceStatus::Paid | InvoiceStatus::PartiallyPaid)
    }

    /// It can no longer be paid.
    pub fn is_closed(&self) -> bool {
        matches!(self, InvoiceStatus::Cancelled | InvoiceStatus::Expired)
    }
}

// ---------- customers ----------

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CustomerRequest {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    /// Always `"0"` from us: return the existing customer for the same email and contact.
    pub fail_existing: String,
    #[serde(skip_serializing_if = "Notes::is_empty")]
    pub notes: Notes,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    pub contact: Option<String>,
    #[serde(default)]
    pub notes: Notes,
    #[serde(default)]
    pub created_at: u64,
}

// ---------- payment links ----------

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkCustomer {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "non_empty"
    )]
    pub name: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "non_empty"
    )]
    pub email: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "non_empty"
    )]
    pub contact: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notify {
    pub sms: bool,
    pub email: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PaymentLinkRequest {
    /// Subunits.
    pub amount: u64,
    pub currency: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub accept_partial: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expire_by: Option<u64>,
    /// Unique per Razorpay account; our payment id. Finds the link again after a timeout.
    pub reference_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<LinkCustomer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notify: Option<Notify>,
    #[serde(skip_serializing_if = "Notes::is_empty")]
    pub notes: Notes,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    /// Must be `"get"` when `callback_url` is given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_method: Option<String>,
    /// Razorpay's reminders for the link (sent only when set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reminder_enable: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkPayment {
    pub payment_id: String,
    pub amount: u64,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub created_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentLink {
    pub id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub amount: u64,
    #[serde(default, deserialize_with = "nullable")]
    pub amount_paid: u64,
    #[serde(default, deserialize_with = "nullable")]
    pub currency: String,
    pub status: LinkStatus,
    #[serde(default, deserialize_with = "non_empty")]
    pub reference_id: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub short_url: String,
    #[serde(default, deserialize_with = "non_empty")]
    pub order_id: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub accept_partial: bool,
    #[serde(default, deserialize_with = "timestamp")]
    pub expire_by: Option<u64>,
    #[serde(default, deserialize_with = "timestamp")]
    pub expired_at: Option<u64>,
    #[serde(default, deserialize_with = "timestamp")]
    pub cancelled_at: Option<u64>,
    #[serde(default, deserialize_with = "link_customer")]
    pub customer: Option<LinkCustomer>,
    #[serde(default)]
    pub notes: Notes,
    #[serde(default)]
    pub payments: Option<Vec<LinkPayment>>,
    #[serde(default, deserialize_with = "non_empty")]
    pub callback_url: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    pub callback_method: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub created_at: u64,
}

/// `GET /v1/payment_links`: `{"payment_links": [...]}`, no `count` or `entity`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentLinkList {
    #[serde(default)]
    pub payment_links: Vec<PaymentLink>,
}

// ---------- invoices ----------

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineItemRequest {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Unit price in subunits.
    pub amount: u64,
    pub currency: String,
    pub quantity: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InvoiceRequest {
    /// Always `"invoice"` (`"link"` is the legacy payment-link API).
    #[serde(rename = "type")]
    pub kind: String,
    pub customer_id: String,
    pub currency: String,
    pub line_items: Vec<LineItemRequest>,
    /// Unique per account; the Flexprice invoice id. Finds the invoice again after a timeout.
    pub receipt: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expire_by: Option<u64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub partial_payment: bool,
    pub sms_notify: bool,
    pub email_notify: bool,
    #[serde(skip_serializing_if = "Notes::is_empty")]
    pub notes: Notes,
    /// `Some("1")`: made as a draft (nothing payable, nothing sent) until it is issued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub draft: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineItem {
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub amount: u64,
    pub currency: String,
    #[serde(default = "one")]
    pub quantity: u64,
}

fn one() -> u64 {
    1
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    pub id: String,
    pub status: InvoiceStatus,
    #[serde(default, deserialize_with = "non_empty")]
    pub receipt: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    pub customer_id: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    pub order_id: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    pub payment_id: Option<String>,
    #[serde(default)]
    pub amount: Option<u64>,
    #[serde(default)]
    pub amount_paid: Option<u64>,
    #[serde(default)]
    pub amount_due: Option<u64>,
    #[serde(default, deserialize_with = "nullable")]
    pub currency: String,
    #[serde(default)]
    pub line_items: Vec<LineItem>,
    #[serde(default, deserialize_with = "non_empty")]
    pub short_url: Option<String>,
    #[serde(default, deserialize_with = "timestamp")]
    pub expire_by: Option<u64>,
    #[serde(default, deserialize_with = "timestamp")]
    pub paid_at: Option<u64>,
    #[serde(default, deserialize_with = "timestamp")]
    pub cancelled_at: Option<u64>,
    #[serde(default, deserialize_with = "timestamp")]
    pub expired_at: Option<u64>,
    #[serde(default, deserialize_with = "nullable")]
    pub partial_payment: bool,
    #[serde(default)]
    pub notes: Notes,
    #[serde(default, deserialize_with = "nullable")]
    pub created_at: u64,
}

/// A Razorpay collection: `{"entity":"collection","count":N,"items":[...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Collection<T> {
    #[serde(default)]
    pub count: u64,
    pub items: Vec<T>,
}

// ---------- payments ----------

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub id: String,
    /// 0 when Razorpay sent none (`null`): then the payment is read from the API.
    #[serde(default, deserialize_with = "nullable")]
    pub amount: u64,
    #[serde(default, deserialize_with = "nullable")]
    pub currency: String,
    pub status: PaymentStatus,
    #[serde(default, deserialize_with = "non_empty")]
    pub order_id: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    pub invoice_id: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    pub method: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub captured: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub amount_refunded: u64,
    #[serde(default, deserialize_with = "non_empty")]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    pub contact: Option<String>,
    #[serde(default)]
    pub notes: Notes,
    #[serde(default, deserialize_with = "non_empty")]
    pub error_code: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    pub error_description: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    pub error_reason: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub created_at: u64,
}

// ---------- refunds ----------

/// `POST /v1/payments/{id}/refund`: `amount` in subunits (absent: the rest), `speed` `normal`
/// or `optimum`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRequest {
    pub amount: u64,
    pub speed: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt: Option<String>,
    pub notes: Notes,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub amount: u64,
    #[serde(default, deserialize_with = "nullable")]
    pub currency: String,
    pub payment_id: String,
    pub status: RefundStatus,
    #[serde(default, deserialize_with = "non_empty")]
    pub speed_processed: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    pub speed_requested: Option<String>,
    #[serde(default)]
    pub notes: Notes,
    #[serde(default, deserialize_with = "nullable")]
    pub created_at: u64,
}

// ---------- disputes ----------

/// A dispute (chargeback) on a payment, as its `payment.dispute.*` events carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dispute {
    pub id: String,
    pub payment_id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub amount: u64,
    #[serde(default, deserialize_with = "nullable")]
    pub currency: String,
    #[serde(default, deserialize_with = "nullable")]
    pub amount_deducted: u64,
    #[serde(default, deserialize_with = "non_empty")]
    pub reason_code: Option<String>,
    #[serde(default)]
    pub respond_by: Option<u64>,
    #[serde(default, deserialize_with = "nullable")]
    pub status: String,
    #[serde(default, deserialize_with = "nullable")]
    pub phase: String,
    #[serde(default, deserialize_with = "nullable")]
    pub created_at: u64,
}

// ---------- errors ----------

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    pub field: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    pub source: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    pub step: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    pub reason: Option<String>,
}

/// The three error bodies seen from Razorpay: `{"error":{...}}`, `{"message":"..."}` and a bare
/// JSON string.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum ErrorBody {
    Standard { error: ErrorDetail },
    Message { message: String },
    Text(String),
}

impl ErrorBody {
    /// Parses any of the shapes; anything else (HTML, empty) gives `None`.
    pub fn parse(body: &[u8]) -> Option<ErrorDetail> {
        match serde_json::from_slice::<ErrorBody>(body).ok()? {
            ErrorBody::Standard { error } => Some(error),
            ErrorBody::Message { message } | ErrorBody::Text(message) => Some(ErrorDetail {
                description: Some(message),
                ..ErrorDetail::default()
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn nulls_where_numbers_or_strings_are_expected_never_fail_a_read() {
        let payment: super::Payment = serde_json::from_value(serde_json::json!({
            "id": "pay_1", "amount": null, "currency": null, "status": "captured",
            "amount_refunded": null, "captured": null, "created_at": null, "notes": null,
        }))
        .unwrap();
        assert_eq!((payment.amount, payment.currency.as_str()), (0, ""));
        let link: super::PaymentLink = serde_json::from_value(serde_json::json!({
            "id": "plink_1", "amount": null, "amount_paid": null, "currency": null,
            "status": "created", "short_url": null, "accept_partial": null, "created_at": null,
        }))
        .unwrap();
        assert_eq!((link.amount, link.short_url.as_str()), (0, ""));
        let invoice: super::Invoice = serde_json::from_value(serde_json::json!({
            "id": "inv_1", "status": "issued", "currency": null, "amount": null,
            "partial_payment": null, "created_at": null,
        }))
        .unwrap();
        assert_eq!(invoice.amount, None);
    }

    use super::*;

    #[test]
    fn notes_accept_every_shape_razorpay_sends() {
        let parse = |s: &str| serde_json::from_str::<Notes>(s).unwrap();
        assert_eq!(parse("null"), Notes::default());
        assert_eq!(parse("[]"), Notes::default());
        assert_eq!(parse(r#"{"a":"1","n":2,"b":true}"#).get("n"), Some("2"));
        assert_eq!(
            parse(r#"[{"key":"policy_name","value":"Jeevan Saral"}]"#).get("policy_name"),
            Some("Jeevan Saral")
        );
        assert!(serde_json::from_str::<Notes>("7").is_err());
    }

    #[test]
    fn the_three_error_shapes_parse() {
        let standard = ErrorBody::parse(
            br#"{"error":{"code":"BAD_REQUEST_ERROR","description":"The amount is invalid","field":"amount"}}"#,
        )
        .unwrap();
        assert_eq!(standard.code.as_deref(), Some("BAD_REQUEST_ERROR"));
        assert_eq!(standard.field.as_deref(), Some("amount"));
        let nulls = ErrorBody::parse(
            br#"{"error":{"code":"BAD_REQUEST_ERROR","description":"invalid input","metadata":[],"reason":null,"source":"NA","step":null}}"#,
        )
        .unwrap();
        assert_eq!(nulls.reason, None);
        let message = ErrorBody::parse(br#"{"message":"Too many requests"}"#).unwrap();
        assert_eq!(message.description.as_deref(), Some("Too many requests"));
        let text = ErrorBody::parse(br#""Bad gateway""#).unwrap();
        assert_eq!(text.description.as_deref(), Some("Bad gateway"));
        assert_eq!(ErrorBody::parse(b"<html>502</html>"), None);
    }

    #[test]
    fn a_fresh_link_parses_with_its_zeros_and_nulls() {
        let link: PaymentLink = serde_json::from_str(
            r##"{"accept_partial":true,"amount":1000,"amount_paid":0,"callback_method":"","callback_url":"",
            "cancelled_at":0,"created_at":1596187814,"currency":"INR","customer":[],
            "description":"Payment for policy no #23456","expire_by":0,"expired_at":0,
            "first_min_partial_amount":100,"id":"plink_FL3Oncr7XxXFf6","notes":null,
            "notify":{"email":true,"sms":true},"payments":null,"reference_id":"#423212",
            "reminder_enable":true,"reminders":[],"short_url":"https://rzp.io/i/j45EmLE",
            "source":"","source_id":"","status":"created","updated_at":1596187814,"user_id":""}"##,
        )
        .unwrap();
        assert_eq!(link.expire_by, None);
        assert_eq!(link.callback_url, None);
        assert_eq!(link.customer, None);
        assert!(link.notes.is_empty());
        assert_eq!(link.reference_id.as_deref(), Some("#423212"));
    }
}
