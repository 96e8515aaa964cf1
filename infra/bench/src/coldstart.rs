//! `coldstart`: each release function binary, started as Lambda starts it, against a minimal
//! Lambda Runtime API (the real protocol: `GET /runtime/invocation/next`, `POST
//! /runtime/invocation/{id}/response` or `/error`), with the local stack behind it. Measures,
//! over several runs: process start → first `/next` (init), → first `/response` (the first
//! event handled, cold), peak RSS (`VmHWM`), and the stripped binary's size. The baseline, in
//! the same run: starting `/bin/true` and waiting for it.
//!
//! ```text
//! cargo build --release --bins -p webhook-receiver -p payment-link-api -p invoice-sync
//! cargo run -p bench --bin coldstart [-- --runs 10]
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use local_stack::{LocalStack, Options};
use tokio::sync::mpsc;

/// What the runtime API saw, sent to the measuring loop.
#[derive(Debug)]
enum Seen {
    Next(Instant),
    Response(Instant, u16),
    Error(String),
}

#[derive(Clone)]
struct Runtime {
    /// The one event each run serves; later `/next` calls wait forever (as an idle instance).
    event: Arc<Mutex<Option<String>>>,
    seen: mpsc::UnboundedSender<Seen>,
}

async fn next(State(runtime): State<Runtime>) -> Response {
    let _ = runtime.seen.send(Seen::Next(Instant::now()));
    let event = runtime.event.lock().map(|mut e| e.take()).unwrap_or(None);
    let Some(event) = event else {
        std::future::pending::<()>().await;
        return StatusCode::GONE.into_response();
    };
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() + 30_000)
        .unwrap_or(0);
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set(
        "lambda-runtime-aws-request-id",
        "req-coldstart-1".to_owned(),
    );
    set("lambda-runtime-deadline-ms", deadline.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:coldstart".to_owned(),
    );
    set(
        "lambda-runtime-trace-id",
        "Root=1-00000000-000000000000000000000000".to_owned(),
    );
    (headers, event).into_response()
}

async fn response(State(runtime): State<Runtime>, body: String) -> StatusCode {
    let status = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["statusCode"].as_u64())
        .unwrap_or(0) as u16;
    let _ = runtime.seen.send(Seen::Response(Instant::now(), status));
    StatusCode::ACCEPTED
}

async fn error(
    State(runtime): State<Runtime>,
    UrlPath(_id): UrlPath<String>,
    body: String,
) -> StatusCode {
    let _ = runtime.seen.send(Seen::Error(body));
    StatusCode::ACCEPTED
}

async fn init_error(State(runtime): State<Runtime>, body: String) -> StatusCode {
    let _ = runtime.seen.send(Seen::Error(body));
    StatusCode::ACCEPTED
}

/// One measured cold start.
#[derive(Debug, Clone, Copy)]
struct Run {
    init: Duration,
    first_response: Duration,
    peak_rss_kb: u64,
}

fn peak_rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

/// A Lambda runtime API on loopback that hands out `event` once; what the function does is
/// reported on the channel.
async fn runtime_api(
    event: &str,
) -> Result<
    (
        SocketAddr,
        tokio::task::JoinHandle<()>,
        mpsc::UnboundedReceiver<Seen>,
    ),
    String,
> {
    let (tx, rx) = mpsc::unbounded_channel();
    let runtime = Runtime {
        event: Arc::new(Mutex::new(Some(event.to_owned()))),
        seen: tx,
    };
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(runtime);
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((addr, server, rx))
}

async fn run_once(
    binary: &Path,
    event: &str,
    env: &HashMap<String, String>,
) -> Result<(Run, u16), String> {
    let (addr, server, mut rx) = runtime_api(event).await?;
    let start = Instant::now();
    let mut child = tokio::process::Command::new(binary)
        .env_clear()
        .envs(env)
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{}: {e}", binary.display()))?;
    let pid = child.id().unwrap_or(0);
    let mut init = None;
    let outcome = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(seen) = rx.recv().await {
            match seen {
                Seen::Next(at) if init.is_none() => init = Some(at - start),
                Seen::Next(_) => {}
                Seen::Response(at, status) => return Ok((at - start, status)),
                Seen::Error(body) => {
                    return Err(format!("the function reported an error: {body}"));
                }
            }
        }
        Err("the runtime API closed".to_owned())
    })
    .await
    .map_err(|_| "no response within 30 s".to_owned())??;
    // The function is idle on its next `/next`: its peak RSS includes the first event.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let peak = peak_rss_kb(pid);
    let _ = child.kill().await;
    server.abort();
    Ok((
        Run {
            init: init.unwrap_or_default(),
            first_response: outcome.0,
            peak_rss_kb: peak,
        },
        outcome.1,
    ))
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// What Lambda gives a function process, against the local stack.
fn lambda_env(stack: &LocalStack) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = stack.ready.function_env().into_iter().collect();
    for (k, v) in [
        ("AWS_LAMBDA_FUNCTION_NAME", "coldstart"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "coldstart"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/coldstart"),
        ("AWS_LAMBDA_LOG_LEVEL", "INFO"),
    ] {
        env.insert(k.to_owned(), v.to_owned());
    }
    env
}

/// The baseline: starting a process that does nothing (median of `runs`).
async fn process_start(runs: usize) -> Duration {
    let mut baseline = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        let _ = tokio::process::Command::new("/bin/true").status().await;
        baseline.push(start.elapsed());
    }
    median(baseline)
}

/// One function measured: its line of the table, and the budgets it missed.
struct Measured {
    init: Duration,
    first: Duration,
    rss_mb: f64,
    size_mb: f64,
    status: u16,
}

async fn measure(
    binary: &Path,
    event: &str,
    env: &HashMap<String, String>,
    runs: usize,
) -> Result<Measured, String> {
    let size = std::fs::metadata(binary)
        .map_err(|e| {
            format!(
                "{}: {e} (build it: cargo build --release --bins)",
                binary.display()
            )
        })?
        .len();
    let mut results = Vec::new();
    let mut status = 0;
    for _ in 0..runs {
        let (run, answered) = run_once(binary, event, env).await?;
        status = answered;
        results.push(run);
    }
    let rss = results.iter().map(|r| r.peak_rss_kb).max().unwrap_or(0);
    Ok(Measured {
        init: median(results.iter().map(|r| r.init).collect()),
        first: median(results.iter().map(|r| r.first_response).collect()),
        rss_mb: rss as f64 / 1024.0,
        size_mb: size as f64 / 1_000_000.0,
        status,
    })
}

/// The budgets `m` misses (`expected` 0: a batch, no status to check).
fn missed(name: &str, m: &Measured, expected: u16) -> Vec<String> {
    let mut missed = Vec::new();
    if expected != 0 && m.status != expected {
        missed.push(format!("{name} answered {}, not {expected}", m.status));
    }
    if ms(m.init) > 20.0 {
        missed.push(format!("{name}: init {:.1} ms > 20 ms", ms(m.init)));
    }
    if m.rss_mb > 32.0 {
        missed.push(format!("{name}: RSS {:.1} MB > 32 MB", m.rss_mb));
    }
    if m.size_mb > 6.0 {
        missed.push(format!("{name}: {:.2} MB > 6 MB", m.size_mb));
    }
    missed
}

/// Each function with the sample event it answers and the status it answers with (0: a batch).
fn cases(root: &Path) -> Result<[(&'static str, String, u16); 3], String> {
    let read = |name: &str| {
        std::fs::read_to_string(root.join("events").join(name)).map_err(|e| format!("{name}: {e}"))
    };
    Ok([
        (
            "webhook-receiver",
            read("razorpay-payment-captured.json")?,
            200,
        ),
        ("payment-link-api", read("get-connection.json")?, 200),
        ("invoice-sync", read("sqs-sync-invoice.json")?, 0),
    ])
}

#[tokio::main]
async fn main() -> Result<(), String> {
    // The in-process worker's metric lines are not what is measured.
    shared::adapters::telemetry::send_metrics_to(|_| {});
    let args: Vec<String> = std::env::args().collect();
    let runs: usize = args
        .windows(2)
        .find(|w| w[0] == "--runs")
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(10);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let release = root.join("target/release");
    let mut options = Options::events(0);
    options.resource_prefix = "coldstart".to_owned();
    let stack = LocalStack::start(options).await?;
    let env = lambda_env(&stack);
    let baseline = process_start(runs).await;
    let cases = cases(&root)?;
    println!("cold starts against a minimal Lambda Runtime API, median of {runs} runs");
    println!(
        "baseline: starting /bin/true and waiting for it: {:.2} ms",
        ms(baseline)
    );
    println!(
        "{:<18} {:>9} {:>9} {:>12} {:>10} {:>12} {:>11}",
        "function", "init ms", "x base", "1st resp ms", "RSS MB", "size MB", "status"
    );
    let mut all_missed = Vec::new();
    for (name, event, expected) in cases {
        let m = measure(&release.join(name), &event, &env, runs).await?;
        let status = if expected == 0 {
            "batch".to_owned()
        } else {
            m.status.to_string()
        };
        println!(
            "{name:<18} {:>9.2} {:>9.1} {:>12.2} {:>10.1} {:>12.2} {status:>11}",
            ms(m.init),
            ms(m.init) / ms(baseline),
            ms(m.first),
            m.rss_mb,
            m.size_mb,
        );
        all_missed.extend(missed(name, &m, expected));
    }
    println!("budgets: init <= 20 ms, RSS <= 32 MB, binary <= 6 MB (10^6 bytes)");
    if all_missed.is_empty() {
        println!("all budgets met");
    } else {
        println!("MISSED: {}", all_missed.join("; "));
    }
    drop(stack);
    Ok(())
}
