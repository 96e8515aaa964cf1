//! Disputes (`docs/architecture.md` §3.8): the six `payment.dispute.*` events (`created`,
//! `action_required`, `under_review`, `won`, `lost`, `closed`) are stored on the payment whose
//! Razorpay payment they dispute, with phase, status, `respond_by` and `amount_deducted`, by
//! the same three steps as a refund: whose money (counting the capture first if needed), merged
//! once under a condition on the version read (forward only), and reflected in Flexprice. A lost
//! dispute is the money the bank took back: it is added as a processed refund of what was
//! deducted, so the Flexprice payment becomes PARTIALLY_REFUNDED or REFUNDED like any refund,
//! with the dispute's id in its metadata. An open dispute within 48 hours of `respond_by`
//! emits `DisputeResponseDue`, for the alarm of the template.

use crate::adapters::aws::Adapters;
use crate::adapters::aws::records;
use crate::adapters::razorpay::wire::{Dispute as RazorpayDispute, Payment as RazorpayPayment};
use crate::domain::dispute::{self, Dispute, DisputesMerged};
use crate::domain::error::Failure;
use crate::domain::keys::{Key, TenantScope};
use crate::domain::payment::{Payment, PaymentUpdate};
use crate::services::reconcile::Applied;
use crate::services::refunds;

/// Lost races on one payment before the job is retried.
const MERGE_TRIES: u32 = 4;

/// Applies one `payment.dispute.*` event.
pub async fn apply(
    adapters: &Adapters,
    scope: &TenantScope,
    event: &str,
    dispute: &RazorpayDispute,
    payment: Option<RazorpayPayment>,
) -> Result<Applied, Failure> {
    let news = news_of(event, dispute, adapters.clock.now_secs())?;
    let Some(counted) =
        refunds::counted_capture(adapters, scope, &news.razorpay_payment_id, payment).await?
    else {
        tracing::info!(dispute_id = %news.id, "dispute on a payment flexrzp did not collect; acknowledged");
        return Ok(Applied::NotOurs);
    };
    let key = records::payment_key(scope, &counted.payment_id);
    let (payment, changed) = merge_into(adapters, &key, &news).await?;
    report_deadline(scope, &payment, &news, adapters.clock.now_secs());
    if news.is_lost() {
        let pay = news.razorpay_payment_id.as_str();
        refunds::reflect_in_flexprice(adapters, scope, &payment, &counted, pay).await?;
    }
    Ok(if changed {
        Applied::Disputed {
            status: news.status,
        }
    } else {
        Applied::NoChange
    })
}

/// The dispute as the domain keeps it; one without a status or payment is refused.
fn news_of(event: &str, dispute: &RazorpayDispute, now: u64) -> Result<Dispute, Failure> {
    if dispute.status.is_empty() || dispute.payment_id.is_empty() {
        return Err(Failure::Permanent(format!(
            "dispute {} carries no status or payment",
            dispute.id
        )));
    }
    Ok(Dispute {
        id: dispute.id.clone(),
        razorpay_payment_id: dispute.payment_id.clone(),
        amount_minor: dispute.amount,
        amount_deducted_minor: dispute.amount_deducted,
        phase: dispute.phase.clone(),
        status: dispute.status.clone(),
        respond_by: dispute.respond_by,
        reason_code: dispute.reason_code.clone(),
        last_event: event.to_owned(),
        created_at: dispute.created_at,
        updated_at: now,
    })
}

/// The dispute merged into the payment (and, lost, its refund added), under a condition on
/// the version read. The payment as it is now, and whether it changed.
async fn merge_into(
    adapters: &Adapters,
    key: &Key,
    news: &Dispute,
) -> Result<(Payment, bool), Failure> {
    let changed = records::change_payment(adapters.store.as_ref(), key, MERGE_TRIES, |payment| {
        let now = adapters.clock.now_secs();
        let DisputesMerged::Changed(disputes) = dispute::merge(&payment.disputes, news, now) else {
            return Ok(None);
        };
        let mut refunds = payment.refunds.clone();
        let lost = disputes.iter().filter_map(dispute::as_refund);
        for refund in lost {
            if !refunds.iter().any(|r| r.id == refund.id) {
                refunds.push(refund);
            }
        }
        Ok(Some(PaymentUpdate::DisputesChanged {
            disputes,
            refunds,
            at: now,
        }))
    })
    .await;
    changed.map_err(|e| refunds::merge_failure(key, "disputes", e))
}

/// An open dispute close to its deadline: a warning and a metric.
fn report_deadline(scope: &TenantScope, payment: &Payment, news: &Dispute, now: u64) {
    let Some(stored) = payment.disputes.iter().find(|d| d.id == news.id) else {
        return;
    };
    if !stored.needs_answer(now) {
        return;
    }
    tracing::warn!(
        dispute_id = %stored.id,
        payment_id = %payment.id,
        respond_by = stored.respond_by,
        "a dispute must be answered within 48 hours"
    );
    crate::adapters::telemetry::metric(
        crate::adapters::telemetry::metrics::DISPUTE_RESPONSE_DUE,
        1,
        &[
            ("tenant", scope.tenant_id()),
            ("environment", scope.environment_id()),
        ],
    );
}
