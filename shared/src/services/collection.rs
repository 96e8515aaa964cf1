//! An invoice's instruments, kept to the rule of `domain::instruments` (`docs/architecture.md`
//! §3.4): reservations before Razorpay is asked, the instrument's life as Razorpay reports it,
//! and the settle job that closes what the invoice no longer owes.
//!
//! Every write is a read, a pure decision and a conditional write under the version read; a
//! lost race decides again from what won (a few times, then the caller retries).

use crate::adapters::aws::Adapters;
use crate::adapters::aws::records;
use crate::adapters::aws::store::StoreError;
use crate::adapters::flexprice::FlexpriceError;
use crate::adapters::flexprice::wire::Invoice as FlexpriceInvoice;
use crate::adapters::razorpay::RazorpayError;
use crate::adapters::razorpay::wire::LinkStatus;
use crate::domain::collection::OverCollection;
use crate::domain::error::{Classify, ErrorClass, Failure, Refusal};
use crate::domain::instruments::{
    Collection, Exceeds, Instrument, InstrumentChange, InstrumentKind, InstrumentState, Reserve,
    Which,
};
use crate::domain::invoice::payable;
use crate::domain::jobs::{Job, Task};
use crate::domain::keys::{Key, TenantScope};
use crate::domain::money::{Currency, Money};
use crate::domain::payment::{Change, Payment, PaymentEvent, PaymentUpdate};
use crate::services::connection::{self, Clients};
use crate::services::{auto_refunds, invoice_sync};

/// How many times a write lost to a concurrent one is decided again.
const RACES: usize = 8;
/// A link reserved this long ago whose request never said what Razorpay did is looked up.
pub const STALE_RESERVATION_MS: u64 = 120_000;

/// Why an instrument could not be reserved or changed.
#[derive(Debug, thiserror::Error)]
pub enum CollectionError {
    #[error("{0}")]
    Exceeds(Exceeds),
    #[error("the invoice's collection state kept changing; retry")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Classify for CollectionError {
    fn class(&self) -> ErrorClass {
        match self {
            CollectionError::Exceeds(_) => ErrorClass::Permanent,
            CollectionError::Busy => ErrorClass::Retryable,
            CollectionError::Store(e) => e.class(),
        }
    }
}

/// The invoice's collection state, if it has one.
pub async fn read(
    adapters: &Adapters,
    scope: &TenantScope,
    invoice_id: &str,
) -> Result<Option<Collection>, StoreError> {
    records::read::<Collection>(
        adapters.store.as_ref(),
        &records::collection_key(scope, invoice_id),
    )
    .await
}

/// What a decision on the collection as read comes to.
enum Decision<T> {
    /// Write this collection, then answer `T`.
    Write(Collection, T),
    /// Nothing to write.
    Keep(T),
    Refuse(Exceeds),
}

/// Reads the collection (a new one in `currency` when there is none), decides, and writes the
/// decision under the version read; a lost race decides again. Answers with the collection
/// as it now stands.
async fn decide<T>(
    adapters: &Adapters,
    key: &Key,
    fresh: impl Fn() -> Collection,
    decision: impl Fn(&Collection) -> Decision<T>,
) -> Result<(T, Collection), CollectionError> {
    let table = adapters.store.as_ref();
    for _ in 0..RACES {
        let stored = records::read::<Collection>(table, key).await?;
        let current = stored.clone().unwrap_or_else(&fresh);
        let (next, answer) = match decision(&current) {
            Decision::Keep(answer) => return Ok((answer, current)),
            Decision::Refuse(exceeds) => return Err(CollectionError::Exceeds(exceeds)),
            Decision::Write(next, answer) => (next, answer),
        };
        match write(adapters, key, stored.as_ref(), next).await {
            Ok(written) => return Ok((answer, written)),
            Err(StoreError::ConditionFailed { .. } | StoreError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(CollectionError::Busy)
}

async fn write(
    adapters: &Adapters,
    key: &Key,
    read: Option<&Collection>,
    mut next: Collection,
) -> Result<Collection, StoreError> {
    next.updated_at = adapters.clock.now_secs();
    records::save_collection(adapters.store.as_ref(), key, read, &next).await
}

/// How a new payment is collected (see [`place`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Through the live synced Razorpay invoice, which asks exactly its amount.
    Invoice(Instrument),
    /// Through a link, reserved: the collection as it stands with the reservation.
    Link(Collection),
}

/// Places a payment of `amount` among the invoice's instruments, in one decision: the live
/// synced Razorpay invoice when it asks exactly this amount and no other payment of ours
/// collects through it (one way to pay, not two); otherwise a link reserved against `owed`
/// (what Flexprice says the invoice owes now), if what is payable with it stays within that.
pub async fn place(
    adapters: &Adapters,
    scope: &TenantScope,
    invoice_id: &str,
    owed: Money,
    amount: Money,
    payment_id: &str,
) -> Result<Placement, CollectionError> {
    let key = records::collection_key(scope, invoice_id);
    let fresh = || Collection::new(invoice_id, owed.currency());
    let link = Instrument::reserve(
        InstrumentKind::Link,
        payment_id,
        amount,
        adapters.clock.now_millis(),
    );
    let (placed, stored) = decide(adapters, &key, fresh, |current| {
        if let Some(decision) = through_live_invoice(current, amount, payment_id) {
            return decision;
        }
        match current.reserve(link.clone(), owed) {
            Reserve::Reserved(next) => Decision::Write(next, None),
            Reserve::Already(_) => Decision::Keep(None),
            Reserve::Refused(exceeds) => Decision::Refuse(exceeds),
        }
    })
    .await?;
    Ok(match placed {
        Some(invoice) => Placement::Invoice(invoice),
        None => Placement::Link(stored),
    })
}

/// The live invoice for a payment of `amount`, attached to it, if it fits (`None`: it does
/// not, reserve a link).
fn through_live_invoice(
    current: &Collection,
    amount: Money,
    payment_id: &str,
) -> Option<Decision<Option<Instrument>>> {
    let live = current.live_invoice()?;
    if live.state != InstrumentState::Open || live.amount_minor != amount.minor() {
        return None;
    }
    match live.payment_id.as_deref() {
        Some(ours) if ours == payment_id => Some(Decision::Keep(Some(live.clone()))),
        Some(_) => None,
        None => {
            let which = Which::Key(live.kind, &live.key);
            let attach = InstrumentChange::Attached {
                payment_id: payment_id.to_owned(),
            };
            let next = current.with(&which, &attach)?;
            let attached = next.find(&which).cloned();
            Some(Decision::Write(next, attached))
        }
    }
}

/// Makes `change` on the collection as it was just stored (one write, no read); when it
/// changed meanwhile, as [`change`] does.
pub async fn change_stored(
    adapters: &Adapters,
    scope: &TenantScope,
    stored: &Collection,
    which: &Which<'_>,
    change_to: &InstrumentChange,
) -> Result<bool, CollectionError> {
    let Some(next) = stored.with(which, change_to) else {
        return Ok(false);
    };
    let key = records::collection_key(scope, &stored.invoice_id);
    match write(adapters, &key, Some(stored), next).await {
        Ok(_) => Ok(true),
        Err(StoreError::ConditionFailed { .. }) => {
            change(adapters, scope, &stored.invoice_id, which, change_to).await
        }
        Err(e) => Err(e.into()),
    }
}

/// Reserves `offered` on the invoice, if what is payable with it stays within `owed`.
/// Returns the instrument as it stands (a retry of the same payment finds its own).
pub async fn reserve(
    adapters: &Adapters,
    scope: &TenantScope,
    invoice_id: &str,
    owed: Money,
    offered: Instrument,
) -> Result<Instrument, CollectionError> {
    let key = records::collection_key(scope, invoice_id);
    let fresh = || Collection::new(invoice_id, owed.currency());
    decide(adapters, &key, fresh, |current| {
        match current.reserve(offered.clone(), owed) {
            Reserve::Reserved(next) => Decision::Write(next, offered.clone()),
            Reserve::Already(existing) => Decision::Keep(existing),
            Reserve::Refused(exceeds) => Decision::Refuse(exceeds),
        }
    })
    .await
    .map(|(reserved, _)| reserved)
}

/// Makes `change` to the instrument `which` names; says whether anything changed (no
/// collection, no such instrument, or a change that would move it back: nothing).
pub async fn change(
    adapters: &Adapters,
    scope: &TenantScope,
    invoice_id: &str,
    which: &Which<'_>,
    change: &InstrumentChange,
) -> Result<bool, CollectionError> {
    let key = records::collection_key(scope, invoice_id);
    let fresh = || Collection::new(invoice_id, Currency::INR);
    decide(adapters, &key, fresh, |current| {
        match current.with(which, change) {
            Some(next) => Decision::Write(next, true),
            None => Decision::Keep(false),
        }
    })
    .await
    .map(|(changed, _)| changed)
}

/// What the invoice owes beyond what open instruments other than `except` already ask: what a
/// new instrument (or the synced invoice) may ask now.
pub async fn uncovered(
    adapters: &Adapters,
    scope: &TenantScope,
    invoice_id: &str,
    owed: Money,
    except: (InstrumentKind, &str),
) -> Result<Money, StoreError> {
    let payable = read(adapters, scope, invoice_id)
        .await?
        .map_or(0, |c| c.payable_except(Some(except)).minor());
    Ok(Money::from_minor(
        owed.minor().saturating_sub(payable),
        owed.currency(),
    ))
}

/// An instrument's money was counted in full: queues the settle job (its siblings may have to
/// close), then marks it paid. In that order, so a failure between the two retries both.
pub async fn paid(
    adapters: &Adapters,
    scope: &TenantScope,
    invoice_id: &str,
    which: &Which<'_>,
) -> Result<(), Failure> {
    let current = read(adapters, scope, invoice_id)
        .await
        .map_err(Failure::retryable)?;
    let Some(current) = current else {
        return Ok(());
    };
    match current.find(which) {
        Some(instrument) if instrument.state != InstrumentState::Paid => {}
        _ => return Ok(()),
    }
    let settle = Task::SettleCollection {
        invoice_id: invoice_id.to_owned(),
    };
    queue(adapters, scope, settle).await?;
    change_stored(adapters, scope, &current, which, &InstrumentChange::Paid)
        .await
        .map(|_| ())
        .map_err(|e| Failure::classed(&e))
}

/// Queues a follow-up job (the settle job, a re-issue).
async fn queue(adapters: &Adapters, scope: &TenantScope, task: Task) -> Result<(), Failure> {
    let kind = task.kind();
    let job = Job::new(scope, task);
    adapters
        .queue
        .send(&job, None)
        .await
        .map(|_| ())
        .map_err(|e| Failure::retryable(format!("could not queue the {kind} job: {e}")))
}

/// What a settle job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    /// The instruments closed at Razorpay.
    pub closed: usize,
    /// What the invoice owes now.
    pub owed: Money,
}

/// The settle job: what the invoice owes now (Flexprice's word: nothing once it is paid,
/// voided or gone), and the open instruments that would let the customer pay more, closed at
/// Razorpay, newest first. Reservations whose request is gone are looked up first. Idempotent:
/// run it whenever the invoice may owe less than its instruments ask.
pub async fn settle(
    adapters: &Adapters,
    scope: &TenantScope,
    invoice_id: &str,
) -> Result<Settled, Failure> {
    let Some(collection) = read(adapters, scope, invoice_id)
        .await
        .map_err(Failure::retryable)?
    else {
        return Ok(Settled {
            closed: 0,
            owed: Money::from_minor(0, Currency::INR),
        });
    };
    let clients = connection::job_clients(adapters, scope).await?;
    let (owed, why) = owed_now(&clients, invoice_id, collection.currency).await?;
    if let Some(overpaid) = &why.overpaid {
        over_collected(adapters, scope, &clients, &collection, overpaid).await?;
    }
    let why = why.reason;
    let collection = settle_stale(adapters, scope, &clients, collection).await?;
    let mut closed = 0;
    for instrument in collection.to_close(owed) {
        let outcome =
            close_at_razorpay(adapters, scope, &clients, invoice_id, &instrument, &why).await?;
        let Some(razorpay_id) = instrument.razorpay_id.as_deref() else {
            continue;
        };
        // What follows first: if the write below fails, the retry closes (idempotently) and
        // follows up again, never the other way round.
        after_close(adapters, scope, invoice_id, &instrument, &outcome, owed).await?;
        let which = Which::Razorpay(razorpay_id);
        change(adapters, scope, invoice_id, &which, &outcome)
            .await
            .map_err(|e| Failure::classed(&e))?;
        closed += 1;
    }
    Ok(Settled { closed, owed })
}

/// What follows a close: the payment collected through it FAILED (a link's, or the caller's
/// attached to a synced invoice); a synced invoice closed while the invoice still owes is
/// re-issued for what is left (a sync job: the next receipt).
async fn after_close(
    adapters: &Adapters,
    scope: &TenantScope,
    invoice_id: &str,
    instrument: &Instrument,
    outcome: &InstrumentChange,
    owed: Money,
) -> Result<(), Failure> {
    let InstrumentChange::Closed { reason } = outcome else {
        return Ok(());
    };
    if let Some(payment_id) = instrument.payment_id.as_deref() {
        fail_payment(adapters, scope, payment_id, reason).await;
    }
    if instrument.kind == InstrumentKind::RazorpayInvoice && !owed.is_zero() {
        let reissue = Task::SyncInvoice {
            invoice_id: invoice_id.to_owned(),
        };
        return queue(adapters, scope, reissue).await;
    }
    Ok(())
}

/// Why the invoice owes what it owes (the reason on what closes), and whether it was paid
/// more than it was due.
struct Owed {
    reason: String,
    overpaid: Option<Overpaid>,
}

/// An invoice paid more than it was due: why, and by how much.
struct Overpaid {
    why: String,
    excess: Money,
}

/// What the invoice owes now, and why.
async fn owed_now(
    clients: &Clients,
    invoice_id: &str,
    currency: Currency,
) -> Result<(Money, Owed), Failure> {
    let nothing = Money::from_minor(0, currency);
    let invoice = match clients.flexprice.get_invoice(invoice_id).await {
        Ok(invoice) => invoice,
        Err(FlexpriceError::Api { status: 404, .. }) => {
            let reason = "the invoice no longer exists in Flexprice".to_owned();
            return Ok((
                nothing,
                Owed {
                    reason,
                    overpaid: None,
                },
            ));
        }
        Err(e) if e.is_retryable() => return Err(Failure::retryable(format!("Flexprice: {e}"))),
        Err(e) => return Err(Failure::permanent(format!("Flexprice refused: {e}"))),
    };
    let overpaid = overpaid(&invoice, invoice_id)?;
    if let Err(not_payable) = payable(&invoice.invoice_status, &invoice.payment_status) {
        let reason = not_payable.to_string();
        return Ok((nothing, Owed { reason, overpaid }));
    }
    let owed = invoice.remaining().map_err(Failure::permanent)?;
    let reason = format!("the invoice owes {}", owed.to_decimal_string());
    Ok((owed, Owed { reason, overpaid }))
}

/// Whether Flexprice says the invoice was paid more than it was due, and by how much.
fn overpaid(invoice: &FlexpriceInvoice, invoice_id: &str) -> Result<Option<Overpaid>, Failure> {
    if invoice.payment_status != "OVERPAID" {
        return Ok(None);
    }
    let amounts = invoice.amounts().map_err(Failure::permanent)?;
    let excess = amounts
        .paid
        .checked_sub(amounts.due)
        .unwrap_or(amounts.paid);
    let why = format!(
        "invoice {invoice_id} is OVERPAID in Flexprice (paid {} of {} due): money came in on more than one way to pay at once",
        invoice.amount_paid, invoice.amount_due
    );
    Ok(Some(Overpaid { why, excess }))
}

/// Over-collected money, as the connection's policy says: `review` flags the paid payments,
/// `refund` refunds the excess (once), flagging them if it cannot. Never parked.
async fn over_collected(
    adapters: &Adapters,
    scope: &TenantScope,
    clients: &Clients,
    collection: &Collection,
    overpaid: &Overpaid,
) -> Result<(), Failure> {
    if clients.policy.overcollection == OverCollection::Review {
        flag_paid(adapters, scope, collection, &overpaid.why).await;
        return Ok(());
    }
    match auto_refunds::refund_excess(adapters, scope, clients, collection, overpaid.excess).await {
        Ok(_) => Ok(()),
        Err(Refusal::Unavailable(reason)) => Err(Failure::Retryable(reason)),
        Err(refusal) => {
            let why = format!(
                "{}; the excess could not be refunded: {refusal}",
                overpaid.why
            );
            flag_paid(adapters, scope, collection, &why).await;
            Ok(())
        }
    }
}

/// An overpaid invoice: every paid instrument's payment is flagged for review (once), so the
/// excess is seen and not silently recorded as normal.
async fn flag_paid(adapters: &Adapters, scope: &TenantScope, collection: &Collection, why: &str) {
    tracing::error!(invoice_id = %collection.invoice_id, %why, "OVER-COLLECTION");
    let table = adapters.store.as_ref();
    let paid = collection
        .instruments
        .iter()
        .filter(|i| i.state == InstrumentState::Paid)
        .filter_map(|i| i.payment_id.as_deref());
    for payment_id in paid {
        let key = records::payment_key(scope, payment_id);
        let Ok(Some(payment)) = records::read::<Payment>(table, &key).await else {
            continue;
        };
        if payment.review.is_some() {
            continue;
        }
        let flag = PaymentUpdate::Flagged {
            review: why.to_owned(),
        };
        if let Err(e) = records::update_payment(table, &key, &payment, &flag).await {
            tracing::warn!(error = %e, %payment_id, "could not flag the payment");
        }
    }
}

/// Reserved links whose request is gone: open when Razorpay made them (found by their
/// `reference_id`, our payment id), closed when it did not.
async fn settle_stale(
    adapters: &Adapters,
    scope: &TenantScope,
    clients: &Clients,
    collection: Collection,
) -> Result<Collection, Failure> {
    let stale = collection.stale_links(adapters.clock.now_millis(), STALE_RESERVATION_MS);
    if stale.is_empty() {
        return Ok(collection);
    }
    for instrument in stale {
        let found = clients
            .razorpay
            .find_payment_links_by_reference(&instrument.key)
            .await
            .map_err(razorpay_failure)?
            .into_iter()
            .next();
        let outcome = match found {
            Some(link) => InstrumentChange::Opened {
                razorpay_id: link.id,
                url: link.short_url,
            },
            None => InstrumentChange::Closed {
                reason: "the request that reserved it ended before Razorpay made it".to_owned(),
            },
        };
        let which = Which::Key(instrument.kind, &instrument.key);
        change(adapters, scope, &collection.invoice_id, &which, &outcome)
            .await
            .map_err(|e| Failure::classed(&e))?;
    }
    read(adapters, scope, &collection.invoice_id)
        .await
        .map_err(Failure::retryable)?
        .ok_or_else(|| Failure::retryable("the collection state disappeared"))
}

fn razorpay_failure(e: RazorpayError) -> Failure {
    if e.is_retryable() {
        Failure::retryable(format!("Razorpay: {e}"))
    } else {
        Failure::permanent(format!("Razorpay refused: {e}"))
    }
}

/// Closes one instrument at Razorpay; returns what it is now (closed, or paid when the
/// customer paid it first: its money arrives through its own event).
async fn close_at_razorpay(
    adapters: &Adapters,
    scope: &TenantScope,
    clients: &Clients,
    invoice_id: &str,
    instrument: &Instrument,
    why: &str,
) -> Result<InstrumentChange, Failure> {
    let Some(id) = instrument.razorpay_id.as_deref() else {
        return Err(Failure::retryable(
            "an open instrument without its Razorpay id",
        ));
    };
    let closed = |status: &str| InstrumentChange::Closed {
        reason: format!("{status}: {why}"),
    };
    match instrument.kind {
        InstrumentKind::Link => {
            let status = match clients.razorpay.cancel_payment_link(id).await {
                Ok(link) => link.status,
                Err(e) if e.is_client_error() => {
                    clients
                        .razorpay
                        .get_payment_link(id)
                        .await
                        .map_err(razorpay_failure)?
                        .status
                }
                Err(e) => return Err(razorpay_failure(e)),
            };
            match status {
                LinkStatus::Paid | LinkStatus::PartiallyPaid => Ok(paid_first(id)),
                LinkStatus::Cancelled | LinkStatus::Expired => Ok(closed(status.as_str())),
                other => Err(Failure::retryable(format!(
                    "link {id} is {other} after the cancel"
                ))),
            }
        }
        InstrumentKind::RazorpayInvoice => {
            let status =
                invoice_sync::close_invoice(adapters, scope, clients, invoice_id, id).await?;
            if status.has_payments() {
                Ok(paid_first(id))
            } else {
                Ok(closed(status.as_str()))
            }
        }
    }
}

/// Paid before it could be closed: the customer may have paid more than the invoice owes. Its
/// money is counted by its own event (flagged there when it is more than was owed).
fn paid_first(id: &str) -> InstrumentChange {
    tracing::warn!(razorpay_id = %id, "an instrument to close was paid first; possible over-collection");
    InstrumentChange::Paid
}

/// A cancelled instrument's payment FAILED, as `payment_link.cancelled` would make it (best
/// effort: the event does the same when it arrives).
pub(crate) async fn fail_payment(
    adapters: &Adapters,
    scope: &TenantScope,
    payment_id: &str,
    reason: &str,
) {
    let key = records::payment_key(scope, payment_id);
    let table = adapters.store.as_ref();
    let Ok(Some(payment)) = records::read::<Payment>(table, &key).await else {
        return;
    };
    let Change::To { .. } = payment.status.on(PaymentEvent::LinkEnded) else {
        return;
    };
    let failed = PaymentUpdate::Failed {
        reason: format!("cancelled ({reason})"),
        at: adapters.clock.now_secs(),
    };
    if let Err(e) = records::update_payment(table, &key, &payment, &failed).await {
        tracing::warn!(error = %e, %payment_id, "could not fail the cancelled link's payment");
    }
}
