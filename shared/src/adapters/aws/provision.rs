//! Creates the table and queues exactly as `template.yaml` defines them, for the local stack
//! and the tests (on AWS, CloudFormation does this).

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;

use super::store::{
    EXPIRES_AT, INVOICE_INDEX, INVOICE_PK, INVOICE_SK, LOG_INDEX, LOG_PK, LOG_SK, PK, SK,
};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Creates the table: `pk`/`sk` strings, on-demand billing, TTL on `expires_at`, the `log`
/// index (`log_pk`/`log_sk`) the webhook event log lists by and the `invoice` index
/// (`inv_pk`/`inv_sk`) an invoice's timeline reads its events from, every attribute projected.
pub async fn create_table(client: &aws_sdk_dynamodb::Client, name: &str) -> Result<(), BoxError> {
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
    };
    let key = |name: &str, key_type| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
    };
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr(PK)?)
        .attribute_definitions(attr(SK)?)
        .key_schema(key(PK, KeyType::Hash)?)
        .key_schema(key(SK, KeyType::Range)?)
        .attribute_definitions(attr(LOG_PK)?)
        .attribute_definitions(attr(LOG_SK)?)
        .attribute_definitions(attr(INVOICE_PK)?)
        .attribute_definitions(attr(INVOICE_SK)?)
        .global_secondary_indexes(index(LOG_INDEX, LOG_PK, LOG_SK)?)
        .global_secondary_indexes(index(INVOICE_INDEX, INVOICE_PK, INVOICE_SK)?)
        .send()
        .await?;
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(EXPIRES_AT)
                .build()?,
        )
        .send()
        .await?;
    Ok(())
}

/// A global secondary index on two string keys, every attribute projected.
fn index(name: &str, hash: &str, range: &str) -> Result<GlobalSecondaryIndex, BoxError> {
    let key = |name: &str, key_type| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
    };
    let all = Projection::builder()
        .projection_type(ProjectionType::All)
        .build();
    Ok(GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key(hash, KeyType::Hash)?)
        .key_schema(key(range, KeyType::Range)?)
        .projection(all)
        .build()?)
}

/// The job queue and its dead-letter queue.
#[derive(Debug, Clone)]
pub struct Queues {
    pub url: String,
    pub arn: String,
    pub dlq_url: String,
    pub dlq_arn: String,
}

/// Queue settings; the template's values are the defaults.
#[derive(Debug, Clone, Copy)]
pub struct QueueSettings {
    pub max_receive_count: u32,
    pub visibility_timeout_secs: u32,
    pub retention_secs: u32,
    pub dlq_retention_secs: u32,
}

impl Default for QueueSettings {
    fn default() -> QueueSettings {
        QueueSettings {
            max_receive_count: crate::domain::jobs::RetrySchedule::PRODUCTION.max_receives,
            visibility_timeout_secs: 180,
            retention_secs: 4 * 24 * 3600,
            dlq_retention_secs: 14 * 24 * 3600,
        }
    }
}

/// Creates `{name}` with a redrive policy to `{name}-dlq`.
pub async fn create_queues(
    client: &aws_sdk_sqs::Client,
    name: &str,
    settings: QueueSettings,
) -> Result<Queues, BoxError> {
    let dlq_url = client
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .attributes(
            QueueAttributeName::MessageRetentionPeriod,
            settings.dlq_retention_secs.to_string(),
        )
        .send()
        .await?
        .queue_url
        .ok_or("CreateQueue returned no URL")?;
    let dlq_arn = queue_arn(client, &dlq_url).await?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": settings.max_receive_count.to_string(),
    });
    let url = client
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            settings.visibility_timeout_secs.to_string(),
        )
        .attributes(
            QueueAttributeName::MessageRetentionPeriod,
            settings.retention_secs.to_string(),
        )
        .send()
        .await?
        .queue_url
        .ok_or("CreateQueue returned no URL")?;
    let arn = queue_arn(client, &url).await?;
    Ok(Queues {
        url,
        arn,
        dlq_url,
        dlq_arn,
    })
}

async fn queue_arn(client: &aws_sdk_sqs::Client, url: &str) -> Result<String, BoxError> {
    let arn = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or("GetQueueAttributes returned no QueueArn")?;
    Ok(arn)
}
