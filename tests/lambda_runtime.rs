//! The function binaries themselves, not just their handlers: `cargo lambda watch` (a real
//! Lambda Runtime API emulator, installed from PyPI into `target/cargo-lambda-venv`) runs each
//! function's `main`, configured through its environment as Lambda would configure it, against
//! the local stack; `cargo lambda invoke --data-file events/...` sends the sample events.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use local_stack::{LocalStack, Options};
use serde_json::Value;
use shared::domain::secret::Secret;
use shared::domain::signature::SvixSecret;

/// Measured to work offline on these machines.
const CARGO_LAMBDA: &str = "cargo-lambda==1.9.2";

/// `cargo lambda watch` and what it spawned, killed as a process group when dropped.
struct Watch {
    child: Child,
}

impl Drop for Watch {
    fn drop(&mut self) {
        // SAFETY: kill(2) of the process group this test started (setsid below).
        unsafe {
            libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `PATH` with cargo-lambda's virtualenv first, so that `cargo lambda` finds it.
fn path_with(bin: &Path) -> String {
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Where `cargo lambda watch` writes its own and the functions' output.
fn watch_log(port: u16) -> PathBuf {
    testkit::target_dir().join(format!("cargo-lambda-watch-{port}.log"))
}

fn start_watch(stack: &LocalStack, bin: &Path, port: u16) -> Watch {
    let env = stack
        .ready
        .function_env()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let log = watch_log(port);
    let log_file = std::fs::File::create(&log).expect("the watch log");
    let mut command = Command::new("cargo");
    command
        .args([
            "lambda",
            "watch",
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
        ])
        .arg(port.to_string())
        .args(["--env-var", &env])
        .current_dir(workspace())
        .env("PATH", path_with(bin))
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("the watch log"))
        .stderr(log_file);
    // SAFETY: setsid and prctl are async-signal-safe. A process group of its own lets Drop
    // kill watch and the function processes it starts; PDEATHSIG ends watch with the test.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let child = command.spawn().expect("cargo lambda watch starts");
    let watch = Watch { child };
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "cargo lambda watch did not listen on {port}: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    watch
}

/// `cargo lambda invoke FUNCTION --data-file FILE`: the function's JSON answer.
fn invoke(bin: &Path, port: u16, function: &str, file: &Path) -> Value {
    let output = Command::new("cargo")
        .args([
            "lambda",
            "invoke",
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
        ])
        .arg(port.to_string())
        .arg(function)
        .arg("--data-file")
        .arg(file)
        .current_dir(workspace())
        .env("PATH", path_with(bin))
        .output()
        .expect("cargo lambda invoke runs");
    assert!(
        output.status.success(),
        "{function} {}: {}",
        file.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{function} answered no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// The Flexprice file, signed again now (Svix refuses timestamps over 5 minutes old).
fn fresh_flexprice_event(dir: &Path) -> PathBuf {
    let source = workspace().join("events/flexprice-invoice-finalized.json");
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(source).unwrap()).unwrap();
    let body = event["body"].as_str().unwrap().to_owned();
    let id = event["headers"]["svix-id"].as_str().unwrap().to_owned();
    let now = simulators::common::now();
    let secret = SvixSecret::parse(&Secret::new(
        local_stack::events::FLEXPRICE_WEBHOOK_SECRET.to_owned(),
    ))
    .unwrap();
    event["headers"]["svix-timestamp"] = Value::from(now.to_string());
    event["headers"]["svix-signature"] = Value::from(secret.sign(&id, now, body.as_bytes()));
    let path = dir.join("flexprice-invoice-finalized-now.json");
    std::fs::write(&path, event.to_string()).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binaries_answer_the_sample_events_under_a_lambda_runtime_emulator() {
    let cargo_lambda = tokio::task::spawn_blocking(|| {
        testkit::venv::python_tool("cargo-lambda-venv", None, CARGO_LAMBDA, "cargo-lambda")
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("cargo-lambda is not available: {e}"));
    let bin = cargo_lambda.parent().unwrap().to_path_buf();

    let mut options = Options::events(0);
    options.resource_prefix = simulators::common::new_id("rt-").to_lowercase();
    let stack = LocalStack::start(options)
        .await
        .expect("the local stack starts");
    let port = free_port();
    let _watch = start_watch(&stack, &bin, port);
    let scratch = testkit::target_dir().join(format!("lambda-runtime-{port}"));
    std::fs::create_dir_all(&scratch).unwrap();
    let events = workspace().join("events");

    let signed_at: u64 = 1_795_600_805;
    let stale = if simulators::common::now().abs_diff(signed_at) > 300 {
        401
    } else {
        200
    };
    let cases: [(&str, PathBuf, u16); 11] = [
        ("payment-link-api", events.join("put-connection.json"), 200),
        ("payment-link-api", events.join("get-connection.json"), 200),
        ("payment-link-api", events.join("create-payment.json"), 201),
        ("payment-link-api", events.join("get-payment.json"), 200),
        (
            "webhook-receiver",
            events.join("razorpay-payment-captured.json"),
            200,
        ),
        (
            "webhook-receiver",
            events.join("razorpay-bad-signature.json"),
            401,
        ),
        // As a replay: refused as stale unless run within 5 minutes of its signing.
        (
            "webhook-receiver",
            events.join("flexprice-invoice-finalized.json"),
            stale,
        ),
        ("webhook-receiver", fresh_flexprice_event(&scratch), 200),
        (
            "payment-link-api",
            events.join("post-invoice-sync.json"),
            202,
        ),
        ("invoice-sync", events.join("sqs-poison.json"), 1),
        (
            "payment-link-api",
            events.join("delete-connection.json"),
            204,
        ),
    ];
    for (function, file, expected) in cases {
        let (bin, file) = (bin.clone(), file.clone());
        let answer = tokio::task::spawn_blocking(move || invoke(&bin, port, function, &file))
            .await
            .unwrap();
        if function == "invoice-sync" {
            let failures = answer["batchItemFailures"]
                .as_array()
                .expect("a batch response");
            assert_eq!(failures.len(), usize::from(expected), "{answer}");
            assert_eq!(
                failures[0]["itemIdentifier"],
                "9d8e7f6a-5b4c-4d3e-2f1a-0b9c8d7e6f5a"
            );
        } else {
            assert_eq!(answer["statusCode"], expected, "{function}: {answer}");
        }
    }
    the_functions_emitted_their_metrics(port);
}

/// The embedded-metric lines the binaries printed: one per delivery and one per job, each
/// with its dimensions, the all-scopes rollup and the by-outcome one.
fn the_functions_emitted_their_metrics(port: u16) {
    let log = std::fs::read_to_string(watch_log(port)).unwrap_or_default();
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| l.contains("\"_aws\""))
        .filter_map(|l| l.find('{').map(|at| &l[at..]))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let find = |name: &str, dimension: &str, value: &str| {
        lines
            .iter()
            .find(|l| l.get(name).is_some() && l[dimension] == value)
            .unwrap_or_else(|| panic!("no {name} with {dimension}={value} in:\n{log}"))
            .clone()
    };
    use shared::adapters::telemetry::{NAMESPACE, metrics};
    let accepted = find(metrics::WEBHOOKS_RECEIVED, "Outcome", "accepted");
    assert_eq!(accepted["Source"], "razorpay", "{accepted}");
    assert_eq!(accepted[metrics::WEBHOOKS_RECEIVED], 1, "{accepted}");
    let spec = &accepted["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(spec["Namespace"], NAMESPACE);
    assert_eq!(
        spec["Dimensions"],
        serde_json::json!([["Source", "Outcome"], [], ["Outcome"]])
    );
    assert_eq!(spec["Metrics"][0]["Name"], metrics::WEBHOOKS_RECEIVED);
    let refused = find(metrics::WEBHOOKS_RECEIVED, "Outcome", "bad_signature");
    assert_eq!(refused["Source"], "razorpay", "{refused}");
    let flexprice = find(metrics::WEBHOOKS_RECEIVED, "Source", "flexprice");
    assert_eq!(flexprice[metrics::WEBHOOKS_RECEIVED], 1, "{flexprice}");
    let job = find(metrics::JOBS, "Kind", "unreadable");
    assert!(
        job["Outcome"] == "failing" || job["Outcome"] == "parked",
        "a poison body fails for good: {job}"
    );
    assert_eq!(job[metrics::JOBS], 1, "{job}");
}
