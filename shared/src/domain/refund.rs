//! Refunds of the money a payment collected (`docs/architecture.md` §4.3). Pure: a refund is
//! kept on the payment whose Razorpay payment it returns, keyed by the Razorpay refund id; what
//! Razorpay says about a refund is merged in with [`merge`], where a state only moves forward
//! and a refund is never counted twice, whatever order and how often its news arrive.

use serde::{Deserialize, Serialize};

/// Where a refund stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RefundStatus {
    /// Asked of flexrzp's API and reserved on the payment; Razorpay has not answered yet (or
    /// did not say). It holds its amount, so no other refund can take it meanwhile.
    Requested,
    /// Razorpay has it and is paying it out (a normal refund takes days).
    Pending,
    /// The money went back to the customer. Final.
    Processed,
    /// Razorpay could not pay it out; the money stays collected. Final.
    Failed,
}

impl RefundStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Requested => "REQUESTED",
            RefundStatus::Pending => "PENDING",
            RefundStatus::Processed => "PROCESSED",
            RefundStatus::Failed => "FAILED",
        }
    }

    /// Whether a refund in this state may move to `next`: forward only (requested, pending,
    /// then an end), and an end never moves (a late `refund.created` after `refund.processed`
    /// changes nothing).
    pub fn may_become(self, next: RefundStatus) -> bool {
        use RefundStatus::*;
        matches!(
            (self, next),
            (Requested, Pending | Processed | Failed) | (Pending, Processed | Failed)
        )
    }

    /// Whether the refund takes (or took) money back: everything but a failed one.
    pub fn holds_money(self) -> bool {
        self != RefundStatus::Failed
    }
}

/// Who asked for the refund.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RefundSource {
    /// Asked of flexrzp's API (`POST /api/v1/payments/{id}/refunds`).
    Api,
    /// The connection's over-collection policy: the excess of an overpaid invoice.
    Policy,
    /// A Flexprice REFUND credit note, refunded at Razorpay.
    CreditNote,
    /// A dispute lost: the money the bank took back (its id is the dispute's).
    Dispute,
    /// Made outside flexrzp (Razorpay's dashboard, its API, an automatic refund), found by its
    /// webhook or by the sweep.
    Razorpay,
}

impl RefundSource {
    pub const fn as_str(self) -> &'static str {
        match self {
            RefundSource::Api => "API",
            RefundSource::Policy => "POLICY",
            RefundSource::CreditNote => "CREDIT_NOTE",
            RefundSource::Dispute => "DISPUTE",
            RefundSource::Razorpay => "RAZORPAY",
        }
    }
}

/// One refund of one Razorpay payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    /// Ours (`rfd_…`, derived from the caller's idempotency key) for a refund asked of the
    /// API; Razorpay's refund id for one made elsewhere.
    pub id: String,
    /// Razorpay's refund id (`rfnd_…`), once Razorpay has said it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub razorpay_refund_id: Option<String>,
    /// The Razorpay payment it returns money of.
    pub razorpay_payment_id: String,
    /// In the payment's subunits.
    pub amount_minor: u64,
    pub status: RefundStatus,
    pub source: RefundSource,
    /// `normal` or `optimum`, as Razorpay processed it (or was asked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<String>,
    /// The caller's reason, and the key and request digest that make the API idempotent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_hash: Option<String>,
    /// Why Razorpay refused it, for a refund that failed before it existed there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// Epoch seconds: when Razorpay made it, and when we last changed it.
    pub created_at: u64,
    pub updated_at: u64,
}

/// What Razorpay says about a refund now (from a webhook or a read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundNews {
    pub razorpay_refund_id: String,
    /// Our refund id, when the refund's notes carry one (a refund the API asked for).
    pub requested_as: Option<String>,
    pub razorpay_payment_id: String,
    pub amount_minor: u64,
    pub status: RefundStatus,
    pub speed: Option<String>,
    pub created_at: u64,
}

/// What merging news into a payment's refunds did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merged {
    /// Known already, in this state or a later one: nothing to write.
    Unchanged,
    /// New, or moved forward: the whole list as it is now.
    Changed(Vec<Refund>),
}

/// Merges `news` into `refunds` (the payment's, as read) at `now`. A refund is found by its
/// Razorpay id, or, the first time Razorpay tells of one the API asked for, by the id its
/// notes carry, on the same Razorpay payment and for the same amount (notes alone never move
/// money elsewhere).
pub fn merge(refunds: &[Refund], news: &RefundNews, now: u64) -> Merged {
    let mut next = refunds.to_vec();
    let known = next.iter_mut().find(|r| {
        r.razorpay_refund_id.as_deref() == Some(news.razorpay_refund_id.as_str())
            || (r.razorpay_refund_id.is_none()
                && news.requested_as.as_deref() == Some(r.id.as_str())
                && r.razorpay_payment_id == news.razorpay_payment_id
                && r.amount_minor == news.amount_minor)
    });
    match known {
        Some(known)
            if known.status.may_become(news.status) || known.razorpay_refund_id.is_none() =>
        {
            if known.status.may_become(news.status) {
                known.status = news.status;
            }
            known.razorpay_refund_id = Some(news.razorpay_refund_id.clone());
            known.speed = news.speed.clone().or(known.speed.take());
            known.updated_at = now;
        }
        Some(_) => return Merged::Unchanged,
        None => next.push(Refund {
            id: news.razorpay_refund_id.clone(),
            razorpay_refund_id: Some(news.razorpay_refund_id.clone()),
            razorpay_payment_id: news.razorpay_payment_id.clone(),
            amount_minor: news.amount_minor,
            status: news.status,
            source: RefundSource::Razorpay,
            speed: news.speed.clone(),
            reason: None,
            idempotency_key: None,
            payload_hash: None,
            failure: None,
            created_at: news.created_at,
            updated_at: now,
        }),
    }
    Merged::Changed(next)
}

/// A refund asked of the API, before it is reserved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundAsk {
    /// Ours, derived from the caller's idempotency key.
    pub id: String,
    pub idempotency_key: String,
    pub payload_hash: String,
    pub razorpay_payment_id: String,
    /// What the Razorpay payment captured, in subunits.
    pub captured_minor: u64,
    /// `None`: all that is left of it.
    pub amount_minor: Option<u64>,
    pub speed: String,
    pub reason: Option<String>,
    pub source: RefundSource,
}

/// Why a refund cannot be reserved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReserveError {
    /// More than what is left of the capture (captured less every refund that holds money).
    #[error("at most {left} subunits are left to refund of Razorpay payment {razorpay_payment_id}")]
    Exceeds {
        left: u64,
        razorpay_payment_id: String,
    },
    /// The same idempotency key asked another refund.
    #[error("idempotency key {0:?} was used for another refund")]
    KeyReused(String),
}

/// What reserving did: a new refund (the whole list as it is now), or the one the key already
/// made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reserved {
    New(Vec<Refund>),
    Existing(Refund),
}

/// Reserves `ask` among `refunds` at `now`: never more than what is left of the capture, the
/// in-flight ones counted, so concurrent asks that together exceed it cannot both be
/// reserved (the caller writes the list under a condition on the version it read).
pub fn reserve(refunds: &[Refund], ask: &RefundAsk, now: u64) -> Result<Reserved, ReserveError> {
    if let Some(existing) = refunds.iter().find(|r| r.id == ask.id) {
        return match existing.payload_hash.as_deref() == Some(ask.payload_hash.as_str()) {
            true => Ok(Reserved::Existing(existing.clone())),
            false => Err(ReserveError::KeyReused(ask.idempotency_key.clone())),
        };
    }
    let held: u64 = refunds
        .iter()
        .filter(|r| r.razorpay_payment_id == ask.razorpay_payment_id && r.status.holds_money())
        .map(|r| r.amount_minor)
        .sum();
    let left = ask.captured_minor.saturating_sub(held);
    let amount = ask.amount_minor.unwrap_or(left);
    if amount == 0 || amount > left {
        return Err(ReserveError::Exceeds {
            left,
            razorpay_payment_id: ask.razorpay_payment_id.clone(),
        });
    }
    let mut next = refunds.to_vec();
    next.push(Refund {
        id: ask.id.clone(),
        razorpay_refund_id: None,
        razorpay_payment_id: ask.razorpay_payment_id.clone(),
        amount_minor: amount,
        status: RefundStatus::Requested,
        source: ask.source,
        speed: Some(ask.speed.clone()),
        reason: ask.reason.clone(),
        idempotency_key: Some(ask.idempotency_key.clone()),
        payload_hash: Some(ask.payload_hash.clone()),
        failure: None,
        created_at: now,
        updated_at: now,
    });
    Ok(Reserved::New(next))
}

/// A requested refund Razorpay refused: failed, with the reason (its amount is free again).
pub fn refused(refunds: &[Refund], id: &str, reason: &str, now: u64) -> Merged {
    let mut next = refunds.to_vec();
    match next
        .iter_mut()
        .find(|r| r.id == id && r.status == RefundStatus::Requested)
    {
        Some(requested) => {
            requested.status = RefundStatus::Failed;
            requested.failure = Some(reason.to_owned());
            requested.updated_at = now;
            Merged::Changed(next)
        }
        None => Merged::Unchanged,
    }
}

/// What has gone back to the customer of one Razorpay payment (processed refunds only), or of
/// all of them with `None`.
pub fn refunded(refunds: &[Refund], razorpay_payment_id: Option<&str>) -> u64 {
    refunds
        .iter()
        .filter(|r| r.status == RefundStatus::Processed)
        .filter(|r| razorpay_payment_id.is_none_or(|id| r.razorpay_payment_id == id))
        .map(|r| r.amount_minor)
        .sum()
}

/// The Razorpay ids of the processed refunds of one Razorpay payment, oldest first.
pub fn processed_ids(refunds: &[Refund], razorpay_payment_id: &str) -> Vec<String> {
    let mut processed: Vec<&Refund> = refunds
        .iter()
        .filter(|r| r.status == RefundStatus::Processed)
        .filter(|r| r.razorpay_payment_id == razorpay_payment_id)
        .collect();
    processed.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    processed
        .into_iter()
        .filter_map(|r| r.razorpay_refund_id.clone())
        .collect()
}

/// How much of its money a payment has returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundState {
    Partial,
    Full,
}

impl RefundState {
    /// `refunded` of `captured` (subunits); `None` while nothing went back.
    pub fn of(refunded: u64, captured: u64) -> Option<RefundState> {
        match refunded {
            0 => None,
            r if r >= captured => Some(RefundState::Full),
            _ => Some(RefundState::Partial),
        }
    }

    /// The Flexprice payment status that says so.
    pub const fn flexprice_status(self) -> &'static str {
        match self {
            RefundState::Partial => "PARTIALLY_REFUNDED",
            RefundState::Full => "REFUNDED",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RefundStatus::*;
    use super::*;

    fn news(id: &str, amount: u64, status: RefundStatus) -> RefundNews {
        RefundNews {
            razorpay_refund_id: id.into(),
            requested_as: None,
            razorpay_payment_id: "pay_1".into(),
            amount_minor: amount,
            status,
            speed: None,
            created_at: 10,
        }
    }

    fn changed(merged: Merged) -> Vec<Refund> {
        match merged {
            Merged::Changed(refunds) => refunds,
            Merged::Unchanged => panic!("expected a change"),
        }
    }

    #[test]
    fn states_only_move_forward() {
        for (from, to, allowed) in [
            (Requested, Pending, true),
            (Requested, Processed, true),
            (Requested, Failed, true),
            (Pending, Requested, false),
            (Pending, Pending, false),
            (Pending, Processed, true),
            (Pending, Failed, true),
            (Processed, Pending, false),
            (Processed, Failed, false),
            (Processed, Processed, false),
            (Failed, Pending, false),
            (Failed, Processed, false),
        ] {
            assert_eq!(from.may_become(to), allowed, "{from:?} → {to:?}");
        }
    }

    #[test]
    fn partial_refunds_accumulate_and_news_in_any_order_and_number_counts_once() {
        let one = changed(merge(&[], &news("rfnd_1", 300, Processed), 20));
        // A late `refund.created` of the same refund changes nothing.
        assert_eq!(
            merge(&one, &news("rfnd_1", 300, Pending), 21),
            Merged::Unchanged
        );
        assert_eq!(
            merge(&one, &news("rfnd_1", 300, Processed), 22),
            Merged::Unchanged
        );
        let two = changed(merge(&one, &news("rfnd_2", 700, Pending), 23));
        assert_eq!(
            refunded(&two, Some("pay_1")),
            300,
            "a pending refund has not gone back"
        );
        let two = changed(merge(&two, &news("rfnd_2", 700, Processed), 24));
        assert_eq!(refunded(&two, Some("pay_1")), 1000);
        assert_eq!(refunded(&two, Some("pay_2")), 0);
        assert_eq!(processed_ids(&two, "pay_1"), ["rfnd_1", "rfnd_2"]);
        assert_eq!(two.len(), 2);
    }

    fn ask(id: &str, amount: Option<u64>) -> RefundAsk {
        RefundAsk {
            id: id.into(),
            idempotency_key: format!("key-{id}"),
            payload_hash: format!("hash-{id}"),
            razorpay_payment_id: "pay_1".into(),
            captured_minor: 1000,
            amount_minor: amount,
            speed: "normal".into(),
            reason: None,
            source: RefundSource::Api,
        }
    }

    fn reserved(result: Result<Reserved, ReserveError>) -> Vec<Refund> {
        match result {
            Ok(Reserved::New(refunds)) => refunds,
            other => panic!("expected a reservation, got {other:?}"),
        }
    }

    #[test]
    fn a_reservation_never_exceeds_what_is_left_and_a_key_is_one_refund() {
        let one = reserved(reserve(&[], &ask("rfd_1", Some(600)), 1));
        let too_much = reserve(&one, &ask("rfd_2", Some(401)), 2);
        assert_eq!(
            too_much,
            Err(ReserveError::Exceeds {
                left: 400,
                razorpay_payment_id: "pay_1".into()
            })
        );
        assert!(matches!(
            reserve(&one, &ask("rfd_1", Some(600)), 3),
            Ok(Reserved::Existing(r)) if r.amount_minor == 600
        ));
        let other_body = RefundAsk {
            payload_hash: "another".into(),
            ..ask("rfd_1", Some(600))
        };
        assert!(matches!(
            reserve(&one, &other_body, 3),
            Err(ReserveError::KeyReused(_))
        ));
        // The rest; then nothing is left, until a refund fails.
        let two = reserved(reserve(&one, &ask("rfd_3", None), 4));
        assert_eq!(two[1].amount_minor, 400);
        assert!(reserve(&two, &ask("rfd_4", None), 5).is_err());
        let Merged::Changed(failed) = refused(&two, "rfd_3", "refused", 6) else {
            panic!("expected a change");
        };
        assert_eq!(failed[1].status, Failed);
        assert!(reserve(&failed, &ask("rfd_4", None), 7).is_ok());
    }

    #[test]
    fn razorpays_answer_finds_the_requested_refund_by_its_notes_only_on_its_payment() {
        let one = reserved(reserve(&[], &ask("rfd_1", Some(600)), 1));
        let answer = RefundNews {
            requested_as: Some("rfd_1".into()),
            ..news("rfnd_9", 600, Pending)
        };
        let known = changed(merge(&one, &answer, 2));
        assert_eq!(known.len(), 1);
        assert_eq!(known[0].razorpay_refund_id.as_deref(), Some("rfnd_9"));
        assert_eq!(known[0].status, Pending);
        // Notes naming our refund on another amount are another refund, not ours.
        let forged = RefundNews {
            requested_as: Some("rfd_1".into()),
            ..news("rfnd_8", 100, Processed)
        };
        assert_eq!(changed(merge(&one, &forged, 3)).len(), 2);
    }

    #[test]
    fn a_failed_refund_returns_nothing() {
        let failed = changed(merge(&[], &news("rfnd_1", 300, Failed), 20));
        assert_eq!(refunded(&failed, None), 0);
        assert!(!failed[0].status.holds_money());
    }

    #[test]
    fn the_refund_state_follows_the_amounts() {
        assert_eq!(RefundState::of(0, 100), None);
        assert_eq!(RefundState::of(40, 100), Some(RefundState::Partial));
        assert_eq!(RefundState::of(100, 100), Some(RefundState::Full));
        assert_eq!(RefundState::Full.flexprice_status(), "REFUNDED");
        assert_eq!(
            RefundState::Partial.flexprice_status(),
            "PARTIALLY_REFUNDED"
        );
    }
}
