//! `GET /api/v1/invoices/{invoice_id}/timeline` (`docs/architecture.md` §3.10): everything
//! flexrzp made for one invoice and heard about it, read from the records as they are (the
//! collection's instruments, the sync record, the payments those name, the events and sweep
//! corrections in the `invoice` index) and merged by time in the domain.

use crate::adapters::aws::Adapters;
use crate::adapters::aws::records;
use crate::adapters::aws::store::StoreError;
use crate::domain::error::Refusal;
use crate::domain::ids::FlexpriceId;
use crate::domain::instruments::Collection;
use crate::domain::keys::TenantScope;
use crate::domain::payment::Payment;
use crate::domain::sync::InvoiceSync;
use crate::domain::timeline::{Entry, Sources, merge, page};

/// A page of an invoice's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeline {
    pub invoice_id: String,
    pub entries: Vec<Entry>,
    /// The position the next page starts after, if more follow.
    pub next: Option<String>,
}

/// The invoice's entries after `after` (a position an earlier page answered), oldest first.
pub async fn timeline(
    adapters: &Adapters,
    scope: &TenantScope,
    invoice_id: &FlexpriceId,
    after: Option<&str>,
    limit: usize,
) -> Result<Timeline, Refusal> {
    let invoice_id = invoice_id.as_str();
    let sources = sources(adapters, scope, invoice_id).await.map_err(|e| {
        tracing::error!(error = %e, "the invoice timeline could not be read");
        Refusal::Unavailable("The invoice timeline could not be read; retry shortly.".into())
    })?;
    if sources.is_empty() {
        return Err(Refusal::NotFound(format!(
            "flexrzp has made nothing for invoice {invoice_id} and heard nothing about it."
        )));
    }
    let (entries, next) = page(merge(&sources), after, limit);
    Ok(Timeline {
        invoice_id: invoice_id.to_owned(),
        entries,
        next,
    })
}

/// Everything the timeline is made of, read.
async fn sources(
    adapters: &Adapters,
    scope: &TenantScope,
    invoice_id: &str,
) -> Result<Sources, StoreError> {
    let table = adapters.store.as_ref();
    let collection: Option<Collection> =
        records::read(table, &records::collection_key(scope, invoice_id)).await?;
    let sync: Option<InvoiceSync> =
        records::read(table, &records::sync_key(scope, invoice_id)).await?;
    let mut payments = Vec::new();
    for payment_id in payment_ids(collection.as_ref()) {
        let key = records::payment_key(scope, &payment_id);
        if let Some(payment) = records::read::<Payment>(table, &key).await? {
            payments.push(payment);
        }
    }
    let heard = adapters.events.about(scope, invoice_id).await?;
    Ok(Sources {
        collection,
        sync,
        payments,
        events: heard.events,
        corrections: heard.corrections,
    })
}

/// Our payments the instruments name, each once.
fn payment_ids(collection: Option<&Collection>) -> Vec<String> {
    let mut ids: Vec<String> = collection
        .into_iter()
        .flat_map(|c| c.instruments.iter())
        .filter_map(|i| i.payment_id.clone())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}
