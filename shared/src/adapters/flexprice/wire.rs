//! Flexprice's JSON. Money fields are decimal strings; currency
//! codes come lower-case. Amounts become [`Money`] only through [`Invoice::amounts`] and
//! [`LineItem::amount`], which refuse anything inexact.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use crate::domain::money::{Currency, Money, MoneyError};

/// `metadata`: string pairs; `null` is empty.
fn metadata<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(Option::<BTreeMap<String, String>>::deserialize(deserializer)?.unwrap_or_default())
}

fn zero() -> String {
    "0".to_owned()
}

/// A money field `null` means none: "0".
fn zero_if_null<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.unwrap_or_else(zero))
}

/// A field Flexprice sent as `null` reads as "", which every use refuses (an amount that cannot
/// be parsed, an unknown status): the read never fails on it, and nothing acts on a guess.
fn empty_if_null<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.unwrap_or_default())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineItem {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub plan_display_name: Option<String>,
    #[serde(default)]
    pub entity_type: Option<String>,
    /// The line's total, a decimal string.
    pub amount: String,
    #[serde(default = "one")]
    pub quantity: String,
    #[serde(default)]
    pub currency: Option<String>,
}

fn one() -> String {
    "1".to_owned()
}

impl LineItem {
    pub fn amount(&self, currency: Currency) -> Result<Money, MoneyError> {
        Money::parse(&self.amount, currency)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tax {
    #[serde(default)]
    pub name: Option<String>,
    pub amount: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    pub id: String,
    #[serde(default, deserialize_with = "empty_if_null")]
    pub customer_id: String,
    /// `DRAFT`, `FINALIZED`, `VOIDED` or `SKIPPED`.
    #[serde(default, deserialize_with = "empty_if_null")]
    pub invoice_status: String,
    /// `PENDING`, `SUCCEEDED`, `OVERPAID`, `FAILED`, ...
    #[serde(default, deserialize_with = "empty_if_null")]
    pub payment_status: String,
    /// Lower-case, as Flexprice sends it.
    #[serde(default, deserialize_with = "empty_if_null")]
    pub currency: String,
    #[serde(default, deserialize_with = "empty_if_null")]
    pub amount_due: String,
    #[serde(default = "zero", deserialize_with = "zero_if_null")]
    pub amount_paid: String,
    #[serde(default, deserialize_with = "empty_if_null")]
    pub amount_remaining: String,
    #[serde(default = "zero", deserialize_with = "zero_if_null")]
    pub subtotal: String,
    #[serde(default = "zero", deserialize_with = "zero_if_null")]
    pub total: String,
    #[serde(default = "zero", deserialize_with = "zero_if_null")]
    pub total_discount: String,
    #[serde(default = "zero", deserialize_with = "zero_if_null")]
    pub total_tax: String,
    #[serde(default = "zero", deserialize_with = "zero_if_null")]
    pub total_prepaid_credits_applied: String,
    #[serde(default)]
    pub invoice_number: Option<String>,
    /// RFC 3339, when set.
    #[serde(default)]
    pub due_date: Option<String>,
    #[serde(default, deserialize_with = "metadata")]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub line_items: Vec<LineItem>,
    #[serde(default)]
    pub taxes: Vec<Tax>,
}

/// An invoice's money, exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvoiceAmounts {
    pub currency: Currency,
    pub subtotal: Money,
    pub total_discount: Money,
    pub total_tax: Money,
    pub credits_applied: Money,
    pub total: Money,
    pub due: Money,
    pub paid: Money,
    pub remaining: Money,
}

impl Invoice {
    pub fn currency(&self) -> Result<Currency, MoneyError> {
        Currency::from_code(&self.currency)
    }

    /// What the invoice still owes, parsed exactly: the one amount collecting it depends on
    /// (lines, taxes and totals are shown when they can be, never required).
    pub fn remaining(&self) -> Result<Money, MoneyError> {
        Money::parse(&self.amount_remaining, self.currency()?)
    }

    /// Every amount of the invoice parsed exactly in its currency.
    pub fn amounts(&self) -> Result<InvoiceAmounts, MoneyError> {
        let currency = self.currency()?;
        let parse = |text: &str| Money::parse(text, currency);
        Ok(InvoiceAmounts {
            currency,
            subtotal: parse(&self.subtotal)?,
            total_discount: parse(&self.total_discount)?,
            total_tax: parse(&self.total_tax)?,
            credits_applied: parse(&self.total_prepaid_credits_applied)?,
            total: parse(&self.total)?,
            due: parse(&self.amount_due)?,
            paid: parse(&self.amount_paid)?,
            remaining: parse(&self.amount_remaining)?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    pub id: String,
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub contact: Option<String>,
    #[serde(default, deserialize_with = "metadata")]
    pub metadata: BTreeMap<String, String>,
}

/// `POST /v1/payments` recording a payment collected elsewhere (here: through Razorpay).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordPaymentRequest {
    pub destination_type: String,
    pub destination_id: String,
    pub payment_method_type: String,
    pub amount: String,
    pub currency: String,
    pub process_payment: bool,
    pub idempotency_key: String,
    pub metadata: BTreeMap<String, String>,
}

impl RecordPaymentRequest {
    /// An OFFLINE payment of `amount` on an invoice, processed at once (SUCCEEDED), which
    /// makes Flexprice recompute the invoice.
    pub fn offline(
        invoice_id: &str,
        amount: Money,
        idempotency_key: &str,
        metadata: BTreeMap<String, String>,
    ) -> RecordPaymentRequest {
        RecordPaymentRequest {
            destination_type: "INVOICE".to_owned(),
            destination_id: invoice_id.to_owned(),
            payment_method_type: "OFFLINE".to_owned(),
            amount: amount.to_decimal_string(),
            currency: amount.currency().code().to_ascii_lowercase(),
            process_payment: true,
            idempotency_key: idempotency_key.to_owned(),
            metadata,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub id: String,
    #[serde(default)]
    pub idempotency_key: Option<String>,
    #[serde(default)]
    pub destination_id: Option<String>,
    #[serde(default, deserialize_with = "empty_if_null")]
    pub amount: String,
    #[serde(default, deserialize_with = "empty_if_null")]
    pub currency: String,
    #[serde(default, deserialize_with = "empty_if_null")]
    pub payment_status: String,
    #[serde(default)]
    pub payment_method_type: Option<String>,
    #[serde(default, deserialize_with = "metadata")]
    pub metadata: BTreeMap<String, String>,
}

/// Where a recorded payment stands, as Flexprice says it: it inserts the row (INITIATED),
/// then processes it; only a processed payment moved the invoice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordedAs {
    /// SUCCEEDED or OVERPAID: the money is on the invoice.
    Counted,
    /// INITIATED, PENDING or PROCESSING: inserted, not (yet) processed.
    Unprocessed,
    /// FAILED, VOIDED, refunded or a status this client does not know.
    Other,
}

impl Payment {
    pub fn recorded_as(&self) -> RecordedAs {
        match self.payment_status.as_str() {
            // Refunded later: the money was counted all the same.
            "SUCCEEDED" | "OVERPAID" | "PARTIALLY_REFUNDED" | "REFUNDED" => RecordedAs::Counted,
            "INITIATED" | "PENDING" | "PROCESSING" => RecordedAs::Unprocessed,
            _ => RecordedAs::Other,
        }
    }
}

/// `PUT /v1/payments/{id}` moving a payment to a refund state: Flexprice checks the move
/// (SUCCEEDED or OVERPAID → PARTIALLY_REFUNDED → REFUNDED), and the metadata given replaces
/// the payment's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpdatePaymentRequest {
    pub payment_status: String,
    /// RFC 3339.
    pub refunded_at: String,
    pub metadata: BTreeMap<String, String>,
}

/// A credit note (`GET /v1/creditnotes/{id}`): only what a refund needs; every field may be
/// absent, and a refund is refused (not guessed) when one it needs is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditNote {
    pub id: String,
    #[serde(default)]
    pub invoice_id: Option<String>,
    /// `REFUND` or `ADJUSTMENT`.
    #[serde(default)]
    pub credit_note_type: Option<String>,
    /// `DRAFT`, `FINALIZED` or `VOIDED`.
    #[serde(default)]
    pub credit_note_status: Option<String>,
    /// A decimal string in the major unit.
    #[serde(default)]
    pub total_amount: Option<String>,
    #[serde(default)]
    pub currency: Option<String>,
}

/// `PUT /v1/invoices/{id}`: the metadata given replaces the invoice's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpdateInvoiceRequest {
    pub metadata: BTreeMap<String, String>,
}

/// Flexprice's error body: `{"code","message","http_status_code","details"}`; some routes
/// wrap it as `{"error": {...}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ErrorBody {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

impl ErrorBody {
    pub fn parse(body: &[u8]) -> Option<ErrorBody> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Shape {
            Wrapped { error: ErrorBody },
            Flat(ErrorBody),
        }
        match serde_json::from_slice::<Shape>(body).ok()? {
            Shape::Wrapped { error } | Shape::Flat(error) => Some(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invoice(remaining: &str) -> Invoice {
        serde_json::from_value(serde_json::json!({
            "id": "inv_1", "customer_id": "cust_1", "invoice_status": "FINALIZED",
            "payment_status": "PENDING", "currency": "inr", "amount_due": "1120.50",
            "amount_paid": "0", "amount_remaining": remaining, "total": "1120.50",
            "metadata": null,
            "line_items": [{"display_name": "Pro", "amount": "999.00", "quantity": "1", "currency": "inr"}]
        }))
        .unwrap()
    }

    #[test]
    fn nulls_never_fail_a_read_and_a_missing_amount_is_refused_where_it_is_used() {
        let invoice: Invoice = serde_json::from_value(serde_json::json!({
            "id": "inv_1", "customer_id": "cust_1", "invoice_status": "FINALIZED",
            "payment_status": null, "currency": "inr", "amount_due": "10.00",
            "amount_paid": null, "amount_remaining": null, "total_discount": null,
            "invoice_number": null, "due_date": null, "metadata": null,
        }))
        .unwrap();
        assert_eq!(
            (
                invoice.amount_paid.as_str(),
                invoice.total_discount.as_str()
            ),
            ("0", "0")
        );
        assert!(
            invoice.amounts().is_err(),
            "no amount_remaining is not zero"
        );
        let payment: Payment = serde_json::from_value(serde_json::json!({
            "id": "pay_1", "amount": null, "currency": null, "payment_status": null,
        }))
        .unwrap();
        assert_eq!(
            payment.recorded_as(),
            RecordedAs::Other,
            "an unknown status counts nothing"
        );
    }

    #[test]
    fn amounts_are_parsed_exactly_in_the_invoice_currency() {
        let amounts = invoice("1120.50").amounts().unwrap();
        assert_eq!(amounts.currency, Currency::INR);
        assert_eq!(amounts.remaining.minor(), 112050);
        assert_eq!(amounts.paid.minor(), 0);
        assert_eq!(amounts.subtotal.minor(), 0);
        assert!(invoice("1120.505").amounts().is_err());
        let inv = invoice("1");
        assert_eq!(
            inv.line_items[0].amount(Currency::INR).unwrap().minor(),
            99900
        );
        assert!(inv.metadata.is_empty());
    }

    #[test]
    fn offline_payment_request_is_lower_case_and_exact() {
        let request = RecordPaymentRequest::offline(
            "inv_1",
            Money::from_minor(112050, Currency::INR),
            "rzp_pay_X",
            BTreeMap::new(),
        );
        let json = serde_json::to_value(&request).unwrap();
        assert_eq!(json["amount"], "1120.50");
        assert_eq!(json["currency"], "inr");
        assert_eq!(json["payment_method_type"], "OFFLINE");
        assert_eq!(json["process_payment"], true);
    }

    #[test]
    fn error_bodies_flat_and_wrapped() {
        let flat = ErrorBody::parse(
            br#"{"code":"not_found","message":"invoice not found","http_status_code":404}"#,
        )
        .unwrap();
        assert_eq!(flat.message.as_deref(), Some("invoice not found"));
        let wrapped =
            ErrorBody::parse(br#"{"error":{"code":"validation_error","message":"bad"}}"#).unwrap();
        assert_eq!(wrapped.code.as_deref(), Some("validation_error"));
    }
}
