//! How long a way to pay stays open: a connection's collection policy and the `expire_by` it
//! gives links and synced Razorpay invoices, inside Razorpay's bounds (at least 15 minutes
//! ahead, at most about six months).

/// Seconds in a day.
const DAY: u64 = 24 * 3600;
/// Razorpay refuses an `expire_by` less than 15 minutes ahead; one more minute covers the
/// request's own latency and clock skew.
pub const MIN_EXPIRY_SECS: u64 = 16 * 60;
/// The longest a link or invoice is kept open: Razorpay's six months, as 180 days.
pub const MAX_EXPIRY_DAYS: u32 = 180;
/// The default life of a payment link.
pub const DEFAULT_LINK_EXPIRY_DAYS: u32 = 30;
/// The default time an invoice synced on or after its due date stays payable.
pub const DEFAULT_OVERDUE_GRACE_DAYS: u32 = 7;
/// The longest grace period a connection may set.
pub const MAX_OVERDUE_GRACE_DAYS: u32 = 90;

/// A connection's collection settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollectionPolicy {
    /// How long a payment link stays payable.
    pub link_expiry_days: u32,
    /// How long an invoice synced on or after its due date stays payable.
    pub overdue_grace_days: u32,
    /// Whether Razorpay sends its payment-link reminders.
    pub link_reminders: bool,
    /// What becomes of money captured beyond what the invoice owes.
    pub overcollection: OverCollection,
    /// Whether a Flexprice REFUND credit note is refunded at Razorpay.
    pub credit_note_refunds: bool,
}

/// What becomes of money captured on an instrument whose invoice no longer owes it (two
/// instruments paid at the same instant, a payment after a void).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverCollection {
    /// Recorded, and flagged on the payment for a person (the default).
    #[default]
    Review,
    /// The excess is refunded automatically, once.
    Refund,
}

impl OverCollection {
    pub const fn as_str(self) -> &'static str {
        match self {
            OverCollection::Review => "review",
            OverCollection::Refund => "refund",
        }
    }

    pub fn parse(text: &str) -> Option<OverCollection> {
        [OverCollection::Review, OverCollection::Refund]
            .into_iter()
            .find(|p| p.as_str() == text)
    }
}

impl Default for CollectionPolicy {
    fn default() -> CollectionPolicy {
        CollectionPolicy {
            link_expiry_days: DEFAULT_LINK_EXPIRY_DAYS,
            overdue_grace_days: DEFAULT_OVERDUE_GRACE_DAYS,
            link_reminders: false,
            overcollection: OverCollection::Review,
            credit_note_refunds: false,
        }
    }
}

fn bounded(at: u64, now_secs: u64) -> u64 {
    at.clamp(
        now_secs + MIN_EXPIRY_SECS,
        now_secs + u64::from(MAX_EXPIRY_DAYS) * DAY,
    )
}

impl CollectionPolicy {
    /// A new link's `expire_by`.
    pub fn link_expire_by(&self, now_secs: u64) -> u64 {
        bounded(now_secs + u64::from(self.link_expiry_days) * DAY, now_secs)
    }

    /// A synced invoice's `expire_by`: its due date (epoch seconds) when that is far enough
    /// ahead; an invoice due already (or within the grace period's first minutes) gets the
    /// grace period from now, never minutes; no due date, no expiry.
    pub fn invoice_expire_by(&self, due_secs: Option<u64>, now_secs: u64) -> Option<u64> {
        let due = due_secs?;
        let at = if due >= now_secs + MIN_EXPIRY_SECS {
            due
        } else {
            now_secs + u64::from(self.overdue_grace_days) * DAY
        };
        Some(bounded(at, now_secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    #[test]
    fn links_expire_after_the_policy_s_days_inside_razorpay_s_bounds() {
        let policy = CollectionPolicy::default();
        assert_eq!(policy.link_expire_by(NOW), NOW + 30 * DAY);
        let long = CollectionPolicy {
            link_expiry_days: 400,
            ..policy
        };
        assert_eq!(long.link_expire_by(NOW), NOW + 180 * DAY);
    }

    #[test]
    fn an_overdue_invoice_gets_the_grace_period_not_minutes() {
        let policy = CollectionPolicy::default();
        assert_eq!(policy.invoice_expire_by(None, NOW), None);
        assert_eq!(
            policy.invoice_expire_by(Some(NOW - 5 * DAY), NOW),
            Some(NOW + 7 * DAY)
        );
        assert_eq!(
            policy.invoice_expire_by(Some(NOW + 60), NOW),
            Some(NOW + 7 * DAY),
            "due in a minute: overdue before anyone can pay"
        );
        assert_eq!(
            policy.invoice_expire_by(Some(NOW + 10 * DAY), NOW),
            Some(NOW + 10 * DAY)
        );
        assert_eq!(
            policy.invoice_expire_by(Some(NOW + 400 * DAY), NOW),
            Some(NOW + 180 * DAY)
        );
    }
}
