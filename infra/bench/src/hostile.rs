//! `hostile`: the webhook intake's memory under requests for tenants that do not exist, each
//! one new (the worst case for the secret cache: every one is a Secrets Manager read and an
//! entry), measured as this process's resident set size while they run, in-process through
//! the intake service, against the emulator. The baseline, in the same run: the RSS after the
//! stack started and one real webhook was taken.
//!
//! ```text
//! cargo run --release -p bench --bin hostile [-- --requests 10000]
//! ```

use local_stack::{LocalStack, Options};
use shared::domain::secret::Secret;
use shared::domain::signature::razorpay_sign;
use shared::services::intake::{Delivery, razorpay};

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.windows(2)
        .find(|w| w[0] == name)
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(default)
}

/// This process's resident set, in MB.
fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn delivery<'a>(
    tenant_id: &'a str,
    signature: &'a str,
    event_id: &'a str,
    body: &'a [u8],
) -> Delivery<'a> {
    Delivery {
        tenant_id,
        environment_id: "sandbox",
        signature: Some(signature),
        event_id: Some(event_id),
        trace_id: None,
        body,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let requests = arg(&args, "--requests", 10_000);
    let mut options = Options::from_env(0);
    options.resource_prefix = format!("bench-hostile-{}", std::process::id());
    let stack = LocalStack::start(options).await.expect("the local stack");
    let text = serde_json::json!({"entity": "event", "event": "payment.authorized",
        "account_id": stack.razorpay.account_id(), "payload": {}})
    .to_string();
    let body = text.as_bytes();
    let signature = razorpay_sign(&Secret::new(stack.ready.webhook_secret.clone()), body);
    let taken = razorpay(
        &stack.adapters,
        delivery("demo", &signature, "evt_bench_real", body),
    )
    .await;
    assert!(taken.is_ok(), "{taken:?}");
    let baseline = rss_mb();
    println!("baseline after start and one webhook: {baseline:.1} MB");
    let started = std::time::Instant::now();
    for n in 0..requests {
        let tenant = format!("ghost{n}");
        let ghost = delivery(&tenant, &signature, "evt_bench_ghost", body);
        let refused = razorpay(&stack.adapters, ghost).await;
        assert!(refused.is_err());
        if (n + 1) % (requests / 4).max(1) == 0 {
            println!(
                "{:>6} requests for new unknown tenants: {:.1} MB (+{:.1})",
                n + 1,
                rss_mb(),
                rss_mb() - baseline
            );
        }
    }
    println!(
        "{requests} refused in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
