//! Refunds flexrzp makes itself, from the payments collected on an invoice's instruments
//! (`docs/architecture.md` §3.4 "over-collection" and §3.7 "credit notes"): the excess of an
//! overpaid invoice under the `refund` policy, and a Flexprice REFUND credit note when the
//! connection refunds credit notes. An amount is refunded from the payments newest first, each
//! refund reserved and made once through the API's refund path: its key names what asks it
//! (`overcollection:{invoice}`, `creditnote:{id}`) and how much that had refunded before, so a
//! job run again (or redelivered) meets the refunds it made.

use crate::adapters::aws::Adapters;
use crate::adapters::aws::records;
use crate::domain::collection::OverCollection;
use crate::domain::error::{Failure, Refusal};
use crate::domain::instruments::{Collection, InstrumentState};
use crate::domain::keys::{Key, TenantScope};
use crate::domain::money::Money;
use crate::domain::payment::{Capture, Payment};
use crate::domain::refund::{RefundSource, RefundStatus};
use crate::services::connection::{self, Clients};
use crate::services::payments::store_refusal;
use crate::services::refund_requests::{self, PolicyRefund};

/// What asks an automatic refund.
pub struct Plan {
    /// Names the asker: every refund it makes has a key under it.
    pub key_prefix: String,
    pub reason: String,
    pub source: RefundSource,
}

/// Under the `refund` policy: the excess of an overpaid invoice.
pub async fn refund_excess(
    adapters: &Adapters,
    scope: &TenantScope,
    clients: &Clients,
    collection: &Collection,
    excess: Money,
) -> Result<u64, Refusal> {
    let plan = Plan {
        key_prefix: format!("overcollection:{}", collection.invoice_id),
        reason: format!(
            "over-collection on invoice {}: the excess of {} refunded",
            collection.invoice_id,
            excess.to_decimal_string()
        ),
        source: RefundSource::Policy,
    };
    refund_from(adapters, scope, clients, collection, excess, &plan).await
}

/// Money captured after its invoice was voided (counted, never recorded in Flexprice): under
/// the `refund` policy, all of it goes back, once; under `review` it stays flagged.
pub async fn after_void(
    adapters: &Adapters,
    scope: &TenantScope,
    key: &Key,
    razorpay_payment_id: &str,
    amount_minor: u64,
) -> Result<(), Failure> {
    let clients = connection::job_clients(adapters, scope).await?;
    if clients.policy.overcollection != OverCollection::Refund {
        return Ok(());
    }
    let payment = records::read::<Payment>(adapters.store.as_ref(), key)
        .await
        .map_err(Failure::retryable)?
        .ok_or_else(|| Failure::Permanent(format!("no payment at {key:?}")))?;
    let capture = Capture {
        razorpay_payment_id: razorpay_payment_id.to_owned(),
        amount_minor,
        at_ms: 0,
    };
    let key = format!("void:{razorpay_payment_id}");
    let policy = PolicyRefund {
        capture: &capture,
        amount_minor,
        idempotency_key: &key,
        reason: "captured after its invoice was voided",
        source: RefundSource::Policy,
    };
    match refund_one(adapters, scope, &clients, &payment, policy).await {
        Ok(()) => Ok(()),
        Err(refusal) if refusal.is_retryable() => Err(Failure::Retryable(refusal.to_string())),
        Err(refusal) => {
            tracing::error!(%refusal, payment_id = %payment.id, "money captured after a void could not be refunded; the payment stays flagged");
            Ok(())
        }
    }
}

/// Refunds what of `amount` the plan has not refunded yet; what it has refunded in all.
pub async fn refund_from(
    adapters: &Adapters,
    scope: &TenantScope,
    clients: &Clients,
    collection: &Collection,
    amount: Money,
    plan: &Plan,
) -> Result<u64, Refusal> {
    let mut paid = paid_payments(adapters, scope, collection).await?;
    paid.sort_by_key(|p| std::cmp::Reverse(p.updated_at));
    let mut refunded = refunded_by(&paid, &plan.key_prefix);
    for payment in &paid {
        for capture in payment.counted_captures() {
            let left = amount.minor().saturating_sub(refunded);
            let share = left.min(refundable(payment, &capture));
            if share == 0 {
                continue;
            }
            let key = format!("{}:{refunded}", plan.key_prefix);
            let policy = PolicyRefund {
                capture: &capture,
                amount_minor: share,
                idempotency_key: &key,
                reason: &plan.reason,
                source: plan.source,
            };
            refund_one(adapters, scope, clients, payment, policy).await?;
            refunded += share;
        }
    }
    Ok(refunded)
}

/// What is left to refund of one capture.
fn refundable(payment: &Payment, capture: &Capture) -> u64 {
    let held: u64 = payment
        .refunds
        .iter()
        .filter(|r| r.razorpay_payment_id == capture.razorpay_payment_id)
        .filter(|r| r.status.holds_money())
        .map(|r| r.amount_minor)
        .sum();
    capture.amount_minor.saturating_sub(held)
}

/// One refund of the plan; a refusal by Razorpay is the plan's refusal.
async fn refund_one(
    adapters: &Adapters,
    scope: &TenantScope,
    clients: &Clients,
    payment: &Payment,
    policy: PolicyRefund<'_>,
) -> Result<(), Refusal> {
    let (amount_minor, key) = (policy.amount_minor, policy.idempotency_key.to_owned());
    let refund = refund_requests::policy_refund(adapters, scope, clients, payment, policy).await?;
    if refund.status == RefundStatus::Failed {
        return Err(Refusal::Upstream(format!(
            "Razorpay refused refund {}: {}",
            refund.id,
            refund.failure.as_deref().unwrap_or("no reason given")
        )));
    }
    tracing::warn!(payment_id = %payment.id, amount_minor, key, "refunded automatically");
    Ok(())
}

/// The payments of the invoice's paid instruments.
async fn paid_payments(
    adapters: &Adapters,
    scope: &TenantScope,
    collection: &Collection,
) -> Result<Vec<Payment>, Refusal> {
    let ids = collection
        .instruments
        .iter()
        .filter(|i| i.state == InstrumentState::Paid)
        .filter_map(|i| i.payment_id.as_deref());
    let mut paid = Vec::new();
    for id in ids {
        let key = records::payment_key(scope, id);
        let read = records::read::<Payment>(adapters.store.as_ref(), &key).await;
        if let Some(payment) = read.map_err(|e| store_refusal(&e))? {
            paid.push(payment);
        }
    }
    Ok(paid)
}

/// What the plan named by `key_prefix` has refunded (or is refunding) on these payments.
fn refunded_by(payments: &[Payment], key_prefix: &str) -> u64 {
    let prefix = format!("{key_prefix}:");
    payments
        .iter()
        .flat_map(|p| p.refunds.iter())
        .filter(|r| r.status.holds_money())
        .filter(|r| {
            r.idempotency_key
                .as_deref()
                .is_some_and(|k| k.starts_with(&prefix))
        })
        .map(|r| r.amount_minor)
        .sum()
}
