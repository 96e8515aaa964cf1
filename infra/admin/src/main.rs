//! `flexrzp-admin`: creates and revokes API keys for a tenant/environment, and works the
//! dead-letter queue.
//!
//! ```text
//! flexrzp-admin api-key create --tenant T --environment E [--label L]
//! flexrzp-admin api-key revoke --tenant T --environment E --key-id ID
//! flexrzp-admin jobs parked [--tenant T] [--kind K]
//! flexrzp-admin jobs redrive [--tenant T] [--kind K]
//! ```
//!
//! Uses the normal AWS environment (region, credentials, `AWS_ENDPOINT_URL` for the local
//! stack's emulator), `TABLE_NAME`, and for `jobs` `JOB_QUEUE_URL` and `DLQ_URL` (the stack's
//! `JobQueueUrl` and `DeadLetterQueueUrl` outputs). A created key is printed once; only its
//! hash is stored.

use std::process::ExitCode;

use shared::adapters::aws::dlq::DeadLetters;
use shared::adapters::aws::store::Store;
use shared::domain::jobs::{ParkedFilter, ParkedJob};
use shared::domain::keys::TenantScope;
use shared::ports::{Clock, SystemClock};
use shared::services::{apikeys, parked};

const USAGE: &str = "usage:
  flexrzp-admin api-key create --tenant T --environment E [--label L]
  flexrzp-admin api-key revoke --tenant T --environment E --key-id ID
  flexrzp-admin jobs parked [--tenant T] [--kind K]
  flexrzp-admin jobs redrive [--tenant T] [--kind K]
environment: TABLE_NAME (and for jobs JOB_QUEUE_URL, DLQ_URL), and the AWS region,
credentials and (optionally) AWS_ENDPOINT_URL";

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.windows(2)
        .find(|pair| pair[0] == name)
        .map(|pair| pair[1].as_str())
}

fn env(name: &str) -> Result<String, String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| format!("environment variable {name} is not set"))
}

async fn run(args: &[String]) -> Result<String, String> {
    match args {
        [group, command, rest @ ..] if group == "api-key" => api_key(command, rest).await,
        [group, command, rest @ ..] if group == "jobs" => jobs(command, rest).await,
        _ => Err(USAGE.to_owned()),
    }
}

async fn api_key(command: &str, rest: &[String]) -> Result<String, String> {
    let required =
        |name: &str| flag(rest, name).ok_or_else(|| format!("{name} is required\n{USAGE}"));
    let scope = TenantScope::new(required("--tenant")?, required("--environment")?)
        .map_err(|e| e.to_string())?;
    let table = env("TABLE_NAME")?;
    let store = Store::from_sdk_config(&shared::adapters::aws::load_sdk_config().await, table);
    match command {
        "create" => {
            let label = flag(rest, "--label").unwrap_or("");
            let key = apikeys::create(&store, &SystemClock, &scope, label, None)
                .await
                .map_err(|e| e.to_string())?;
            Ok(format!(
                "key_id: {}\napi_key: {}\n(the key is shown this once; only its hash is stored)",
                key.key_id,
                key.key.expose()
            ))
        }
        "revoke" => {
            let key_id = required("--key-id")?;
            apikeys::revoke(&store, &scope, key_id)
                .await
                .map_err(|e| e.to_string())?;
            Ok(format!(
                "revoked key {key_id} of {}/{}",
                scope.tenant_id(),
                scope.environment_id()
            ))
        }
        other => Err(format!("unknown command api-key {other}\n{USAGE}")),
    }
}

async fn jobs(command: &str, rest: &[String]) -> Result<String, String> {
    let filter = ParkedFilter {
        tenant_id: flag(rest, "--tenant").map(str::to_owned),
        kind: flag(rest, "--kind").map(str::to_owned),
    };
    let config = shared::adapters::aws::load_sdk_config().await;
    let dead_letters =
        DeadLetters::from_sdk_config(&config, &env("DLQ_URL")?, &env("JOB_QUEUE_URL")?);
    let now_ms = SystemClock.now_millis();
    match command {
        "parked" => {
            let store = Store::from_sdk_config(&config, env("TABLE_NAME")?);
            let jobs = parked::list(&store, &dead_letters, &filter).await?;
            let mut lines = vec![format!("{} parked", jobs.len())];
            lines.extend(jobs.iter().map(|j| line(j, now_ms)));
            Ok(lines.join("\n"))
        }
        "redrive" => {
            let moved = parked::redrive(&dead_letters, &filter).await?;
            let mut lines = vec![format!("{} moved back to the job queue", moved.len())];
            lines.extend(moved.iter().map(|j| line(j, now_ms)));
            Ok(lines.join("\n"))
        }
        other => Err(format!("unknown command jobs {other}\n{USAGE}")),
    }
}

/// What a parked job without a kept reason shows: its invocation most likely ended before it
/// could answer.
const NO_REASON: &str = "(none recorded: the invocation ended before answering, as on a panic, \
     a timeout or running out of memory; search the worker's log for the message id)";

/// One parked job: message id, scope, kind, age, receives, reason.
fn line(job: &ParkedJob, now_ms: u64) -> String {
    let scope = job
        .scope
        .as_ref()
        .map_or("-".to_owned(), |(t, e)| format!("{t}/{e}"));
    let age_secs = now_ms.saturating_sub(job.sent_at_ms) / 1000;
    let age = format!(
        "{}h{:02}m{:02}s",
        age_secs / 3600,
        age_secs / 60 % 60,
        age_secs % 60
    );
    format!(
        "{}  {scope}  {}  age {age}  receives {}  reason: {}",
        job.message_id,
        job.kind,
        job.receives,
        job.reason.as_deref().unwrap_or(NO_REASON)
    )
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args).await {
        Ok(output) => {
            println!("{output}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("flexrzp-admin: {message}");
            ExitCode::from(2)
        }
    }
}
