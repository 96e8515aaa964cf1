//! The webhook event log as the tenant sees it (`docs/architecture.md` §3.9): the worker
//! settles each event with what its job came to (and the invoice it was about, once known);
//! the API lists a scope's events with the refusals counted, and replays a stored event
//! through the very job the intake queued for it (still exactly once: the job's own
//! idempotency makes a replay of an applied event a duplicate).

use serde::Deserialize;

use crate::adapters::aws::Adapters;
use crate::adapters::aws::records::{self, CountedPayment, InvoiceRef, PaymentRef};
use crate::adapters::aws::store::StoreError;
use crate::adapters::telemetry::{self, metrics};
use crate::domain::error::{Failure, Refusal};
use crate::domain::events::{
    Done, EventFilter, EventPage, EventRef, Refused, Source, Step, WebhookEvent, day_of, step_of,
};
use crate::domain::jobs::{Job, Task};
use crate::domain::keys::{Key, TenantScope};
use crate::domain::payment::Payment;
use crate::domain::timeline::Correction;
use crate::services::intake;
use crate::services::reconcile::Applied;

/// What applying a Razorpay event came to, for its event.
pub fn done_of(applied: &Applied) -> Done {
    match applied {
        Applied::AlreadyCounted => Done::Duplicate("the payment was counted before".to_owned()),
        Applied::NoChange => Done::Duplicate("nothing left to change".to_owned()),
        Applied::Ignored => Done::Ignored("nothing for flexrzp to apply in this event".to_owned()),
        Applied::NotOurs => {
            Done::Ignored("about a payment or link flexrzp did not make".to_owned())
        }
        _ => Done::Applied,
    }
}

/// Settles the event `origin` names with what its job came to (`Err`: the failure, and
/// whether it comes back). Best effort: a log that cannot be written loses a step, never the
/// job.
pub async fn settle(
    adapters: &Adapters,
    scope: &TenantScope,
    origin: &EventRef,
    ended: Result<&Done, (&Failure, bool)>,
) {
    let reason;
    let ended = match ended {
        Ok(done) => Ok(done),
        Err((failure, comes_back)) => {
            reason = failure.to_string();
            Err((reason.as_str(), comes_back))
        }
    };
    let step = step_of(ended, adapters.clock.now_millis(), origin.replay);
    telemetry::metric(
        metrics::WEBHOOK_EVENTS,
        1,
        &[
            ("Source", origin.source.as_str()),
            ("Outcome", step.outcome.as_str()),
        ],
    );
    if let Err(e) = settle_event(adapters, scope, origin, step).await {
        tracing::warn!(error = %e, event_id = %origin.id, "could not settle the event in the log");
    }
}

/// Reads the event, learns its invoice from our mappings if it does not know it yet (once:
/// retries and replays of an event that knows it read nothing more), and settles it.
async fn settle_event(
    adapters: &Adapters,
    scope: &TenantScope,
    origin: &EventRef,
    step: Step,
) -> Result<(), StoreError> {
    let Some(event) = adapters
        .events
        .get(scope, origin.source, &origin.id)
        .await?
    else {
        return Ok(());
    };
    let invoice_id = match (&event.invoice_id, event.source) {
        (None, Source::Razorpay) => invoice_of(adapters, scope, &event.body).await,
        _ => None,
    };
    let settled = adapters
        .events
        .settle(scope, event, step, invoice_id.as_deref());
    settled.await.map(|_| ())
}

/// Keeps what the sweep applied in place of a missed webhook beside the invoice it was
/// about, for the invoice's timeline. Best effort, like a settle: the correction is made
/// either way. `body`: the event the sweep applied.
pub async fn corrected(
    adapters: &Adapters,
    scope: &TenantScope,
    razorpay_id: &str,
    body: &str,
    applied: &Applied,
) {
    telemetry::metric(metrics::SWEEP_CORRECTIONS, 1, &[]);
    let Some(invoice_id) = invoice_of(adapters, scope, body).await else {
        return;
    };
    let subjects: Subjects = serde_json::from_str(body).unwrap_or_default();
    let correction = Correction {
        at_ms: adapters.clock.now_millis(),
        razorpay_id: razorpay_id.to_owned(),
        event_type: subjects.event,
        outcome: applied_name(applied).to_owned(),
    };
    let kept = adapters.events.corrected(scope, &invoice_id, &correction);
    if let Err(e) = kept.await {
        tracing::warn!(error = %e, razorpay_id, "could not keep the sweep's correction");
    }
}

/// What applying came to, in a word.
fn applied_name(applied: &Applied) -> &'static str {
    match applied {
        Applied::NoChange => "no_change",
        Applied::AlreadyCounted => "already_counted",
        Applied::Counted { .. } => "counted",
        Applied::AttemptRecorded => "attempt_recorded",
        Applied::Failed => "failed",
        Applied::InvoiceExpired => "invoice_expired",
        Applied::Refunded { .. } => "refunded",
        Applied::Disputed { .. } => "disputed",
        Applied::Ignored => "ignored",
        Applied::NotOurs => "not_ours",
    }
}

/// The ids a Razorpay event names, as far as the log needs them.
#[derive(Default, Deserialize)]
struct Subjects {
    #[serde(default)]
    event: String,
    #[serde(default)]
    payload: SubjectPayload,
}

#[derive(Default, Deserialize)]
struct SubjectPayload {
    payment: Option<Entity>,
    payment_link: Option<Entity>,
    invoice: Option<Entity>,
    refund: Option<Entity>,
    dispute: Option<Entity>,
}

#[derive(Deserialize)]
struct Entity {
    entity: Ids,
}

#[derive(Default, Deserialize)]
struct Ids {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    invoice_id: Option<String>,
    #[serde(default)]
    payment_id: Option<String>,
    #[serde(default)]
    order_id: Option<String>,
}

/// The Flexprice invoice a Razorpay event is about, from our own mappings (a Razorpay
/// invoice's sync, a link's payment, a counted payment): `None` when none is ours.
async fn invoice_of(adapters: &Adapters, scope: &TenantScope, body: &str) -> Option<String> {
    let subjects: Subjects = serde_json::from_str(body).unwrap_or_default();
    let p = subjects.payload;
    let razorpay_invoice = ids(&p.invoice)
        .and_then(|i| i.id.clone())
        .or_else(|| ids(&p.payment).and_then(|i| i.invoice_id.clone()));
    if let Some(id) = razorpay_invoice {
        let key = records::razorpay_invoice_key(scope, &id);
        let found = records::read::<InvoiceRef>(adapters.store.as_ref(), &key).await;
        return found.ok().flatten().map(|r| r.invoice_id);
    }
    if let Some(link) = ids(&p.payment_link).and_then(|l| l.id.clone()) {
        let key = records::link_key(scope, &link);
        let mapped = records::read::<PaymentRef>(adapters.store.as_ref(), &key).await;
        return payment_invoice(adapters, scope, mapped.ok().flatten().map(|r| r.payment_id)).await;
    }
    let payment = ids(&p.refund)
        .or(ids(&p.dispute))
        .and_then(|e| e.payment_id.clone())
        .or_else(|| ids(&p.payment).and_then(|e| e.id.clone()))?;
    let key = records::counted_key(scope, &payment);
    let counted = records::read::<CountedPayment>(adapters.store.as_ref(), &key).await;
    if let Some(counted) = counted.ok().flatten() {
        return payment_invoice(adapters, scope, Some(counted.payment_id)).await;
    }
    // Not counted (a failed attempt): the link's order names our payment.
    let order = ids(&p.payment).and_then(|e| e.order_id.clone())?;
    let key = records::order_key(scope, &order);
    let mapped = records::read::<PaymentRef>(adapters.store.as_ref(), &key).await;
    payment_invoice(adapters, scope, mapped.ok().flatten().map(|r| r.payment_id)).await
}

fn ids(entity: &Option<Entity>) -> Option<&Ids> {
    entity.as_ref().map(|e| &e.entity)
}

async fn payment_invoice(
    adapters: &Adapters,
    scope: &TenantScope,
    payment_id: Option<String>,
) -> Option<String> {
    let key: Key = records::payment_key(scope, &payment_id?);
    let payment = records::read::<Payment>(adapters.store.as_ref(), &key).await;
    payment.ok().flatten().map(|p| p.invoice_id)
}

/// A page of the log, with the refusals counted since the filter's day (or over the whole
/// retention when it has none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub page: EventPage,
    pub refusals: Vec<(Refused, u64)>,
}

/// How far back the log keeps events: Razorpay's 15-day replay window and a day.
pub const RETENTION_MS: u64 = 16 * 24 * 3600 * 1000;

/// The scope's events, newest first, after `cursor` (a position from an earlier page).
pub async fn list(
    adapters: &Adapters,
    scope: &TenantScope,
    filter: &EventFilter,
    cursor: Option<&str>,
) -> Result<Listing, Refusal> {
    let page = adapters
        .events
        .list(scope, filter, cursor)
        .await
        .map_err(|e| unavailable(&e))?;
    let since = filter
        .since_ms
        .unwrap_or_else(|| adapters.clock.now_millis().saturating_sub(RETENTION_MS));
    let refusals = adapters
        .events
        .refusals(scope, &day_of(since))
        .await
        .map_err(|e| unavailable(&e))?;
    Ok(Listing { page, refusals })
}

fn unavailable(e: &impl std::fmt::Display) -> Refusal {
    tracing::error!(error = %e, "the event log could not be read");
    Refusal::Unavailable("The event log could not be read; retry shortly.".to_owned())
}

/// Queues the stored event's job again, marked a replay; the event it answers.
pub async fn replay(
    adapters: &Adapters,
    scope: &TenantScope,
    event_id: &str,
) -> Result<WebhookEvent, Refusal> {
    let event = find(adapters, scope, event_id).await?;
    let task = intake::task_of(&event)?.ok_or_else(|| {
        Refusal::unprocessable(
            "event_id",
            "not_applicable",
            format!(
                "flexrzp does not apply {} events; there is nothing to replay",
                event.event_type
            ),
        )
    })?;
    let job = replay_job(scope, &event, task);
    adapters.queue.send(&job, None).await.map_err(|e| {
        tracing::error!(error = %e, "could not queue a replay");
        Refusal::Unavailable("The replay could not be queued; retry shortly.".to_owned())
    })?;
    Ok(event)
}

/// The stored event of either source with this id.
async fn find(
    adapters: &Adapters,
    scope: &TenantScope,
    event_id: &str,
) -> Result<WebhookEvent, Refusal> {
    for source in [Source::Razorpay, Source::Flexprice] {
        let found = adapters.events.get(scope, source, event_id).await;
        if let Some(event) = found.map_err(|e| unavailable(&e))? {
            return Ok(event);
        }
    }
    Err(Refusal::NotFound(format!(
        "No webhook event {event_id} was received in the last 16 days."
    )))
}

/// A replay's job: the event's own task, marked a replay.
fn replay_job(scope: &TenantScope, event: &WebhookEvent, task: Task) -> Job {
    Job::for_event(
        scope,
        task,
        EventRef {
            source: event.source,
            id: event.event_id.clone(),
            replay: true,
        },
    )
}
