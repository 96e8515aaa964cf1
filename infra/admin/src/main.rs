//! `flexrzp-admin`: creates and revokes API keys for a tenant/environment.
//!
//! ```text
//! flexrzp-admin api-key create --tenant T --environment E [--label L]
//! flexrzp-admin api-key revoke --tenant T --environment E --key-id ID
//! ```
//!
//! Uses the normal AWS environment (region, credentials, `AWS_ENDPOINT_URL` for the local
//! stack's emulator) and `TABLE_NAME`. A created key is printed once; only its hash is stored.

use std::process::ExitCode;

use shared::adapters::aws::store::Store;
use shared::domain::keys::TenantScope;
use shared::ports::SystemClock;
use shared::services::apikeys;

const USAGE: &str = "usage:
  flexrzp-admin api-key create --tenant T --environment E [--label L]
  flexrzp-admin api-key revoke --tenant T --environment E --key-id ID
environment: TABLE_NAME, and the AWS region, credentials and (optionally) AWS_ENDPOINT_URL";

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.windows(2)
        .find(|pair| pair[0] == name)
        .map(|pair| pair[1].as_str())
}

async fn run(args: &[String]) -> Result<String, String> {
    let (command, rest) = match args {
        [group, command, rest @ ..] if group == "api-key" => (command.as_str(), rest),
        _ => return Err(USAGE.to_owned()),
    };
    let required =
        |name: &str| flag(rest, name).ok_or_else(|| format!("{name} is required\n{USAGE}"));
    let scope = TenantScope::new(required("--tenant")?, required("--environment")?)
        .map_err(|e| e.to_string())?;
    let table = std::env::var("TABLE_NAME")
        .map_err(|_| "environment variable TABLE_NAME is not set".to_owned())?;
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
