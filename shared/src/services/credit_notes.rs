//! Credit notes refunded at Razorpay (`docs/architecture.md` §3.7, "credit notes"), when the
//! connection says so (`credit_note_refunds`, off by default: Flexprice's own default is wallet
//! credit). The job reads the credit note from Flexprice (never from the event), and refunds a
//! FINALIZED credit note of type REFUND, of its `total_amount`, from the payments collected
//! through Razorpay on its invoice, once (the refunds' keys name the credit note). Anything
//! else is acknowledged with the reason: a draft (its finalization brings it again), a void,
//! an adjustment, an invoice not collected through Razorpay. A credit note missing a field a
//! refund needs is refused, not guessed.

use crate::adapters::aws::Adapters;
use crate::adapters::flexprice::wire::CreditNote;
use crate::domain::error::{Failure, Refusal};
use crate::domain::keys::TenantScope;
use crate::domain::money::{Currency, Money};
use crate::domain::refund::RefundSource;
use crate::services::auto_refunds::{self, Plan};
use crate::services::{collection, connection};

/// What the job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreditNoteRefund {
    /// Refunded (in all, now) at Razorpay, in subunits.
    Refunded { minor: u64 },
    /// Nothing to refund, and why.
    Skipped(String),
}

/// Refunds one credit note, if the connection and the credit note say so.
pub async fn refund(
    adapters: &Adapters,
    scope: &TenantScope,
    credit_note_id: &str,
) -> Result<CreditNoteRefund, Failure> {
    let clients = connection::job_clients(adapters, scope).await?;
    if !clients.policy.credit_note_refunds {
        return Ok(skipped("the connection does not refund credit notes"));
    }
    let note = match clients.flexprice.get_credit_note(credit_note_id).await {
        Ok(note) => note,
        Err(e) if e.is_not_found() => return Ok(skipped("no such credit note in Flexprice")),
        Err(e) => return Err(Failure::classed(&e)),
    };
    let (invoice_id, amount) = match refundable(&note)? {
        Ok(refundable) => refundable,
        Err(why) => return Ok(skipped(&why)),
    };
    let Some(collection) = collection::read(adapters, scope, &invoice_id)
        .await
        .map_err(Failure::retryable)?
    else {
        return Ok(skipped("its invoice was not collected through Razorpay"));
    };
    let plan = Plan {
        key_prefix: format!("creditnote:{}", note.id),
        reason: format!("credit note {} on invoice {invoice_id}", note.id),
        source: RefundSource::CreditNote,
    };
    let refunded = auto_refunds::refund_from(adapters, scope, &clients, &collection, amount, &plan)
        .await
        .map_err(|refusal| refusal_failure(&refusal))?;
    if refunded < amount.minor() {
        tracing::error!(
            credit_note_id,
            refunded,
            asked = amount.minor(),
            "a credit note asks more than was collected through Razorpay; the rest is not refunded"
        );
    }
    Ok(CreditNoteRefund::Refunded { minor: refunded })
}

fn skipped(why: &str) -> CreditNoteRefund {
    tracing::info!(why, "credit note not refunded at Razorpay");
    CreditNoteRefund::Skipped(why.to_owned())
}

/// The invoice and the amount of a refundable credit note; `Err(why)` inside when it is not
/// one to refund, and a permanent failure when a field it needs is missing or inexact.
fn refundable(note: &CreditNote) -> Result<Result<(String, Money), String>, Failure> {
    if note.credit_note_type.as_deref() != Some("REFUND") {
        return Ok(Err(format!(
            "credit note {} is not of type REFUND",
            note.id
        )));
    }
    if note.credit_note_status.as_deref() != Some("FINALIZED") {
        return Ok(Err(format!(
            "credit note {} is {}, not FINALIZED",
            note.id,
            note.credit_note_status.as_deref().unwrap_or("of no status")
        )));
    }
    let missing =
        |field: &str| Failure::Permanent(format!("credit note {} has no {field}", note.id));
    let invoice_id = note
        .invoice_id
        .clone()
        .ok_or_else(|| missing("invoice_id"))?;
    let currency = note
        .currency
        .as_deref()
        .ok_or_else(|| missing("currency"))?;
    let total = note
        .total_amount
        .as_deref()
        .ok_or_else(|| missing("total_amount"))?;
    let currency = Currency::from_code(currency).map_err(Failure::permanent)?;
    let amount = Money::parse(total, currency).map_err(Failure::permanent)?;
    Ok(Ok((invoice_id, amount)))
}

fn refusal_failure(refusal: &Refusal) -> Failure {
    if refusal.is_retryable() {
        Failure::Retryable(refusal.to_string())
    } else {
        Failure::Permanent(format!("the credit note could not be refunded: {refusal}"))
    }
}
