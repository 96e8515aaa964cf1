//! The job queue: JSON [`Job`] bodies on SQS, with the job's kind and a trace id as message
//! attributes, each in its tenant's message group (SQS fair queues: a burst of one tenant's
//! jobs does not hold back another tenant's).

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{ChangeMessageVisibilityBatchRequestEntry, MessageAttributeValue};
use thiserror::Error;

use super::AwsError;
use crate::domain::error::{Classify, ErrorClass};
use crate::domain::jobs::{Job, Retry};

/// SQS's classic message size limit; a job must fit in one message.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// The message attribute carrying the trace id of the request that made the job.
pub const TRACE_ID_ATTRIBUTE: &str = "trace_id";
/// The message attribute carrying the job's kind (for filtering and metrics).
pub const KIND_ATTRIBUTE: &str = "kind";

#[derive(Debug, Error)]
pub enum QueueError {
    #[error("the job is {bytes} bytes, over the {MAX_MESSAGE_BYTES} byte message limit")]
    TooLarge { bytes: usize },
    #[error("the job could not be serialized: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error("SQS {0}")]
    Aws(#[from] AwsError),
}

impl Classify for QueueError {
    fn class(&self) -> ErrorClass {
        match self {
            QueueError::Aws(e) => e.class,
            _ => ErrorClass::Permanent,
        }
    }
}

#[derive(Debug, Clone)]
pub struct JobQueue {
    client: Client,
    url: String,
}

fn string_attribute(value: &str) -> Result<MessageAttributeValue, QueueError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| QueueError::Aws(AwsError::build("SendMessage", e)))
}

impl JobQueue {
    pub fn new(client: Client, url: impl Into<String>) -> JobQueue {
        JobQueue {
            client,
            url: url.into(),
        }
    }

    pub fn from_sdk_config(config: &aws_config::SdkConfig, url: impl Into<String>) -> JobQueue {
        JobQueue::new(Client::new(config), url)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends a job and returns its SQS message id.
    pub async fn send(&self, job: &Job, trace_id: Option<&str>) -> Result<String, QueueError> {
        let body = serde_json::to_string(job)?;
        if body.len() > MAX_MESSAGE_BYTES {
            return Err(QueueError::TooLarge { bytes: body.len() });
        }
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            // A fair queue: SQS keeps one tenant's burst from delaying the others' jobs (a
            // standard queue orders nothing by group; the tenant id fits its 128 characters).
            .message_group_id(&job.tenant_id)
            .message_attributes(KIND_ATTRIBUTE, string_attribute(job.task.kind())?);
        if let Some(trace_id) = trace_id.filter(|t| !t.is_empty()) {
            request = request.message_attributes(TRACE_ID_ATTRIBUTE, string_attribute(trace_id)?);
        }
        let output = request
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("SendMessage", &e))?;
        Ok(output.message_id.unwrap_or_default())
    }

    /// Sets each failed message's visibility to its wait (`ChangeMessageVisibilityBatch`, ten
    /// at a time): it comes back after the wait, not after the queue's default.
    pub async fn retry_later(&self, retries: &[Retry]) -> Result<(), QueueError> {
        for chunk in retries.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, retry)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(&retry.receipt_handle)
                        .visibility_timeout(i32::try_from(retry.wait_secs).unwrap_or(i32::MAX))
                        .build()
                        .map_err(|e| AwsError::build("ChangeMessageVisibilityBatch", e))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let output = self
                .client
                .change_message_visibility_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ChangeMessageVisibilityBatch", &e))?;
            for failed in output.failed() {
                tracing::warn!(code = failed.code(), message = ?failed.message(), "a retry's visibility was not changed; it comes back after the queue's default");
            }
        }
        Ok(())
    }
}

impl crate::ports::Queue for JobQueue {
    fn send<'a>(
        &'a self,
        job: &'a Job,
        trace_id: Option<&'a str>,
    ) -> crate::ports::PortFuture<'a, Result<String, QueueError>> {
        Box::pin(JobQueue::send(self, job, trace_id))
    }

    fn retry_later<'a>(
        &'a self,
        retries: &'a [Retry],
    ) -> crate::ports::PortFuture<'a, Result<(), QueueError>> {
        Box::pin(JobQueue::retry_later(self, retries))
    }
}
