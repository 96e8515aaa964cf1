//! A captured payment on a link is recorded into Flexprice exactly once and settles the
//! invoice, end to end on the local stack.

use std::time::{Duration, Instant};

use local_stack::{LocalStack, Options};
use serde_json::{Value, json};
use shared::flexprice::{FlexpriceClient, FlexpriceConfig};
use shared::secret::Secret;

#[tokio::test]
async fn paying_the_link_pays_the_invoice_once_even_with_duplicate_webhooks() {
    let mut options = Options::from_env(0);
    options.resource_prefix = simulators::common::new_id("rec-").to_lowercase();
    let stack: LocalStack = LocalStack::start(options).await.unwrap();
    let http = shared::http::client(shared::http::Timeouts::default()).unwrap();
    let invoice_id = stack.ready.invoice_ids[0].clone();
    let body = json!({"amount": "1675.01", "currency": "INR", "destination_id": invoice_id,
        "destination_type": "INVOICE", "payment_method_type": "PAYMENT_LINK", "payment_gateway": "razorpay"});
    let payment: Value = http
        .post(format!("{}/api/v1/payments", stack.ready.gateway_url))
        .header("x-api-key", &stack.ready.api_key)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let link = payment["gateway_tracking_id"].as_str().unwrap();
    let paid = http
        .post(format!(
            "{}/_sim/payment_links/{link}/pay",
            stack.ready.razorpay_sim_url
        ))
        .json(&json!({"duplicate": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), 200);

    let flexprice = FlexpriceClient::new(FlexpriceConfig::new(
        &stack.ready.flexprice_sim_url,
        Secret::new(stack.flexprice_api_key.clone()),
    ))
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let invoice = loop {
        let invoice = flexprice.get_invoice(&invoice_id).await.unwrap();
        if invoice.payment_status == "SUCCEEDED" || Instant::now() > deadline {
            break invoice;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        invoice.payment_status, "SUCCEEDED",
        "the invoice never settled: {invoice:?}"
    );
    let amounts = invoice.amounts().unwrap();
    assert_eq!(
        amounts.paid.to_decimal_string(),
        "1675.01",
        "recorded exactly once"
    );
    assert_eq!(amounts.remaining.minor(), 0);

    let ours: Value = http
        .get(format!(
            "{}/api/v1/payments/{}",
            stack.ready.gateway_url,
            payment["id"].as_str().unwrap()
        ))
        .header("x-api-key", &stack.ready.api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ours["payment_status"], "SUCCEEDED");
    // Give any straggling duplicate a moment, then check nothing was recorded twice.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let again = flexprice.get_invoice(&invoice_id).await.unwrap();
    assert_eq!(again.amounts().unwrap().paid.to_decimal_string(), "1675.01");
}

async fn create_payment(stack: &LocalStack, amount: &str, key: &str) -> Value {
    let body = json!({"amount": amount, "currency": "INR", "destination_id": stack.ready.invoice_ids[0],
        "destination_type": "INVOICE", "payment_method_type": "PAYMENT_LINK", "payment_gateway": "razorpay",
        "idempotency_key": key});
    shared::http::client(shared::http::Timeouts::default())
        .unwrap()
        .post(format!("{}/api/v1/payments", stack.ready.gateway_url))
        .header("x-api-key", &stack.ready.api_key)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn control(stack: &LocalStack, path: &str) {
    let response = shared::http::client(shared::http::Timeouts::default())
        .unwrap()
        .post(format!("{}/_sim/{path}", stack.ready.razorpay_sim_url))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
}

/// Polls our payment until `done` holds (or 20 s pass) and returns it.
async fn wait_payment(stack: &LocalStack, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let payment: Value = shared::http::client(shared::http::Timeouts::default())
            .unwrap()
            .get(format!("{}/api/v1/payments/{id}", stack.ready.gateway_url))
            .header("x-api-key", &stack.ready.api_key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if done(&payment) || Instant::now() > deadline {
            return payment;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

async fn started() -> LocalStack {
    let mut options = Options::from_env(0);
    options.resource_prefix = simulators::common::new_id("rec-").to_lowercase();
    options.webhook_secret = Some("reconcile_secret".into());
    LocalStack::start(options).await.unwrap()
}

#[tokio::test]
async fn a_failed_attempt_leaves_the_payment_open_and_never_undoes_success() {
    let stack = started().await;
    let payment = create_payment(&stack, "100.00", "fail-then-pay").await;
    let id = payment["id"].as_str().unwrap();
    let link = payment["gateway_tracking_id"].as_str().unwrap();
    control(&stack, &format!("payment_links/{link}/fail")).await;
    let failed_once = wait_payment(&stack, id, |p| {
        p["attempts"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    assert_eq!(failed_once["payment_status"], "PENDING", "{failed_once}");
    assert_eq!(
        failed_once["attempts"][0]["error_code"],
        "BAD_REQUEST_ERROR"
    );
    control(&stack, &format!("payment_links/{link}/pay")).await;
    let paid = wait_payment(&stack, id, |p| p["payment_status"] == "SUCCEEDED").await;
    assert_eq!(paid["payment_status"], "SUCCEEDED", "{paid}");

    // A late payment.failed (out of order) records an attempt but never undoes SUCCEEDED.
    let late = json!({"entity": "event", "account_id": stack.razorpay.account_id(),
        "event": "payment.failed", "contains": ["payment"],
        "payload": {"payment": {"entity": {"id": "pay_LateFailure000001", "entity": "payment", "amount": 10000,
            "currency": "INR", "status": "failed", "error_code": "BAD_REQUEST_ERROR",
            "notes": {"flexprice_payment_id": id, "tenant_id": "demo", "environment_id": "sandbox"}}}},
        "created_at": 1764060000}).to_string();
    let signature = shared::signature::razorpay_sign(
        &Secret::new("reconcile_secret".to_owned()),
        late.as_bytes(),
    );
    let response = shared::http::client(shared::http::Timeouts::default())
        .unwrap()
        .post(format!(
            "{}/v1/webhooks/razorpay/demo/sandbox",
            stack.ready.gateway_url
        ))
        .header("x-razorpay-signature", signature)
        .header("x-razorpay-event-id", "evt_late_failure")
        .body(late)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let after = wait_payment(&stack, id, |p| {
        p["attempts"].as_array().is_some_and(|a| a.len() >= 2)
    })
    .await;
    assert_eq!(after["attempts"].as_array().unwrap().len(), 2, "{after}");
    assert_eq!(after["payment_status"], "SUCCEEDED");
}

#[tokio::test]
async fn an_expired_link_fails_its_payment() {
    let stack = started().await;
    let payment = create_payment(&stack, "200.00", "will-expire").await;
    let id = payment["id"].as_str().unwrap();
    control(
        &stack,
        &format!(
            "payment_links/{}/expire",
            payment["gateway_tracking_id"].as_str().unwrap()
        ),
    )
    .await;
    let failed = wait_payment(&stack, id, |p| p["payment_status"] == "FAILED").await;
    assert_eq!(failed["payment_status"], "FAILED", "{failed}");
    assert!(
        failed["failure_reason"]
            .as_str()
            .unwrap()
            .starts_with("payment_link.expired")
    );
}
