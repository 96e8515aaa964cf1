//! Adapters over the AWS SDK for Rust. The endpoint comes from the standard `AWS_ENDPOINT_URL`,
//! so the same code runs on AWS and against the local emulator.

pub mod dlq;
pub mod event_log;
pub mod idempotency;
pub mod provision;
pub mod queue;
pub mod records;
pub mod secrets;
pub mod store;

use aws_config::{BehaviorVersion, ConfigLoader, SdkConfig};
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;

use crate::domain::error::ErrorClass;

/// The SDK config loader every client is built from: the standard environment chain, with the
/// one TLS stack of this build (rustls on ring).
pub fn sdk_loader() -> ConfigLoader {
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest()).http_client(http_client)
}

/// Loads the SDK config from the environment (region, credentials, endpoint) through the
/// standard chain (profiles, SSO, assumed roles...): what the operator's tools use.
pub async fn load_sdk_config() -> SdkConfig {
    sdk_loader().load().await
}

/// The SDK config of a Lambda function, from the variables Lambda sets: `AWS_REGION`, the
/// execution role's keys (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`)
/// and `AWS_ENDPOINT_URL` when set (the local stack); standard retries, the connect timeout
/// of the standard chain, the same TLS stack. Building it by hand leaves the chain's profile,
/// SSO, STS and IMDS providers out of the functions' binaries.
pub fn lambda_sdk_config() -> Result<SdkConfig, crate::adapters::config::ConfigError> {
    use aws_config::environment::EnvironmentVariableCredentialsProvider;
    use aws_sdk_dynamodb::config::SharedCredentialsProvider;
    use aws_smithy_types::retry::RetryConfig;
    use aws_smithy_types::timeout::TimeoutConfig;
    let variable = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let region = variable("AWS_REGION")
        .or_else(|| variable("AWS_DEFAULT_REGION"))
        .ok_or(crate::adapters::config::ConfigError::Missing { name: "AWS_REGION" })?;
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_millis(3100))
        .build();
    let mut config = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(aws_config::Region::new(region))
        .credentials_provider(SharedCredentialsProvider::new(
            EnvironmentVariableCredentialsProvider::new(),
        ))
        .http_client(http_client)
        .retry_config(RetryConfig::standard())
        .timeout_config(timeouts);
    if let Some(endpoint) = variable("AWS_ENDPOINT_URL") {
        config = config.endpoint_url(endpoint);
    }
    Ok(config.build())
}

/// A failed AWS call: which operation, whether trying again can help, and the service's own
/// code and message (AWS error messages carry no secret values).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} failed: {message}")]
pub struct AwsError {
    pub operation: &'static str,
    pub class: ErrorClass,
    pub message: String,
}

impl AwsError {
    pub(crate) fn from_sdk<E>(operation: &'static str, err: &SdkError<E, HttpResponse>) -> AwsError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        AwsError {
            operation,
            class: classify_sdk_error(err),
            message: describe_sdk_error(err),
        }
    }

    /// A request the SDK refused to build (a missing required field): never retryable.
    pub(crate) fn build(operation: &'static str, err: impl std::fmt::Display) -> AwsError {
        AwsError {
            operation,
            class: ErrorClass::Permanent,
            message: err.to_string(),
        }
    }
}

impl crate::domain::error::Classify for AwsError {
    fn class(&self) -> ErrorClass {
        self.class
    }
}

/// Service error codes that mean "try again later" whatever the HTTP status says.
const RETRYABLE_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TransactionConflictException",
    "TransactionInProgressException",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "RequestThrottled",
    "KMSThrottlingException",
];

/// Retryable or permanent, for any SDK error: transport failures, timeouts, throttling and
/// 5xx can succeed later; a request the service refused as invalid will not.
fn classify_sdk_error<E>(err: &SdkError<E, HttpResponse>) -> ErrorClass
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::ConstructionFailure(_) => ErrorClass::Permanent,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            ErrorClass::Retryable
        }
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            let status = service.raw().status().as_u16();
            if RETRYABLE_CODES.contains(&code) || status >= 500 || status == 429 {
                ErrorClass::Retryable
            } else {
                ErrorClass::Permanent
            }
        }
        _ => ErrorClass::Retryable,
    }
}

/// A one-line description of an SDK error (code and message; AWS error messages carry no
/// secret values).
pub fn describe_sdk_error<E, R>(err: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match err {
        SdkError::ServiceError(service) => format!(
            "{}: {}",
            service.err().code().unwrap_or("unknown"),
            service.err().message().unwrap_or("no message")
        ),
        other => aws_smithy_types::error::display::DisplayErrorContext(other).to_string(),
    }
}

/// Every adapter a function needs, built once at Lambda init from the environment. Building
/// them makes no network call: the SDK clients connect on first use.
#[derive(Clone)]
pub struct Adapters {
    pub config: crate::adapters::config::Config,
    /// The table, as the services see it (the port: DynamoDB here, a fake in service tests).
    pub store: std::sync::Arc<dyn crate::ports::Table>,
    /// The job queue (the port: SQS here, a fake in service tests).
    pub queue: std::sync::Arc<dyn crate::ports::Queue>,
    /// The tenants' credentials (the port: Secrets Manager with a cache here, a fake in
    /// service tests).
    pub secrets: std::sync::Arc<dyn crate::ports::SecretStore>,
    /// Claims on work that must happen once (the port: DynamoDB here, a fake in service tests).
    pub idempotency: std::sync::Arc<dyn crate::ports::Claims>,
    /// The webhook events received and what became of them (the port: DynamoDB here, a fake
    /// in service tests).
    pub events: std::sync::Arc<dyn crate::ports::EventLog>,
    pub clock: std::sync::Arc<dyn crate::ports::Clock>,
    /// The tenants' Razorpay and Flexprice clients, kept while the instance lives.
    pub clients: std::sync::Arc<crate::services::connection::ClientCache>,
}

/// How long a secret is served from memory before it is read again (the AWS Parameters and
/// Secrets extension's default and maximum).
pub const SECRETS_TTL: std::time::Duration = std::time::Duration::from_secs(300);

impl Adapters {
    pub fn new(sdk: &SdkConfig, config: crate::adapters::config::Config) -> Adapters {
        Adapters::from_clients(
            config,
            aws_sdk_dynamodb::Client::new(sdk),
            aws_sdk_sqs::Client::new(sdk),
            aws_sdk_secretsmanager::Client::new(sdk),
        )
    }

    /// From ready SDK clients (tests give clients that count their calls).
    pub fn from_clients(
        config: crate::adapters::config::Config,
        dynamodb: aws_sdk_dynamodb::Client,
        sqs: aws_sdk_sqs::Client,
        secrets_manager: aws_sdk_secretsmanager::Client,
    ) -> Adapters {
        let clock = std::sync::Arc::new(crate::ports::SystemClock);
        Adapters::with_clock(config, dynamodb, sqs, secrets_manager, clock)
    }

    /// From ready SDK clients, every adapter on `clock` (tests move time past a lock).
    pub fn with_clock(
        config: crate::adapters::config::Config,
        dynamodb: aws_sdk_dynamodb::Client,
        sqs: aws_sdk_sqs::Client,
        secrets_manager: aws_sdk_secretsmanager::Client,
        clock: std::sync::Arc<dyn crate::ports::Clock>,
    ) -> Adapters {
        let store = store::Store::new(dynamodb, &config.table_name);
        Adapters {
            queue: std::sync::Arc::new(queue::JobQueue::new(sqs, &config.job_queue_url)),
            secrets: std::sync::Arc::new(secrets::SecretsCache::new(
                secrets_manager,
                SECRETS_TTL,
                clock.clone(),
            )),
            idempotency: std::sync::Arc::new(idempotency::Idempotency::new(
                store.clone(),
                clock.clone(),
            )),
            events: std::sync::Arc::new(event_log::DynamoEventLog::new(
                store.clone(),
                clock.clone(),
            )),
            store: std::sync::Arc::new(store),
            clock,
            config,
            clients: std::sync::Arc::default(),
        }
    }

    /// Reads the config from the environment and loads the SDK config.
    pub async fn from_env() -> Result<Adapters, crate::adapters::config::ConfigError> {
        let config = crate::adapters::config::Config::from_env()?;
        let sdk = lambda_sdk_config()?;
        Ok(Adapters::new(&sdk, config))
    }
}
