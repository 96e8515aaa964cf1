//! The worker: SQS batches of jobs (`docs/architecture.md` §3.2), answered with the ids of the messages that
//! failed (`ReportBatchItemFailures`), so SQS redelivers only those and, after
//! `maxReceiveCount`, parks them in the DLQ.
//!
//! Each message runs on its own task, within the time left before the invocation's deadline:
//! a job that runs out of time fails that message only. A panic fails its message only in a
//! build that unwinds (tests, the local stack); the release profile aborts, so the invocation
//! ends and every message of the batch comes back after the queue's visibility timeout, as
//! after a Lambda timeout (the jobs already done are repeated as no-ops; the panic's log line
//! names the message). A failed message comes back
//! after its retry schedule's wait (`ChangeMessageVisibility`), so a job is retried for more
//! than a day before SQS parks it; a message that cannot be parsed (a poison body) or fails for
//! good comes back at once, burns its receives, and is kept in the DLQ for inspection. Nothing
//! is dropped.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use shared::adapters::aws::Adapters;
use shared::adapters::aws::queue::TRACE_ID_ATTRIBUTE;
use shared::adapters::telemetry::{self, metrics};
use shared::domain::error::{Classify, Failure};
use shared::domain::events::Done;
use shared::domain::jobs::{Job, JobFailure, Retry, RetrySchedule, Task, Work};
use shared::domain::keys::TenantScope;
use shared::services::{
    collection, credit_notes, invoice_sync, parked, reconcile, sweep, webhook_events,
};
use thiserror::Error;
use tracing::Instrument;

/// The batch could not be answered message by message.
#[derive(Debug, Error)]
pub enum BatchError {
    /// A failed message had no id, and an empty identifier would fail the batch anyway:
    /// fail it whole, explicitly, so every message is redelivered.
    #[error("a failed message has no messageId; failing the whole batch")]
    FailedMessageWithoutId,
}

/// Parses a message body into work: a job, or the schedule's sweep of every scope.
pub fn parse_work(message: &SqsMessage) -> Result<Work, Failure> {
    let body = message
        .body
        .as_deref()
        .ok_or_else(|| Failure::poison("the message has no body"))?;
    Work::parse(body).map_err(Failure::poison)
}

/// What answering the batch leaves to do: the failures for Lambda, when each comes back, and
/// why each failed (kept by message id for whoever finds it parked).
#[derive(Debug, Default)]
pub struct Answered {
    pub response: SqsBatchResponse,
    pub retries: Vec<Retry>,
    pub failures: Vec<(TenantScope, JobFailure)>,
}

/// A message's scope and kind, when it is a job.
fn scope_and_kind(work: &Work) -> Option<(TenantScope, String)> {
    match work {
        Work::Job(job) => Some((job.scope().ok()?, job.task.kind().to_owned())),
        Work::SweepAll => None,
    }
}

/// The worker's timeout (`template.yaml`'s `Timeout`): what the local stack gives a batch.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The deadline of an invocation starting now, as Lambda sets it (epoch milliseconds).
pub fn deadline_from_now(adapters: &Adapters) -> u64 {
    let timeout = u64::try_from(TIMEOUT.as_millis()).unwrap_or(u64::MAX);
    adapters.clock.now_millis().saturating_add(timeout)
}

/// The time left for the jobs: until the function's deadline, less what answering takes.
pub fn job_budget(deadline_ms: u64, now_ms: u64) -> Duration {
    let left = Duration::from_millis(deadline_ms.saturating_sub(now_ms));
    left.saturating_sub(ANSWER_MARGIN).max(MIN_BUDGET)
}

/// Kept back from the deadline to report the failures and set their retries.
const ANSWER_MARGIN: Duration = Duration::from_secs(3);
const MIN_BUDGET: Duration = Duration::from_secs(1);

/// How many times SQS has handed this message out (this delivery included).
fn receives(message: &SqsMessage) -> u32 {
    message
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|count| count.parse().ok())
        .unwrap_or(1)
}

/// Runs `run` on every message of the batch concurrently, each within `budget` (a job that
/// runs out of time fails alone), and reports the failures with their retries: a retryable
/// failure comes back after the schedule's wait for its receive count, a permanent one at once
/// (it burns its receives quickly and rests in the DLQ, kept).
pub async fn process_batch<F, Fut>(
    event: SqsEvent,
    budget: Duration,
    schedule: RetrySchedule,
    run: F,
) -> Result<Answered, BatchError>
where
    F: Fn(Work, u32) -> Fut,
    Fut: Future<Output = Result<(), Failure>> + Send + 'static,
{
    let tasks: Vec<_> = event
        .records
        .into_iter()
        .map(|message| {
            let id = message.message_id.clone().filter(|id| !id.is_empty());
            let trace_id = message
                .message_attributes
                .get(TRACE_ID_ATTRIBUTE)
                .and_then(|a| a.string_value.clone());
            let retry = (message.receipt_handle.clone(), receives(&message));
            let work = parse_work(&message);
            let about = work.as_ref().ok().and_then(scope_and_kind);
            let kind = kind_of(&work);
            // In the batch's span (a job's log lines carry what the caller put there), as its
            // message's job (a panic's log line names the message).
            let job =
                |work| telemetry::for_message(id.clone().unwrap_or_default(), run(work, retry.1));
            let task = work.map(|work| tokio::spawn(within(budget, job(work)).in_current_span()));
            (id, trace_id, retry, (kind, about), task)
        })
        .collect();
    let mut answered = Answered::default();
    for (id, trace_id, (receipt, receives), (kind, about), task) in tasks {
        let ended = outcome(task).await;
        let job_outcome = job_outcome(&ended, receives >= schedule.max_receives);
        let dimensions = [("Kind", kind), ("Outcome", job_outcome)];
        telemetry::metric(metrics::JOBS, 1, &dimensions);
        let Err(failure) = ended else {
            continue;
        };
        answered
            .failures
            .extend(failure_note(about, id.as_deref(), &failure, receives));
        let wait_secs = match failure {
            Failure::Retryable(_) => schedule.wait_secs(receives),
            Failure::Permanent(_) => 0,
        };
        tracing::warn!(message_id = ?id, trace_id = ?trace_id, reason = %failure, receives, wait_secs, "job failed; SQS will redeliver it");
        answered
            .response
            .add_failure(id.ok_or(BatchError::FailedMessageWithoutId)?);
        if let Some(receipt_handle) = receipt {
            answered.retries.push(Retry {
                receipt_handle,
                wait_secs,
            });
        }
    }
    Ok(answered)
}

/// A message's kind in the `Jobs` metric: its task's, or what else it is.
fn kind_of(work: &Result<Work, Failure>) -> &'static str {
    match work {
        Ok(Work::Job(job)) => job.task.kind(),
        Ok(Work::SweepAll) => "sweep_all",
        Err(_) => "unreadable",
    }
}

/// Why a job's message failed, to keep under its scope (`None`: no scope or no message id).
fn failure_note(
    about: Option<(TenantScope, String)>,
    message_id: Option<&str>,
    failure: &Failure,
    receives: u32,
) -> Option<(TenantScope, JobFailure)> {
    let ((scope, kind), message_id) = (about?, message_id?);
    let failed = JobFailure {
        message_id: message_id.to_owned(),
        kind,
        reason: failure.to_string(),
        receives,
        at_ms: 0,
    };
    Some((scope, failed))
}

/// What a message's end is called in the `Jobs` metric.
fn job_outcome(ended: &Result<(), Failure>, last_receive: bool) -> &'static str {
    match ended {
        Ok(()) => "done",
        Err(_) if last_receive => "parked",
        Err(Failure::Retryable(_)) => "retrying",
        Err(Failure::Permanent(_)) => "failing",
    }
}

/// A job that must end within `budget`: past it, it fails (retryable) on its own.
async fn within(
    budget: Duration,
    job: impl Future<Output = Result<(), Failure>>,
) -> Result<(), Failure> {
    tokio::time::timeout(budget, job).await.unwrap_or_else(|_| {
        Err(Failure::Retryable(format!(
            "the job ran out of time ({} ms before the function's deadline)",
            budget.as_millis()
        )))
    })
}

/// What a message's task came to: a panic or a poison body is a failure like any other.
async fn outcome(
    task: Result<tokio::task::JoinHandle<Result<(), Failure>>, Failure>,
) -> Result<(), Failure> {
    match task {
        Ok(handle) => match handle.await {
            Ok(result) => result,
            Err(join_error) if join_error.is_panic() => {
                Err(Failure::Retryable("the job panicked".to_owned()))
            }
            Err(join_error) => Err(Failure::Retryable(join_error.to_string())),
        },
        Err(parse_error) => Err(parse_error),
    }
}

/// Runs one job (its `receives`-th delivery). A retryable failure fails the message (SQS
/// redelivers it, then parks it in the DLQ); a permanent failure of a Razorpay event is parked
/// the same way, so the event is kept; a permanent invoice-sync failure is recorded on the
/// invoice's sync record instead. A job queued for a webhook event settles the event with
/// what it came to.
pub async fn run_work(adapters: Arc<Adapters>, work: Work, receives: u32) -> Result<(), Failure> {
    match work {
        Work::Job(job) => {
            let scope = job.scope().map_err(Failure::poison)?;
            let ended = run_job(&adapters, &scope, &job).await;
            if let Some(origin) = &job.event {
                let last_try = receives >= adapters.config.retry.max_receives;
                let ended = ended
                    .as_ref()
                    .map_err(|f| (f, f.is_retryable() && !last_try));
                webhook_events::settle(&adapters, &scope, origin, ended).await;
            }
            kept_or_recorded(&job.task, ended)
        }
        Work::SweepAll => {
            let queued = sweep::sweep_all(&adapters).await?;
            tracing::info!(queued, "a sweep queued for every connected scope");
            Ok(())
        }
    }
}

/// Whether a job's failure fails its message: a permanent invoice-sync failure is recorded on
/// the invoice's sync record (FAILED, with the reason; a manual sync re-enqueues it once
/// someone acts), and a sweep that cannot run as it is (the tenant disconnected, its key
/// refused) waits for the next scheduled sweep, nothing waiting on it.
fn kept_or_recorded(task: &Task, ended: Result<Done, Failure>) -> Result<(), Failure> {
    match (task, ended) {
        (_, Ok(_)) => Ok(()),
        (Task::SyncInvoice { invoice_id }, Err(Failure::Permanent(reason))) => {
            tracing::error!(%invoice_id, %reason, "invoice sync failed; recorded as FAILED");
            Ok(())
        }
        (Task::Sweep, Err(Failure::Permanent(reason))) => {
            tracing::error!(%reason, "the sweep cannot run for this scope");
            Ok(())
        }
        (_, Err(failure)) => Err(failure),
    }
}

/// Runs one job of one scope: what it came to.
async fn run_job(adapters: &Adapters, scope: &TenantScope, job: &Job) -> Result<Done, Failure> {
    match &job.task {
        Task::ApplyRazorpayEvent { event_id, body } => {
            let applied = reconcile::apply(adapters, scope, body).await?;
            tracing::info!(event_id = %event_id, ?applied, "Razorpay event applied");
            Ok(webhook_events::done_of(&applied))
        }
        Task::SyncInvoice { invoice_id } => {
            let synced = invoice_sync::sync(adapters, scope, invoice_id).await?;
            tracing::info!(%invoice_id, ?synced, "invoice sync done");
            Ok(Done::Applied)
        }
        Task::CancelInvoice { invoice_id } => {
            let cancelled = invoice_sync::cancel(adapters, scope, invoice_id).await?;
            tracing::info!(%invoice_id, ?cancelled, "invoice cancel done");
            let settled = collection::settle(adapters, scope, invoice_id).await?;
            tracing::info!(%invoice_id, ?settled, "the voided invoice's instruments settled");
            Ok(Done::Applied)
        }
        Task::SettleCollection { invoice_id } => {
            let settled = collection::settle(adapters, scope, invoice_id).await?;
            tracing::info!(%invoice_id, ?settled, "invoice instruments settled");
            Ok(Done::Applied)
        }
        Task::RefundCreditNote { credit_note_id } => {
            let refunded = credit_notes::refund(adapters, scope, credit_note_id).await?;
            tracing::info!(%credit_note_id, ?refunded, "credit note handled");
            Ok(Done::Applied)
        }
        Task::Sweep => {
            let swept = sweep::sweep(adapters, scope).await?;
            tracing::info!(?swept, "swept");
            Ok(Done::Applied)
        }
    }
}

/// The Lambda handler: one SQS batch, to be answered before `deadline_ms` (the invocation's
/// deadline, epoch milliseconds). The failed messages' retries are set before answering (best
/// effort: one not set comes back after the queue's default visibility).
pub async fn handle(
    adapters: Arc<Adapters>,
    event: SqsEvent,
    deadline_ms: u64,
) -> Result<SqsBatchResponse, BatchError> {
    let budget = job_budget(deadline_ms, adapters.clock.now_millis());
    let schedule = adapters.config.retry;
    let answered = process_batch(event, budget, schedule, |job, receives| {
        run_work(adapters.clone(), job, receives)
    })
    .await?;
    if !answered.retries.is_empty()
        && let Err(e) = adapters.queue.retry_later(&answered.retries).await
    {
        tracing::warn!(error = %e, "could not set the retries' waits; they come back after the queue's default");
    }
    parked::note_failures(&adapters, answered.failures).await;
    Ok(answered.response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::domain::jobs::Task;
    use shared::domain::keys::TenantScope;

    fn message(id: Option<&str>, body: &str) -> SqsMessage {
        let mut message = SqsMessage::default();
        message.message_id = id.map(str::to_owned);
        message.body = Some(body.to_owned());
        message
    }

    fn job_body(invoice_id: &str) -> String {
        let scope = TenantScope::new("t1", "live").unwrap();
        serde_json::to_string(&Job::new(
            &scope,
            Task::SyncInvoice {
                invoice_id: invoice_id.into(),
            },
        ))
        .unwrap()
    }

    fn batch(messages: Vec<SqsMessage>) -> SqsEvent {
        let mut event = SqsEvent::default();
        event.records = messages;
        event
    }

    fn failed_ids(response: &SqsBatchResponse) -> Vec<&str> {
        response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect()
    }

    async fn ok_unless_bad(work: Work, _receives: u32) -> Result<(), Failure> {
        let Work::Job(job) = work else {
            return Ok(());
        };
        match &job.task {
            Task::SyncInvoice { invoice_id } if invoice_id == "panic" => panic!("boom"),
            Task::SyncInvoice { invoice_id } if invoice_id == "fail" => {
                Err(Failure::Retryable("test".into()))
            }
            _ => Ok(()),
        }
    }

    async fn run_batch(event: SqsEvent) -> Result<SqsBatchResponse, BatchError> {
        let answered = process_batch(
            event,
            Duration::from_secs(5),
            RetrySchedule::PRODUCTION,
            ok_unless_bad,
        )
        .await?;
        Ok(answered.response)
    }

    #[tokio::test]
    async fn a_failed_job_s_reason_is_kept_by_message_id_under_its_scope() {
        let event = batch(vec![
            received("m-fail", &job_body("fail"), 3),
            received("m-ok", &job_body("inv_ok"), 1),
            received("m-poison", "not json", 1),
        ]);
        let answered = process_batch(
            event,
            Duration::from_secs(5),
            RetrySchedule::PRODUCTION,
            ok_unless_bad,
        )
        .await
        .unwrap();
        let kept: Vec<(String, &str, &str, &str, u32)> = answered
            .failures
            .iter()
            .map(|(scope, f)| {
                let scope = format!("{}/{}", scope.tenant_id(), scope.environment_id());
                (
                    scope,
                    f.message_id.as_str(),
                    f.kind.as_str(),
                    f.reason.as_str(),
                    f.receives,
                )
            })
            .collect();
        // The poison body fails too, but has no scope to keep a reason under.
        assert_eq!(
            kept,
            [(
                "t1/live".to_owned(),
                "m-fail",
                "sync_invoice",
                "the job failed and may succeed later: test",
                3
            )]
        );
        assert_eq!(failed_ids(&answered.response), ["m-fail", "m-poison"]);
    }

    fn received(id: &str, body: &str, receives: u32) -> SqsMessage {
        let mut message = message(Some(id), body);
        message.receipt_handle = Some(format!("rh-{id}"));
        message
            .attributes
            .insert("ApproximateReceiveCount".into(), receives.to_string());
        message
    }

    #[tokio::test]
    async fn a_retryable_failure_waits_its_schedule_and_a_poison_one_comes_back_at_once() {
        let event = batch(vec![
            received("m1", &job_body("fail"), 1),
            received("m2", &job_body("fail"), 9),
            received("m3", "{not json", 3),
            received("m4", &job_body("a"), 2),
        ]);
        let answered = process_batch(
            event,
            Duration::from_secs(5),
            RetrySchedule::PRODUCTION,
            ok_unless_bad,
        )
        .await
        .unwrap();
        assert_eq!(failed_ids(&answered.response), ["m1", "m2", "m3"]);
        let waits: Vec<(&str, u32)> = answered
            .retries
            .iter()
            .map(|r| (r.receipt_handle.as_str(), r.wait_secs))
            .collect();
        assert_eq!(waits, [("rh-m1", 60), ("rh-m2", 10800), ("rh-m3", 0)]);
    }

    async fn slow_unless_quick(work: Work, _receives: u32) -> Result<(), Failure> {
        if let Work::Job(Job {
            task: Task::SyncInvoice { invoice_id },
            ..
        }) = &work
            && invoice_id == "slow"
        {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        Ok(())
    }

    #[tokio::test]
    async fn a_job_past_its_deadline_fails_alone_and_the_batch_is_answered_in_time() {
        let event = batch(vec![
            message(Some("m1"), &job_body("quick")),
            message(Some("m2"), &job_body("slow")),
            message(Some("m3"), &job_body("quick")),
        ]);
        let started = std::time::Instant::now();
        let budget = job_budget(10_000 + 3_200, 10_000);
        assert_eq!(budget, Duration::from_secs(1), "never less than a second");
        let answered = process_batch(event, budget, RetrySchedule::PRODUCTION, slow_unless_quick)
            .await
            .unwrap();
        assert_eq!(failed_ids(&answered.response), ["m2"]);
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(job_budget(30_000, 0), Duration::from_secs(27));
    }

    #[tokio::test]
    async fn all_succeed_reports_no_failures() {
        let event = batch(vec![
            message(Some("m1"), &job_body("a")),
            message(Some("m2"), &job_body("b")),
        ]);
        let response = run_batch(event).await.unwrap();
        assert!(response.batch_item_failures.is_empty());
        let json = serde_json::to_value(&response).unwrap();
        assert_eq!(json, serde_json::json!({"batchItemFailures": []}));
    }

    #[tokio::test]
    async fn only_the_failed_messages_are_reported() {
        let event = batch(vec![
            message(Some("m1"), &job_body("a")),
            message(Some("m2"), &job_body("fail")),
            message(Some("m3"), "{not json"),
            message(
                Some("m4"),
                r#"{"tenant_id":"t#1","environment_id":"e","kind":"cancel_invoice","invoice_id":"i"}"#,
            ),
            message(Some("m5"), &job_body("b")),
        ]);
        let response = run_batch(event).await.unwrap();
        assert_eq!(failed_ids(&response), ["m2", "m3", "m4"]);
    }

    #[tokio::test]
    async fn a_panic_fails_only_its_own_message() {
        let event = batch(vec![
            message(Some("m1"), &job_body("a")),
            message(Some("m2"), &job_body("panic")),
            message(Some("m3"), &job_body("b")),
        ]);
        let response = run_batch(event).await.unwrap();
        assert_eq!(failed_ids(&response), ["m2"]);
    }

    #[tokio::test]
    async fn a_failed_message_without_an_id_fails_the_batch_not_an_empty_id() {
        let event = batch(vec![
            message(Some("m1"), &job_body("a")),
            message(None, &job_body("fail")),
        ]);
        let err = run_batch(event).await.unwrap_err();
        assert!(matches!(err, BatchError::FailedMessageWithoutId));
        let event = batch(vec![message(Some(""), &job_body("fail"))]);
        assert!(run_batch(event).await.is_err());
        // A message without an id that succeeds is fine.
        let event = batch(vec![message(None, &job_body("a"))]);
        assert!(run_batch(event).await.is_ok());
    }

    #[test]
    fn poison_bodies_are_named() {
        let mut no_body = SqsMessage::default();
        no_body.message_id = Some("m".into());
        assert!(
            matches!(parse_work(&no_body), Err(Failure::Permanent(reason)) if reason.starts_with("the message body is not a job")),
        );
        let unknown = message(
            Some("m"),
            r#"{"tenant_id":"t","environment_id":"e","kind":"nope"}"#,
        );
        let err = parse_work(&unknown).unwrap_err();
        assert!(err.to_string().contains("unknown variant"), "{err}");
    }
}
