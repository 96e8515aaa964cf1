//! The dead-letter queue, as an operator works it: list what rests there (each message's
//! scope, kind, age and receives, read from its body and attributes) and move some or all of
//! it back to the job queue. SQS's own move task moves a whole queue; moving only a tenant's
//! or a kind's jobs means reading each message, sending it again and deleting it, which is
//! what this does (on AWS and on the emulator alike). A message left where it is becomes
//! visible again at once.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};

use super::AwsError;
use crate::domain::jobs::{ParkedFilter, ParkedJob, describe_body};

/// How long a message read for a listing stays hidden if this process dies before giving it
/// back (an operator's tool: short).
const HOLD_SECS: i32 = 30;

/// The dead-letter queue and the job queue its messages go back to.
#[derive(Debug, Clone)]
pub struct DeadLetters {
    client: Client,
    dlq_url: String,
    queue_url: String,
}

/// A message read from the DLQ: what it is, and how to let it go or delete it.
struct Held {
    job: ParkedJob,
    message: Message,
}

impl DeadLetters {
    pub fn new(client: Client, dlq_url: &str, queue_url: &str) -> DeadLetters {
        DeadLetters {
            client,
            dlq_url: dlq_url.to_owned(),
            queue_url: queue_url.to_owned(),
        }
    }

    pub fn from_sdk_config(
        config: &aws_config::SdkConfig,
        dlq_url: &str,
        queue_url: &str,
    ) -> DeadLetters {
        DeadLetters::new(Client::new(config), dlq_url, queue_url)
    }

    /// Every message resting in the DLQ (left there).
    pub async fn list(&self) -> Result<Vec<ParkedJob>, AwsError> {
        let held = self.read_all().await?;
        for h in &held {
            self.let_go(&h.message).await?;
        }
        Ok(held.into_iter().map(|h| h.job).collect())
    }

    /// Moves the messages `filter` takes back to the job queue (their body and attributes,
    /// in their tenant's message group) and leaves the rest; the jobs moved.
    pub async fn redrive(&self, filter: &ParkedFilter) -> Result<Vec<ParkedJob>, AwsError> {
        let mut moved = Vec::new();
        for held in self.read_all().await? {
            if !filter.matches(&held.job) {
                self.let_go(&held.message).await?;
                continue;
            }
            self.send_back(&held).await?;
            self.delete(&held.message).await?;
            moved.push(held.job);
        }
        Ok(moved)
    }

    /// Reads until the DLQ answers nothing more (each message held while this runs).
    async fn read_all(&self) -> Result<Vec<Held>, AwsError> {
        let mut held = Vec::new();
        loop {
            let received = self
                .client
                .receive_message()
                .queue_url(&self.dlq_url)
                .max_number_of_messages(10)
                .visibility_timeout(HOLD_SECS)
                .message_attribute_names("All")
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ReceiveMessage", &e))?;
            let messages = received.messages.unwrap_or_default();
            if messages.is_empty() {
                return Ok(held);
            }
            held.extend(messages.into_iter().map(|message| Held {
                job: parked(&message),
                message,
            }));
        }
    }

    async fn send_back(&self, held: &Held) -> Result<(), AwsError> {
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(held.message.body.clone().unwrap_or_default())
            .set_message_attributes(held.message.message_attributes.clone());
        if let Some((tenant, _)) = &held.job.scope {
            request = request.message_group_id(tenant);
        }
        request
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("SendMessage", &e))?;
        Ok(())
    }

    async fn delete(&self, message: &Message) -> Result<(), AwsError> {
        let Some(handle) = &message.receipt_handle else {
            return Ok(());
        };
        self.client
            .delete_message()
            .queue_url(&self.dlq_url)
            .receipt_handle(handle)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("DeleteMessage", &e))?;
        Ok(())
    }

    /// Makes a held message visible again at once.
    async fn let_go(&self, message: &Message) -> Result<(), AwsError> {
        let Some(handle) = &message.receipt_handle else {
            return Ok(());
        };
        self.client
            .change_message_visibility()
            .queue_url(&self.dlq_url)
            .receipt_handle(handle)
            .visibility_timeout(0)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ChangeMessageVisibility", &e))?;
        Ok(())
    }
}

/// What a DLQ message is: its body's scope and kind, when it was first sent, its receives.
fn parked(message: &Message) -> ParkedJob {
    let attribute = |name: MessageSystemAttributeName| {
        message
            .attributes
            .as_ref()
            .and_then(|a| a.get(&name))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let (scope, kind) = describe_body(message.body.as_deref().unwrap_or_default());
    ParkedJob {
        message_id: message.message_id.clone().unwrap_or_default(),
        scope,
        kind,
        sent_at_ms: attribute(MessageSystemAttributeName::SentTimestamp).unwrap_or(0),
        receives: attribute(MessageSystemAttributeName::ApproximateReceiveCount)
            .and_then(|r| u32::try_from(r).ok())
            .unwrap_or(0),
        reason: None,
    }
}
