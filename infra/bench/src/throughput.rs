//! `throughput`: signed Razorpay webhooks per second through the local stack's gateway on this
//! machine, with a load generator bounded in time and count, on loopback; and where the time
//! goes. The baseline, in the same run: the two AWS calls a new webhook makes (the event
//! received into the log, its job queued), made straight against the emulator at the same concurrency, i.e. what
//! the intake would do if our own code cost nothing. CPU time is split between the emulator
//! (its own process) and this process (load generator, gateway, handlers, worker, simulators).
//!
//! ```text
//! cargo run --release -p bench --bin throughput [-- --seconds 10 --concurrency 16 --max 20000]
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use local_stack::{LocalStack, Options};
use shared::adapters::aws::idempotency::{Claim, Lifetimes, payload_hash};
use shared::domain::events::{EventRef, Source, WebhookEvent};
use shared::domain::jobs::{Job, Task};
use shared::domain::keys::TenantScope;
use shared::domain::secret::Secret;
use shared::domain::signature::razorpay_sign;

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.windows(2)
        .find(|w| w[0] == name)
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(default)
}

/// User + system CPU seconds of a process so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which is in parentheses and may contain spaces).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    ticks / 100.0
}

struct Phase {
    done: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

/// Runs `op(i)` from `concurrency` workers until `seconds` pass or `max` operations are done.
async fn drive<F, Fut>(seconds: u64, concurrency: u64, max: u64, op: F) -> Phase
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (op, next) = (op.clone(), next.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= max || Instant::now() >= deadline {
                        return latencies;
                    }
                    let began = Instant::now();
                    if op(i).await {
                        latencies.push(began.elapsed());
                    }
                }
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await.unwrap_or_default());
    }
    latencies.sort();
    Phase {
        done: latencies.len() as u64,
        elapsed: start.elapsed(),
        latencies,
    }
}

fn percentile(latencies: &[Duration], p: f64) -> f64 {
    if latencies.is_empty() {
        return 0.0;
    }
    let index = ((latencies.len() as f64 - 1.0) * p).round() as usize;
    latencies[index].as_secs_f64() * 1000.0
}

/// A `payment.authorized` for a payment flexrzp did not make (the worker acknowledges it).
fn authorized_event(account: &str, id: &str) -> String {
    format!(
        r#"{{"entity":"event","account_id":"{account}","event":"payment.authorized","contains":["payment"],"payload":{{"payment":{{"entity":{{"id":"pay_{id}","amount":100,"currency":"INR","status":"authorized","notes":[]}}}}}},"created_at":1795600805}}"#
    )
}

/// How long and how hard each phase runs.
#[derive(Clone, Copy)]
struct Load {
    seconds: u64,
    concurrency: u64,
    max: u64,
}

/// One new webhook's AWS calls (the event received into the log, its job queued) made
/// straight against the emulator.
async fn baseline_call(stack: Arc<LocalStack>, scope: TenantScope, i: u64) -> bool {
    let adapters = &stack.adapters;
    let event_id = format!("evt_base_{i}");
    let body = authorized_event(&stack.razorpay.account_id(), &format!("base{i}"));
    let now = adapters.clock.now_millis();
    let event = WebhookEvent::received(
        Source::Razorpay,
        &event_id,
        "payment.authorized",
        now,
        body.clone(),
    );
    let lifetimes = Lifetimes {
        lock: Duration::from_secs(30),
        keep: Duration::from_secs(3600),
    };
    let received = adapters
        .events
        .receive(&scope, &event, &payload_hash(body.as_bytes()), lifetimes)
        .await;
    let Ok(Claim::Acquired(_)) = received else {
        return false;
    };
    // The job the intake would queue for the measured phase's event, so that the worker
    // draining the queue does the same work in both phases.
    let origin = EventRef {
        source: Source::Razorpay,
        id: event_id.clone(),
        replay: false,
    };
    let task = Task::ApplyRazorpayEvent { event_id, body };
    let job = Job::for_event(&scope, task, origin);
    adapters.queue.send(&job, None).await.is_ok()
}

/// Signed webhooks through the gateway and the intake.
async fn webhook_phase(stack: &LocalStack, load: Load) -> Result<Phase, String> {
    let http = shared::adapters::http::client(shared::adapters::http::Timeouts::default())
        .map_err(|e| e.to_string())?;
    let url = format!(
        "{}/v1/webhooks/razorpay/demo/sandbox",
        stack.ready.gateway_url
    );
    let secret = Secret::new(stack.ready.webhook_secret.clone());
    let account = stack.razorpay.account_id();
    Ok(drive(load.seconds, load.concurrency, load.max, move |i| {
        let body = authorized_event(&account, &format!("load{i}"));
        let request = http
            .post(&url)
            .header(
                "x-razorpay-signature",
                razorpay_sign(&secret, body.as_bytes()),
            )
            .header("x-razorpay-event-id", format!("evt_load_{i}"))
            .body(body);
        async move { matches!(request.send().await, Ok(r) if r.status().as_u16() == 200) }
    })
    .await)
}

fn report(load: Load, baseline: &Phase, full: &Phase, (moto_cpu, own_cpu): (f64, f64)) {
    let Load {
        seconds,
        concurrency,
        max,
    } = load;
    let rate = |p: &Phase| p.done as f64 / p.elapsed.as_secs_f64();
    println!(
        "webhook throughput on loopback, {concurrency} concurrent clients, at most {seconds} s or {max} requests per phase"
    );
    println!(
        "{:<58} {:>9} {:>9} {:>9} {:>9}",
        "phase", "done", "per s", "p50 ms", "p99 ms"
    );
    for (what, phase) in [
        (
            "baseline: receive + enqueue, SDK straight to moto",
            baseline,
        ),
        ("signed webhooks through the gateway and the intake", full),
    ] {
        println!(
            "{what:<58} {:>9} {:>9.0} {:>9.1} {:>9.1}",
            phase.done,
            rate(phase),
            percentile(&phase.latencies, 0.5),
            percentile(&phase.latencies, 0.99)
        );
    }
    println!(
        "ratio: the intake reaches {:.2}x the throughput of its own AWS calls alone",
        rate(full) / rate(baseline)
    );
    let total = moto_cpu + own_cpu;
    println!(
        "CPU during the webhook phase: emulator {moto_cpu:.1} s ({:.0}%), this process {own_cpu:.1} s ({:.0}%), {:.2} CPU-ms per webhook in this process",
        100.0 * moto_cpu / total.max(f64::EPSILON),
        100.0 * own_cpu / total.max(f64::EPSILON),
        1000.0 * own_cpu / full.done.max(1) as f64
    );
}

/// Waits until the worker has drained the baseline's jobs, so that the measured phase does not
/// share the emulator with them; how long that took, in seconds.
async fn drain(stack: &LocalStack) -> Result<f64, String> {
    let started = Instant::now();
    while started.elapsed() < DRAIN_LIMIT {
        if stack.messages_in(&stack.queues.url).await == Some(0) {
            return Ok(started.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!(
        "the worker did not drain the baseline's jobs within {} s",
        DRAIN_LIMIT.as_secs()
    ))
}

const DRAIN_LIMIT: Duration = Duration::from_secs(300);

#[tokio::main]
async fn main() -> Result<(), String> {
    // The functions' metric lines would flood the report; they are not what is measured.
    shared::adapters::telemetry::send_metrics_to(|_| {});
    let args: Vec<String> = std::env::args().collect();
    let load = Load {
        seconds: arg(&args, "--seconds", 10),
        concurrency: arg(&args, "--concurrency", 16),
        max: arg(&args, "--max", 20_000),
    };
    let mut options = Options::events(0);
    options.resource_prefix = "throughput".to_owned();
    let stack = Arc::new(LocalStack::start(options).await?);
    let moto_pid = testkit::moto().pid();
    let own_pid = std::process::id();
    let scope = TenantScope::new("demo", "sandbox").map_err(|e| e.to_string())?;
    let baseline = {
        let stack = stack.clone();
        drive(load.seconds, load.concurrency, load.max, move |i| {
            baseline_call(stack.clone(), scope.clone(), i)
        })
        .await
    };
    let drain_secs = drain(&stack).await?;
    let (moto_before, own_before) = (cpu_seconds(moto_pid), cpu_seconds(own_pid));
    let full = webhook_phase(&stack, load).await?;
    let cpu = (
        cpu_seconds(moto_pid) - moto_before,
        cpu_seconds(own_pid) - own_before,
    );
    report(load, &baseline, &full, cpu);
    println!(
        "the worker drained the baseline's jobs {drain_secs:.1} s after it ended, before the webhook phase began"
    );
    Ok(())
}
