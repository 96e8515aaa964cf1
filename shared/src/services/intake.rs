//! Webhook intake (`docs/architecture.md` §3.1), Razorpay's and Flexprice's: answer within a second, never lose an event.
//!
//! Raw bytes; the connection of the route's tenant/environment; the signature checked in
//! constant time against the current and previous webhook secret (once more after a forced
//! secret refresh, for a rotation the cache has not seen); the envelope's `account_id`; a
//! claim on `x-razorpay-event-id` with the payload hash; a job for the worker; 200. The claim is
//! released when the job cannot be enqueued, so Razorpay's retry goes through.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::adapters::aws::Adapters;
use crate::adapters::aws::idempotency::{
    Claim, ClaimToken, IdempotencyError, Lifetimes, payload_hash,
};
use crate::domain::error::{Classify, Refusal};
use crate::domain::events::{EventRef, Outcome, Refused, Source, Step, WebhookEvent, day_of};
use crate::domain::ids::FlexpriceId;
use crate::domain::jobs::{Job, Task};
use crate::domain::keys::TenantScope;
use crate::domain::signature::{SignatureError, SvixHeaders, SvixSecret, verify_razorpay_webhook};
use crate::services::connection::{self, Credentials};

/// Razorpay events are a few KiB; a job must fit one SQS message.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The events the worker applies; everything else is acknowledged and ignored.
pub const HANDLED_EVENTS: &[&str] = &[
    "payment.authorized",
    "payment.captured",
    "payment.failed",
    "payment_link.paid",
    "payment_link.partially_paid",
    "payment_link.expired",
    "payment_link.cancelled",
    "invoice.paid",
    "invoice.partially_paid",
    "invoice.expired",
    "refund.created",
    "refund.processed",
    "refund.failed",
    "refund.speed_changed",
    "payment.dispute.created",
    "payment.dispute.action_required",
    "payment.dispute.under_review",
    "payment.dispute.won",
    "payment.dispute.lost",
    "payment.dispute.closed",
];

/// Claims outlive Razorpay's 24 h retries and 15-day manual replays.
const KEEP: Duration = Duration::from_secs(16 * 24 * 3600);
const LOCK: Duration = Duration::from_secs(30);

/// The request, as the receiver got it.
pub struct Delivery<'a> {
    pub tenant_id: &'a str,
    pub environment_id: &'a str,
    pub signature: Option<&'a str>,
    pub event_id: Option<&'a str>,
    pub trace_id: Option<&'a str>,
    pub body: &'a [u8],
}

/// All the intake reads of a Razorpay event: its name and account. (Parsing only this, not a
/// whole `serde_json::Value`, keeps the hot path near the cost of the HMAC itself.)
#[derive(Debug, Deserialize)]
pub struct Envelope {
    pub event: String,
    #[serde(default)]
    pub account_id: Option<String>,
}

impl Envelope {
    pub fn parse(body: &[u8]) -> Result<Envelope, serde_json::Error> {
        serde_json::from_slice(body)
    }
}

/// The job a Razorpay event asks for, if it is one the worker applies.
fn razorpay_task(event_type: &str, event_id: &str, body: &str) -> Option<Task> {
    HANDLED_EVENTS
        .contains(&event_type)
        .then(|| Task::ApplyRazorpayEvent {
            event_id: event_id.to_owned(),
            body: body.to_owned(),
        })
}

/// The job a stored event asks for (what the intake queued for it), if any.
pub fn task_of(event: &WebhookEvent) -> Result<Option<Task>, Refusal> {
    match event.source {
        Source::Razorpay => Ok(razorpay_task(
            &event.event_type,
            &event.event_id,
            &event.body,
        )),
        Source::Flexprice => {
            let envelope: FlexpriceEnvelope = serde_json::from_str(&event.body).map_err(|_| {
                Refusal::unprocessable(
                    "event_id",
                    "flexprice_event",
                    "the stored body is not a Flexprice event",
                )
            })?;
            flexprice_task(&envelope)
        }
    }
}

/// One answer for "no such tenant/environment" whatever the reason, so that nothing tells
/// whether a tenant exists.
fn unknown_route() -> Refusal {
    Refusal::NotFound("There is nothing at this address.".to_owned())
}

fn unavailable() -> Refusal {
    Refusal::Unavailable("The event could not be stored; Razorpay will retry it.".to_owned())
}

fn verified(credentials: &Credentials, delivery: &Delivery<'_>) -> Result<(), SignatureError> {
    let secrets: Vec<_> = credentials.webhook_secrets.iter().collect();
    verify_razorpay_webhook(delivery.body, delivery.signature, &secrets).map(|_| ())
}

fn check_size(body: &[u8]) -> Result<(), Refusal> {
    if body.len() > MAX_BODY_BYTES {
        return Err(Refusal::TooLarge(format!(
            "Webhook bodies are limited to {MAX_BODY_BYTES} bytes."
        )));
    }
    Ok(())
}

/// Takes one Razorpay webhook; answers status and a small JSON body.
pub async fn razorpay(adapters: &Adapters, delivery: Delivery<'_>) -> Result<Value, Refusal> {
    check_size(delivery.body)?;
    let scope = TenantScope::new(delivery.tenant_id, delivery.environment_id)
        .map_err(|_| unknown_route())?;
    let credentials = verified_credentials(adapters, &scope, &delivery).await;
    let credentials = counted(adapters, &scope, credentials).await?;
    let envelope = Envelope::parse(delivery.body).map_err(|_| {
        Refusal::malformed("body", "razorpay_event", "the body is not a Razorpay event")
    })?;
    counted(
        adapters,
        &scope,
        check_account(&scope, &credentials, &envelope),
    )
    .await?;
    let event_id = delivery
        .event_id
        .filter(|id| !id.is_empty() && id.len() <= 128)
        .ok_or_else(|| {
            Refusal::malformed(
                "x-razorpay-event-id",
                "required",
                "the x-razorpay-event-id header is required",
            )
        })?;
    let body = String::from_utf8_lossy(delivery.body);
    let task = razorpay_task(&envelope.event, event_id, &body);
    let received = Received {
        source: Source::Razorpay,
        event_id,
        event: &envelope.event,
        body: delivery.body,
        trace_id: delivery.trace_id,
        invoice_id: None,
    };
    receive_and_enqueue(adapters, &scope, received, task).await
}

/// The route's connection, once the delivery's signature checks out against its current or
/// previous webhook secret; on a mismatch the secret is read once more (the cache may predate
/// a rotation).
async fn verified_credentials(
    adapters: &Adapters,
    scope: &TenantScope,
    delivery: &Delivery<'_>,
) -> Result<Credentials, Refusal> {
    let credentials = connection::credentials(adapters, scope)
        .await?
        .ok_or_else(unknown_route)?;
    match verified(&credentials, delivery) {
        Ok(()) => Ok(credentials),
        Err(SignatureError::Mismatch) => {
            let fresh = connection::fresh_credentials(adapters, scope)
                .await?
                .ok_or_else(unknown_route)?;
            verified(&fresh, delivery).map_err(|_| signature_refusal())?;
            Ok(fresh)
        }
        Err(_) => Err(signature_refusal()),
    }
}

/// A connection that names its Razorpay account takes only that account's events.
fn check_account(
    scope: &TenantScope,
    credentials: &Credentials,
    envelope: &Envelope,
) -> Result<(), Refusal> {
    match &credentials.razorpay_account_id {
        Some(expected) if envelope.account_id.as_deref() != Some(expected.as_str()) => {
            tracing::warn!(
                tenant = scope.tenant_id(),
                "webhook for another Razorpay account refused"
            );
            Err(Refusal::WrongAccount(
                "The event belongs to another Razorpay account.".to_owned(),
            ))
        }
        _ => Ok(()),
    }
}

/// A verified event, ready to be received.
struct Received<'a> {
    source: Source,
    event_id: &'a str,
    event: &'a str,
    body: &'a [u8],
    trace_id: Option<&'a str>,
    /// The Flexprice invoice it is about, when the envelope names one.
    invoice_id: Option<String>,
}

impl Received<'_> {
    /// The event as the log keeps it: queued for the worker, or (no task) ignored at once.
    fn logged(&self, queued: bool, now_ms: u64) -> WebhookEvent {
        let body = String::from_utf8_lossy(self.body).into_owned();
        let mut event =
            WebhookEvent::received(self.source, self.event_id, self.event, now_ms, body);
        event.invoice_id.clone_from(&self.invoice_id);
        if !queued {
            let _ = event.settle(Step {
                at_ms: now_ms,
                outcome: Outcome::Ignored,
                reason: Some(format!("flexrzp does not apply {} events", self.event)),
                replay: false,
            });
        }
        event
    }
}

/// Receives the event into the log (one conditional put: the claim on its id, with the
/// payload hash, and the record) and queues `task` for it (none: ignored, nothing queued).
/// Nothing else is written here: the worker settles the event, so a new event costs two
/// calls and a duplicate one. A duplicate answers 200 with no work; the same id with another
/// body 409; when the job cannot be queued the claim is released and the answer is 503, so
/// the sender's retry goes through. A crash between the two calls leaves the claim locked,
/// unsettled: the sender's retry after the lock is received again and queued.
async fn receive_and_enqueue(
    adapters: &Adapters,
    scope: &TenantScope,
    received: Received<'_>,
    task: Option<Task>,
) -> Result<Value, Refusal> {
    let event_id = received.event_id;
    let logged = received.logged(task.is_some(), adapters.clock.now_millis());
    let lifetimes = Lifetimes {
        lock: LOCK,
        keep: KEEP,
    };
    let hash = payload_hash(received.body);
    let token = match adapters
        .events
        .receive(scope, &logged, &hash, lifetimes)
        .await
    {
        Ok(Claim::Acquired(token)) => token,
        Ok(Claim::Completed { .. }) => {
            return Ok(json!({"status": "duplicate", "event_id": event_id}));
        }
        Err(e) => return Err(claim_refusal(scope, event_id, &e)),
    };
    let Some(task) = task else {
        return Ok(json!({"status": "ignored", "event_id": event_id, "event": received.event}));
    };
    if crate::failpoint::hit(crate::failpoint::AFTER_EVENT_RECEIVED) {
        return Err(unavailable());
    }
    let origin = EventRef {
        source: received.source,
        id: event_id.to_owned(),
        replay: false,
    };
    let job = Job::for_event(scope, task, origin);
    enqueue(adapters, &token, &job, received.trace_id).await?;
    Ok(json!({"status": "accepted", "event_id": event_id}))
}

/// Why an event could not be claimed, as the sender's answer.
fn claim_refusal(scope: &TenantScope, event_id: &str, e: &IdempotencyError) -> Refusal {
    match e {
        IdempotencyError::PayloadMismatch => {
            tracing::error!(
                tenant = scope.tenant_id(),
                event_id,
                "SAME EVENT ID WITH A DIFFERENT BODY: refused"
            );
            Refusal::EventConflict(
                "This event id was received before with a different body.".to_owned(),
            )
        }
        IdempotencyError::InProgress => {
            Refusal::InProgress("This event is being received right now; retry later.".to_owned())
        }
        e => {
            tracing::error!(error = %e, "could not claim the event");
            if e.is_retryable() {
                unavailable()
            } else {
                Refusal::Internal
            }
        }
    }
}

/// Queues the job; when it cannot be queued the event's claim is released (503), so the
/// sender's retry goes through.
async fn enqueue(
    adapters: &Adapters,
    token: &ClaimToken,
    job: &Job,
    trace_id: Option<&str>,
) -> Result<(), Refusal> {
    if let Err(e) = adapters.queue.send(job, trace_id).await {
        tracing::error!(error = %e, "could not enqueue the event; releasing the claim");
        let _ = adapters.events.release(token).await;
        return Err(unavailable());
    }
    Ok(())
}

/// `result`, its refusal counted in the scope's log when it is one the log counts (a bad
/// signature, another account's event). Best effort: a counter that cannot be written loses
/// a count, never the answer.
async fn counted<T>(
    adapters: &Adapters,
    scope: &TenantScope,
    result: Result<T, Refusal>,
) -> Result<T, Refusal> {
    let refused = match &result {
        Err(Refusal::BadSignature(_)) => Refused::BadSignature,
        Err(Refusal::WrongAccount(_)) => Refused::WrongAccount,
        _ => return result,
    };
    let day = day_of(adapters.clock.now_millis());
    if let Err(e) = adapters.events.refuse(scope, refused, &day).await {
        tracing::warn!(error = %e, "could not count a refused webhook");
    }
    result
}

/// The Flexprice request, as the receiver got it.
pub struct SvixDelivery<'a> {
    pub tenant_id: &'a str,
    pub environment_id: &'a str,
    pub headers: SvixHeaders<'a>,
    pub trace_id: Option<&'a str>,
    pub body: &'a [u8],
}

#[derive(Deserialize)]
struct FlexpriceEnvelope {
    event_type: String,
    #[serde(default)]
    invoice: Option<FlexpriceInvoiceRef>,
    #[serde(default)]
    credit_note: Option<FlexpriceInvoiceRef>,
}

#[derive(Deserialize)]
struct FlexpriceInvoiceRef {
    id: String,
}

fn svix_verified(
    credentials: &Credentials,
    delivery: &SvixDelivery<'_>,
    now: u64,
) -> Result<(), SignatureError> {
    let secret = credentials
        .flexprice_webhook_secret
        .as_ref()
        .ok_or(SignatureError::NoSecret)?;
    SvixSecret::parse(secret)?.verify(delivery.headers, delivery.body, now)
}

/// Takes one Flexprice (Svix-signed) webhook: `invoice.update.finalized` → sync job,
/// `invoice.update.voided` → cancel job, `invoice.update.payment` → settle job,
/// `credit_note.created|updated` → credit-note refund job, anything else acknowledged and
/// ignored. Deduped on `svix-id`.
pub async fn flexprice(adapters: &Adapters, delivery: SvixDelivery<'_>) -> Result<Value, Refusal> {
    check_size(delivery.body)?;
    let scope = TenantScope::new(delivery.tenant_id, delivery.environment_id)
        .map_err(|_| unknown_route())?;
    let checked = svix_check(adapters, &scope, &delivery).await;
    counted(adapters, &scope, checked).await?;
    let envelope: FlexpriceEnvelope = serde_json::from_slice(delivery.body).map_err(|_| {
        Refusal::malformed(
            "body",
            "flexprice_event",
            "the body is not a Flexprice event",
        )
    })?;
    let task = flexprice_task(&envelope)?;
    let event_id = delivery
        .headers
        .id
        .filter(|id| !id.is_empty() && id.len() <= 128)
        .ok_or_else(|| {
            Refusal::malformed("svix-id", "required", "the svix-id header is required")
        })?;
    let received = Received {
        source: Source::Flexprice,
        event_id,
        event: &envelope.event_type,
        body: delivery.body,
        trace_id: delivery.trace_id,
        invoice_id: envelope.invoice.as_ref().map(|i| i.id.clone()),
    };
    receive_and_enqueue(adapters, &scope, received, task).await
}

/// The Svix signature against the route's Flexprice webhook secret; on a mismatch, a missing
/// or a malformed secret it is read once more (a rotation or a newly set secret the cache has
/// not seen).
async fn svix_check(
    adapters: &Adapters,
    scope: &TenantScope,
    delivery: &SvixDelivery<'_>,
) -> Result<(), Refusal> {
    let credentials = connection::credentials(adapters, scope)
        .await?
        .ok_or_else(unknown_route)?;
    let now = adapters.clock.now_secs();
    match svix_verified(&credentials, delivery, now) {
        Ok(()) => Ok(()),
        Err(SignatureError::Mismatch | SignatureError::NoSecret | SignatureError::BadSecret) => {
            let fresh = connection::fresh_credentials(adapters, scope)
                .await?
                .ok_or_else(unknown_route)?;
            svix_verified(&fresh, delivery, now).map_err(svix_refusal)
        }
        Err(e) => Err(svix_refusal(e)),
    }
}

/// The job a Flexprice event asks for, if any; its invoice id is parsed like any other id.
fn flexprice_task(envelope: &FlexpriceEnvelope) -> Result<Option<Task>, Refusal> {
    let invoice_id = || {
        let id = envelope
            .invoice
            .as_ref()
            .map(|i| i.id.as_str())
            .unwrap_or_default();
        if id.is_empty() {
            return Err(Refusal::malformed(
                "invoice.id",
                "required",
                "an invoice event must carry invoice.id",
            ));
        }
        FlexpriceId::parse(id)
            .map(|id| id.as_str().to_owned())
            .map_err(|e| Refusal::malformed("invoice.id", e.rule(), format!("invoice.id {e}")))
    };
    Ok(match envelope.event_type.as_str() {
        "invoice.update.finalized" => Some(Task::SyncInvoice {
            invoice_id: invoice_id()?,
        }),
        "invoice.update.voided" => Some(Task::CancelInvoice {
            invoice_id: invoice_id()?,
        }),
        // Paid (here, elsewhere, or in part): instruments asking more than it owes now close.
        "invoice.update.payment" => Some(Task::SettleCollection {
            invoice_id: invoice_id()?,
        }),
        // A credit note made or finalized: refunded at Razorpay if it is a REFUND one and the
        // connection says so (the job reads it from Flexprice, not from the event).
        "credit_note.created" | "credit_note.updated" => Some(Task::RefundCreditNote {
            credit_note_id: credit_note_id(envelope)?,
        }),
        _ => None,
    })
}

fn credit_note_id(envelope: &FlexpriceEnvelope) -> Result<String, Refusal> {
    let id = envelope
        .credit_note
        .as_ref()
        .map(|c| c.id.as_str())
        .unwrap_or_default();
    FlexpriceId::parse(id)
        .map(|id| id.as_str().to_owned())
        .map_err(|e| Refusal::malformed("credit_note.id", e.rule(), format!("credit_note.id {e}")))
}

fn svix_refusal(e: SignatureError) -> Refusal {
    let detail = match e {
        SignatureError::Stale { tolerance_secs } => {
            format!("The svix-timestamp is more than {tolerance_secs} seconds away from now.")
        }
        SignatureError::NoSecret | SignatureError::BadSecret => {
            "This connection has no usable Flexprice webhook secret.".to_owned()
        }
        _ => "The svix-signature header is missing or does not match.".to_owned(),
    };
    Refusal::BadSignature(detail)
}

fn signature_refusal() -> Refusal {
    Refusal::BadSignature(
        "The X-Razorpay-Signature header is missing or does not match.".to_owned(),
    )
}

/// What a delivery came to, as the `WebhooksReceived` metric names it.
pub fn outcome_name(answered: &Result<Value, Refusal>) -> &'static str {
    match answered {
        Ok(answer) => match answer["status"].as_str() {
            Some("duplicate") => "duplicate",
            Some("ignored") => "ignored",
            _ => "accepted",
        },
        Err(Refusal::BadSignature(_)) => "bad_signature",
        Err(Refusal::WrongAccount(_)) => "wrong_account",
        Err(Refusal::EventConflict(_)) => "conflict",
        Err(Refusal::InProgress(_)) => "in_progress",
        Err(Refusal::Unavailable(_)) => "unavailable",
        Err(Refusal::NotFound(_) | Refusal::NotConnected) => "unknown_route",
        Err(_) => "rejected",
    }
}

/// Counts one delivery on `source`'s route in the `WebhooksReceived` metric.
pub fn count_delivery(source: Source, answered: &Result<Value, Refusal>) {
    crate::adapters::telemetry::metric(
        crate::adapters::telemetry::metrics::WEBHOOKS_RECEIVED,
        1,
        &[
            ("Source", source.as_str()),
            ("Outcome", outcome_name(answered)),
        ],
    );
}
