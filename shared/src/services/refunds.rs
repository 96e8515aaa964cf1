//! Refunds (`docs/architecture.md` §3.7): money that goes back is reflected as exactly as money
//! that comes in. A refund made anywhere (Razorpay's dashboard, its API, an automatic refund)
//! reaches [`apply`] from its `refund.*` webhook or from the sweep, and is applied in three
//! steps, each safe to repeat:
//!
//! 1. the Razorpay payment it returns must be counted on one of our payments (the
//!    `RZP_PAYMENT#{pay_id}` item); one that is not yet is counted first, through the capture
//!    path, and one that is not ours is acknowledged;
//! 2. the refund is merged into that payment's refunds, keyed by its Razorpay id, by a write
//!    conditioned on the version read: partial refunds add up, a state only moves forward, and
//!    a duplicate or late event changes nothing;
//! 3. Flexprice's payment of that Razorpay payment (found again by its idempotency key) is
//!    moved to PARTIALLY_REFUNDED or REFUNDED with `refunded_at`, the processed refund ids and
//!    the amount refunded in its metadata, computed from our stored refunds, never from the
//!    event: every delivery converges on the same answer.

use std::collections::BTreeMap;

use crate::adapters::aws::Adapters;
use crate::adapters::aws::records::{self, ChangeError, CountedPayment};
use crate::adapters::flexprice::wire::{Payment as FlexpricePayment, UpdatePaymentRequest};
use crate::adapters::razorpay::wire::{
    Payment as RazorpayPayment, PaymentStatus as RazorpayPaymentStatus, Refund as RazorpayRefund,
    RefundStatus as RazorpayRefundStatus,
};
use crate::domain::error::Failure;
use crate::domain::keys::{Key, TenantScope};
use crate::domain::money::{Currency, Money};
use crate::domain::payment::{Payment, PaymentUpdate};
use crate::domain::refund::{self, Merged, RefundNews, RefundState, RefundStatus};
use crate::services::reconcile::{self, Applied};
use crate::services::{connection, recording};

/// The note that carries our refund id on a refund the API asked for.
pub const REFUND_NOTE: &str = "flexrzp_refund_id";

/// Lost races on one payment's refunds before the job is retried.
const MERGE_TRIES: u32 = 4;

/// Applies what Razorpay says of one refund; `payment` is the Razorpay payment its event
/// carried, if any.
pub async fn apply(
    adapters: &Adapters,
    scope: &TenantScope,
    refund: &RazorpayRefund,
    payment: Option<RazorpayPayment>,
) -> Result<Applied, Failure> {
    let news = news_of(refund)?;
    let Some(counted) =
        counted_capture(adapters, scope, &news.razorpay_payment_id, payment).await?
    else {
        tracing::info!(razorpay_refund_id = %news.razorpay_refund_id, "refund of a payment flexrzp did not collect; acknowledged");
        return Ok(Applied::NotOurs);
    };
    let key = records::payment_key(scope, &counted.payment_id);
    let (payment, changed) = merge_into(adapters, &key, &news).await?;
    reflect_in_flexprice(
        adapters,
        scope,
        &payment,
        &counted,
        &news.razorpay_payment_id,
    )
    .await?;
    Ok(if changed {
        Applied::Refunded {
            status: news.status.as_str().to_owned(),
        }
    } else {
        Applied::NoChange
    })
}

/// The refund as the domain reads it; a status Razorpay does not document is refused.
fn news_of(refund: &RazorpayRefund) -> Result<RefundNews, Failure> {
    let status = match refund.status {
        RazorpayRefundStatus::Pending => RefundStatus::Pending,
        RazorpayRefundStatus::Processed => RefundStatus::Processed,
        RazorpayRefundStatus::Failed => RefundStatus::Failed,
        RazorpayRefundStatus::Other(ref other) => {
            return Err(Failure::Permanent(format!(
                "refund {} has an unknown status {other:?}",
                refund.id
            )));
        }
    };
    if refund.amount == 0 {
        return Err(Failure::Permanent(format!(
            "refund {} carries no amount",
            refund.id
        )));
    }
    Ok(RefundNews {
        razorpay_refund_id: refund.id.clone(),
        requested_as: refund.notes.get(REFUND_NOTE).map(str::to_owned),
        razorpay_payment_id: refund.payment_id.clone(),
        amount_minor: refund.amount,
        status,
        speed: refund
            .speed_processed
            .clone()
            .or(refund.speed_requested.clone()),
        created_at: refund.created_at,
    })
}

/// The counted capture a refund (or a dispute) is about: counted now through the capture path
/// if its webhook has not been applied yet (they can arrive first); `None` when it is not ours.
pub(crate) async fn counted_capture(
    adapters: &Adapters,
    scope: &TenantScope,
    razorpay_payment_id: &str,
    payment: Option<RazorpayPayment>,
) -> Result<Option<CountedPayment>, Failure> {
    let counted_key = records::counted_key(scope, razorpay_payment_id);
    if let Some(counted) = read_counted(adapters, &counted_key).await? {
        return Ok(Some(counted));
    }
    let payment = match payment {
        Some(payment) => payment,
        None => fetch_payment(adapters, scope, razorpay_payment_id).await?,
    };
    if !payment.captured && payment.status != RazorpayPaymentStatus::Captured {
        // Razorpay's auto-refund of money it authorised and never captured: nothing was
        // collected, so nothing goes back.
        tracing::info!(razorpay_payment_id = %payment.id, "auto-refund of an uncaptured payment");
        return Ok(None);
    }
    // Boxed: counting can refund (money captured after a void), which applies a refund.
    let counting = Box::pin(reconcile::count_captured(
        adapters, scope, payment, None, None,
    ));
    match counting.await? {
        Applied::NotOurs => Ok(None),
        _ => read_counted(adapters, &counted_key)
            .await?
            .map(Some)
            .ok_or_else(|| {
                Failure::Retryable(format!(
                    "Razorpay payment {razorpay_payment_id} is not counted yet"
                ))
            }),
    }
}

async fn read_counted(adapters: &Adapters, key: &Key) -> Result<Option<CountedPayment>, Failure> {
    records::read::<CountedPayment>(adapters.store.as_ref(), key)
        .await
        .map_err(Failure::retryable)
}

async fn fetch_payment(
    adapters: &Adapters,
    scope: &TenantScope,
    razorpay_payment_id: &str,
) -> Result<RazorpayPayment, Failure> {
    let clients = connection::job_clients(adapters, scope).await?;
    let fetched = clients.razorpay.get_payment(razorpay_payment_id).await;
    fetched.map_err(|e| Failure::classed(&e))
}

/// Step 2: the refund merged into the payment's refunds, under a condition on the version
/// read (a lost race reads again). The payment as it is now, and whether it changed.
async fn merge_into(
    adapters: &Adapters,
    key: &Key,
    news: &RefundNews,
) -> Result<(Payment, bool), Failure> {
    let changed = records::change_payment(adapters.store.as_ref(), key, MERGE_TRIES, |payment| {
        let now = adapters.clock.now_secs();
        Ok::<_, std::convert::Infallible>(match refund::merge(&payment.refunds, news, now) {
            Merged::Changed(refunds) => Some(PaymentUpdate::RefundsChanged { refunds, at: now }),
            Merged::Unchanged => None,
        })
    })
    .await;
    changed.map_err(|e| merge_failure(key, "refunds", e))
}

/// A merge into a payment that did not happen, as the job's failure.
pub(crate) fn merge_failure(
    key: &Key,
    what: &str,
    error: ChangeError<std::convert::Infallible>,
) -> Failure {
    match error {
        ChangeError::Missing => Failure::Permanent(format!("no payment at {key:?}")),
        ChangeError::Busy => Failure::Retryable(format!(
            "the {what} of the payment at {key:?} kept changing"
        )),
        ChangeError::Store(e) => Failure::retryable(e),
        ChangeError::Refused(never) => match never {},
    }
}

/// Step 3: Flexprice's payment says what went back, once anything has; already saying it,
/// it is left alone. A refusal is retried: it is most likely a concurrent apply that moved it
/// further, which the next try reads (and a lasting one is parked with the reason).
const AMOUNT_REFUNDED: &str = "amount_refunded";

pub(crate) async fn reflect_in_flexprice(
    adapters: &Adapters,
    scope: &TenantScope,
    payment: &Payment,
    counted: &CountedPayment,
    razorpay_payment_id: &str,
) -> Result<(), Failure> {
    let refunded = refund::refunded(&payment.refunds, Some(razorpay_payment_id));
    let Some(state) = RefundState::of(refunded, counted.amount_minor) else {
        return Ok(());
    };
    if counted.unrecorded {
        // Never recorded in Flexprice (its invoice was voided): nothing there to move.
        return Ok(());
    }
    let clients = connection::job_clients(adapters, scope).await?;
    let currency = payment.amount.currency();
    let captured = Money::from_minor(counted.amount_minor, currency);
    let record = recording::capture_request(
        &payment.invoice_id,
        razorpay_payment_id,
        &payment.id,
        captured,
    );
    let row = recording::record(clients.flexprice.as_ref(), &record)
        .await
        .map_err(|e| {
            Failure::Retryable(format!(
                "the Flexprice payment of {razorpay_payment_id}: {e}"
            ))
        })?;
    let metadata = refund_metadata(
        &row,
        payment,
        razorpay_payment_id,
        Money::from_minor(refunded, currency),
    );
    if row.payment_status == state.flexprice_status() && row.metadata == metadata {
        return Ok(());
    }
    let before = refunded_before(&row, currency);
    let update = UpdatePaymentRequest {
        payment_status: state.flexprice_status().to_owned(),
        refunded_at: rfc3339(last_processed_at(payment, razorpay_payment_id)),
        metadata,
    };
    clients
        .flexprice
        .update_payment(&row.id, &update)
        .await
        .map_err(|e| {
            Failure::Retryable(format!(
                "Flexprice did not take the refund of {razorpay_payment_id} ({}): {e}",
                state.flexprice_status()
            ))
        })?;
    count_refunded(refunded.saturating_sub(before), currency);
    Ok(())
}

/// What Flexprice's payment said went back before this update, in subunits.
fn refunded_before(row: &FlexpricePayment, currency: Currency) -> u64 {
    let said = row.metadata.get(AMOUNT_REFUNDED);
    said.and_then(|text| Money::parse(text, currency).ok())
        .map_or(0, Money::minor)
}

/// Counts money newly reflected as refunded in the `MoneyRefundedMinor` metric.
fn count_refunded(news_minor: u64, currency: Currency) {
    if news_minor > 0 {
        let metric = crate::adapters::telemetry::metrics::MONEY_REFUNDED;
        crate::adapters::telemetry::metric(metric, news_minor, &[("Currency", currency.code())]);
    }
}

/// The Flexprice payment's metadata with the refunds in it (Flexprice replaces metadata on
/// update, so what it has is kept).
fn refund_metadata(
    row: &FlexpricePayment,
    payment: &Payment,
    razorpay_payment_id: &str,
    refunded: Money,
) -> BTreeMap<String, String> {
    let mut metadata = row.metadata.clone();
    let ids = refund::processed_ids(&payment.refunds, razorpay_payment_id).join(",");
    metadata.insert("razorpay_refund_ids".to_owned(), ids);
    let lost: Vec<&str> = payment
        .disputes
        .iter()
        .filter(|d| d.razorpay_payment_id == razorpay_payment_id && d.is_lost())
        .map(|d| d.id.as_str())
        .collect();
    if !lost.is_empty() {
        metadata.insert("razorpay_dispute_ids".to_owned(), lost.join(","));
    }
    metadata.insert(AMOUNT_REFUNDED.to_owned(), refunded.to_decimal_string());
    metadata
}

/// When the last processed refund of the Razorpay payment was seen processed.
fn last_processed_at(payment: &Payment, razorpay_payment_id: &str) -> u64 {
    payment
        .refunds
        .iter()
        .filter(|r| r.razorpay_payment_id == razorpay_payment_id)
        .filter(|r| r.status == RefundStatus::Processed)
        .map(|r| r.updated_at)
        .max()
        .unwrap_or(payment.updated_at)
}

fn rfc3339(secs: u64) -> String {
    let at = aws_smithy_types::DateTime::from_secs(i64::try_from(secs).unwrap_or(i64::MAX));
    at.fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default()
}
