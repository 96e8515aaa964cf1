//! `shared::adapters::flexprice::FlexpriceClient` against the Flexprice simulator, and the simulator's
//! Svix-signed webhooks.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use serde_json::{Value, json};
use shared::adapters::flexprice::wire::{RecordPaymentRequest, UpdatePaymentRequest};
use shared::adapters::flexprice::{FlexpriceClient, FlexpriceConfig, FlexpriceError};
use shared::adapters::http::{RetryPolicy, Timeouts};
use shared::domain::money::{Currency, Money};
use shared::domain::secret::Secret;
use shared::domain::signature::{SignatureError, SvixHeaders, SvixSecret};
use simulators::Fault;
use simulators::HasRecorder;
use simulators::flexprice::{RunningSim, Simulator, WebhookTarget};

const API_KEY: &str = "fp_test_key";
const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

type Captured = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

async fn capture(State(seen): State<Captured>, headers: HeaderMap, body: Bytes) -> StatusCode {
    seen.lock().unwrap().push((headers, body.to_vec()));
    StatusCode::OK
}

async fn setup() -> (RunningSim, Captured) {
    let seen = Captured::default();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(capture))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let target = WebhookTarget {
        url,
        secret: Secret::new(WHSEC.to_owned()),
    };
    let sim = Simulator::new(API_KEY, Some(target))
        .unwrap()
        .serve(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .unwrap();
    (sim, seen)
}

fn client(sim: &RunningSim, key: &str) -> FlexpriceClient {
    FlexpriceClient::new(FlexpriceConfig {
        timeouts: Timeouts {
            connect: Duration::from_millis(500),
            total: Duration::from_millis(400),
        },
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
        },
        ..FlexpriceConfig::new(&sim.url, Secret::new(key.to_owned()))
    })
    .unwrap()
}

async fn post(sim: &RunningSim, path: &str, body: Value) -> Value {
    let response = shared::adapters::http::client(shared::adapters::http::Timeouts::default())
        .expect("an HTTP client")
        .post(format!("{}{path}", sim.url))
        .header("x-api-key", API_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

/// A customer and a finalized INR invoice: 999.00 + 2 x 100.25 - 50.00 discount + 179.82 tax
/// - 10.00 credits = 1319.32 due.
async fn seed(sim: &RunningSim) -> (String, String) {
    let customer = post(
        sim,
        "/v1/customers",
        json!({"external_id": "ext-1", "name": "Ada", "email": "ada@example.com"}),
    )
    .await;
    let customer_id = customer["id"].as_str().unwrap().to_owned();
    let invoice = post(sim, "/v1/invoices", json!({
        "customer_id": customer_id, "currency": "inr", "due_date": "2026-12-31T00:00:00Z",
        "line_items": [
            {"display_name": "Pro Plan", "entity_type": "plan", "amount": "999.00"},
            {"display_name": "API calls", "entity_type": "usage", "amount": "200.50", "quantity": 2}
        ],
        "taxes": [{"name": "GST 18%", "amount": "179.82"}],
        "total_discount": "50.00", "prepaid_credits_applied": "10.00",
        "metadata": {"existing": "kept"}
    })).await;
    let invoice_id = invoice["id"].as_str().unwrap().to_owned();
    post(
        sim,
        &format!("/v1/invoices/{invoice_id}/finalize"),
        json!({}),
    )
    .await;
    (customer_id, invoice_id)
}

fn inr(text: &str) -> Money {
    Money::parse(text, Currency::INR).unwrap()
}

fn payment(invoice_id: &str, amount: &str, key: &str) -> RecordPaymentRequest {
    RecordPaymentRequest::offline(
        invoice_id,
        inr(amount),
        key,
        BTreeMap::from([("razorpay_payment_id".into(), key.into())]),
    )
}

#[tokio::test]
async fn invoices_customers_and_exact_amounts() {
    let (sim, _) = setup().await;
    let (customer_id, invoice_id) = seed(&sim).await;
    let client = client(&sim, API_KEY);
    let customer = client.get_customer(&customer_id).await.unwrap();
    assert_eq!(customer.email.as_deref(), Some("ada@example.com"));
    let invoice = client.get_invoice(&invoice_id).await.unwrap();
    assert_eq!(invoice.invoice_status, "FINALIZED");
    assert_eq!(invoice.line_items.len(), 2);
    let amounts = invoice.amounts().unwrap();
    assert_eq!(amounts.subtotal, inr("1199.50"));
    assert_eq!(amounts.total, inr("1329.32"));
    assert_eq!(amounts.due, inr("1319.32"));
    assert_eq!(amounts.remaining, inr("1319.32"));
    assert_eq!(invoice.due_date.as_deref(), Some("2026-12-31T00:00:00Z"));
}

#[tokio::test]
async fn recording_payments_is_idempotent_and_recomputes_the_invoice() {
    let (sim, _) = setup().await;
    let (_, invoice_id) = seed(&sim).await;
    let client = client(&sim, API_KEY);
    let first = client
        .record_payment(&payment(&invoice_id, "1000.00", "rzp_pay_A"))
        .await
        .unwrap();
    assert_eq!(first.payment_status, "SUCCEEDED");
    let invoice = client.get_invoice(&invoice_id).await.unwrap();
    assert_eq!(
        (
            invoice.payment_status.as_str(),
            invoice.amounts().unwrap().remaining
        ),
        ("PENDING", inr("319.32"))
    );
    // The same key again: the same payment, nothing recorded twice.
    let again = client
        .record_payment(&payment(&invoice_id, "1000.00", "rzp_pay_A"))
        .await
        .unwrap();
    assert_eq!(again.id, first.id);
    assert_eq!(
        client
            .get_invoice(&invoice_id)
            .await
            .unwrap()
            .amounts()
            .unwrap()
            .paid,
        inr("1000.00")
    );
    // The same key with another amount answers the row under the key, as it is: the key
    // decides, not the body (the caller checks the row is the payment it asked for).
    let other = client
        .record_payment(&payment(&invoice_id, "5.00", "rzp_pay_A"))
        .await
        .unwrap();
    assert_eq!(
        (other.id.as_str(), other.amount.as_str()),
        (first.id.as_str(), "1000.00")
    );
    client
        .record_payment(&payment(&invoice_id, "319.32", "rzp_pay_B"))
        .await
        .unwrap();
    let invoice = client.get_invoice(&invoice_id).await.unwrap();
    assert_eq!(
        (
            invoice.payment_status.as_str(),
            invoice.amounts().unwrap().remaining
        ),
        ("SUCCEEDED", inr("0.00"))
    );
}

#[tokio::test]
async fn a_payment_retried_after_a_500_is_recorded_once() {
    let (sim, _) = setup().await;
    let (_, invoice_id) = seed(&sim).await;
    let client = client(&sim, API_KEY);
    // Recorded, then the answer is lost; the retry carries the same idempotency key.
    sim.sim.add_fault(Fault::HangAfter { ms: 1000 }, 1);
    client
        .record_payment(&payment(&invoice_id, "100.00", "rzp_pay_C"))
        .await
        .unwrap();
    sim.sim.add_fault(Fault::Status { status: 500 }, 1);
    client
        .record_payment(&payment(&invoice_id, "200.00", "rzp_pay_D"))
        .await
        .unwrap();
    let posts = sim
        .sim
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/payments")
        .count();
    assert_eq!(posts, 4);
    assert_eq!(
        client
            .get_invoice(&invoice_id)
            .await
            .unwrap()
            .amounts()
            .unwrap()
            .paid,
        inr("300.00")
    );
}

async fn paid(client: &FlexpriceClient, invoice_id: &str) -> Money {
    let invoice = client.get_invoice(invoice_id).await.unwrap();
    invoice.amounts().unwrap().paid
}

/// A client that asks once (no retries), to see each answer.
fn once_client(sim: &RunningSim) -> FlexpriceClient {
    let config = FlexpriceConfig::new(&sim.url, Secret::new(API_KEY.to_owned()));
    FlexpriceClient::new(FlexpriceConfig {
        retry: RetryPolicy::NONE,
        ..config
    })
    .unwrap()
}

async fn set_processing(sim: &RunningSim, processing: Value) {
    post(sim, "/_sim/payment-processing", processing).await;
}

#[tokio::test]
async fn a_payment_inserted_but_not_processed_is_answered_unprocessed_until_processed() {
    let (sim, _) = setup().await;
    let (_, invoice_id) = seed(&sim).await;
    let client = once_client(&sim);
    set_processing(&sim, json!({"fail": 1})).await;
    let request = payment(&invoice_id, "100.00", "rzp_pay_P");
    let err = client.record_payment(&request).await.unwrap_err();
    assert!(
        matches!(err, FlexpriceError::Api { status: 500, .. }),
        "{err:?}"
    );
    // The replay answers the inserted row without processing it: the invoice is untouched.
    let replay = client.record_payment(&request).await.unwrap();
    assert_eq!(replay.payment_status, "INITIATED");
    assert_eq!(paid(&client, &invoice_id).await, inr("0.00"));
    let processed = client.process_payment(&replay.id).await.unwrap();
    assert_eq!(
        (processed.id.as_str(), processed.payment_status.as_str()),
        (replay.id.as_str(), "SUCCEEDED")
    );
    assert_eq!(paid(&client, &invoice_id).await, inr("100.00"));
    // Processing twice is refused; the replay now answers SUCCEEDED.
    let twice = client.process_payment(&replay.id).await.unwrap_err();
    assert!(
        matches!(twice, FlexpriceError::Api { status: 400, .. }),
        "{twice:?}"
    );
    let replay = client.record_payment(&request).await.unwrap();
    assert_eq!(replay.payment_status, "SUCCEEDED");
    assert_eq!(paid(&client, &invoice_id).await, inr("100.00"));
}

#[tokio::test]
async fn a_second_request_on_a_key_being_processed_meets_a_409() {
    let (sim, _) = setup().await;
    let (_, invoice_id) = seed(&sim).await;
    let client = once_client(&sim);
    set_processing(&sim, json!({"delay_ms": 300})).await;
    let request = payment(&invoice_id, "100.00", "rzp_pay_Q");
    let (first, second) = tokio::join!(client.record_payment(&request), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        client.record_payment(&request).await
    });
    assert_eq!(first.unwrap().payment_status, "SUCCEEDED");
    let err = second.unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    assert_eq!(paid(&client, &invoice_id).await, inr("100.00"));
}

#[tokio::test]
async fn metadata_merge_keeps_existing_keys() {
    let (sim, _) = setup().await;
    let (_, invoice_id) = seed(&sim).await;
    let client = client(&sim, API_KEY);
    let keys = BTreeMap::from([
        ("razorpay_invoice_id".to_owned(), "inv_RZP1".to_owned()),
        (
            "razorpay_payment_url".to_owned(),
            "https://rzp.io/rzp/abc".to_owned(),
        ),
    ]);
    let invoice = client
        .merge_invoice_metadata(&invoice_id, &keys)
        .await
        .unwrap();
    assert_eq!(
        invoice.metadata.get("existing").map(String::as_str),
        Some("kept")
    );
    assert_eq!(
        invoice
            .metadata
            .get("razorpay_invoice_id")
            .map(String::as_str),
        Some("inv_RZP1")
    );
    assert_eq!(invoice.metadata.len(), 3);
}

#[tokio::test]
async fn errors_are_typed_and_timeouts_bounded() {
    let (sim, _) = setup().await;
    let (_, invoice_id) = seed(&sim).await;
    let bad = client(&sim, "wrong");
    let err = bad.get_invoice(&invoice_id).await.unwrap_err();
    assert!(
        matches!(&err, FlexpriceError::Api { status: 401, code: Some(c), .. } if c == "unauthorized"),
        "{err:?}"
    );
    let client = client(&sim, API_KEY);
    let err = client.get_invoice("inv_missing").await.unwrap_err();
    assert!(
        matches!(&err, FlexpriceError::Api { status: 404, message, .. } if message == "invoice inv_missing not found"),
        "{err:?}"
    );
    sim.sim.add_fault(Fault::Status { status: 429 }, 1);
    assert_eq!(
        client.get_invoice(&invoice_id).await.unwrap().id,
        invoice_id
    );
    sim.sim.add_fault(Fault::Hang { ms: 2000 }, 3);
    let started = Instant::now();
    let err = client.get_invoice(&invoice_id).await.unwrap_err();
    assert!(matches!(err, FlexpriceError::Timeout), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_millis(1800),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn finalize_and_void_send_svix_signed_webhooks() {
    let (sim, seen) = setup().await;
    let (_, invoice_id) = seed(&sim).await;
    // Each event is delivered from its own task: wait for the first before the second.
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.lock().unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the finalized webhook did not arrive"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    post(&sim, &format!("/v1/invoices/{invoice_id}/void"), json!({})).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.lock().unwrap().len() < 2 {
        assert!(Instant::now() < deadline, "webhooks did not arrive");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secret = SvixSecret::parse(&Secret::new(WHSEC.to_owned())).unwrap();
    let captured = seen.lock().unwrap().clone();
    let mut events = Vec::new();
    for (headers, body) in &captured {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let svix = SvixHeaders {
            id: header("svix-id"),
            timestamp: header("svix-timestamp"),
            signature: header("svix-signature"),
        };
        let now = shared::ports::Clock::now_secs(&shared::ports::SystemClock);
        assert_eq!(secret.verify(svix, body, now), Ok(()));
        let mut tampered = body.clone();
        tampered.push(b' ');
        assert_eq!(
            secret.verify(svix, &tampered, now),
            Err(SignatureError::Mismatch)
        );
        let payload: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(payload["invoice"]["id"], invoice_id.as_str());
        events.push(payload["event_type"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        events,
        ["invoice.update.finalized", "invoice.update.voided"]
    );
}

#[tokio::test]
async fn lines_finer_than_the_subunit_are_kept_and_the_totals_rounded_half_up() {
    let (sim, _) = setup().await;
    let (customer_id, _) = seed(&sim).await;
    let invoice = post(
        &sim,
        "/v1/invoices",
        json!({
            "customer_id": customer_id, "currency": "inr",
            "line_items": [
                {"display_name": "API calls", "entity_type": "usage", "amount": "999.995"},
                {"display_name": "Storage", "entity_type": "usage", "amount": "119.5025"}]
        }),
    )
    .await;
    assert_eq!(invoice["line_items"][0]["amount"], "999.995");
    assert_eq!(invoice["line_items"][1]["amount"], "119.5025");
    assert_eq!(invoice["subtotal"], "1119.4975", "unrounded");
    assert_eq!(invoice["total"], "1119.50");
    assert_eq!(invoice["amount_due"], "1119.50");
    // Seven digits after the point, or a negative line, are refused.
    let http = shared::adapters::http::client(shared::adapters::http::Timeouts::default()).unwrap();
    for amount in ["1.0000001", "-5.00", "1.2.3"] {
        let response = http
            .post(format!("{}/v1/invoices", sim.url))
            .header("x-api-key", API_KEY)
            .json(&json!({"customer_id": customer_id, "currency": "inr",
                "line_items": [{"display_name": "X", "amount": amount}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{amount}");
    }
}

#[tokio::test]
async fn every_recorded_payment_sends_invoice_update_payment() {
    let (sim, seen) = setup().await;
    let (_, invoice_id) = seed(&sim).await;
    let client = client(&sim, API_KEY);
    client
        .record_payment(&payment(&invoice_id, "100.00", "pay_Hook1"))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let events: Vec<Value> = seen
            .lock()
            .unwrap()
            .iter()
            .map(|(_, body)| serde_json::from_slice(body).unwrap())
            .collect();
        if let Some(event) = events
            .iter()
            .find(|e| e["event_type"] == "invoice.update.payment")
        {
            assert_eq!(event["invoice"]["amount_paid"], "100.00");
            assert_eq!(event["invoice"]["amount_remaining"], "1219.32");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no invoice.update.payment: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_payment_moves_only_forward_through_its_refund_states() {
    let (sim, _) = setup().await;
    let (_, invoice_id) = seed(&sim).await;
    let client = client(&sim, API_KEY);
    let recorded = client
        .record_payment(&payment(&invoice_id, "100.00", "rzp_pay_Refund"))
        .await
        .unwrap();
    let to = |status: &str, refunded: &str| UpdatePaymentRequest {
        payment_status: status.into(),
        refunded_at: "2026-12-02T10:00:00Z".into(),
        metadata: BTreeMap::from([("amount_refunded".into(), refunded.into())]),
    };
    let partial = client
        .update_payment(&recorded.id, &to("PARTIALLY_REFUNDED", "40.00"))
        .await
        .unwrap();
    assert_eq!(partial.payment_status, "PARTIALLY_REFUNDED");
    assert_eq!(partial.metadata["amount_refunded"], "40.00", "replaced");
    assert!(!partial.metadata.contains_key("razorpay_payment_id"));
    let full = client
        .update_payment(&recorded.id, &to("REFUNDED", "100.00"))
        .await
        .unwrap();
    assert_eq!(full.payment_status, "REFUNDED");
    for back in ["PARTIALLY_REFUNDED", "SUCCEEDED", "FAILED"] {
        let refused = client
            .update_payment(&recorded.id, &to(back, "0"))
            .await
            .unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("invalid payment status transition"),
            "{back}: {refused}"
        );
    }
}
