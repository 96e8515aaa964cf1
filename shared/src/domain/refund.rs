//! Refunds of the money a payment collected (`docs/architecture.md` §4.3). Pure: a refund is
//! kept on the payment whose Razorpay payment it returns, keyed by the Razorpay refund id; what
//! Razorpay says about a refund is merged in with [`merge`], where a state only moves forward
//! and a refund is never counted twice, whatever order and how often its news arrive.

use serde::{Deserialize, Serialize};

/// Where a refund stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RefundStatus {
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
            RefundStatus::Pending => "PENDING",
            RefundStatus::Processed => "PROCESSED",
            RefundStatus::Failed => "FAILED",
        }
    }

    /// Whether a refund in this state may move to `next`: pending moves to either end, an end
    /// never moves (a late `refund.created` after `refund.processed` changes nothing).
    pub fn may_become(self, next: RefundStatus) -> bool {
        self == RefundStatus::Pending && next != RefundStatus::Pending
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
    /// Made outside flexrzp (Razorpay's dashboard, its API, an automatic refund), found by its
    /// webhook or by the sweep.
    Razorpay,
}

/// One refund of one Razorpay payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    /// Razorpay's refund id (`rfnd_…`).
    pub razorpay_refund_id: String,
    /// The Razorpay payment it returns money of.
    pub razorpay_payment_id: String,
    /// In the payment's subunits.
    pub amount_minor: u64,
    pub status: RefundStatus,
    pub source: RefundSource,
    /// `normal` or `optimum`, as Razorpay processed it (or was asked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<String>,
    /// Epoch seconds: when Razorpay made it, and when we last changed it.
    pub created_at: u64,
    pub updated_at: u64,
}

/// What Razorpay says about a refund now (from a webhook or a read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundNews {
    pub razorpay_refund_id: String,
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

/// Merges `news` into `refunds` (the payment's, as read) at `now`.
pub fn merge(refunds: &[Refund], news: &RefundNews, now: u64) -> Merged {
    let mut next = refunds.to_vec();
    match next
        .iter_mut()
        .find(|r| r.razorpay_refund_id == news.razorpay_refund_id)
    {
        Some(known) if known.status.may_become(news.status) => {
            known.status = news.status;
            known.speed = news.speed.clone().or(known.speed.take());
            known.updated_at = now;
        }
        Some(_) => return Merged::Unchanged,
        None => next.push(Refund {
            razorpay_refund_id: news.razorpay_refund_id.clone(),
            razorpay_payment_id: news.razorpay_payment_id.clone(),
            amount_minor: news.amount_minor,
            status: news.status,
            source: RefundSource::Razorpay,
            speed: news.speed.clone(),
            created_at: news.created_at,
            updated_at: now,
        }),
    }
    Merged::Changed(next)
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

/// The processed refund ids of one Razorpay payment, oldest first.
pub fn processed_ids(refunds: &[Refund], razorpay_payment_id: &str) -> Vec<String> {
    let mut processed: Vec<&Refund> = refunds
        .iter()
        .filter(|r| r.status == RefundStatus::Processed)
        .filter(|r| r.razorpay_payment_id == razorpay_payment_id)
        .collect();
    processed.sort_by(|a, b| {
        (a.created_at, &a.razorpay_refund_id).cmp(&(b.created_at, &b.razorpay_refund_id))
    });
    processed
        .into_iter()
        .map(|r| r.razorpay_refund_id.clone())
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
