//! Request bodies and path parameters, parsed once into domain types: only what comes out of
//! here reaches a service, another service's URL or the table. Every refusal is a
//! problem+json naming the field and the rule; nothing is trimmed, repaired or guessed.
//!
//! Bodies: `Content-Type: application/json` (415 otherwise), at most [`MAX_BODY_BYTES`] (413),
//! one JSON object whose keys appear once (400). Values are read from their raw text, so a
//! number such as `1e309` is the amount's problem, not the body's.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::problem::{FieldProblem, Problem};
use crate::domain::collection::{MAX_EXPIRY_DAYS, MAX_OVERDUE_GRACE_DAYS, OverCollection};
use crate::domain::ids::{FlexpriceId, IdError, RazorpayAccountId, RazorpayKeyId};
use crate::domain::money::DecimalText;
pub use crate::domain::requests::{ConnectionRequest, PaymentRequest, RefundRequest};
use crate::domain::secret::Secret;
use crate::domain::signature::SvixSecret;
use crate::domain::url::HttpUrl;

/// The largest body the API reads.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Caller metadata kept on a payment: at most this many entries, keys and values this long.
pub const MAX_METADATA_ENTRIES: usize = 20;
pub const MAX_METADATA_KEY: usize = 40;
pub const MAX_METADATA_VALUE: usize = 500;
pub const MAX_IDEMPOTENCY_KEY: usize = 255;
/// The longest secret or API key a connection may hold.
pub const MAX_SECRET: usize = 256;

fn invalid(status: u16, field: &str, rule: &str, detail: impl Into<String>) -> Problem {
    Problem::invalid_field(status, field, rule, detail)
}

fn not_an_object() -> Problem {
    invalid(400, "body", "json_object", "the body must be a JSON object")
}

/// The fields of a JSON object body, each as its raw JSON text.
pub struct Fields(BTreeMap<String, Box<RawValue>>);

/// Reads an object whose keys appear once (a repeated key would be read one way here and
/// another way by whoever reads the body next).
struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Result<Fields, String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = BTreeMap::new();
        while let Some((key, value)) = map.next_entry::<String, Box<RawValue>>()? {
            if fields.insert(key.clone(), value).is_some() {
                return Ok(Err(key));
            }
        }
        Ok(Ok(Fields(fields)))
    }
}

impl Fields {
    /// The body of a JSON request, checked for its type, size and shape.
    pub fn from_body(content_type: Option<&str>, body: &[u8]) -> Result<Fields, Problem> {
        if body.is_empty() {
            return Err(not_an_object());
        }
        let media_type = content_type
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase());
        if media_type.as_deref() != Some("application/json") {
            return Err(Problem::invalid_field(
                415,
                "content-type",
                "application_json",
                "send the body as JSON, with Content-Type: application/json",
            ));
        }
        if body.len() > MAX_BODY_BYTES {
            return Err(invalid(
                413,
                "body",
                "max_size",
                format!("the body must be at most {MAX_BODY_BYTES} bytes"),
            ));
        }
        let mut deserializer = serde_json::Deserializer::from_slice(body);
        let fields = match deserializer.deserialize_map(FieldsVisitor) {
            Ok(Ok(fields)) => fields,
            Ok(Err(key)) => {
                return Err(invalid(
                    400,
                    "body",
                    "unique_keys",
                    format!("the body names {key:?} more than once"),
                ));
            }
            Err(_) => return Err(not_an_object()),
        };
        deserializer.end().map_err(|_| not_an_object())?;
        Ok(fields)
    }

    fn raw(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.get()).filter(|v| *v != "null")
    }

    /// A string field as sent; `None` when absent or null.
    pub fn text(&self, name: &str) -> Result<Option<String>, Problem> {
        match self.raw(name) {
            None => Ok(None),
            Some(raw) => match serde_json::from_str::<String>(raw) {
                Ok(text) if !text.is_empty() => Ok(Some(text)),
                _ => Err(invalid(
                    400,
                    name,
                    "non_empty_string",
                    format!("{name} must be a non-empty string"),
                )),
            },
        }
    }

    pub fn required_text(&self, name: &str) -> Result<String, Problem> {
        self.text(name)?
            .ok_or_else(|| invalid(400, name, "required", format!("{name} is required")))
    }

    /// A boolean field; `None` when absent or null.
    pub fn boolean(&self, name: &str) -> Result<Option<bool>, Problem> {
        match self.raw(name) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(_) => Err(invalid(
                400,
                name,
                "boolean",
                format!("{name} must be true or false"),
            )),
        }
    }

    /// A whole number of days in `range`, when given.
    pub fn days(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<u32>,
    ) -> Result<Option<u32>, Problem> {
        let Some(raw) = self.raw(name) else {
            return Ok(None);
        };
        match raw.parse::<u32>() {
            Ok(days) if range.contains(&days) => Ok(Some(days)),
            _ => Err(invalid(
                422,
                name,
                "days",
                format!(
                    "{name} must be a whole number of days from {} to {}",
                    range.start(),
                    range.end()
                ),
            )),
        }
    }

    /// An amount: a JSON number or a decimal string, kept as its exact text.
    pub fn amount(&self, name: &str) -> Result<DecimalText, Problem> {
        let raw = self
            .raw(name)
            .ok_or_else(|| invalid(400, name, "required", format!("{name} is required")))?;
        serde_json::from_str::<DecimalText>(raw).map_err(|_| {
            invalid(
                400,
                name,
                "decimal",
                format!("{name} must be a JSON number or a decimal string"),
            )
        })
    }

    /// An object of strings; empty when absent or null.
    pub fn string_map(&self, name: &str) -> Result<BTreeMap<String, String>, Problem> {
        match self.raw(name) {
            None => Ok(BTreeMap::new()),
            Some(raw) => serde_json::from_str(raw).map_err(|_| {
                invalid(
                    400,
                    name,
                    "object_of_strings",
                    format!("{name} must be an object whose values are strings"),
                )
            }),
        }
    }
}

/// A value the API takes only in one spelling (letter case aside): `razorpay`, not
/// `razorpay ` or `stripe`.
fn fixed(fields: &Fields, name: &str, expected: &str) -> Result<(), Problem> {
    let given = fields.required_text(name)?;
    if given.eq_ignore_ascii_case(expected) {
        return Ok(());
    }
    Err(invalid(
        422,
        name,
        "supported_value",
        format!("{name} must be {expected}, not {given:?}"),
    ))
}

fn id_problem(name: &str, e: &IdError) -> Problem {
    invalid(400, name, e.rule(), format!("{name} {e}"))
}

/// A Flexprice id from a body field or a path parameter.
pub fn flexprice_id(name: &str, text: &str) -> Result<FlexpriceId, Problem> {
    FlexpriceId::parse(text).map_err(|e| id_problem(name, &e))
}

fn http_url(fields: &Fields, name: &str) -> Result<Option<HttpUrl>, Problem> {
    fields
        .text(name)?
        .map(|text| {
            HttpUrl::parse(&text).map_err(|e| invalid(400, name, e.rule(), format!("{name} {e}")))
        })
        .transpose()
}

impl PaymentRequest {
    /// The body's shape, then what it asks for, in that order.
    pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<PaymentRequest, Problem> {
        let fields = Fields::from_body(content_type, body)?;
        let amount = fields.amount("amount")?;
        let currency = currency(&fields.required_text("currency")?)?;
        let invoice_id = flexprice_id("destination_id", &fields.required_text("destination_id")?)?;
        fixed(&fields, "destination_type", "INVOICE")?;
        fixed(&fields, "payment_method_type", "PAYMENT_LINK")?;
        fixed(&fields, "payment_gateway", "razorpay")?;
        fields.boolean("process_payment")?;
        let success_url = http_url(&fields, "success_url")?;
        http_url(&fields, "cancel_url")?;
        let idempotency_key = fields.text("idempotency_key")?;
        if let Some(key) = &idempotency_key {
            printable(key, "idempotency_key", MAX_IDEMPOTENCY_KEY, 400)?;
        }
        let metadata = metadata(fields.string_map("metadata")?)?;
        Ok(PaymentRequest {
            amount,
            currency,
            invoice_id,
            success_url,
            idempotency_key,
            metadata,
        })
    }
}

/// The longest refund reason (it travels in a Razorpay note, at most 255 characters).
pub const MAX_REASON: usize = 255;

impl RefundRequest {
    pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<RefundRequest, Problem> {
        let fields = Fields::from_body(content_type, body)?;
        let amount = match fields.raw("amount") {
            Some(_) => Some(fields.amount("amount")?),
            None => None,
        };
        let reason = fields.text("reason")?;
        if let Some(reason) = &reason {
            printable(reason, "reason", MAX_REASON, 400)?;
        }
        let speed = fields.text("speed")?.unwrap_or_else(|| "normal".to_owned());
        if speed != "normal" && speed != "optimum" {
            return Err(invalid(
                400,
                "speed",
                "one_of",
                "speed is normal or optimum",
            ));
        }
        let idempotency_key = fields.required_text("idempotency_key")?;
        printable(
            &idempotency_key,
            "idempotency_key",
            MAX_IDEMPOTENCY_KEY,
            400,
        )?;
        let razorpay_payment_id = fields.text("razorpay_payment_id")?;
        if let Some(id) = &razorpay_payment_id {
            razorpay_payment_id_shape(id)?;
        }
        Ok(RefundRequest {
            amount,
            reason,
            speed,
            idempotency_key,
            razorpay_payment_id,
        })
    }
}

fn razorpay_payment_id_shape(id: &str) -> Result<(), Problem> {
    let shaped = id.strip_prefix("pay_").is_some_and(|rest| {
        !rest.is_empty() && rest.len() <= 40 && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    });
    if shaped {
        return Ok(());
    }
    Err(invalid(
        400,
        "razorpay_payment_id",
        "razorpay_id",
        "a Razorpay payment id: pay_ and up to 40 letters or digits",
    ))
}

/// `review` or `refund`.
fn overcollection(fields: &Fields) -> Result<Option<OverCollection>, Problem> {
    let Some(text) = fields.text("overcollection")? else {
        return Ok(None);
    };
    OverCollection::parse(&text).map(Some).ok_or_else(|| {
        invalid(
            400,
            "overcollection",
            "one_of",
            "overcollection is review or refund",
        )
    })
}

fn currency(text: &str) -> Result<String, Problem> {
    if text.len() == 3 && text.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Ok(text.to_ascii_uppercase());
    }
    Err(invalid(
        400,
        "currency",
        "currency_code",
        format!("currency must be a three-letter ISO 4217 code such as INR, not {text:?}"),
    ))
}

/// No control characters, at most `max` characters.
fn printable(text: &str, name: &str, max: usize, status: u16) -> Result<(), Problem> {
    if text.chars().count() > max {
        return Err(invalid(
            status,
            name,
            "max_length",
            format!("{name} must be at most {max} characters"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(invalid(
            status,
            name,
            "no_control_characters",
            format!("{name} must not contain control characters"),
        ));
    }
    Ok(())
}

fn metadata(map: BTreeMap<String, String>) -> Result<BTreeMap<String, String>, Problem> {
    if map.len() > MAX_METADATA_ENTRIES {
        return Err(invalid(
            422,
            "metadata",
            "max_entries",
            format!("metadata may hold at most {MAX_METADATA_ENTRIES} entries"),
        ));
    }
    for (key, value) in &map {
        printable(key, "metadata", MAX_METADATA_KEY, 422)?;
        printable(value, "metadata", MAX_METADATA_VALUE, 422)?;
    }
    Ok(map)
}

/// Collects every field's problem, so one answer names them all.
#[derive(Default)]
struct Problems(Vec<FieldProblem>);

impl Problems {
    fn take<T>(&mut self, result: Result<T, Problem>) -> Option<T> {
        result.map_err(|p| self.0.extend(p.errors)).ok()
    }

    /// A field that must be there: its problem, or `required` when it is absent.
    fn need<T>(&mut self, name: &str, result: Result<Option<T>, Problem>) -> Option<T> {
        let value = self.take(result)?;
        if value.is_none() {
            self.0.push(FieldProblem {
                field: name.into(),
                rule: "required".into(),
                detail: format!("{name} is required"),
            });
        }
        value
    }
}

/// A secret or key: 1 to [`MAX_SECRET`] printable ASCII characters, no spaces.
fn token(fields: &Fields, name: &str) -> Result<Option<Secret<String>>, Problem> {
    let Some(text) = fields.text(name)? else {
        return Ok(None);
    };
    if text.len() > MAX_SECRET || !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(
            422,
            name,
            "token",
            format!("{name} must be 1 to {MAX_SECRET} printable ASCII characters without spaces"),
        ));
    }
    Ok(Some(Secret::new(text)))
}

fn svix_secret(fields: &Fields, name: &str) -> Result<Option<Secret<String>>, Problem> {
    let Some(text) = fields.text(name)? else {
        return Ok(None);
    };
    let secret = Secret::new(text);
    if secret.expose().len() > MAX_SECRET || SvixSecret::parse(&secret).is_err() {
        return Err(invalid(
            422,
            name,
            "svix_secret",
            format!("{name} must be the endpoint's signing secret: whsec_ followed by base64"),
        ));
    }
    Ok(Some(secret))
}

fn key_id(fields: &Fields) -> Result<Option<RazorpayKeyId>, Problem> {
    fields
        .text("key_id")?
        .map(|t| {
            RazorpayKeyId::parse(&t)
                .map_err(|e| invalid(422, "key_id", "razorpay_key_id", format!("key_id {e}")))
        })
        .transpose()
}

fn account_id(fields: &Fields) -> Result<Option<RazorpayAccountId>, Problem> {
    let name = "razorpay_account_id";
    fields
        .text(name)?
        .map(|t| {
            RazorpayAccountId::parse(&t)
                .map_err(|e| invalid(422, name, e.rule(), format!("{name} {e}")))
        })
        .transpose()
}

impl ConnectionRequest {
    pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<ConnectionRequest, Problem> {
        let fields = Fields::from_body(content_type, body)?;
        let mut problems = Problems::default();
        let key_id = problems.need("key_id", key_id(&fields));
        let key_secret = problems.need("key_secret", token(&fields, "key_secret"));
        let webhook_secret = problems.need("webhook_secret", token(&fields, "webhook_secret"));
        let flexprice_api_key =
            problems.need("flexprice_api_key", token(&fields, "flexprice_api_key"));
        let flexprice_webhook_secret = problems
            .take(svix_secret(&fields, "flexprice_webhook_secret"))
            .flatten();
        let sync = problems.need(
            "invoice_outbound_sync",
            fields.boolean("invoice_outbound_sync"),
        );
        let razorpay_account_id = problems.take(account_id(&fields)).flatten();
        let link_expiry_days = problems
            .take(fields.days("link_expiry_days", 1..=MAX_EXPIRY_DAYS))
            .flatten();
        let overdue_grace_days = problems
            .take(fields.days("overdue_grace_days", 1..=MAX_OVERDUE_GRACE_DAYS))
            .flatten();
        let link_reminders = problems.take(fields.boolean("link_reminders")).flatten();
        let overcollection = problems.take(overcollection(&fields)).flatten();
        let credit_note_refunds = problems
            .take(fields.boolean("credit_note_refunds"))
            .flatten();
        match (key_id, key_secret, webhook_secret, flexprice_api_key, sync) {
            (
                Some(key_id),
                Some(key_secret),
                Some(webhook_secret),
                Some(flexprice_api_key),
                Some(sync),
            ) if problems.0.is_empty() => Ok(ConnectionRequest {
                key_id,
                key_secret,
                webhook_secret,
                flexprice_api_key,
                flexprice_webhook_secret,
                invoice_outbound_sync: sync,
                razorpay_account_id,
                link_expiry_days,
                overdue_grace_days,
                link_reminders,
                overcollection,
                credit_note_refunds,
            }),
            _ => Err(Problem::fields(422, problems.0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: Option<&str> = Some("application/json");

    fn payment(body: &str) -> Result<PaymentRequest, Problem> {
        PaymentRequest::parse(JSON, body.as_bytes())
    }

    fn refusal(result: Result<PaymentRequest, Problem>) -> (u16, String, String) {
        let problem = result.unwrap_err();
        let first = &problem.errors[0];
        (problem.status, first.field.clone(), first.rule.clone())
    }

    /// The README's example body with one field replaced (or removed, for `null`).
    fn example_with(field: &str, value: serde_json::Value) -> String {
        let mut body = serde_json::json!({"amount": 1120.50, "currency": "inr",
            "destination_id": "inv_local_inr_0001", "destination_type": "INVOICE",
            "payment_method_type": "PAYMENT_LINK", "payment_gateway": "razorpay",
            "process_payment": true, "success_url": "https://example.com/paid"});
        body[field] = value;
        body.to_string()
    }

    #[test]
    fn the_example_body_parses_into_domain_types() {
        let request = payment(&example_with("idempotency_key", "k-1".into())).unwrap();
        assert_eq!(request.amount.as_str(), "1120.5");
        assert_eq!(request.currency, "INR");
        assert_eq!(request.invoice_id.as_str(), "inv_local_inr_0001");
        assert_eq!(
            request.success_url.unwrap().as_str(),
            "https://example.com/paid"
        );
    }

    #[test]
    fn an_amount_is_read_from_its_exact_text_even_out_of_float_range() {
        let body = example_with("amount", serde_json::Value::Null).replace("null", "1e309");
        let request = payment(&body).unwrap();
        assert_eq!(request.amount.as_str(), "1e309");
        let body = r#"{"amount": 1120.50, "currency": "INR"}"#;
        assert_eq!(
            refusal(payment(body)),
            (400, "destination_id".into(), "required".into())
        );
    }

    #[test]
    fn ids_that_would_change_a_url_are_refused() {
        for bad in [
            "inv_nope/../inv_local_inr_0001",
            "inv_local_inr_0001#frag",
            "inv_local_inr_0001?x=1",
            "inv_local_inr_0001\u{0}",
            "inv_local_inr_0001 ",
            "inv_local_inr_0001\n",
            "inv_local_inr_0001\t",
            "inv_local_inr_0001/finalize",
        ] {
            assert_eq!(
                refusal(payment(&example_with("destination_id", bad.into()))),
                (400, "destination_id".into(), "charset".into()),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn urls_must_be_absolute_http_with_a_host() {
        for (field, bad, rule) in [
            ("success_url", "http://", "http_url_host"),
            ("success_url", "https://exa mple.com/", "charset"),
            ("success_url", "https://example.com/\u{0}", "charset"),
            ("cancel_url", "javascript:alert(1)", "http_url"),
        ] {
            assert_eq!(
                refusal(payment(&example_with(field, bad.into()))),
                (400, field.into(), rule.into()),
                "{bad:?}"
            );
        }
        let long = format!("https://example.com/{}", "a".repeat(HttpUrl::MAX_LEN));
        assert_eq!(
            refusal(payment(&example_with("success_url", long.into()))).2,
            "max_length"
        );
    }

    #[test]
    fn values_are_taken_in_one_spelling_only() {
        for (field, bad, status, rule) in [
            ("currency", "inr ", 400, "currency_code"),
            ("currency", " INR", 400, "currency_code"),
            ("payment_gateway", "razorpay ", 422, "supported_value"),
            ("process_payment", "yes", 400, "boolean"),
        ] {
            assert_eq!(
                refusal(payment(&example_with(field, bad.into()))),
                (status, field.into(), rule.into()),
                "{field} {bad:?}"
            );
        }
    }

    #[test]
    fn the_body_is_json_of_bounded_size_with_each_key_once() {
        let body = example_with("currency", "INR".into());
        let kind = |content_type: Option<&str>| {
            let problem = PaymentRequest::parse(content_type, body.as_bytes()).unwrap_err();
            (problem.status, problem.errors[0].field.clone())
        };
        assert_eq!(kind(Some("text/plain")), (415, "content-type".into()));
        assert_eq!(kind(None), (415, "content-type".into()));
        assert!(
            PaymentRequest::parse(Some("Application/JSON; charset=utf-8"), body.as_bytes()).is_ok()
        );
        let huge = example_with(
            "metadata",
            serde_json::json!({"note": "x".repeat(MAX_BODY_BYTES)}),
        );
        assert_eq!(
            refusal(payment(&huge)),
            (413, "body".into(), "max_size".into())
        );
        let twice = r#"{"amount": "1.00", "amount": "900.00"}"#;
        assert_eq!(
            refusal(payment(twice)),
            (400, "body".into(), "unique_keys".into())
        );
        assert_eq!(
            refusal(payment("[]")),
            (400, "body".into(), "json_object".into())
        );
        assert_eq!(
            refusal(payment("{} {}")),
            (400, "body".into(), "json_object".into())
        );
    }

    #[test]
    fn metadata_is_bounded() {
        let many: serde_json::Map<String, serde_json::Value> =
            (0..21).map(|i| (format!("k{i}"), "v".into())).collect();
        assert_eq!(
            refusal(payment(&example_with("metadata", many.into()))),
            (422, "metadata".into(), "max_entries".into())
        );
        let long = serde_json::json!({"k": "v".repeat(MAX_METADATA_VALUE + 1)});
        assert_eq!(
            refusal(payment(&example_with("metadata", long))).2,
            "max_length"
        );
        assert_eq!(
            refusal(payment(&example_with(
                "metadata",
                serde_json::json!({"k": 1})
            )))
            .2,
            "object_of_strings"
        );
    }

    fn connection(body: serde_json::Value) -> Result<ConnectionRequest, Problem> {
        ConnectionRequest::parse(JSON, body.to_string().as_bytes())
    }

    fn connection_with(field: &str, value: serde_json::Value) -> serde_json::Value {
        let mut body = serde_json::json!({"key_id": "rzp_test_abc123", "key_secret": "s3cret",
            "webhook_secret": "whook", "flexprice_api_key": "fp_key",
            "flexprice_webhook_secret": "whsec_ZmxleHJ6cF9sb2NhbF9mbGV4cHJpY2Vfc2VjcmV0",
            "invoice_outbound_sync": true, "razorpay_account_id": "acc_Abc123"});
        body[field] = value;
        body
    }

    #[test]
    fn a_connection_is_checked_field_by_field_before_anything_is_sent() {
        assert!(connection(connection_with("key_id", "rzp_live_abc123".into())).is_ok());
        for (field, bad, rule) in [
            ("key_id", "rzp_test_abc\u{0}", "razorpay_key_id"),
            ("key_id", "rzp_test_abc\r\n", "razorpay_key_id"),
            ("key_secret", "has space", "token"),
            (
                "flexprice_webhook_secret",
                "whsec_!!!not base64!!!",
                "svix_secret",
            ),
            ("razorpay_account_id", "acc_\n", "charset"),
        ] {
            let problem = connection(connection_with(field, bad.into()))
                .err()
                .unwrap();
            assert_eq!(problem.status, 422, "{field}");
            assert_eq!(
                (
                    problem.errors[0].field.as_str(),
                    problem.errors[0].rule.as_str()
                ),
                (field, rule),
                "{bad:?}"
            );
        }
        let mut missing = connection_with("key_secret", serde_json::Value::Null);
        missing["invoice_outbound_sync"] = "yes".into();
        let problem = connection(missing).err().unwrap();
        let named: Vec<(&str, &str)> = problem
            .errors
            .iter()
            .map(|p| (p.field.as_str(), p.rule.as_str()))
            .collect();
        assert_eq!(
            named,
            [
                ("key_secret", "required"),
                ("invoice_outbound_sync", "boolean")
            ]
        );
        let long = "k".repeat(MAX_SECRET + 1);
        assert!(connection(connection_with("flexprice_api_key", long.into())).is_err());
    }
}

/// `GET /api/v1/webhook-events`' query: `since` (RFC 3339), `type`, `outcome`, `limit` (1 to
/// [`MAX_EVENTS_PAGE`], 25 by default) and `cursor` (from an earlier page's `next_cursor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventQuery {
    pub filter: crate::domain::events::EventFilter,
    /// The log position the page starts after.
    pub after: Option<String>,
}

pub const MAX_EVENTS_PAGE: usize = 100;
const DEFAULT_EVENTS_PAGE: usize = 25;

impl EventQuery {
    pub fn parse(query: Option<&str>) -> Result<EventQuery, Problem> {
        use crate::domain::events::{EventFilter, Outcome};
        let mut parsed = EventQuery {
            filter: EventFilter {
                limit: DEFAULT_EVENTS_PAGE,
                ..EventFilter::default()
            },
            after: None,
        };
        for (name, value) in query_pairs(query)? {
            let filter = &mut parsed.filter;
            match name.as_str() {
                "since" => filter.since_ms = Some(rfc3339_millis("since", &value)?),
                "type" => filter.event_type = Some(bounded_text("type", &value, 64)?),
                "outcome" => {
                    let outcome = Outcome::parse(&value).ok_or_else(|| {
                        let names: Vec<_> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
                        invalid(
                            400,
                            "outcome",
                            "one_of",
                            format!("outcome must be one of {}", names.join(", ")),
                        )
                    })?;
                    filter.outcome = Some(outcome);
                }
                "limit" => filter.limit = page_limit(&value)?,
                "cursor" => {
                    let is_position = |p: &str| crate::domain::events::parse_position(p).is_some();
                    parsed.after = Some(cursor_position(&value, is_position)?);
                }
                other => {
                    return Err(invalid(
                        400,
                        other,
                        "known_parameter",
                        "the query takes since, type, outcome, limit and cursor",
                    ));
                }
            }
        }
        Ok(parsed)
    }
}

/// `GET /api/v1/invoices/{invoice_id}/timeline`'s query: `limit` (1 to 100, 50 if not
/// given) and `cursor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineQuery {
    pub limit: usize,
    /// The position the page starts after.
    pub after: Option<String>,
}

const DEFAULT_TIMELINE_PAGE: usize = 50;

impl TimelineQuery {
    pub fn parse(query: Option<&str>) -> Result<TimelineQuery, Problem> {
        let mut parsed = TimelineQuery {
            limit: DEFAULT_TIMELINE_PAGE,
            after: None,
        };
        for (name, value) in query_pairs(query)? {
            match name.as_str() {
                "limit" => parsed.limit = page_limit(&value)?,
                "cursor" => {
                    let is_position =
                        |p: &str| crate::domain::timeline::parse_position(p).is_some();
                    parsed.after = Some(cursor_position(&value, is_position)?);
                }
                other => {
                    return Err(invalid(
                        400,
                        other,
                        "known_parameter",
                        "the query takes limit and cursor",
                    ));
                }
            }
        }
        Ok(parsed)
    }
}

/// A query string's parameters, decoded; each name at most once.
pub fn query_pairs(query: Option<&str>) -> Result<Vec<(String, String)>, Problem> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if pairs.iter().any(|(seen, _)| *seen == name) {
            return Err(invalid(
                400,
                &name,
                "unique",
                format!("{name} is given more than once"),
            ));
        }
        pairs.push((name.into_owned(), value.into_owned()));
    }
    Ok(pairs)
}

fn bounded_text(name: &str, value: &str, max: usize) -> Result<String, Problem> {
    if value.is_empty() || value.len() > max {
        return Err(invalid(
            400,
            name,
            "length",
            format!("{name} must be 1 to {max} characters"),
        ));
    }
    Ok(value.to_owned())
}

/// An RFC 3339 time (`2026-12-01T00:00:00Z`) as milliseconds since the epoch.
fn rfc3339_millis(name: &str, value: &str) -> Result<u64, Problem> {
    use aws_smithy_types::date_time::{DateTime, Format};
    DateTime::from_str(value, Format::DateTime)
        .ok()
        .and_then(|t| t.to_millis().ok())
        .and_then(|ms| u64::try_from(ms).ok())
        .ok_or_else(|| {
            invalid(
                400,
                name,
                "rfc3339",
                format!("{name} must be an RFC 3339 time such as 2026-12-01T00:00:00Z"),
            )
        })
}

/// A page size: 1 to [`MAX_EVENTS_PAGE`].
pub fn page_limit(value: &str) -> Result<usize, Problem> {
    value
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_EVENTS_PAGE).contains(n))
        .ok_or_else(|| {
            invalid(
                400,
                "limit",
                "range",
                format!("limit must be a whole number from 1 to {MAX_EVENTS_PAGE}"),
            )
        })
}

/// A cursor: the base64url text of a position an earlier page answered (one `is_position`
/// takes).
pub fn cursor_position(value: &str, is_position: fn(&str) -> bool) -> Result<String, Problem> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(value)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .filter(|position| is_position(position))
        .ok_or_else(|| {
            invalid(
                400,
                "cursor",
                "cursor",
                "cursor must be a next_cursor this API answered",
            )
        })
}

/// A log position as the cursor the API answers.
pub fn cursor_of(position: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(position)
}

/// A webhook event id in a path: a provider's id (`evt_…`, `msg_…`), 1 to 128 characters of
/// letters, digits, `_` and `-`.
pub fn event_id(text: &str) -> Result<String, Problem> {
    let ok = !text.is_empty()
        && text.len() <= 128
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !ok {
        return Err(invalid(
            400,
            "event_id",
            "event_id",
            "event_id must be 1 to 128 letters, digits, _ or -",
        ));
    }
    Ok(text.to_owned())
}
