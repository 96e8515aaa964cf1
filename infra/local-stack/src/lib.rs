//! The whole system on one machine, without Docker or an AWS account: the moto AWS emulator
//! (installed like the test harness does), the table, job queue + DLQ and secrets of
//! `template.yaml`, both simulators, a local API gateway in front of the function handlers,
//! and an SQS poller feeding the worker. Seeds a demo tenant.

pub mod demo;
pub mod driver;
pub mod gateway;
pub mod logs;
pub mod poller;
pub mod redrive;
pub mod stress;
pub mod sweep;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use serde_json::{Value, json};
use shared::adapters::aws::Adapters;
use shared::adapters::aws::provision::{self, QueueSettings, Queues};
use shared::adapters::config::Config;
use shared::domain::jobs::RetrySchedule;
use shared::domain::keys::TenantScope;
use shared::domain::secret::Secret;
use simulators::common::new_id;

/// The local stack runs the production retry schedule this many times faster: a minute's
/// wait is a second, the 28 h budget about 28 minutes.
pub const LOCAL_RETRY_SCALE: u32 = 60;

pub const TENANT_ID: &str = "demo";
pub const ENVIRONMENT_ID: &str = "sandbox";
pub const RAZORPAY_KEY_ID: &str = "rzp_test_localdemo";

/// How to start the stack.
#[derive(Debug, Clone)]
pub struct Options {
    /// The gateway's port; 0 picks a free one.
    pub gateway_port: u16,
    pub api_key: Option<String>,
    pub webhook_secret: Option<String>,
    pub flexprice_webhook_secret: Option<String>,
    /// The Razorpay simulator's API key secret, the Flexprice simulator's API key and the
    /// Razorpay account id; random when not set.
    pub razorpay_key_secret: Option<String>,
    pub flexprice_api_key: Option<String>,
    pub razorpay_account_id: Option<String>,
    /// Shorter than the template's 180 s, so that redelivery and the DLQ show within seconds.
    pub visibility_timeout_secs: u32,
    /// Names the table, the queues and the secret prefix; stacks sharing one emulator (tests)
    /// need different ones.
    pub resource_prefix: String,
    /// The file the functions' log lines go to, when the caller installed [`logs::init`] for
    /// it (the `local-stack` command does); named in the READY line.
    pub log_file: Option<PathBuf>,
    /// Whether the stand-in for the template's sweep schedule runs: on for `local-stack up`,
    /// off by default so that a test decides when a sweep happens (`POST /_local/sweep`).
    pub scheduled_sweeps: bool,
}

impl Options {
    /// Defaults, overridden by `FLEXRZP_LOCAL_API_KEY`, `FLEXRZP_LOCAL_WEBHOOK_SECRET` and
    /// `FLEXRZP_LOCAL_FLEXPRICE_WEBHOOK_SECRET`.
    pub fn from_env(gateway_port: u16) -> Options {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Options {
            gateway_port,
            api_key: var("FLEXRZP_LOCAL_API_KEY"),
            webhook_secret: var("FLEXRZP_LOCAL_WEBHOOK_SECRET"),
            flexprice_webhook_secret: var("FLEXRZP_LOCAL_FLEXPRICE_WEBHOOK_SECRET"),
            razorpay_key_secret: None,
            flexprice_api_key: None,
            razorpay_account_id: None,
            visibility_timeout_secs: 1,
            resource_prefix: "flexrzp-local".to_owned(),
            log_file: None,
            scheduled_sweeps: false,
        }
    }

    /// The documented local test identity the files in `events/` are made for (see
    /// `events/README.md`): fixed keys and secrets, for local runs only.
    pub fn events(gateway_port: u16) -> Options {
        Options {
            api_key: Some(events::API_KEY.to_owned()),
            webhook_secret: Some(events::WEBHOOK_SECRET.to_owned()),
            flexprice_webhook_secret: Some(events::FLEXPRICE_WEBHOOK_SECRET.to_owned()),
            razorpay_key_secret: Some(events::RAZORPAY_KEY_SECRET.to_owned()),
            flexprice_api_key: Some(events::FLEXPRICE_API_KEY.to_owned()),
            razorpay_account_id: Some(events::RAZORPAY_ACCOUNT_ID.to_owned()),
            ..Options::from_env(gateway_port)
        }
    }
}

/// The local test identity of `events/` (never to be configured on a real account).
pub mod events {
    pub const API_KEY: &str = "fxr_local_events_key_do_not_use_in_production_00";
    pub const WEBHOOK_SECRET: &str = "flexrzp_local_webhook_secret";
    pub const FLEXPRICE_WEBHOOK_SECRET: &str = "whsec_ZmxleHJ6cF9sb2NhbF9mbGV4cHJpY2Vfc2VjcmV0";
    pub const RAZORPAY_KEY_SECRET: &str = "flexrzp_local_razorpay_key_secret";
    pub const FLEXPRICE_API_KEY: &str = "fp_flexrzp_local_api_key";
    pub const RAZORPAY_ACCOUNT_ID: &str = "acc_FlexrzpLocal01";
}

/// The ids of the seeded Flexprice invoices (INR, then USD).
pub const SEEDED_INVOICES: [&str; 2] = ["inv_local_inr_0001", "inv_local_usd_0001"];

/// What the READY line tells (a public interface: keep it stable).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Ready {
    pub gateway_url: String,
    pub razorpay_sim_url: String,
    pub flexprice_sim_url: String,
    pub tenant_id: String,
    pub environment_id: String,
    pub api_key: String,
    pub webhook_secret: String,
    pub flexprice_webhook_secret: String,
    pub customer_id: String,
    pub invoice_ids: Vec<String>,
    /// What a function process needs to run against this stack (e.g. under
    /// `cargo lambda watch`): the emulator's endpoint and the resources' names.
    pub aws_endpoint_url: String,
    pub table_name: String,
    pub job_queue_url: String,
    pub secret_prefix: String,
    /// The file holding every function's JSON log lines (null when the caller keeps the logs
    /// itself, as the tests do).
    pub log_file: Option<String>,
}

impl Ready {
    /// The environment a function process needs to run against this stack, as Lambda (and
    /// `template.yaml`) would give it: the emulator, dummy credentials, the resources, the APIs.
    pub fn function_env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.aws_endpoint_url.as_str()),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("TABLE_NAME", self.table_name.as_str()),
            ("JOB_QUEUE_URL", self.job_queue_url.as_str()),
            ("SECRET_PREFIX", self.secret_prefix.as_str()),
            ("RAZORPAY_API_URL", self.razorpay_sim_url.as_str()),
            ("FLEXPRICE_API_URL", self.flexprice_sim_url.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }
}

/// A running stack. Dropping it stops the servers and the poller; moto stops with the process.
pub struct LocalStack {
    pub ready: Ready,
    pub adapters: Arc<Adapters>,
    pub queues: Queues,
    pub razorpay: simulators::razorpay::Simulator,
    pub flexprice: simulators::flexprice::Simulator,
    pub flexprice_api_key: String,
    pub razorpay_key_secret: String,
    pub poller: Arc<poller::PollerStats>,
    pub sdk: aws_config::SdkConfig,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn random(len: usize) -> String {
    new_id("")
        .chars()
        .chain(new_id("").chars())
        .chain(new_id("").chars())
        .take(len)
        .collect()
}

/// The credentials of the demo tenant and of the simulated accounts: given, or random.
struct Identity {
    api_key: String,
    webhook_secret: String,
    flexprice_webhook_secret: String,
    razorpay_key_secret: String,
    flexprice_api_key: String,
    razorpay_account_id: Option<String>,
}

impl Identity {
    fn from_options(options: &Options) -> Identity {
        let given = |value: &Option<String>| value.clone();
        Identity {
            api_key: given(&options.api_key).unwrap_or_else(|| format!("fxr_{}", random(32))),
            webhook_secret: given(&options.webhook_secret).unwrap_or_else(|| random(24)),
            flexprice_webhook_secret: given(&options.flexprice_webhook_secret).unwrap_or_else(
                || {
                    let key = base64::engine::general_purpose::STANDARD.encode(random(24));
                    format!("whsec_{key}")
                },
            ),
            razorpay_key_secret: given(&options.razorpay_key_secret).unwrap_or_else(|| random(24)),
            flexprice_api_key: given(&options.flexprice_api_key)
                .unwrap_or_else(|| format!("fp_{}", random(24))),
            razorpay_account_id: options.razorpay_account_id.clone(),
        }
    }
}

/// The emulator (started once per process) and an SDK config pointing at it.
async fn emulator() -> Result<(String, aws_config::SdkConfig), String> {
    let moto = tokio::task::spawn_blocking(|| testkit::moto().endpoint().to_owned())
        .await
        .map_err(|e| format!("the moto emulator did not start: {e}"))?;
    let sdk = testkit::sdk_config(&moto).await;
    Ok((moto, sdk))
}

/// The table and the job queue with its DLQ, as `template.yaml` makes them.
async fn provision_resources(
    sdk: &aws_config::SdkConfig,
    table: &str,
    visibility_timeout_secs: u32,
) -> Result<Queues, String> {
    provision::create_table(&aws_sdk_dynamodb::Client::new(sdk), table)
        .await
        .map_err(|e| format!("creating the table: {e:?}"))?;
    let settings = QueueSettings {
        visibility_timeout_secs,
        ..QueueSettings::default()
    };
    provision::create_queues(
        &aws_sdk_sqs::Client::new(sdk),
        &format!("{table}-jobs"),
        settings,
    )
    .await
    .map_err(|e| format!("creating the queues: {e:?}"))
}

/// The gateway's socket, and its URL.
async fn bind_gateway(port: u16) -> Result<(tokio::net::TcpListener, String), String> {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await
        .map_err(|e| format!("the gateway cannot listen on port {port}: {e}"))?;
    let url = format!(
        "http://{}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    Ok((listener, url))
}

/// Both simulators, Razorpay's sending its webhooks to the gateway. Flexprice's webhooks are
/// switched on later, once the seeded invoices exist: those were finalized before the tenant
/// connected, as in an account that adopts the integration (they sync on request).
async fn start_simulators(
    identity: &Identity,
    gateway_url: &str,
) -> Result<
    (
        simulators::razorpay::RunningSim,
        simulators::flexprice::RunningSim,
    ),
    String,
> {
    let mut config =
        simulators::razorpay::SimConfig::new(RAZORPAY_KEY_ID, &identity.razorpay_key_secret);
    if let Some(account_id) = &identity.razorpay_account_id {
        config.account_id = account_id.clone();
    }
    config.webhook = Some(simulators::razorpay::WebhookTarget {
        url: format!("{gateway_url}/v1/webhooks/razorpay/{TENANT_ID}/{ENVIRONMENT_ID}"),
        secret: Secret::new(identity.webhook_secret.clone()),
    });
    let localhost = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let razorpay = simulators::razorpay::Simulator::new(config)?
        .serve(localhost)
        .await
        .map_err(|e| e.to_string())?;
    let flexprice = simulators::flexprice::Simulator::new(&identity.flexprice_api_key, None)?
        .serve(localhost)
        .await
        .map_err(|e| e.to_string())?;
    Ok((razorpay, flexprice))
}

/// The gateway (the functions' routes, and the local DLQ redrive) on its socket.
fn serve_gateway(
    listener: tokio::net::TcpListener,
    adapters: Arc<Adapters>,
    sqs: &aws_sdk_sqs::Client,
    queues: &Queues,
) -> tokio::task::JoinHandle<()> {
    let router = redrive::router(redrive::Queues {
        sqs: sqs.clone(),
        queue_url: queues.url.clone(),
        dlq_url: queues.dlq_url.clone(),
    })
    .merge(sweep::router(adapters.clone()))
    .merge(gateway::router(adapters));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "the gateway stopped");
        }
    })
}

/// Points the Flexprice simulator's webhooks at the gateway (once the seeded invoices exist:
/// those were finalized before the tenant connected, as in an account that adopts the
/// integration; they sync on request).
fn send_flexprice_webhooks(
    flexprice: &simulators::flexprice::Simulator,
    gateway_url: &str,
    identity: &Identity,
) {
    flexprice.set_webhook_target(Some(simulators::flexprice::WebhookTarget {
        url: format!("{gateway_url}/v1/webhooks/flexprice/{TENANT_ID}/{ENVIRONMENT_ID}"),
        secret: Secret::new(identity.flexprice_webhook_secret.clone()),
    }));
}

/// The SQS poller feeding the worker, and what it counts.
fn start_poller(
    adapters: Arc<Adapters>,
    sqs: aws_sdk_sqs::Client,
    queues: &Queues,
) -> (tokio::task::JoinHandle<()>, Arc<poller::PollerStats>) {
    let stats = Arc::new(poller::PollerStats::default());
    let task = tokio::spawn(poller::run(
        adapters,
        sqs,
        queues.url.clone(),
        queues.arn.clone(),
        stats.clone(),
    ));
    (task, stats)
}

impl LocalStack {
    /// How many messages `queue_url` holds, waiting or in flight (`None`: SQS did not answer).
    pub async fn messages_in(&self, queue_url: &str) -> Option<u64> {
        use aws_sdk_sqs::types::QueueAttributeName::{
            ApproximateNumberOfMessages, ApproximateNumberOfMessagesNotVisible,
        };
        let answer = aws_sdk_sqs::Client::new(&self.sdk)
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(ApproximateNumberOfMessages)
            .attribute_names(ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .ok()?;
        let attributes = answer.attributes?;
        let number = |name| {
            attributes
                .get(&name)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Some(number(ApproximateNumberOfMessages) + number(ApproximateNumberOfMessagesNotVisible))
    }

    pub async fn start(options: Options) -> Result<LocalStack, String> {
        let (moto, sdk) = emulator().await?;
        let table = options.resource_prefix.clone();
        let secret_prefix = format!("{table}/secrets");
        let queues = provision_resources(&sdk, &table, options.visibility_timeout_secs).await?;
        let (listener, gateway_url) = bind_gateway(options.gateway_port).await?;
        let identity = Identity::from_options(&options);
        let (razorpay, flexprice) = start_simulators(&identity, &gateway_url).await?;
        // The functions call the simulators as they would call Razorpay and Flexprice.
        let config = Config {
            table_name: table.clone(),
            job_queue_url: queues.url.clone(),
            secret_prefix: secret_prefix.clone(),
            razorpay_api_url: razorpay.url.clone(),
            flexprice_api_url: flexprice.url.clone(),
            retry: RetrySchedule::PRODUCTION.scaled(LOCAL_RETRY_SCALE),
        };
        let adapters = Arc::new(Adapters::new(&sdk, config));
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let gateway = serve_gateway(listener, adapters.clone(), &sqs, &queues);
        let mut tasks = vec![gateway, razorpay.task, flexprice.task];
        if options.scheduled_sweeps {
            tasks.push(sweep::schedule(adapters.clone()));
        }
        let (customer_id, invoice_ids) =
            seed_flexprice(&flexprice.url, &identity.flexprice_api_key).await?;
        seed_tenant(&adapters, &identity, &razorpay.sim.account_id()).await?;
        send_flexprice_webhooks(&flexprice.sim, &gateway_url, &identity);
        let (poller, stats) = start_poller(adapters.clone(), sqs, &queues);
        tasks.push(poller);
        Ok(LocalStack {
            ready: Ready {
                gateway_url,
                razorpay_sim_url: razorpay.url,
                flexprice_sim_url: flexprice.url,
                tenant_id: TENANT_ID.into(),
                environment_id: ENVIRONMENT_ID.into(),
                api_key: identity.api_key,
                webhook_secret: identity.webhook_secret,
                flexprice_webhook_secret: identity.flexprice_webhook_secret,
                customer_id,
                invoice_ids,
                aws_endpoint_url: moto,
                table_name: table,
                job_queue_url: queues.url.clone(),
                secret_prefix,
                log_file: options.log_file.map(|path| path.display().to_string()),
            },
            adapters,
            queues,
            razorpay: razorpay.sim,
            flexprice: flexprice.sim,
            flexprice_api_key: identity.flexprice_api_key,
            razorpay_key_secret: identity.razorpay_key_secret,
            poller: stats,
            sdk,
            tasks,
        })
    }

    /// `READY {json}`.
    pub fn ready_line(&self) -> String {
        format!(
            "READY {}",
            serde_json::to_string(&self.ready).unwrap_or_default()
        )
    }
}

/// A Flexprice customer and two finalized invoices, INR and USD, each owing over 1,000.00.
async fn seed_flexprice(url: &str, api_key: &str) -> Result<(String, Vec<String>), String> {
    let http = shared::adapters::http::client(shared::adapters::http::Timeouts::default())
        .map_err(|e| e.to_string())?;
    let post = |path: String, body: Value| {
        let http = http.clone();
        let request = http
            .post(format!("{url}{path}"))
            .header("x-api-key", api_key)
            .json(&body);
        async move {
            let response = request.send().await.map_err(|e| e.to_string())?;
            if !response.status().is_success() {
                return Err(format!(
                    "seeding Flexprice: {path} answered {}",
                    response.status()
                ));
            }
            response.json::<Value>().await.map_err(|e| e.to_string())
        }
    };
    let customer = post(
        "/v1/customers".into(),
        json!({"external_id": "demo-customer-1", "name": "Ada Lovelace",
        "email": "ada@example.com", "contact": "+919876543210"}),
    )
    .await?;
    let customer_id = customer["id"].as_str().unwrap_or_default().to_owned();
    let invoices = [
        json!({"customer_id": customer_id, "currency": "inr", "due_date": "2026-12-31T00:00:00Z",
            "line_items": [
                {"display_name": "Pro plan", "entity_type": "plan", "amount": "999.00"},
                {"display_name": "API calls (12,050)", "entity_type": "usage", "amount": "120.50"},
                {"display_name": "Seats", "entity_type": "addon", "amount": "300.00", "quantity": 3}],
            "taxes": [{"name": "GST 18%", "amount": "255.51"}]}),
        json!({"customer_id": customer_id, "currency": "usd", "due_date": "2026-12-31T00:00:00Z",
            "line_items": [
                {"display_name": "Growth plan", "entity_type": "plan", "amount": "900.00"},
                {"display_name": "Overage", "entity_type": "usage", "amount": "250.75"},
                {"display_name": "Priority support", "entity_type": "addon", "amount": "99.25"}],
            "total_discount": "25.00"}),
    ];
    let mut ids = Vec::new();
    for (mut invoice, id) in invoices.into_iter().zip(SEEDED_INVOICES) {
        invoice["id"] = json!(id);
        let created = post("/v1/invoices".into(), invoice).await?;
        let id = created["id"].as_str().unwrap_or_default().to_owned();
        post(format!("/v1/invoices/{id}/finalize"), json!({})).await?;
        ids.push(id);
    }
    Ok((customer_id, ids))
}

/// The demo tenant: its API key, and its Razorpay connection made through the connection
/// service (which checks the credentials against the Razorpay simulator).
async fn seed_tenant(
    adapters: &Adapters,
    identity: &Identity,
    razorpay_account_id: &str,
) -> Result<(), String> {
    let scope = TenantScope::new(TENANT_ID, ENVIRONMENT_ID).map_err(|e| e.to_string())?;
    shared::services::apikeys::create(
        adapters.store.as_ref(),
        &shared::ports::SystemClock,
        &scope,
        "local stack",
        Some(identity.api_key.clone()),
    )
    .await
    .map_err(|e| e.to_string())?;
    let connection = json!({
        "key_id": RAZORPAY_KEY_ID, "key_secret": identity.razorpay_key_secret,
        "webhook_secret": identity.webhook_secret, "flexprice_api_key": identity.flexprice_api_key,
        "flexprice_webhook_secret": identity.flexprice_webhook_secret,
        "invoice_outbound_sync": true, "razorpay_account_id": razorpay_account_id,
    });
    let request = shared::api::requests::ConnectionRequest::parse(
        Some("application/json"),
        connection.to_string().as_bytes(),
    )
    .map_err(|problem| format!("the demo tenant's connection: {}", problem.detail))?;
    shared::services::connection::put(adapters, &scope, request)
        .await
        .map(|_| ())
        .map_err(|refusal| format!("connecting the demo tenant: {refusal}"))
}
