//! Disputes (chargebacks), as Razorpay reports them: opened on a captured payment by the
//! customer's bank (a control route here), answered or not, then won, lost (the amount is
//! deducted from the merchant) or closed, each final. Every change sends its
//! `payment.dispute.*` event with the payment and the dispute.
//!
//! Not documented, so the harsher reading: a dispute may be opened on a payment refunded in
//! part, and `action_required` can move `respond_by` (the client must take the newest).

use serde_json::{Value, json};

use super::events::Event;
use super::state::{Account, ApiError, new_id, now};

/// Razorpay gives a merchant days to answer; the control route can make it hours.
const DEFAULT_RESPOND_SECS: u64 = 7 * 24 * 3600;

#[derive(Debug, Clone)]
pub struct Dispute {
    pub id: String,
    pub payment_id: String,
    pub amount: u64,
    pub currency: String,
    pub amount_deducted: u64,
    pub reason_code: String,
    pub respond_by: u64,
    pub status: String,
    pub phase: String,
    pub created_at: u64,
}

impl Dispute {
    pub fn json(&self) -> Value {
        json!({"id": self.id, "entity": "dispute", "payment_id": self.payment_id,
            "amount": self.amount, "currency": self.currency,
            "amount_deducted": self.amount_deducted, "reason_code": self.reason_code,
            "respond_by": self.respond_by, "status": self.status, "phase": self.phase,
            "created_at": self.created_at})
    }

    fn is_final(&self) -> bool {
        matches!(self.status.as_str(), "won" | "lost" | "closed")
    }
}

impl Account {
    /// The customer's bank disputes a captured payment: `amount` (default all of it), `phase`
    /// (default `chargeback`), answer within `respond_in_secs`.
    pub fn open_dispute(&mut self, payment_id: &str, body: &Value) -> Result<Vec<Event>, ApiError> {
        let payment = self
            .payments
            .get(payment_id)
            .ok_or_else(|| ApiError::not_found(payment_id))?;
        if payment.status != "captured" && payment.status != "refunded" {
            return Err(ApiError::bad_request(
                &format!("a {} payment cannot be disputed", payment.status),
                None,
            ));
        }
        let amount = body
            .get("amount")
            .and_then(Value::as_u64)
            .unwrap_or(payment.amount);
        let respond_in = body
            .get("respond_in_secs")
            .and_then(Value::as_u64)
            .unwrap_or(DEFAULT_RESPOND_SECS);
        let dispute = Dispute {
            id: new_id("disp_"),
            payment_id: payment_id.to_owned(),
            amount: amount.min(payment.amount),
            currency: payment.currency.code().to_owned(),
            amount_deducted: 0,
            reason_code: "chargeback".to_owned(),
            respond_by: now() + respond_in,
            status: "open".to_owned(),
            phase: body
                .get("phase")
                .and_then(Value::as_str)
                .unwrap_or("chargeback")
                .to_owned(),
            created_at: now(),
        };
        let id = dispute.id.clone();
        self.disputes.insert(id.clone(), dispute);
        Ok(vec![self.dispute_event("payment.dispute.created", &id)?])
    }

    /// A dispute moves on: `action_required`, `under_review`, `win`, `lose` or `close`.
    pub fn dispute_action(&mut self, id: &str, action: &str) -> Result<Vec<Event>, ApiError> {
        let dispute = self
            .disputes
            .get_mut(id)
            .ok_or_else(|| ApiError::not_found(id))?;
        if dispute.is_final() {
            return Err(ApiError::bad_request(
                &format!("The dispute is {} already", dispute.status),
                None,
            ));
        }
        let (status, event) = match action {
            "action_required" => ("open", "payment.dispute.action_required"),
            "under_review" => ("under_review", "payment.dispute.under_review"),
            "win" => ("won", "payment.dispute.won"),
            "lose" => ("lost", "payment.dispute.lost"),
            "close" => ("closed", "payment.dispute.closed"),
            other => {
                return Err(ApiError::bad_request(
                    &format!("unknown action {other}"),
                    None,
                ));
            }
        };
        dispute.status = status.to_owned();
        if status == "lost" {
            dispute.amount_deducted = dispute.amount;
        }
        Ok(vec![self.dispute_event(event, id)?])
    }

    /// The disputes created in `[from, to]`, newest first.
    pub fn list_disputes(&self, from: Option<u64>, to: Option<u64>) -> Vec<Value> {
        let mut disputes: Vec<&Dispute> = self
            .disputes
            .values()
            .filter(|d| from.is_none_or(|from| d.created_at >= from))
            .filter(|d| to.is_none_or(|to| d.created_at <= to))
            .collect();
        disputes.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        disputes.into_iter().map(Dispute::json).collect()
    }

    pub fn dispute(&self, id: &str) -> Result<Value, ApiError> {
        self.disputes
            .get(id)
            .map(Dispute::json)
            .ok_or_else(|| ApiError::not_found(id))
    }

    fn dispute_event(&self, name: &str, id: &str) -> Result<Event, ApiError> {
        let dispute = self
            .disputes
            .get(id)
            .ok_or_else(|| ApiError::not_found(id))?;
        let payment = self
            .payments
            .get(&dispute.payment_id)
            .ok_or_else(|| ApiError::not_found(&dispute.payment_id))?;
        Ok(Event::new(
            name,
            vec![("payment", payment.json()), ("dispute", dispute.json())],
        ))
    }
}
