//! The job queue: JSON [`Job`] bodies on SQS, with the job's kind and a trace id as message
//! attributes.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::MessageAttributeValue;
use thiserror::Error;

use super::AwsError;
use crate::domain::error::{Classify, ErrorClass};
use crate::domain::jobs::Job;

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
}

impl crate::ports::Queue for JobQueue {
    fn send<'a>(
        &'a self,
        job: &'a Job,
        trace_id: Option<&'a str>,
    ) -> crate::ports::PortFuture<'a, Result<String, QueueError>> {
        Box::pin(JobQueue::send(self, job, trace_id))
    }
}
