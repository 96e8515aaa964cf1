//! Whole-system tests. `template.rs` holds `template.yaml` to the code it deploys; the others
//! run flows end to end on the local stack. What they share lives here: starting a stack,
//! calling the API, the simulators and their controls, and waiting for the worker.

use std::future::Future;
use std::time::{Duration, Instant};

use local_stack::{LocalStack, Options};
use serde_json::Value;

/// A local stack whose AWS resources carry a fresh `prefix`-based name.
pub async fn start(prefix: &str) -> LocalStack {
    let mut options = Options::from_env(0);
    options.resource_prefix = simulators::common::new_id(prefix).to_lowercase();
    LocalStack::start(options)
        .await
        .expect("the local stack starts")
}

/// A client whose timeout outlasts the service's own (some tests wait one out).
pub fn http() -> reqwest::Client {
    shared::http::client(shared::http::Timeouts {
        connect: Duration::from_secs(2),
        total: Duration::from_secs(30),
    })
    .expect("an HTTP client")
}

async fn send(request: reqwest::RequestBuilder, body: Option<&Value>) -> (u16, Value) {
    let request = match body {
        Some(body) => request.json(body),
        None => request,
    };
    let response = request.send().await.expect("the request is answered");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A call to the tenant API with the demo tenant's key.
pub async fn api(
    stack: &LocalStack,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("an HTTP method");
    let request = http()
        .request(method, format!("{}{path}", stack.ready.gateway_url))
        .header("x-api-key", &stack.ready.api_key);
    send(request, body).await
}

/// A call to the Flexprice simulator's API (or its `/_sim` controls).
pub async fn flexprice(
    stack: &LocalStack,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("an HTTP method");
    let request = http()
        .request(method, format!("{}{path}", stack.ready.flexprice_sim_url))
        .header("x-api-key", &stack.flexprice_api_key);
    send(request, body).await
}

/// A `/_sim` control of the Razorpay simulator (pay, fail, expire...).
pub async fn razorpay_control(stack: &LocalStack, path: &str, body: &Value) -> (u16, Value) {
    let request = http().post(format!("{}{path}", stack.ready.razorpay_sim_url));
    send(request, Some(body)).await
}

/// Polls `probe` until it yields a value, for at most `timeout`; panics naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}
