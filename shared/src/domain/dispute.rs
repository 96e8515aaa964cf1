//! Disputes (chargebacks) on the Razorpay payments a payment counted (`docs/architecture.md`
//! §3.8). Pure: what Razorpay says of a dispute is merged in with [`merge`]; a dispute only
//! moves forward (open, under review, then won, lost or closed, each final), and one lost is
//! money gone back to the customer, reflected like a processed refund of what was deducted
//! ([`as_refund`]).

use serde::{Deserialize, Serialize};

use crate::domain::refund::{Refund, RefundSource, RefundStatus};

/// Within this long of `respond_by`, a dispute needs an answer now (a metric, for an alarm).
pub const RESPOND_SOON_SECS: u64 = 48 * 3600;

/// One dispute, as stored on the payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dispute {
    /// Razorpay's id (`disp_…`).
    pub id: String,
    pub razorpay_payment_id: String,
    pub amount_minor: u64,
    /// Taken from the merchant: non-zero once lost.
    pub amount_deducted_minor: u64,
    /// `fraud`, `retrieval`, `chargeback`, `pre_arbitration`, `arbitration`.
    pub phase: String,
    /// `open`, `under_review`, `won`, `lost`, `closed`.
    pub status: String,
    /// Epoch seconds: the deadline to contest it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub respond_by: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
    /// The last event applied (`payment.dispute.action_required`, …).
    pub last_event: String,
    pub created_at: u64,
    pub updated_at: u64,
}

impl Dispute {
    /// How far along a status is: open, then under review, then an end.
    fn rank(status: &str) -> u8 {
        match status {
            "open" => 0,
            "under_review" => 1,
            _ => 2,
        }
    }

    pub fn is_final(&self) -> bool {
        Dispute::rank(&self.status) == 2
    }

    pub fn is_lost(&self) -> bool {
        self.status == "lost"
    }

    /// Open with its deadline within [`RESPOND_SOON_SECS`] of `now` (or past it).
    pub fn needs_answer(&self, now: u64) -> bool {
        !self.is_final()
            && self
                .respond_by
                .is_some_and(|by| by.saturating_sub(now) <= RESPOND_SOON_SECS)
    }
}

/// What merging did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisputesMerged {
    Unchanged,
    Changed(Vec<Dispute>),
}

/// Merges `news` (the dispute as Razorpay has it now) into `disputes` at `now`: new ones are
/// added; a known one takes the news when it is further along, or, still open, when the news
/// changes it (a new `respond_by` with `action_required`); a final one never changes.
pub fn merge(disputes: &[Dispute], news: &Dispute, now: u64) -> DisputesMerged {
    let mut next = disputes.to_vec();
    match next.iter_mut().find(|d| d.id == news.id) {
        None => next.push(Dispute {
            updated_at: now,
            ..news.clone()
        }),
        Some(known) if known.is_final() => return DisputesMerged::Unchanged,
        Some(known) => {
            let further = Dispute::rank(&news.status) > Dispute::rank(&known.status);
            let same_rank = Dispute::rank(&news.status) == Dispute::rank(&known.status);
            let changed = known.respond_by != news.respond_by || known.status != news.status;
            if !(further || (same_rank && changed)) {
                return DisputesMerged::Unchanged;
            }
            *known = Dispute {
                created_at: known.created_at,
                updated_at: now,
                ..news.clone()
            };
        }
    }
    DisputesMerged::Changed(next)
}

/// A lost dispute as the money it took back: a processed refund of what was deducted, so
/// what a payment has returned (and what is left to refund) counts it once.
pub fn as_refund(dispute: &Dispute) -> Option<Refund> {
    (dispute.is_lost() && dispute.amount_deducted_minor > 0).then(|| Refund {
        id: dispute.id.clone(),
        razorpay_refund_id: None,
        razorpay_payment_id: dispute.razorpay_payment_id.clone(),
        amount_minor: dispute.amount_deducted_minor,
        status: RefundStatus::Processed,
        source: RefundSource::Dispute,
        speed: None,
        reason: Some(format!("dispute {} lost ({})", dispute.id, dispute.phase)),
        idempotency_key: None,
        payload_hash: None,
        failure: None,
        created_at: dispute.updated_at,
        updated_at: dispute.updated_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dispute(status: &str, respond_by: Option<u64>) -> Dispute {
        Dispute {
            id: "disp_1".into(),
            razorpay_payment_id: "pay_1".into(),
            amount_minor: 1000,
            amount_deducted_minor: if status == "lost" { 1000 } else { 0 },
            phase: "chargeback".into(),
            status: status.into(),
            respond_by,
            reason_code: None,
            last_event: format!("payment.dispute.{status}"),
            created_at: 1,
            updated_at: 1,
        }
    }

    fn changed(merged: DisputesMerged) -> Vec<Dispute> {
        match merged {
            DisputesMerged::Changed(d) => d,
            DisputesMerged::Unchanged => panic!("expected a change"),
        }
    }

    #[test]
    fn a_dispute_moves_only_forward_and_an_end_is_final() {
        let open = changed(merge(&[], &dispute("open", Some(100)), 2));
        let asked = changed(merge(&open, &dispute("open", Some(50)), 3));
        assert_eq!(
            asked[0].respond_by,
            Some(50),
            "action_required moves the deadline"
        );
        let review = changed(merge(&asked, &dispute("under_review", Some(50)), 4));
        assert_eq!(
            merge(&review, &dispute("open", Some(50)), 5),
            DisputesMerged::Unchanged,
            "a late created"
        );
        let lost = changed(merge(&review, &dispute("lost", Some(50)), 6));
        assert_eq!(lost[0].created_at, 1);
        for late in ["won", "closed", "open"] {
            assert_eq!(
                merge(&lost, &dispute(late, None), 7),
                DisputesMerged::Unchanged
            );
        }
        let refund = as_refund(&lost[0]).unwrap();
        assert_eq!(
            (refund.amount_minor, refund.status),
            (1000, RefundStatus::Processed)
        );
        assert_eq!(as_refund(&review[0]), None);
    }

    #[test]
    fn an_open_dispute_near_its_deadline_needs_an_answer() {
        assert!(dispute("open", Some(RESPOND_SOON_SECS + 10)).needs_answer(20));
        assert!(!dispute("open", Some(RESPOND_SOON_SECS + 10)).needs_answer(5));
        assert!(!dispute("won", Some(10)).needs_answer(5));
        assert!(!dispute("open", None).needs_answer(5));
    }
}
