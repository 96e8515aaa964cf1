//! The `refund` over-collection policy (`docs/architecture.md` §3.4, "over-collection"): when
//! Flexprice says an invoice was paid more than it was due (two instruments paid at the same
//! instant), the excess is refunded from the payments collected on it, newest first, each
//! refund reserved and made once: the key names the invoice and how much the policy had
//! refunded before, so a settle job run again (or redelivered) meets the refunds it made.

use crate::adapters::aws::Adapters;
use crate::adapters::aws::records;
use crate::domain::error::Refusal;
use crate::domain::instruments::{Collection, InstrumentState};
use crate::domain::keys::TenantScope;
use crate::domain::money::Money;
use crate::domain::payment::Payment;
use crate::domain::refund::{RefundSource, RefundStatus};
use crate::services::connection::Clients;
use crate::services::payments::store_refusal;
use crate::services::refund_requests::{self, PolicyRefund};

/// Refunds what `excess` the policy has not refunded yet.
pub async fn refund_excess(
    adapters: &Adapters,
    scope: &TenantScope,
    clients: &Clients,
    collection: &Collection,
    excess: Money,
) -> Result<(), Refusal> {
    let mut paid = paid_payments(adapters, scope, collection).await?;
    paid.sort_by_key(|p| std::cmp::Reverse(p.updated_at));
    let mut refunded = policy_refunded(&paid);
    let reason = format!(
        "over-collection on invoice {}: the excess of {} refunded",
        collection.invoice_id,
        excess.to_decimal_string()
    );
    for payment in &paid {
        for capture in payment.counted_captures() {
            let left = excess.minor().saturating_sub(refunded);
            let held: u64 = payment
                .refunds
                .iter()
                .filter(|r| r.razorpay_payment_id == capture.razorpay_payment_id)
                .filter(|r| r.status.holds_money())
                .map(|r| r.amount_minor)
                .sum();
            let amount = left.min(capture.amount_minor.saturating_sub(held));
            if amount == 0 {
                continue;
            }
            let key = format!("overcollection:{}:{refunded}", collection.invoice_id);
            let policy = PolicyRefund {
                capture: &capture,
                amount_minor: amount,
                idempotency_key: &key,
                reason: &reason,
            };
            let refund =
                refund_requests::policy_refund(adapters, scope, clients, payment, policy).await?;
            if refund.status == RefundStatus::Failed {
                return Err(Refusal::Upstream(format!(
                    "Razorpay refused refund {}: {}",
                    refund.id,
                    refund.failure.as_deref().unwrap_or("no reason given")
                )));
            }
            tracing::warn!(payment_id = %payment.id, amount, invoice_id = %collection.invoice_id, "over-collected money refunded");
            refunded += amount;
        }
    }
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

/// What the policy has refunded (or is refunding) on these payments.
fn policy_refunded(payments: &[Payment]) -> u64 {
    payments
        .iter()
        .flat_map(|p| p.refunds.iter())
        .filter(|r| r.source == RefundSource::Policy && r.status.holds_money())
        .map(|r| r.amount_minor)
        .sum()
}
