//! Refunds, with Razorpay's documented rules: a captured payment is refunded in full or in
//! parts, never beyond what is left of it; `speed` is `normal` or `optimum`, and a normal refund
//! of a payment older than six months is refused; `X-Refund-Idempotency` (at least 10 of
//! `[A-Za-z0-9_-]`) answers a retry with the same body with the first refund and refuses
//! another body under the same key. A refund is `pending` until processed or failed (control
//! routes); a failed one gives its amount back to the payment. Each change sends its
//! `refund.*` event with the refund and the payment.
//!
//! Not documented, so the harsher reading: a refund of less than one subunit's minimum
//! collectable amount is not refused (Razorpay's minimum refund is not published), and a
//! three-decimal currency's refund must end in 0 as its payments must.

use serde_json::{Value, json};

use super::events::Event;
use super::state::{
    Account, ApiError, amount_field, new_id, notes_json, now, parse_notes, string_field,
};

/// Razorpay refuses normal refunds of payments older than this.
const NORMAL_REFUND_AGE_SECS: u64 = 180 * 24 * 3600;

#[derive(Debug, Clone)]
pub struct Refund {
    pub id: String,
    pub payment_id: String,
    pub amount: u64,
    pub currency: String,
    pub status: String,
    pub speed_requested: String,
    pub speed_processed: Option<String>,
    pub receipt: Option<String>,
    pub notes: std::collections::BTreeMap<String, String>,
    pub created_at: u64,
}

impl Refund {
    pub fn json(&self) -> Value {
        json!({"id": self.id, "entity": "refund", "amount": self.amount,
            "currency": self.currency, "payment_id": self.payment_id, "notes": notes_json(&self.notes),
            "receipt": self.receipt, "acquirer_data": {"arn": null}, "created_at": self.created_at,
            "batch_id": null, "status": self.status, "speed_processed": self.speed_processed,
            "speed_requested": self.speed_requested})
    }
}

/// The idempotency header's documented shape.
fn check_key(key: &str) -> Result<(), ApiError> {
    let shaped = key.len() >= 10
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if shaped {
        return Ok(());
    }
    Err(ApiError::bad_request(
        "X-Refund-Idempotency must be at least 10 characters of letters, digits, _ and -",
        Some("X-Refund-Idempotency"),
    ))
}

impl Account {
    /// `POST /v1/payments/{id}/refund`, under an optional idempotency key.
    pub fn refund_payment(
        &mut self,
        payment_id: &str,
        key: Option<&str>,
        body: &Value,
    ) -> Result<(Value, Vec<Event>), ApiError> {
        if let Some(key) = key {
            check_key(key)?;
            if let Some((first, refund_id)) = self.refund_keys.get(key) {
                if first != body {
                    return Err(ApiError::bad_request(
                        "Different request with the same idempotency key has already been processed.",
                        None,
                    ));
                }
                return Ok((self.refund(refund_id)?, vec![]));
            }
        }
        let refund = self.new_refund(payment_id, body)?;
        if let Some(key) = key {
            self.refund_keys
                .insert(key.to_owned(), (body.clone(), refund.id.clone()));
        }
        Ok((
            refund.json(),
            vec![self.refund_event("refund.created", &refund.id)?],
        ))
    }

    fn new_refund(&mut self, payment_id: &str, body: &Value) -> Result<Refund, ApiError> {
        let payment = self
            .payments
            .get(payment_id)
            .ok_or_else(|| ApiError::not_found(payment_id))?;
        if payment.status != "captured" {
            return Err(ApiError::bad_request(
                &format!("The payment is {} and cannot be refunded", payment.status),
                None,
            ));
        }
        let left = payment.amount - payment.amount_refunded;
        let amount = match body.get("amount") {
            None | Some(Value::Null) => left,
            Some(_) => amount_field(body, "amount")?,
        };
        if amount == 0 || amount > left {
            return Err(ApiError::bad_request(
                "The refund amount provided is greater than amount captured",
                Some("amount"),
            ));
        }
        if payment.currency.exponent() == 3 && amount % 10 != 0 {
            return Err(ApiError::bad_request(
                "The last decimal of three decimal currency amounts must be 0",
                Some("amount"),
            ));
        }
        let speed = string_field(body, "speed").unwrap_or_else(|| "normal".to_owned());
        if speed != "normal" && speed != "optimum" {
            return Err(ApiError::bad_request(
                "The selected speed is invalid.",
                Some("speed"),
            ));
        }
        if speed == "normal" && now().saturating_sub(payment.created_at) > NORMAL_REFUND_AGE_SECS {
            return Err(ApiError::bad_request(
                "Payment is more than 6 months old and cannot be refunded with normal speed",
                Some("speed"),
            ));
        }
        let refund = Refund {
            id: new_id("rfnd_"),
            payment_id: payment_id.to_owned(),
            amount,
            currency: payment.currency.code().to_owned(),
            status: "pending".to_owned(),
            speed_requested: speed,
            speed_processed: None,
            receipt: string_field(body, "receipt"),
            notes: parse_notes(body)?,
            created_at: now(),
        };
        self.refunded(payment_id, amount as i64)?;
        self.refunds.insert(refund.id.clone(), refund.clone());
        Ok(refund)
    }

    /// `amount` more (or, negative, less) gone back on the payment.
    fn refunded(&mut self, payment_id: &str, amount: i64) -> Result<(), ApiError> {
        let payment = self
            .payments
            .get_mut(payment_id)
            .ok_or_else(|| ApiError::not_found(payment_id))?;
        payment.amount_refunded = payment.amount_refunded.saturating_add_signed(amount);
        payment.status = if payment.amount_refunded >= payment.amount {
            "refunded"
        } else {
            "captured"
        }
        .to_owned();
        Ok(())
    }

    pub fn refund(&self, id: &str) -> Result<Value, ApiError> {
        self.refunds
            .get(id)
            .map(Refund::json)
            .ok_or_else(|| ApiError::not_found(id))
    }

    /// A pending refund is processed (`processed`) or fails (`failed`: the money stays with the
    /// merchant, the payment is refundable again).
    pub fn settle_refund(&mut self, id: &str, action: &str) -> Result<Vec<Event>, ApiError> {
        let refund = self
            .refunds
            .get_mut(id)
            .ok_or_else(|| ApiError::not_found(id))?;
        if refund.status != "pending" {
            return Err(ApiError::bad_request(
                &format!("The refund is {} already", refund.status),
                None,
            ));
        }
        let (status, event) = match action {
            "process" => ("processed", "refund.processed"),
            "fail" => ("failed", "refund.failed"),
            other => {
                return Err(ApiError::bad_request(
                    &format!("unknown action {other}"),
                    None,
                ));
            }
        };
        refund.status = status.to_owned();
        refund.speed_processed = Some(match refund.speed_requested.as_str() {
            "optimum" => "instant".to_owned(),
            _ => "normal".to_owned(),
        });
        let (payment_id, amount) = (refund.payment_id.clone(), refund.amount);
        if status == "failed" {
            self.refunded(&payment_id, -(amount as i64))?;
        }
        Ok(vec![self.refund_event(event, id)?])
    }

    /// A refund event: the refund and its payment, as Razorpay sends them.
    fn refund_event(&self, name: &str, id: &str) -> Result<Event, ApiError> {
        let refund = self
            .refunds
            .get(id)
            .ok_or_else(|| ApiError::not_found(id))?;
        let payment = self
            .payments
            .get(&refund.payment_id)
            .ok_or_else(|| ApiError::not_found(&refund.payment_id))?;
        Ok(Event::new(
            name,
            vec![("refund", refund.json()), ("payment", payment.json())],
        ))
    }

    /// The refunds created in `[from, to]`, newest first (of one payment, with `payment_id`).
    pub fn list_refunds(
        &self,
        payment_id: Option<&str>,
        from: Option<u64>,
        to: Option<u64>,
    ) -> Vec<Value> {
        let mut refunds: Vec<&Refund> = self
            .refunds
            .values()
            .filter(|r| payment_id.is_none_or(|p| r.payment_id == p))
            .filter(|r| from.is_none_or(|from| r.created_at >= from))
            .filter(|r| to.is_none_or(|to| r.created_at <= to))
            .collect();
        refunds.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        refunds.into_iter().map(Refund::json).collect()
    }
}
