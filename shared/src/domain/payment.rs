//! Our payment's states and the rules that move it (`docs/architecture.md` §4). Pure: the
//! services read the current state, ask [`PaymentStatus::on`] what an event does, and write the
//! answer with a condition on the state they read.

use std::collections::BTreeMap;
use std::fmt;

use crate::domain::dispute::Dispute;
use crate::domain::money::Money;
use crate::domain::refund::{self, Refund};

/// Where a payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentStatus {
    /// Being created: held by one request (a short lock), not yet a link to pay.
    Initiated,
    /// A link the customer can pay.
    Pending,
    /// The money it asked for is counted. Final: nothing moves a payment out of it.
    Succeeded,
    /// Its link expired or was cancelled unpaid.
    Failed,
}

impl PaymentStatus {
    pub const ALL: [PaymentStatus; 4] = [
        PaymentStatus::Initiated,
        PaymentStatus::Pending,
        PaymentStatus::Succeeded,
        PaymentStatus::Failed,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Initiated => "INITIATED",
            PaymentStatus::Pending => "PENDING",
            PaymentStatus::Succeeded => "SUCCEEDED",
            PaymentStatus::Failed => "FAILED",
        }
    }

    /// The stored spelling back; `None` for anything else.
    pub fn parse(text: &str) -> Option<PaymentStatus> {
        PaymentStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// What `event` does to a payment in this state.
    pub fn on(self, event: PaymentEvent) -> Change {
        use PaymentStatus::*;
        match (self, event) {
            (Initiated, PaymentEvent::LinkCreated) => Change::to(Pending),
            (_, PaymentEvent::LinkCreated) => Change::None,
            // All it asked for is in: SUCCEEDED, from anywhere. Money that came after the
            // payment had failed is real and recorded, but a person should look.
            (Failed, PaymentEvent::MoneyCounted { paid, asked }) if paid >= asked => {
                Change::to_review(Succeeded)
            }
            (_, PaymentEvent::MoneyCounted { paid, asked }) if paid >= asked => {
                Change::to(Succeeded)
            }
            // Part of it: a failed payment is open again (someone paid on it); the others stay.
            (Failed, PaymentEvent::MoneyCounted { .. }) => Change::to_review(Pending),
            (_, PaymentEvent::MoneyCounted { .. }) => Change::None,
            // A failed attempt is recorded beside the payment; the customer may try again.
            (_, PaymentEvent::AttemptFailed) => Change::None,
            (Initiated | Pending, PaymentEvent::LinkEnded) => Change::to(Failed),
            (Succeeded | Failed, PaymentEvent::LinkEnded) => Change::None,
        }
    }
}

impl fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened to a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentEvent {
    /// Its Razorpay link was created (or adopted).
    LinkCreated,
    /// A captured Razorpay payment was counted on it: `paid` in all now, of `asked`
    /// (subunits).
    MoneyCounted { paid: u64, asked: u64 },
    /// A try to pay failed (`payment.failed`).
    AttemptFailed,
    /// Its link expired or was cancelled.
    LinkEnded,
}

/// The answer of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The status stays as it is.
    None,
    /// The status becomes `to`; with `review`, a person should look at the payment.
    To { to: PaymentStatus, review: bool },
}

impl Change {
    fn to(to: PaymentStatus) -> Change {
        Change::To { to, review: false }
    }

    fn to_review(to: PaymentStatus) -> Change {
        Change::To { to, review: true }
    }

    /// The status after the change, given the one before.
    pub fn status(self, before: PaymentStatus) -> PaymentStatus {
        match self {
            Change::None => before,
            Change::To { to, .. } => to,
        }
    }

    pub fn needs_review(self) -> bool {
        matches!(self, Change::To { review: true, .. })
    }
}

/// Where a payment's idempotency key comes from. Each source has its own namespace, so no key
/// a caller sends can name a payment made for another reason (a caller's `razorpay:pay_X` is
/// not the payment of Razorpay payment `pay_X`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentKey<'a> {
    /// The caller's `idempotency_key`: the same key is the same payment, whatever happened
    /// to it since.
    Caller(&'a str),
    /// No key given: derived from the invoice, the amount and the currency, and a
    /// generation, the next one taken when the previous payment's link ended unpaid.
    Derived { digest: &'a str, generation: u32 },
    /// One payment per Razorpay payment made on a synced Razorpay invoice.
    RazorpayPayment(&'a str),
}

impl PaymentKey<'_> {
    /// The key in its namespace: what the payment id is derived from.
    pub fn namespaced(&self) -> String {
        match self {
            PaymentKey::Caller(key) => format!("caller:{key}"),
            PaymentKey::Derived { digest, generation } => format!("auto:{digest}:{generation}"),
            PaymentKey::RazorpayPayment(id) => format!("razorpay:{id}"),
        }
    }

    /// The key as the payment shows it: the caller's own, or the namespaced one.
    pub fn shown(&self) -> String {
        match self {
            PaymentKey::Caller(key) => (*key).to_owned(),
            other => other.namespaced(),
        }
    }
}

/// How a payment is collected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentMethod {
    /// A Razorpay payment link made for it.
    PaymentLink,
    /// A payment on the Razorpay invoice its Flexprice invoice was synced to.
    RazorpayInvoice,
}

impl PaymentMethod {
    pub const fn as_str(self) -> &'static str {
        match self {
            PaymentMethod::PaymentLink => "PAYMENT_LINK",
            PaymentMethod::RazorpayInvoice => "RAZORPAY_INVOICE",
        }
    }

    pub fn parse(text: &str) -> Option<PaymentMethod> {
        [PaymentMethod::PaymentLink, PaymentMethod::RazorpayInvoice]
            .into_iter()
            .find(|m| m.as_str() == text)
    }
}

/// One failed try to pay (`payment.failed`), kept beside the payment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Attempt {
    pub razorpay_payment_id: String,
    /// The attempt's own status, as Razorpay gave it.
    pub status: String,
    pub error_code: Option<String>,
    pub error_description: Option<String>,
    pub error_reason: Option<String>,
    /// Epoch seconds.
    pub at: u64,
}

/// A Razorpay payment counted on our payment: what its refunds are bounded by.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Capture {
    pub razorpay_payment_id: String,
    pub amount_minor: u64,
    /// Epoch milliseconds it was counted (0: counted before the time was kept).
    #[serde(default)]
    pub at_ms: u64,
}

/// Our payment: what was asked for which invoice, where it stands, and how to pay it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// `fxp_…`, derived from the tenant and the idempotency key.
    pub id: String,
    pub idempotency_key: String,
    /// What the creating request asked (to refuse the same key with another body); absent on
    /// payments made for a Razorpay invoice's payment.
    pub payload_hash: Option<String>,
    pub invoice_id: String,
    pub method: PaymentMethod,
    /// What it asks.
    pub amount: Money,
    /// What has been counted on it, in the amount's subunits.
    pub amount_paid: u64,
    pub metadata: BTreeMap<String, String>,
    pub status: PaymentStatus,
    /// Bumped by every conditional write.
    pub version: u64,
    /// While INITIATED: until when (epoch ms) the creating request holds it.
    pub lock_expires_at: Option<u64>,
    /// The Razorpay link id (or Razorpay invoice id) that collects it.
    pub gateway_tracking_id: Option<String>,
    pub payment_url: Option<String>,
    pub razorpay_customer_id: Option<String>,
    pub razorpay_invoice_id: Option<String>,
    /// For a payment on a Razorpay invoice: the Razorpay payment it records.
    pub razorpay_payment_id: Option<String>,
    pub attempts: Vec<Attempt>,
    /// The Razorpay payments counted on it.
    pub captures: Vec<Capture>,
    /// The refunds of the Razorpay payments counted on it, by Razorpay refund id.
    pub refunds: Vec<Refund>,
    /// Disputes (chargebacks) on those Razorpay payments.
    pub disputes: Vec<Dispute>,
    pub failure_reason: Option<String>,
    /// Why money could not be recorded, for whoever looks.
    pub last_error: Option<String>,
    /// Why a person should look at it.
    pub review: Option<String>,
    /// Epoch seconds.
    pub created_at: u64,
    pub updated_at: u64,
}

impl Payment {
    /// A new payment in `status`, at version 0, made at `now_secs`.
    pub fn new(
        id: String,
        idempotency_key: String,
        invoice_id: String,
        amount: Money,
        now_secs: u64,
    ) -> Payment {
        Payment {
            id,
            idempotency_key,
            payload_hash: None,
            invoice_id,
            method: PaymentMethod::PaymentLink,
            amount,
            amount_paid: 0,
            metadata: BTreeMap::new(),
            status: PaymentStatus::Initiated,
            version: 0,
            lock_expires_at: None,
            gateway_tracking_id: None,
            payment_url: None,
            razorpay_customer_id: None,
            razorpay_invoice_id: None,
            razorpay_payment_id: None,
            attempts: Vec::new(),
            captures: Vec::new(),
            refunds: Vec::new(),
            disputes: Vec::new(),
            failure_reason: None,
            last_error: None,
            review: None,
            created_at: now_secs,
            updated_at: now_secs,
        }
    }

    /// An INITIATED payment whose creating request still holds it at `now_ms`.
    pub fn is_held(&self, now_ms: u64) -> bool {
        self.status == PaymentStatus::Initiated && self.lock_expires_at.unwrap_or(0) > now_ms
    }

    /// The Razorpay payments counted on it; for a payment counted before captures were kept,
    /// the one Razorpay payment it names.
    pub fn counted_captures(&self) -> Vec<Capture> {
        match (&self.razorpay_payment_id, self.captures.is_empty()) {
            (Some(id), true) if self.amount_paid > 0 => vec![Capture {
                razorpay_payment_id: id.clone(),
                amount_minor: self.amount_paid,
                at_ms: 0,
            }],
            _ => self.captures.clone(),
        }
    }

    /// What has gone back to the customer, in the amount's subunits (processed refunds).
    pub fn amount_refunded(&self) -> u64 {
        refund::refunded(&self.refunds, None)
    }
}

/// A change to a stored payment. Each is written under a condition on the payment as it was
/// read (its version, and for some its status), so a concurrent change makes it fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentUpdate {
    /// Another request's lock ran out: this one holds the INITIATED payment until `until_ms`.
    LockTaken { until_ms: u64 },
    /// The holder gave up: the lock is free at once (its retry proceeds).
    LockReleased,
    /// Its link exists: PENDING, payable at `payment_url`.
    LinkMade {
        link_id: String,
        payment_url: String,
        razorpay_customer_id: String,
        razorpay_invoice_id: Option<String>,
        at: u64,
    },
    /// The invoice's live synced Razorpay invoice collects it: PENDING, payable at that
    /// invoice's `payment_url`.
    InvoiceAttached {
        razorpay_invoice_id: String,
        payment_url: String,
        at: u64,
    },
    /// A Razorpay payment was counted: `amount_paid` in all now, and the captures as they are.
    Counted {
        status: PaymentStatus,
        amount_paid: u64,
        captures: Vec<Capture>,
        review: Option<String>,
        at: u64,
    },
    /// A failed try was added (the whole list as it is now).
    AttemptRecorded { attempts: Vec<Attempt> },
    /// A refund was added or moved forward (the whole list as it is now).
    RefundsChanged { refunds: Vec<Refund>, at: u64 },
    /// A dispute was added or moved forward; a lost one adds its refund (both lists whole).
    DisputesChanged {
        disputes: Vec<Dispute>,
        refunds: Vec<Refund>,
        at: u64,
    },
    /// Its link ended unpaid.
    Failed { reason: String, at: u64 },
    /// Why its money could not be recorded (no condition: a note, not a state).
    Noted { last_error: String },
    /// Why a person should look at it (no condition: a flag, not a state).
    Flagged { review: String },
}

#[cfg(test)]
mod tests {
    use super::PaymentEvent::*;
    use super::PaymentStatus::*;
    use super::*;

    const ALL_IN: PaymentEvent = MoneyCounted {
        paid: 100,
        asked: 100,
    };
    const MORE: PaymentEvent = MoneyCounted {
        paid: 150,
        asked: 100,
    };
    const PART: PaymentEvent = MoneyCounted {
        paid: 40,
        asked: 100,
    };

    /// Every state against every event: (before, event, after, review).
    const RULES: &[(PaymentStatus, PaymentEvent, PaymentStatus, bool)] = &[
        (Initiated, LinkCreated, Pending, false),
        (Pending, LinkCreated, Pending, false),
        (Succeeded, LinkCreated, Succeeded, false),
        (Failed, LinkCreated, Failed, false),
        (Initiated, ALL_IN, Succeeded, false),
        (Pending, ALL_IN, Succeeded, false),
        (Pending, MORE, Succeeded, false),
        (Succeeded, ALL_IN, Succeeded, false),
        (Failed, ALL_IN, Succeeded, true),
        (Pending, PART, Pending, false),
        (Initiated, PART, Initiated, false),
        (Succeeded, PART, Succeeded, false),
        (Failed, PART, Pending, true),
        (Initiated, AttemptFailed, Initiated, false),
        (Pending, AttemptFailed, Pending, false),
        (Succeeded, AttemptFailed, Succeeded, false),
        (Failed, AttemptFailed, Failed, false),
        (Initiated, LinkEnded, Failed, false),
        (Pending, LinkEnded, Failed, false),
        (Succeeded, LinkEnded, Succeeded, false),
        (Failed, LinkEnded, Failed, false),
    ];

    #[test]
    fn each_rule_of_the_payment_state_machine() {
        for &(before, event, after, review) in RULES {
            let change = before.on(event);
            assert_eq!(
                (change.status(before), change.needs_review()),
                (after, review),
                "{before} on {event:?}"
            );
        }
    }

    #[test]
    fn nothing_moves_a_payment_out_of_succeeded() {
        for event in [LinkCreated, ALL_IN, MORE, PART, AttemptFailed, LinkEnded] {
            assert_eq!(
                Succeeded.on(event).status(Succeeded),
                Succeeded,
                "{event:?}"
            );
        }
    }

    #[test]
    fn no_caller_key_reaches_another_namespace() {
        let caller = PaymentKey::Caller("razorpay:pay_X").namespaced();
        assert_ne!(caller, PaymentKey::RazorpayPayment("pay_X").namespaced());
        let derived = PaymentKey::Derived {
            digest: "abc",
            generation: 0,
        };
        assert_ne!(
            PaymentKey::Caller("auto:abc:0").namespaced(),
            derived.namespaced()
        );
        assert_eq!(PaymentKey::Caller("order-7").shown(), "order-7");
        assert_eq!(derived.shown(), "auto:abc:0");
    }

    #[test]
    fn statuses_read_back_as_stored() {
        for status in PaymentStatus::ALL {
            assert_eq!(PaymentStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(PaymentStatus::parse("succeeded"), None);
    }
}
