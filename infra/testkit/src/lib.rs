//! Test support: the moto AWS emulator, installed and started on demand, and isolated
//! resources (a uniquely named table, queues and secret prefix) for each test.
//!
//! `cargo test --workspace` needs nothing but `python3` on the machine: the first test that
//! asks for the emulator creates a virtualenv under the target directory and installs the
//! pinned `moto[server]` into it (guarded by a file lock, so test binaries starting at once do
//! it once), then starts `moto_server` on a free loopback port. Each test binary has its own
//! server, killed when the binary exits. If any of this fails, the test fails with the reason.
//!
//! Environment overrides: `FLEXRZP_PYTHON` (interpreter used to create the virtualenv),
//! `FLEXRZP_MOTO_VENV` (virtualenv directory).

mod counter;
pub mod http;
mod moto;
pub mod venv;

pub use counter::CallCounter;
pub use moto::{MOTO_REQUIREMENT, Moto, moto, target_dir};

use aws_config::{Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use shared::adapters::aws::Adapters;
use shared::adapters::aws::provision::{self, QueueSettings, Queues};
use shared::adapters::aws::queue::JobQueue;
use shared::adapters::aws::store::Store;
use shared::adapters::config::Config;

/// A short unique name for this test's resources.
pub fn unique_name(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &id[..12])
}

/// SDK config pointing at the emulator, with dummy credentials (never the machine's own).
pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    shared::adapters::aws::sdk_loader()
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "testkit"))
        .load()
        .await
}

/// One test's own AWS resources on the emulator.
pub struct TestEnv {
    pub sdk: SdkConfig,
    pub table: String,
    pub queues: Queues,
    /// A unique secret name prefix (`{prefix}/...`).
    pub secret_prefix: String,
}

impl TestEnv {
    /// A table and queues with the template's settings.
    pub async fn new() -> TestEnv {
        TestEnv::with_queue_settings(QueueSettings::default()).await
    }

    /// A table and queues with the given queue settings (e.g. a short visibility timeout).
    pub async fn with_queue_settings(settings: QueueSettings) -> TestEnv {
        let sdk = sdk_config(moto().endpoint()).await;
        let name = unique_name("flexrzp");
        let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
        provision::create_table(&dynamodb, &name)
            .await
            .unwrap_or_else(|e| panic!("creating table {name} on the emulator failed: {e:?}"));
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let queues = provision::create_queues(&sqs, &format!("{name}-jobs"), settings)
            .await
            .unwrap_or_else(|e| panic!("creating queues for {name} on the emulator failed: {e:?}"));
        TestEnv {
            sdk,
            secret_prefix: name.clone(),
            table: name,
            queues,
        }
    }

    /// The adapters a function builds at init, pointed at this test's resources.
    pub fn adapters(&self) -> Adapters {
        Adapters::new(
            &self.sdk,
            Config {
                table_name: self.table.clone(),
                job_queue_url: self.queues.url.clone(),
                secret_prefix: self.secret_prefix.clone(),
                razorpay_api_url: shared::adapters::razorpay::DEFAULT_BASE_URL.to_owned(),
                flexprice_api_url: shared::adapters::flexprice::DEFAULT_BASE_URL.to_owned(),
                retry: shared::domain::jobs::RetrySchedule::PRODUCTION,
            },
        )
    }

    pub fn store(&self) -> Store {
        Store::from_sdk_config(&self.sdk, &self.table)
    }

    pub fn job_queue(&self) -> JobQueue {
        JobQueue::from_sdk_config(&self.sdk, &self.queues.url)
    }

    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk)
    }

    pub fn secrets_manager(&self) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&self.sdk)
    }

    /// A Secrets Manager client whose calls `counter` records.
    pub fn counted_secrets_manager(&self, counter: &CallCounter) -> aws_sdk_secretsmanager::Client {
        let config = aws_sdk_secretsmanager::config::Builder::from(&self.sdk)
            .interceptor(counter.clone())
            .build();
        aws_sdk_secretsmanager::Client::from_conf(config)
    }

    /// A DynamoDB client whose calls `counter` records.
    pub fn counted_dynamodb(&self, counter: &CallCounter) -> aws_sdk_dynamodb::Client {
        let config = aws_sdk_dynamodb::config::Builder::from(&self.sdk)
            .interceptor(counter.clone())
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }
}

/// Every port over an in-memory fake: the table, the event claims, the secret store, Razorpay
/// and Flexprice. No emulator and no simulator: a service decision in milliseconds.
pub struct FakeStack {
    pub adapters: Adapters,
    pub table: std::sync::Arc<shared::adapters::memory::MemoryTable>,
    pub razorpay: std::sync::Arc<shared::adapters::memory::FakeRazorpay>,
    pub flexprice: std::sync::Arc<shared::adapters::memory::FakeFlexprice>,
    pub queue: std::sync::Arc<shared::adapters::memory::MemoryQueue>,
}

impl FakeStack {
    pub async fn new() -> FakeStack {
        use shared::adapters::memory::{
            FakeFlexprice, FakeRazorpay, MemoryClaims, MemoryEventLog, MemoryQueue, MemorySecrets,
            MemoryTable,
        };
        use std::sync::Arc;
        let sdk = sdk_config("http://127.0.0.1:9").await;
        let mut adapters = Adapters::new(
            &sdk,
            Config {
                table_name: "fake".into(),
                job_queue_url: "http://127.0.0.1:9/000000000000/fake".into(),
                secret_prefix: "fake".into(),
                razorpay_api_url: "http://127.0.0.1:9".into(),
                flexprice_api_url: "http://127.0.0.1:9".into(),
                retry: shared::domain::jobs::RetrySchedule::PRODUCTION,
            },
        );
        let table = Arc::new(MemoryTable::new());
        let razorpay = Arc::new(FakeRazorpay::new());
        let flexprice = Arc::new(FakeFlexprice::new());
        adapters.store = table.clone();
        adapters.idempotency = Arc::new(MemoryClaims::new(adapters.clock.clone()));
        adapters.events = Arc::new(MemoryEventLog::new(adapters.clock.clone()));
        adapters.secrets = Arc::new(MemorySecrets::new());
        let queue = Arc::new(MemoryQueue::new());
        adapters.queue = queue.clone();
        adapters.clients = Arc::new(shared::services::connection::ClientCache::fixed(
            shared::services::connection::Clients {
                key_id: "rzp_test_fake".into(),
                policy: Default::default(),
                razorpay: razorpay.clone(),
                flexprice: flexprice.clone(),
            },
        ));
        FakeStack {
            adapters,
            table,
            razorpay,
            flexprice,
            queue,
        }
    }

    /// Connects `scope` (credentials in the secret store, settings in the table), with invoice
    /// outbound sync as given.
    pub async fn connect(&self, scope: &shared::domain::keys::TenantScope, outbound_sync: bool) {
        self.connect_with(scope, outbound_sync, serde_json::json!({}))
            .await;
    }

    /// [`FakeStack::connect`], with `policy` (e.g. `{"overcollection": "refund"}`) added to
    /// the stored connection.
    pub async fn connect_with(
        &self,
        scope: &shared::domain::keys::TenantScope,
        outbound_sync: bool,
        policy: serde_json::Value,
    ) {
        use shared::adapters::aws::records::{self, ConnectionSettings};
        use shared::domain::secret::Secret;
        let mut secret = serde_json::json!({
            "key_id": "rzp_test_fake", "key_secret": "fake_secret",
            "webhook_secret": "whsec_fake", "flexprice_api_key": "fx_fake",
        });
        if let (Some(secret), Some(policy)) = (secret.as_object_mut(), policy.as_object()) {
            secret.extend(policy.clone());
        }
        let id = shared::services::connection::secret_id("fake", scope);
        self.adapters
            .secrets
            .put(&id, Secret::new(secret.to_string()))
            .await
            .unwrap_or_else(|e| panic!("fake secret: {e}"));
        let settings = ConnectionSettings {
            active: true,
            key_id: "rzp_test_fake".into(),
            invoice_outbound_sync: outbound_sync,
            razorpay_account_id: None,
            updated_at: 0,
        };
        records::put(
            self.adapters.store.as_ref(),
            &ConnectionSettings::key(scope),
            &settings,
        )
        .await
        .unwrap_or_else(|e| panic!("fake settings: {e}"));
    }
}

/// Adapters whose table and claims are in memory (the rest points nowhere), and the table.
pub async fn fake_adapters() -> (
    Adapters,
    std::sync::Arc<shared::adapters::memory::MemoryTable>,
) {
    let stack = FakeStack::new().await;
    (stack.adapters, stack.table)
}

/// Adapters over `sdk` whose every AWS call (DynamoDB, SQS, Secrets Manager) `counter` records.
pub fn counted_adapters(
    sdk: &SdkConfig,
    config: shared::adapters::config::Config,
    counter: &CallCounter,
) -> Adapters {
    Adapters::from_clients(
        config,
        aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(sdk)
                .interceptor(counter.clone())
                .build(),
        ),
        aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(sdk)
                .interceptor(counter.clone())
                .build(),
        ),
        aws_sdk_secretsmanager::Client::from_conf(
            aws_sdk_secretsmanager::config::Builder::from(sdk)
                .interceptor(counter.clone())
                .build(),
        ),
    )
}
