//! `flexrzp-admin` against the emulator: a created key authenticates; revoked, it does not.

use std::process::Command;

use shared::services::apikeys;
use testkit::TestEnv;

fn admin(env: &TestEnv, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_flexrzp-admin"))
        .args(args)
        .env("TABLE_NAME", &env.table)
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
