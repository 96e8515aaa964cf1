//! The simulator's webhooks: real envelopes, signed so that `shared::domain::signature` verifies them,
//! with event ids, duplicates, reordering and retries of failed deliveries.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};
use shared::domain::secret::Secret;
use shared::domain::signature::{SignatureError, verify_razorpay_webhook};
use simulators::HasRecorder;
use simulators::razorpay::{RunningSim, SimConfig, Simulator, WebhookTarget};

const WEBHOOK_SECRET: &str = "sim_webhook_secret";

#[derive(Clone, Debug)]
struct Received {
    event_id: String,
    signature: String,
    body: Vec<u8>,
}

#[derive(Clone, Default)]
struct Receiver {
    received: Arc<Mutex<Vec<Received>>>,
    /// Answer 500 to this many deliveries first.
    fail_first: Arc<AtomicU32>,
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    if receiver
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    receiver.received.lock().unwrap().push(Received {
        event_id: header("x-razorpay-event-id"),
        signature: header("x-razorpay-signature"),
        body: body.to_vec(),
    });
    StatusCode::OK
}

async fn setup() -> (RunningSim, Receiver) {
    let receiver = Receiver::default();
    let app = axum::Router::new()
        .route("/hook", post(receive))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut config = SimConfig::new("rzp_test_hooks", "hooks_secret");
    config.webhook = Some(WebhookTarget {
        url,
        secret: Secret::new(WEBHOOK_SECRET.to_owned()),
    });
    let sim = Simulator::new(config)
        .unwrap()
        .serve(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .unwrap();
    (sim, receiver)
}

async fn create_link(sim: &RunningSim, accept_partial: bool) -> String {
    let link: Value = shared::adapters::http::client(shared::adapters::http::Timeouts::default())
        .expect("an HTTP client")
        .post(format!("{}/v1/payment_links", sim.url))
        .basic_auth("rzp_test_hooks", Some("hooks_secret"))
        .json(
            &json!({"amount": 200000, "currency": "INR", "reference_id": shared_id(),
            "accept_partial": accept_partial, "notes": {"flexprice_payment_id": "fp_pay_1"}}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    link["id"].as_str().unwrap().to_owned()
}

fn shared_id() -> String {
    simulators::razorpay::new_id("ref_")
}

async fn control(sim: &RunningSim, path: &str, body: Value) -> Value {
    let response = shared::adapters::http::client(shared::adapters::http::Timeouts::default())
        .expect("an HTTP client")
        .post(format!("{}/_sim/{path}", sim.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

async fn wait_for(receiver: &Receiver, n: usize) -> Vec<Received> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let received = receiver.received.lock().unwrap().clone();
        if received.len() >= n {
            return received;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {n} webhooks arrived",
            received.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn event_name(received: &Received) -> String {
    serde_json::from_slice::<Value>(&received.body).unwrap()["event"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn paying_a_link_sends_signed_events_that_verify_and_tampering_does_not() {
    let (sim, receiver) = setup().await;
    let link_id = create_link(&sim, false).await;
    let result = control(&sim, &format!("payment_links/{link_id}/pay"), json!({})).await;
    assert_eq!(result["events"].as_array().unwrap().len(), 3);
    let received = wait_for(&receiver, 3).await;
    let names: Vec<String> = received.iter().map(event_name).collect();
    assert_eq!(
        names,
        [
            "payment.authorized",
            "payment.captured",
            "payment_link.paid"
        ]
    );

    let secret = Secret::new(WEBHOOK_SECRET.to_owned());
    for r in &received {
        assert!(
            r.event_id.starts_with("evt_") && r.event_id.len() == 18,
            "{}",
            r.event_id
        );
        assert!(verify_razorpay_webhook(&r.body, Some(&r.signature), &[&secret]).is_ok());
        let mut tampered = r.body.clone();
        let at = tampered.iter().position(|b| b.is_ascii_digit()).unwrap();
        tampered[at] = if tampered[at] == b'9' {
            b'8'
        } else {
            tampered[at] + 1
        };
        assert_eq!(
            verify_razorpay_webhook(&tampered, Some(&r.signature), &[&secret]),
            Err(SignatureError::Mismatch)
        );
    }
    let ids: std::collections::HashSet<_> = received.iter().map(|r| &r.event_id).collect();
    assert_eq!(ids.len(), 3, "each event has its own id");

    // The real envelope: contains, payload.{key}.entity, and the link's notes on the payment.
    let paid: Value = serde_json::from_slice(&received[2].body).unwrap();
    assert_eq!(paid["entity"], "event");
    assert_eq!(paid["account_id"], sim.sim.account_id());
    assert_eq!(
        paid["contains"],
        json!(["payment_link", "order", "payment"])
    );
    let payment = &paid["payload"]["payment"]["entity"];
    assert_eq!(payment["status"], "captured");
    assert_eq!(payment["notes"]["flexprice_payment_id"], "fp_pay_1");
    assert_eq!(paid["payload"]["payment_link"]["entity"]["status"], "paid");
    let order_id = paid["payload"]["order"]["entity"]["id"].as_str().unwrap();
    assert!(
        !order_id.starts_with("order_"),
        "the internal order id has no prefix"
    );
    assert_eq!(payment["order_id"], format!("order_{order_id}"));
    // The authorized event is a snapshot from before the capture.
    let authorized: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(
        authorized["payload"]["payment"]["entity"]["status"],
        "authorized"
    );
}

#[tokio::test]
async fn duplicates_and_reordering_on_request() {
    let (sim, receiver) = setup().await;
    let link_id = create_link(&sim, true).await;
    control(
        &sim,
        &format!("payment_links/{link_id}/pay"),
        json!({"amount": 50000, "duplicate": true, "reorder": true}),
    )
    .await;
    let received = wait_for(&receiver, 6).await;
    let names: Vec<String> = received.iter().map(event_name).collect();
    assert_eq!(
        names,
        [
            "payment_link.partially_paid",
            "payment_link.partially_paid",
            "payment.captured",
            "payment.captured",
            "payment.authorized",
            "payment.authorized"
        ]
    );
    // A duplicate is the same event: same id, same bytes.
    assert_eq!(received[0].event_id, received[1].event_id);
    assert_eq!(received[0].body, received[1].body);
}

#[tokio::test]
async fn failed_deliveries_are_retried_until_accepted() {
    let (sim, receiver) = setup().await;
    receiver.fail_first.store(2, Ordering::SeqCst);
    let link_id = create_link(&sim, false).await;
    control(&sim, &format!("payment_links/{link_id}/expire"), json!({})).await;
    let received = wait_for(&receiver, 1).await;
    assert_eq!(event_name(&received[0]), "payment_link.expired");
    let deadline = Instant::now() + Duration::from_secs(5);
    while sim.sim.deliveries().is_empty() {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivery = &sim.sim.deliveries()[0];
    assert_eq!(
        (delivery.attempts, delivery.delivered, delivery.status),
        (3, true, Some(200))
    );
}

#[tokio::test]
async fn failed_payments_cancellations_and_invoices_send_their_events() {
    let (sim, receiver) = setup().await;
    let link_id = create_link(&sim, false).await;
    control(&sim, &format!("payment_links/{link_id}/fail"), json!({})).await;
    // Each action delivers from its own task: wait for the first before the next.
    wait_for(&receiver, 1).await;
    control(&sim, &format!("payment_links/{link_id}/cancel"), json!({})).await;
    let received = wait_for(&receiver, 2).await;
    let failed: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(failed["event"], "payment.failed");
    let payment = &failed["payload"]["payment"]["entity"];
    assert_eq!(payment["error_code"], "BAD_REQUEST_ERROR");
    assert_eq!(payment["captured"], false);
    assert_eq!(event_name(&received[1]), "payment_link.cancelled");
    // Paying a cancelled link is refused.
    let refused = shared::adapters::http::client(shared::adapters::http::Timeouts::default())
        .expect("an HTTP client")
        .post(format!("{}/_sim/payment_links/{link_id}/pay", sim.url))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
}

#[tokio::test]
async fn paying_an_invoice_in_parts_sends_partially_paid_then_paid() {
    let (sim, receiver) = setup().await;
    let http = shared::adapters::http::client(shared::adapters::http::Timeouts::default())
        .expect("an HTTP client");
    let auth = |r: reqwest::RequestBuilder| r.basic_auth("rzp_test_hooks", Some("hooks_secret"));
    let customer: Value = auth(http.post(format!("{}/v1/customers", sim.url)))
        .json(&json!({"name": "Ada", "email": "ada@example.com", "fail_existing": "0"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let invoice: Value = auth(http.post(format!("{}/v1/invoices", sim.url)))
        .json(
            &json!({"type": "invoice", "customer_id": customer["id"], "currency": "INR",
            "receipt": "inv_fp_parts", "partial_payment": true,
            "line_items": [{"name": "Usage", "amount": 150000, "currency": "INR", "quantity": 1}]}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = invoice["id"].as_str().unwrap();
    control(
        &sim,
        &format!("invoices/{id}/pay"),
        json!({"amount": 50000}),
    )
    .await;
    // Each action delivers from its own task: wait for the first before the next.
    wait_for(&receiver, 3).await;
    control(&sim, &format!("invoices/{id}/pay"), json!({})).await;
    let received = wait_for(&receiver, 6).await;
    let names: Vec<String> = received.iter().map(event_name).collect();
    assert_eq!(names[2], "invoice.partially_paid");
    assert_eq!(names[5], "invoice.paid");
    let paid: Value = serde_json::from_slice(&received[5].body).unwrap();
    assert_eq!(paid["contains"], json!(["payment", "order", "invoice"]));
    let entity = &paid["payload"]["invoice"]["entity"];
    assert_eq!(
        (
            entity["status"].as_str(),
            entity["amount_paid"].as_u64(),
            entity["amount_due"].as_u64()
        ),
        (Some("paid"), Some(150000), Some(0))
    );
    let payment = &paid["payload"]["payment"]["entity"];
    assert_eq!(payment["invoice_id"], id);
    assert_eq!(payment["amount"], 100000);
    assert_eq!(payment["order_id"], invoice["order_id"]);
}
