//! Whole-system tests. `template.rs` holds `template.yaml` to the code it deploys; the others
//! run flows end to end on the local stack. What they share lives here: starting a stack,
//! calling the API, the simulators and their controls, and waiting for the worker.

use std::future::Future;
use std::time::{Duration, Instant};

use local_stack::{LocalStack, Options};
use serde_json::{Value, json};
use simulators::HasRecorder;

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
    shared::adapters::http::client(shared::adapters::http::Timeouts {
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

/// A call with an `x-api-key` header.
async fn keyed(
    base: &str,
    key: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("an HTTP method");
    let request = http()
        .request(method, format!("{base}{path}"))
        .header("x-api-key", key);
    send(request, body).await
}

/// A call to the tenant API with the demo tenant's key.
pub async fn api(
    stack: &LocalStack,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    keyed(
        &stack.ready.gateway_url,
        &stack.ready.api_key,
        method,
        path,
        body,
    )
    .await
}

/// A call to the tenant API with another key (another tenant's, say).
pub async fn api_as(
    stack: &LocalStack,
    key: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    keyed(&stack.ready.gateway_url, key, method, path, body).await
}

/// A call to the Flexprice simulator's API (or its `/_sim` controls).
pub async fn flexprice(
    stack: &LocalStack,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    keyed(
        &stack.ready.flexprice_sim_url,
        &stack.flexprice_api_key,
        method,
        path,
        body,
    )
    .await
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

/// A Razorpay webhook signed with the demo tenant's secret, through the gateway.
pub async fn deliver_razorpay(stack: &LocalStack, event_id: &str, body: &str) -> (u16, Value) {
    let secret = shared::domain::secret::Secret::new(stack.ready.webhook_secret.clone());
    let request = http()
        .post(format!(
            "{}/v1/webhooks/razorpay/{}/{}",
            stack.ready.gateway_url, stack.ready.tenant_id, stack.ready.environment_id
        ))
        .header(
            "x-razorpay-signature",
            shared::domain::signature::razorpay_sign(&secret, body.as_bytes()),
        )
        .header("x-razorpay-event-id", event_id)
        .body(body.to_owned());
    send(request, None).await
}

/// The payment once `done` holds.
pub async fn payment_when(stack: &LocalStack, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    wait_for(
        &format!("payment {id}"),
        Duration::from_secs(30),
        || async {
            let (_, payment) = api(stack, "GET", &format!("/api/v1/payments/{id}"), None).await;
            done(&payment).then_some(payment)
        },
    )
    .await
}

/// A Flexprice invoice for the seeded customer (`extra` merged into the body), finalized
/// through the simulator, which sends `invoice.update.finalized`. Answers its id.
pub async fn finalized_invoice(stack: &LocalStack, currency: &str, extra: Value) -> String {
    let mut body = json!({"customer_id": stack.ready.customer_id, "currency": currency,
        "due_date": "2030-01-31T00:00:00Z",
        "line_items": [{"display_name": "Pro plan", "entity_type": "plan", "amount": "999.00"},
                       {"display_name": "API calls", "entity_type": "usage", "amount": "120.50"}]});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let (status, invoice) = flexprice(stack, "POST", "/v1/invoices", Some(&body)).await;
    assert_eq!(status, 201, "{invoice}");
    let id = invoice["id"].as_str().unwrap().to_owned();
    let (status, _) = flexprice(stack, "POST", &format!("/v1/invoices/{id}/finalize"), None).await;
    assert_eq!(status, 200);
    id
}

/// The sync record once it reaches a state `done` accepts.
pub async fn sync_state(stack: &LocalStack, invoice_id: &str, done: &[&str]) -> Value {
    wait_for(
        &format!("invoice {invoice_id} to reach {done:?}"),
        Duration::from_secs(30),
        || async {
            let (status, view) = api(
                stack,
                "GET",
                &format!("/api/v1/invoices/{invoice_id}/sync"),
                None,
            )
            .await;
            (status == 200 && done.contains(&view["state"].as_str().unwrap_or_default()))
                .then_some(view)
        },
    )
    .await
}

/// A payment link for the seeded INR invoice (owes 1675.01).
pub async fn link_payment(stack: &LocalStack, amount: &str, idempotency_key: &str) -> Value {
    let body = serde_json::json!({"amount": amount, "currency": "INR",
        "destination_id": stack.ready.invoice_ids[0], "destination_type": "INVOICE",
        "payment_method_type": "PAYMENT_LINK", "payment_gateway": "razorpay",
        "idempotency_key": idempotency_key});
    let (status, payment) = api(stack, "POST", "/api/v1/payments", Some(&body)).await;
    assert_eq!(status, 201, "{payment}");
    payment
}

/// The customer opens a link: Razorpay makes its order (`order_id`, or a new one), the one
/// every payment on the link is on. Returns the order id.
pub async fn open_link(stack: &LocalStack, link_id: &str, order_id: Option<&str>) -> String {
    let path = format!("/_sim/payment_links/{link_id}/open");
    let body = serde_json::json!({"order_id": order_id});
    let (status, link) = razorpay_control(stack, &path, &body).await;
    assert_eq!(status, 200, "{link}");
    link["order_id"]
        .as_str()
        .expect("the link's order")
        .to_owned()
}

/// A `payment.captured` for our payment, as Razorpay sends it for a link payment: on the link's
/// order, with the link's notes copied onto the payment.
pub async fn captured_event(
    stack: &LocalStack,
    payment: &Value,
    razorpay_payment_id: &str,
    amount_minor: u64,
) -> String {
    let link_id = payment["gateway_tracking_id"]
        .as_str()
        .expect("a link payment");
    let order_id = open_link(stack, link_id, None).await;
    serde_json::json!({"entity": "event", "account_id": stack.razorpay.account_id(),
        "event": "payment.captured", "contains": ["payment"],
        "payload": {"payment": {"entity": {"id": razorpay_payment_id, "entity": "payment",
            "amount": amount_minor, "currency": "INR", "status": "captured", "captured": true,
            "order_id": order_id, "invoice_id": null,
            "notes": {"flexprice_payment_id": payment["id"], "tenant_id": stack.ready.tenant_id,
                "environment_id": stack.ready.environment_id}}}},
        "created_at": 1764060000})
    .to_string()
}

/// What Flexprice recorded against an invoice: (amount paid, payments recorded).
pub async fn flexprice_paid(stack: &LocalStack, invoice_id: &str) -> (String, usize) {
    let (_, invoice) = flexprice(stack, "GET", &format!("/v1/invoices/{invoice_id}"), None).await;
    let recorded = stack
        .flexprice
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/payments" && r.status == 201)
        .count();
    (
        invoice["amount_paid"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        recorded,
    )
}

/// A read of the Razorpay simulator's API with the demo account's key (`query` as pairs).
pub async fn razorpay_api(stack: &LocalStack, path: &str, query: &[(&str, &str)]) -> Value {
    http()
        .get(format!("{}{path}", stack.ready.razorpay_sim_url))
        .basic_auth(
            local_stack::RAZORPAY_KEY_ID,
            Some(&stack.razorpay_key_secret),
        )
        .query(query)
        .send()
        .await
        .expect("the Razorpay simulator answers")
        .json()
        .await
        .unwrap_or(Value::Null)
}

/// The demo tenant's connection, as a `PUT /api/v1/connections/razorpay` body (sync on).
pub fn connection_body(stack: &LocalStack) -> Value {
    serde_json::json!({"key_id": local_stack::RAZORPAY_KEY_ID,
        "key_secret": stack.razorpay_key_secret, "webhook_secret": stack.ready.webhook_secret,
        "flexprice_api_key": stack.flexprice_api_key,
        "flexprice_webhook_secret": stack.ready.flexprice_webhook_secret,
        "invoice_outbound_sync": true, "razorpay_account_id": stack.razorpay.account_id()})
}
