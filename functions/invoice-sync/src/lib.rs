//! The worker: SQS batches of jobs (`docs/architecture.md` §3.2), answered with the ids of the messages that
//! failed (`ReportBatchItemFailures`), so SQS redelivers only those and, after
//! `maxReceiveCount`, parks them in the DLQ.
//!
//! Each message runs on its own task: a panic fails that message only. A message that cannot
//! be parsed (a poison body) fails every delivery and so lands in the DLQ, where it is kept
//! for inspection; nothing is dropped. Until the job flows land, every job fails as "not
//! implemented" and takes the same path.

use std::future::Future;
use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use shared::adapters::aws::Adapters;
use shared::adapters::aws::queue::TRACE_ID_ATTRIBUTE;
use shared::domain::error::Failure;
use shared::domain::jobs::{Job, Task};
use shared::services::{collection, invoice_sync, reconcile};
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

/// Parses a message body into a job.
pub fn parse_job(message: &SqsMessage) -> Result<Job, Failure> {
    let body = message
        .body
        .as_deref()
        .ok_or_else(|| Failure::poison("the message has no body"))?;
    let job: Job = serde_json::from_str(body).map_err(Failure::poison)?;
    job.scope().map_err(Failure::poison)?;
    Ok(job)
}

/// Runs `run` on every message of the batch concurrently and reports the failures.
pub async fn process_batch<F, Fut>(event: SqsEvent, run: F) -> Result<SqsBatchResponse, BatchError>
where
    F: Fn(Job) -> Fut,
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
            // In the batch's span, so that a job's log lines carry whatever the caller put there.
            let task = parse_job(&message).map(|job| tokio::spawn(run(job).in_current_span()));
            (id, trace_id, task)
        })
        .collect();
    let mut response = SqsBatchResponse::default();
    for (id, trace_id, task) in tasks {
        let outcome = match task {
            Ok(handle) => match handle.await {
                Ok(result) => result.map_err(|e| e.to_string()),
                Err(join_error) if join_error.is_panic() => Err("the job panicked".to_owned()),
                Err(join_error) => Err(join_error.to_string()),
            },
            Err(parse_error) => Err(parse_error.to_string()),
        };
        if let Err(reason) = outcome {
            tracing::warn!(message_id = ?id, trace_id = ?trace_id, %reason, "job failed; SQS will redeliver it");
            response.add_failure(id.ok_or(BatchError::FailedMessageWithoutId)?);
        }
    }
    Ok(response)
}

/// Runs one job. A retryable failure fails the message (SQS redelivers it, then parks it in
/// the DLQ); a permanent failure of a Razorpay event is parked the same way, so the event is
/// kept; a permanent invoice-sync failure is recorded on the invoice's sync record instead.
pub async fn run_job(adapters: Arc<Adapters>, job: Job) -> Result<(), Failure> {
    let scope = job.scope().map_err(Failure::poison)?;
    match &job.task {
        Task::ApplyRazorpayEvent { event_id, body } => {
            match reconcile::apply(&adapters, &scope, body).await {
                Ok(applied) => {
                    tracing::info!(event_id = %event_id, ?applied, "Razorpay event applied");
                    Ok(())
                }
                Err(failure) => Err(failure),
            }
        }
        Task::SyncInvoice { invoice_id } => {
            match invoice_sync::sync(&adapters, &scope, invoice_id).await {
                Ok(synced) => {
                    tracing::info!(%invoice_id, ?synced, "invoice sync done");
                    Ok(())
                }
                Err(Failure::Retryable(reason)) => Err(Failure::Retryable(reason)),
                // Recorded on the invoice's sync record (FAILED, with the reason); retrying
                // will not help until someone acts, and then a manual sync re-enqueues it.
                Err(Failure::Permanent(reason)) => {
                    tracing::error!(%invoice_id, %reason, "invoice sync failed; recorded as FAILED");
                    Ok(())
                }
            }
        }
        Task::CancelInvoice { invoice_id } => {
            let cancelled = invoice_sync::cancel(&adapters, &scope, invoice_id).await?;
            tracing::info!(%invoice_id, ?cancelled, "invoice cancel done");
            let settled = collection::settle(&adapters, &scope, invoice_id).await?;
            tracing::info!(%invoice_id, ?settled, "the voided invoice's instruments settled");
            Ok(())
        }
        Task::SettleCollection { invoice_id } => {
            let settled = collection::settle(&adapters, &scope, invoice_id).await?;
            tracing::info!(%invoice_id, ?settled, "invoice instruments settled");
            Ok(())
        }
    }
}

/// The Lambda handler: one SQS batch.
pub async fn handle(
    adapters: Arc<Adapters>,
    event: SqsEvent,
) -> Result<SqsBatchResponse, BatchError> {
    process_batch(event, |job| run_job(adapters.clone(), job)).await
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

    async fn ok_unless_bad(job: Job) -> Result<(), Failure> {
        match &job.task {
            Task::SyncInvoice { invoice_id } if invoice_id == "panic" => panic!("boom"),
            Task::SyncInvoice { invoice_id } if invoice_id == "fail" => {
                Err(Failure::Retryable("test".into()))
            }
            _ => Ok(()),
        }
    }

    #[tokio::test]
    async fn all_succeed_reports_no_failures() {
        let event = batch(vec![
            message(Some("m1"), &job_body("a")),
            message(Some("m2"), &job_body("b")),
        ]);
        let response = process_batch(event, ok_unless_bad).await.unwrap();
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
        let response = process_batch(event, ok_unless_bad).await.unwrap();
        assert_eq!(failed_ids(&response), ["m2", "m3", "m4"]);
    }

    #[tokio::test]
    async fn a_panic_fails_only_its_own_message() {
        let event = batch(vec![
            message(Some("m1"), &job_body("a")),
            message(Some("m2"), &job_body("panic")),
            message(Some("m3"), &job_body("b")),
        ]);
        let response = process_batch(event, ok_unless_bad).await.unwrap();
        assert_eq!(failed_ids(&response), ["m2"]);
    }

    #[tokio::test]
    async fn a_failed_message_without_an_id_fails_the_batch_not_an_empty_id() {
        let event = batch(vec![
            message(Some("m1"), &job_body("a")),
            message(None, &job_body("fail")),
        ]);
        let err = process_batch(event, ok_unless_bad).await.unwrap_err();
        assert!(matches!(err, BatchError::FailedMessageWithoutId));
        let event = batch(vec![message(Some(""), &job_body("fail"))]);
        assert!(process_batch(event, ok_unless_bad).await.is_err());
        // A message without an id that succeeds is fine.
        let event = batch(vec![message(None, &job_body("a"))]);
        assert!(process_batch(event, ok_unless_bad).await.is_ok());
    }

    #[test]
    fn poison_bodies_are_named() {
        let mut no_body = SqsMessage::default();
        no_body.message_id = Some("m".into());
        assert!(
            matches!(parse_job(&no_body), Err(Failure::Permanent(reason)) if reason.starts_with("the message body is not a job")),
        );
        let unknown = message(
            Some("m"),
            r#"{"tenant_id":"t","environment_id":"e","kind":"nope"}"#,
        );
        let err = parse_job(&unknown).unwrap_err();
        assert!(err.to_string().contains("unknown variant"), "{err}");
    }
}
