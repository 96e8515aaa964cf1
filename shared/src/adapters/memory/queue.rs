//! The job queue in memory: it keeps what was sent, in order, for a test to read (and run).

use std::sync::Mutex;

use crate::adapters::aws::queue::{MAX_MESSAGE_BYTES, QueueError};
use crate::domain::jobs::{Job, Retry};
use crate::ports::{PortFuture, Queue};

#[derive(Default)]
pub struct MemoryQueue {
    sent: Mutex<Vec<(String, Job)>>,
    retries: Mutex<Vec<Retry>>,
}

impl MemoryQueue {
    pub fn new() -> MemoryQueue {
        MemoryQueue::default()
    }

    /// The jobs sent so far, with their message ids, oldest first.
    pub fn sent(&self) -> Vec<(String, Job)> {
        self.sent.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The retries asked for so far, oldest first.
    pub fn retries(&self) -> Vec<Retry> {
        self.retries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Queue for MemoryQueue {
    /// The same size rule as SQS: a job must fit in one message.
    fn send<'a>(
        &'a self,
        job: &'a Job,
        _trace_id: Option<&'a str>,
    ) -> PortFuture<'a, Result<String, QueueError>> {
        let sent = serde_json::to_string(job)
            .map_err(QueueError::from)
            .and_then(|body| {
                if body.len() > MAX_MESSAGE_BYTES {
                    return Err(QueueError::TooLarge { bytes: body.len() });
                }
                let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
                let id = format!("msg-{}", sent.len() + 1);
                sent.push((id.clone(), job.clone()));
                Ok(id)
            });
        Box::pin(async move { sent })
    }

    fn retry_later<'a>(&'a self, retries: &'a [Retry]) -> PortFuture<'a, Result<(), QueueError>> {
        let mut kept = self.retries.lock().unwrap_or_else(|e| e.into_inner());
        kept.extend_from_slice(retries);
        Box::pin(async { Ok(()) })
    }
}
