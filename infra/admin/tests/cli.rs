//! `flexrzp-admin` against the emulator: a created key authenticates; revoked, it does not;
//! parked jobs are listed with their reasons and moved back by tenant.

use std::process::Command;

use shared::domain::jobs::{Job, JobFailure, Task};
use shared::domain::keys::TenantScope;
use shared::services::{apikeys, parked};
use testkit::TestEnv;

fn admin(env: &TestEnv, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_flexrzp-admin"))
        .args(args)
        .env("TABLE_NAME", &env.table)
        .env("JOB_QUEUE_URL", &env.queues.url)
        .env("DLQ_URL", &env.queues.dlq_url)
        .env("AWS_ENDPOINT_URL", testkit::moto().endpoint())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("flexrzp-admin runs")
}

fn field<'a>(stdout: &'a str, name: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in {stdout}"))
        .trim()
}

#[tokio::test]
async fn create_then_revoke_a_key() {
    let env = TestEnv::new().await;
    let created = admin(
        &env,
        &[
            "api-key",
            "create",
            "--tenant",
            "acme",
            "--environment",
            "prod",
            "--label",
            "ci",
        ],
    );
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let stdout = String::from_utf8(created.stdout).unwrap();
    let key = field(&stdout, "api_key:");
    let key_id = field(&stdout, "key_id:");
    let scope = apikeys::authenticate(&env.store(), Some(key))
        .await
        .unwrap();
    assert_eq!(
        (scope.tenant_id(), scope.environment_id()),
        ("acme", "prod")
    );

    let revoked = admin(
        &env,
        &[
            "api-key",
            "revoke",
            "--tenant",
            "acme",
            "--environment",
            "prod",
            "--key-id",
            key_id,
        ],
    );
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    assert!(
        apikeys::authenticate(&env.store(), Some(key))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn bad_arguments_exit_2_with_usage() {
    let env = TestEnv::new().await;
    let out = admin(&env, &["api-key", "create", "--tenant", "acme"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--environment is required"));
    let out = admin(
        &env,
        &[
            "api-key",
            "create",
            "--tenant",
            "a#b",
            "--environment",
            "prod",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tenant_id must be"));
    let out = admin(
        &env,
        &[
            "api-key",
            "revoke",
            "--tenant",
            "acme",
            "--environment",
            "prod",
            "--key-id",
            "nope",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
}

/// Parks a job in the DLQ as SQS would after its last receive; its message id.
async fn park(env: &TestEnv, body: &str) -> String {
    let sent = env
        .sqs()
        .send_message()
        .queue_url(&env.queues.dlq_url)
        .message_body(body)
        .send()
        .await
        .unwrap();
    sent.message_id.unwrap()
}

fn sync_job(tenant: &str, invoice_id: &str) -> (TenantScope, String) {
    let scope = TenantScope::new(tenant, "prod").unwrap();
    let job = Job::new(
        &scope,
        Task::SyncInvoice {
            invoice_id: invoice_id.to_owned(),
        },
    );
    (scope, serde_json::to_string(&job).unwrap())
}

fn stdout_of(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[tokio::test]
async fn parked_jobs_are_listed_with_their_reasons_and_redriven_by_tenant() {
    let env = TestEnv::new().await;
    let (acme, acme_job) = sync_job("acme", "inv_acme");
    let acme_id = park(&env, &acme_job).await;
    let (_, other_job) = sync_job("globex", "inv_globex");
    let other_id = park(&env, &other_job).await;
    let unreadable_id = park(&env, "not a job").await;
    // What the worker keeps when a message fails.
    let failure = JobFailure {
        message_id: acme_id.clone(),
        kind: "sync_invoice".to_owned(),
        reason: "Flexprice answered 500".to_owned(),
        receives: 8,
        at_ms: 0,
    };
    parked::note_failures(&env.adapters(), vec![(acme, failure)]).await;

    let listed = stdout_of(&admin(&env, &["jobs", "parked"]));
    assert!(listed.starts_with("3 parked"), "{listed}");
    let line = |id: &str| {
        listed
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        line(&acme_id).contains("acme/prod  sync_invoice  age 0h00m"),
        "{listed}"
    );
    assert!(
        line(&acme_id).ends_with("reason: Flexprice answered 500"),
        "{listed}"
    );
    assert!(
        line(&other_id).contains("globex/prod  sync_invoice"),
        "{listed}"
    );
    assert!(
        line(&other_id).contains("reason: (none recorded: the invocation ended before answering"),
        "{listed}"
    );
    assert!(line(&unreadable_id).contains("-  unreadable"), "{listed}");
    let only_acme = stdout_of(&admin(&env, &["jobs", "parked", "--tenant", "acme"]));
    assert!(only_acme.starts_with("1 parked"), "{only_acme}");

    // Redrive by tenant: only acme's job goes back; the others stay parked.
    let moved = stdout_of(&admin(&env, &["jobs", "redrive", "--tenant", "acme"]));
    assert!(moved.starts_with("1 moved back"), "{moved}");
    let back = env
        .sqs()
        .receive_message()
        .queue_url(&env.queues.url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    let bodies: Vec<String> = back
        .messages
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.body)
        .collect();
    assert_eq!(bodies, [acme_job]);
    let left = stdout_of(&admin(&env, &["jobs", "parked"]));
    assert!(left.starts_with("2 parked"), "{left}");
    assert!(!left.contains("acme/prod"), "{left}");
    let by_kind = stdout_of(&admin(
        &env,
        &["jobs", "redrive", "--kind", "refund_credit_note"],
    ));
    assert!(by_kind.starts_with("0 moved back"), "{by_kind}");
}
