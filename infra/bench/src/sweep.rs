//! `sweep`: what one reconciliation sweep costs on the local stack, for `--payments N` link
//! payments paid while Razorpay's webhooks were dropped: Razorpay calls, Flexprice calls and
//! seconds for the run that applies them all (every one missed), then for the next run over
//! the same window (everything already applied: the steady state of the overlap). The
//! baseline in the same run: the Razorpay list calls alone (what reading costs if applying
//! cost nothing).
//!
//! ```text
//! cargo run --release -p bench --bin sweep [-- --payments 250]
//! ```

use std::time::{Duration, Instant};

use local_stack::{LocalStack, Options};
use serde_json::json;
use shared::domain::keys::TenantScope;
use simulators::HasRecorder;

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.windows(2)
        .find(|w| w[0] == name)
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(default)
}

/// One link payment of 1.00 for the seeded invoice, paid at the simulator (no webhook).
async fn paid_link(stack: &LocalStack, http: &reqwest::Client, n: u64) -> Result<(), String> {
    let body = json!({"amount": "1.00", "currency": "INR", "destination_id": stack.ready.invoice_ids[0],
        "destination_type": "INVOICE", "payment_method_type": "PAYMENT_LINK",
        "payment_gateway": "razorpay", "idempotency_key": format!("sweep-bench-{n}")});
    let payment: serde_json::Value = http
        .post(format!("{}/api/v1/payments", stack.ready.gateway_url))
        .header("x-api-key", &stack.ready.api_key)
        .json(&body)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let link = payment["gateway_tracking_id"]
        .as_str()
        .ok_or_else(|| format!("no link: {payment}"))?;
    let paid = http
        .post(format!(
            "{}/_sim/payment_links/{link}/pay",
            stack.ready.razorpay_sim_url
        ))
        .json(&json!({}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    paid.status()
        .is_success()
        .then_some(())
        .ok_or_else(|| format!("pay: {}", paid.status()))
}

/// The calls each simulator logged since `(razorpay, flexprice)`.
fn calls_since(stack: &LocalStack, before: (usize, usize)) -> (usize, usize) {
    (
        stack.razorpay.requests().len() - before.0,
        stack.flexprice.requests().len() - before.1,
    )
}

fn logged(stack: &LocalStack) -> (usize, usize) {
    (
        stack.razorpay.requests().len(),
        stack.flexprice.requests().len(),
    )
}

async fn timed_sweep(stack: &LocalStack, scope: &TenantScope) -> (Duration, u64, (usize, usize)) {
    let before = logged(stack);
    let started = Instant::now();
    let swept = shared::services::sweep::sweep(&stack.adapters, scope)
        .await
        .unwrap_or_else(|e| panic!("the sweep failed: {e}"));
    (started.elapsed(), swept.missed, calls_since(stack, before))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let payments = arg(&args, "--payments", 250);
    let mut options = Options::from_env(0);
    options.resource_prefix = format!("bench-sweep-{}", std::process::id());
    let stack = LocalStack::start(options).await.expect("the local stack");
    let http = reqwest::Client::new();
    let drop = json!({"events": null, "drop": true});
    http.post(format!(
        "{}/_sim/webhook-subscription",
        stack.ready.razorpay_sim_url
    ))
    .json(&drop)
    .send()
    .await
    .expect("the simulator");
    for n in 0..payments {
        paid_link(&stack, &http, n).await.expect("a paid link");
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let scope = TenantScope::new(&stack.ready.tenant_id, &stack.ready.environment_id).unwrap();
    // Runs until one applies nothing: the runs that catch up, then the steady state.
    let mut runs = Vec::new();
    loop {
        let run = timed_sweep(&stack, &scope).await;
        let quiet = run.1 == 0;
        runs.push(run);
        if quiet || runs.len() > 20 {
            break;
        }
    }
    let lists = stack
        .razorpay
        .requests()
        .iter()
        .filter(|r| {
            r.method == "GET" && (r.path == "/v1/payments" || r.path == "/v1/payment_links")
        })
        .count();
    println!("payments: {payments}, webhooks dropped");
    for (n, (elapsed, applied, (razorpay, flexprice))) in runs.iter().enumerate() {
        println!(
            "run {}: {:.2} s, {applied} applied, {razorpay} Razorpay calls, {flexprice} Flexprice calls",
            n + 1,
            elapsed.as_secs_f64()
        );
    }
    let catching_up: Duration = runs.iter().map(|r| r.0).sum::<Duration>() - runs[runs.len() - 1].0;
    println!("baseline: {lists} list calls over all runs (pages of 100, and the links list)");
    println!(
        "per 1,000 missed payments: {:.1} s to apply; the steady state (all applied): {:.2} s for {payments}",
        catching_up.as_secs_f64() * 1000.0 / payments as f64,
        runs[runs.len() - 1].0.as_secs_f64()
    );
}
