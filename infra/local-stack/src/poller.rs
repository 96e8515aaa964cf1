//! The SQS poller: stands in for Lambda's SQS event source mapping. It long-polls the job
//! queue, hands the worker real `SqsEvent` batches, deletes the messages the
//! `SqsBatchResponse` does not list as failed, and leaves the failed ones to become visible
//! again; the queue's redrive policy moves a message to the DLQ after `maxReceiveCount`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage, SqsMessageAttribute};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use shared::adapters::aws::Adapters;
use tracing::Instrument;

use crate::logs;

/// What the poller has done so far.
#[derive(Debug, Default)]
pub struct PollerStats {
    pub batches: AtomicU64,
    pub messages: AtomicU64,
    pub succeeded: AtomicU64,
    pub failed: AtomicU64,
}

impl PollerStats {
    pub fn snapshot(&self) -> (u64, u64, u64, u64) {
        (
            self.batches.load(Ordering::SeqCst),
            self.messages.load(Ordering::SeqCst),
            self.succeeded.load(Ordering::SeqCst),
            self.failed.load(Ordering::SeqCst),
        )
    }
}

/// A received SQS message as Lambda presents it.
pub fn to_lambda_message(message: &Message, queue_arn: &str, region: &str) -> SqsMessage {
    let mut out = SqsMessage::default();
    out.message_id = message.message_id.clone();
    out.receipt_handle = message.receipt_handle.clone();
    out.body = message.body.clone();
    out.md5_of_body = message.md5_of_body.clone();
    out.md5_of_message_attributes = message.md5_of_message_attributes.clone();
    out.attributes = message
        .attributes
        .iter()
        .flatten()
        .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
        .collect();
    out.message_attributes = message
        .message_attributes
        .iter()
        .flatten()
        .map(|(k, v)| {
            let mut attribute = SqsMessageAttribute::default();
            attribute.string_value = v.string_value.clone();
            attribute.data_type = Some(v.data_type.clone());
            (k.clone(), attribute)
        })
        .collect::<HashMap<_, _>>();
    out.event_source = Some("aws:sqs".to_owned());
    out.event_source_arn = Some(queue_arn.to_owned());
    out.aws_region = Some(region.to_owned());
    out
}

/// Polls until the task is aborted.
pub async fn run(
    adapters: Arc<Adapters>,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    queue_arn: String,
    stats: Arc<PollerStats>,
) {
    loop {
        let messages = receive(&sqs, &queue_url).await;
        if messages.is_empty() {
            continue;
        }
        stats.batches.fetch_add(1, Ordering::SeqCst);
        stats
            .messages
            .fetch_add(messages.len() as u64, Ordering::SeqCst);
        let failed = hand_to_worker(&adapters, &messages, &queue_arn).await;
        let done = delete_done(&sqs, &queue_url, &messages, &failed).await;
        stats
            .failed
            .fetch_add(failed.len() as u64, Ordering::SeqCst);
        stats.succeeded.fetch_add(done as u64, Ordering::SeqCst);
    }
}

/// One long poll (1 s); nothing on an error, after a pause.
async fn receive(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Vec<Message> {
    let received = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .message_attribute_names("All")
        .send()
        .await;
    match received {
        Ok(output) => output.messages.unwrap_or_default(),
        Err(e) => {
            tracing::warn!(error = %shared::adapters::aws::describe_sdk_error(&e), "the poller could not receive; retrying");
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            Vec::new()
        }
    }
}

/// Runs the worker on the batch as Lambda would; the ids of the messages that failed.
async fn hand_to_worker(
    adapters: &Arc<Adapters>,
    messages: &[Message],
    queue_arn: &str,
) -> HashSet<String> {
    let mut event = SqsEvent::default();
    event.records = messages
        .iter()
        .map(|m| to_lambda_message(m, queue_arn, "us-east-1"))
        .collect();
    let handled = invoice_sync::handle(
        adapters.clone(),
        event,
        invoice_sync::deadline_from_now(adapters),
    )
    .instrument(logs::function_span(logs::INVOICE_SYNC))
    .await;
    match handled {
        Ok(response) => response
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect(),
        // The whole batch failed: Lambda leaves every message for redelivery.
        Err(e) => {
            tracing::warn!(error = %e, "the worker failed the whole batch");
            messages
                .iter()
                .filter_map(|m| m.message_id.clone())
                .collect()
        }
    }
}

/// Deletes the messages that did not fail (the failed ones become visible again); how many.
async fn delete_done(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    messages: &[Message],
    failed: &HashSet<String>,
) -> usize {
    let entries: Vec<DeleteMessageBatchRequestEntry> = messages
        .iter()
        .filter(|m| m.message_id.as_ref().is_some_and(|id| !failed.contains(id)))
        .enumerate()
        .filter_map(|(i, m)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(m.receipt_handle.clone()?)
                .build()
                .ok()
        })
        .collect();
    let done = entries.len();
    if !entries.is_empty()
        && let Err(e) = sqs
            .delete_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
    {
        tracing::warn!(error = %shared::adapters::aws::describe_sdk_error(&e), "the poller could not delete processed messages");
    }
    done
}
