//! `GET /api/v1/invoices/{invoice_id}/payment-url`: the one URL a customer can pay the whole
//! invoice at, healed when it is not there (`docs/architecture.md` §3.4).
//!
//! The live instrument that asks everything the invoice owes is checked at Razorpay (one call)
//! and answered. When there is none (the last one expired, was cancelled, or asks the wrong
//! amount), the settle job's rules run first (what asks more than is owed closes), then one is
//! issued: the synced Razorpay invoice again under its next receipt when the invoice is synced,
//! else a payment link for the whole remainder (the keyless payment of that amount). Open
//! partial links are never doubled: the answer is then a 409 naming them.

use crate::adapters::aws::Adapters;
use crate::adapters::aws::records;
use crate::adapters::flexprice::FlexpriceError;
use crate::adapters::flexprice::wire::Invoice;
use crate::adapters::razorpay::wire::LinkStatus;
use crate::domain::error::{Classify, Failure, Refusal};
use crate::domain::ids::FlexpriceId;
use crate::domain::instruments::{
    Collection, Instrument, InstrumentChange, InstrumentKind, InstrumentState, Which,
};
use crate::domain::invoice::payable;
use crate::domain::keys::TenantScope;
use crate::domain::money::{DecimalText, Money};
use crate::domain::requests::PaymentRequest;
use crate::domain::sync::InvoiceSync;
use crate::services::connection::Clients;
use crate::services::{collection, invoice_sync, payments};

/// The answer: where the customer pays all the invoice owes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentUrl {
    pub invoice_id: String,
    pub owed: Money,
    pub instrument: Instrument,
    /// Made by this request (the one before could no longer be paid).
    pub reissued: bool,
}

/// How many times a request that lost a race to a job (both writing the same records) decides
/// again before answering 503.
const RACES: usize = 3;

/// The payment URL of an invoice. A lost race with a concurrent job (an event about the same
/// invoice being applied) is decided again from what won.
pub async fn get(
    adapters: &Adapters,
    scope: &TenantScope,
    invoice_id: &FlexpriceId,
) -> Result<PaymentUrl, Refusal> {
    let mut answer = get_once(adapters, scope, invoice_id).await;
    for _ in 1..RACES {
        if !matches!(answer, Err(Refusal::Unavailable(_))) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        answer = get_once(adapters, scope, invoice_id).await;
    }
    answer
}

/// One attempt, as its steps: the invoice and what it owes, the live instrument asking it all,
/// else a healed one.
async fn get_once(
    adapters: &Adapters,
    scope: &TenantScope,
    invoice_id: &FlexpriceId,
) -> Result<PaymentUrl, Refusal> {
    let clients = payments::connected_clients(adapters, scope).await?;
    let invoice = owing_invoice(&clients, invoice_id).await?;
    let owed = invoice
        .remaining()
        .map_err(|e| Refusal::unprocessable("invoice_id", "invoice_amounts", e.to_string()))?;
    if let Some(live) = live_instrument(adapters, scope, &clients, &invoice.id, owed).await? {
        return Ok(PaymentUrl {
            invoice_id: invoice.id,
            owed,
            instrument: live,
            reissued: false,
        });
    }
    let issued = heal(adapters, scope, &clients, &invoice, owed).await?;
    Ok(PaymentUrl {
        invoice_id: invoice.id,
        owed,
        instrument: issued,
        reissued: true,
    })
}

/// The Flexprice invoice, if it can still be paid.
async fn owing_invoice(clients: &Clients, invoice_id: &FlexpriceId) -> Result<Invoice, Refusal> {
    let invoice = match clients.flexprice.get_invoice(invoice_id.as_str()).await {
        Ok(invoice) => invoice,
        Err(FlexpriceError::Api { status: 404, .. }) => {
            return Err(Refusal::NotFound(format!("No invoice {invoice_id}.")));
        }
        Err(e) if e.is_retryable() => return Err(unavailable("Flexprice")),
        Err(e) => {
            tracing::error!(error = %e, "Flexprice refused the invoice read");
            return Err(Refusal::Upstream(
                "Flexprice refused to return the invoice.".to_owned(),
            ));
        }
    };
    payable(&invoice.invoice_status, &invoice.payment_status).map_err(|e| {
        Refusal::unprocessable(
            "invoice_id",
            e.rule(),
            format!("invoice {}: {e}", invoice.id),
        )
    })?;
    Ok(invoice)
}

fn unavailable(what: &str) -> Refusal {
    Refusal::Unavailable(format!("{what} is unavailable; retry the request."))
}

/// A job-side failure, as this request's answer.
fn refusal(failure: Failure) -> Refusal {
    match failure {
        Failure::Retryable(reason) => {
            tracing::warn!(%reason, "payment URL: retryable failure");
            unavailable("A dependency")
        }
        Failure::Permanent(reason) => Refusal::Upstream(reason),
    }
}

/// The open instrument asking all `owed`, if Razorpay says it can still be paid.
async fn live_instrument(
    adapters: &Adapters,
    scope: &TenantScope,
    clients: &Clients,
    invoice_id: &str,
    owed: Money,
) -> Result<Option<Instrument>, Refusal> {
    let stored = collection::read(adapters, scope, invoice_id)
        .await
        .map_err(|_| unavailable("Storage"))?;
    let Some(candidate) = stored.as_ref().and_then(|c| covering(c, owed)) else {
        return Ok(None);
    };
    let live = still_payable(adapters, scope, clients, invoice_id, &candidate).await?;
    Ok(live.then_some(candidate))
}

/// Whether Razorpay can still take money through an open instrument; one that cannot (its
/// event late or lost) is closed here, its payment FAILED and the sync record told.
async fn still_payable(
    adapters: &Adapters,
    scope: &TenantScope,
    clients: &Clients,
    invoice_id: &str,
    instrument: &Instrument,
) -> Result<bool, Refusal> {
    let id = instrument.razorpay_id.clone().unwrap_or_default();
    let closed = match instrument.kind {
        InstrumentKind::Link => {
            let link = clients.razorpay.get_payment_link(&id).await;
            let status = link.map_err(|_| unavailable("Razorpay"))?.status;
            matches!(status, LinkStatus::Expired | LinkStatus::Cancelled)
                .then(|| status.as_str().to_owned())
        }
        InstrumentKind::RazorpayInvoice => {
            let invoice = clients.razorpay.get_invoice(&id).await;
            let status = invoice.map_err(|_| unavailable("Razorpay"))?.status;
            invoice_sync::note_status_of(adapters, scope, invoice_id, &id, status.as_str())
                .await
                .map_err(refusal)?;
            status.is_closed().then(|| status.as_str().to_owned())
        }
    };
    let Some(status) = closed else {
        return Ok(true);
    };
    let change = InstrumentChange::Closed {
        reason: format!("{status} at Razorpay (seen by the payment URL)"),
    };
    collection::change(adapters, scope, invoice_id, &Which::Razorpay(&id), &change)
        .await
        .map_err(|_| unavailable("Storage"))?;
    if let Some(payment_id) = &instrument.payment_id {
        collection::fail_payment(adapters, scope, payment_id, &status).await;
    }
    Ok(false)
}

/// The open instrument that asks exactly what is owed.
fn covering(collection: &Collection, owed: Money) -> Option<Instrument> {
    collection
        .instruments
        .iter()
        .find(|i| i.state == InstrumentState::Open && i.amount_minor == owed.minor())
        .cloned()
}

/// No live instrument asks it all: what asks too much closes (the settle job's rules), open
/// parts are named (409), and otherwise one is issued.
async fn heal(
    adapters: &Adapters,
    scope: &TenantScope,
    clients: &Clients,
    invoice: &Invoice,
    owed: Money,
) -> Result<Instrument, Refusal> {
    collection::settle(adapters, scope, &invoice.id)
        .await
        .map_err(refusal)?;
    let current = open_parts(adapters, scope, clients, &invoice.id).await?;
    if let Some(current) = current.as_ref().filter(|c| !c.payable().is_zero()) {
        return Err(Refusal::conflict(
            "invoice_id",
            "payable_in_parts",
            format!(
                "the invoice is payable in parts already; pay or cancel them first: {}",
                current.described_payable().join("; ")
            ),
        ));
    }
    let sync = records::read::<InvoiceSync>(
        adapters.store.as_ref(),
        &records::sync_key(scope, &invoice.id),
    )
    .await
    .map_err(|_| unavailable("Storage"))?;
    match sync {
        Some(sync) if sync.razorpay_invoice_id.is_some() => {
            reissue_invoice(adapters, scope, invoice, owed).await
        }
        _ => link_for_all(adapters, scope, invoice, owed).await,
    }
}

/// The invoice's instruments once each open one is confirmed at Razorpay (those that can no
/// longer be paid are closed on the way).
async fn open_parts(
    adapters: &Adapters,
    scope: &TenantScope,
    clients: &Clients,
    invoice_id: &str,
) -> Result<Option<Collection>, Refusal> {
    let read = || async {
        collection::read(adapters, scope, invoice_id)
            .await
            .map_err(|_| unavailable("Storage"))
    };
    let Some(current) = read().await? else {
        return Ok(None);
    };
    let open = current
        .instruments
        .iter()
        .filter(|i| i.state == InstrumentState::Open);
    let mut closed_any = false;
    for instrument in open {
        closed_any |= !still_payable(adapters, scope, clients, invoice_id, instrument).await?;
    }
    if closed_any {
        read().await
    } else {
        Ok(Some(current))
    }
}

/// The synced Razorpay invoice issued again (the sync, inline: its next receipt).
async fn reissue_invoice(
    adapters: &Adapters,
    scope: &TenantScope,
    invoice: &Invoice,
    owed: Money,
) -> Result<Instrument, Refusal> {
    invoice_sync::sync(adapters, scope, &invoice.id)
        .await
        .map_err(refusal)?;
    collection::read(adapters, scope, &invoice.id)
        .await
        .map_err(|_| unavailable("Storage"))?
        .and_then(|c| covering(&c, owed))
        .ok_or_else(|| {
            Refusal::Upstream(
                "the invoice's sync did not issue a Razorpay invoice; see its sync record"
                    .to_owned(),
            )
        })
}

/// A link for all the invoice owes: the keyless payment of that amount (a request after it
/// ended makes the next one).
async fn link_for_all(
    adapters: &Adapters,
    scope: &TenantScope,
    invoice: &Invoice,
    owed: Money,
) -> Result<Instrument, Refusal> {
    let request = PaymentRequest {
        amount: DecimalText::new(owed.to_decimal_string()),
        currency: owed.currency().code().to_owned(),
        invoice_id: FlexpriceId::parse(&invoice.id).map_err(|_| Refusal::Internal)?,
        success_url: None,
        idempotency_key: None,
        metadata: Default::default(),
    };
    let created = payments::create(adapters, scope, request).await?;
    let current = collection::read(adapters, scope, &invoice.id)
        .await
        .map_err(|_| unavailable("Storage"))?;
    current
        .and_then(|c| {
            c.find(&Which::Key(InstrumentKind::Link, &created.payment.id))
                .cloned()
        })
        .ok_or(Refusal::Internal)
}
