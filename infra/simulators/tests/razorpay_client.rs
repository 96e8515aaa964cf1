//! `shared::adapters::razorpay::RazorpayClient` against the simulator: success paths, error shapes,
//! retries, recovery lookups and timeouts; and the simulator's own rules.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use shared::adapters::http::{RetryPolicy, Timeouts};
use shared::adapters::razorpay::wire::{
    CustomerRequest, InvoiceRequest, LineItemRequest, LinkCustomer, Notes, PaymentLinkRequest,
    RefundRequest,
};
use shared::adapters::razorpay::{PaymentsPage, RazorpayClient, RazorpayConfig, RazorpayError};
use shared::domain::secret::Secret;
use simulators::Fault;
use simulators::HasRecorder;
use simulators::razorpay::{RunningSim, SimConfig, Simulator};

const KEY_ID: &str = "rzp_test_client";
const KEY_SECRET: &str = "client_key_secret";

async fn sim() -> RunningSim {
    Simulator::new(SimConfig::new(KEY_ID, KEY_SECRET))
        .unwrap()
        .serve(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .unwrap()
}

fn config(url: &str, secret: &str) -> RazorpayConfig {
    RazorpayConfig {
        timeouts: Timeouts {
            connect: Duration::from_millis(500),
            total: Duration::from_millis(400),
        },
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
        },
        ..RazorpayConfig::new(url, KEY_ID, Secret::new(secret.to_owned()))
    }
}

fn client(sim: &RunningSim) -> RazorpayClient {
    RazorpayClient::new(config(&sim.url, KEY_SECRET)).unwrap()
}

fn link_request(reference_id: &str, amount: u64) -> PaymentLinkRequest {
    PaymentLinkRequest {
        amount,
        currency: "INR".into(),
        reference_id: reference_id.into(),
        description: Some("Invoice INV-0042".into()),
        customer: Some(LinkCustomer {
            name: Some("Ada Lovelace".into()),
            email: Some("ada@example.com".into()),
            contact: None,
        }),
        notes: Notes::from([("flexprice_payment_id", reference_id)]),
        callback_url: Some("https://example.com/paid".into()),
        callback_method: Some("get".into()),
        ..PaymentLinkRequest::default()
    }
}

fn customer_request(email: Option<&str>) -> CustomerRequest {
    CustomerRequest {
        name: "Ada Lovelace".into(),
        email: email.map(str::to_owned),
        contact: email.map(|_| "+919876543210".to_owned()),
        notes: Notes::from([("flexprice_customer_id", "cust_fp_1")]),
        ..CustomerRequest::default()
    }
}

fn count(sim: &RunningSim, method: &str, path: &str) -> usize {
    sim.sim
        .requests()
        .iter()
        .filter(|r| r.method == method && r.path == path)
        .count()
}

fn api_error(err: RazorpayError) -> (u16, String, Option<String>) {
    match err {
        RazorpayError::Api {
            status,
            description,
            field,
            ..
        } => (status, description, field),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn customers_links_invoices_and_payments_round_trip() {
    let sim = sim().await;
    let client = client(&sim);

    let customer = client
        .create_customer(&customer_request(Some("ada@example.com")))
        .await
        .unwrap();
    assert!(
        customer.id.starts_with("cust_") && customer.id.len() == 19,
        "{}",
        customer.id
    );
    assert_eq!(
        customer.notes.get("flexprice_customer_id"),
        Some("cust_fp_1")
    );
    // fail_existing "0": the same email and contact give back the same customer.
    let again = client
        .create_customer(&customer_request(Some("ada@example.com")))
        .await
        .unwrap();
    assert_eq!(again.id, customer.id);
    assert_eq!(
        client.get_customer(&customer.id).await.unwrap().id,
        customer.id
    );

    let link = client
        .create_payment_link(&link_request("pay_ref_1", 112050))
        .await
        .unwrap();
    assert!(
        link.id.starts_with("plink_") && link.id.len() == 20,
        "{}",
        link.id
    );
    assert_eq!(
        (link.amount, link.amount_paid, link.status.as_str()),
        (112050, 0, "created")
    );
    assert!(link.short_url.starts_with("https://rzp.io/"));
    assert_eq!(link.expire_by, None);
    let found = client
        .find_payment_links_by_reference("pay_ref_1")
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, link.id);
    assert!(
        client
            .find_payment_links_by_reference("nope")
            .await
            .unwrap()
            .is_empty()
    );

    let paid = control(
        &sim,
        &format!("/_sim/payment_links/{}/pay", link.id),
        serde_json::json!({}),
    )
    .await;
    let payment_id = paid["payments"][0].as_str().unwrap();
    let payment = client.get_payment(payment_id).await.unwrap();
    assert_eq!(
        (payment.amount, payment.status.as_str()),
        (112050, "captured")
    );
    assert_eq!(payment.notes.get("flexprice_payment_id"), Some("pay_ref_1"));
    let link = client.get_payment_link(&link.id).await.unwrap();
    assert_eq!((link.status.as_str(), link.amount_paid), ("paid", 112050));
    assert_eq!(
        link.order_id.as_deref(),
        Some(payment.order_id.as_deref().unwrap())
    );

    let invoice = client
        .create_invoice(&InvoiceRequest {
            kind: "invoice".into(),
            customer_id: customer.id.clone(),
            currency: "INR".into(),
            receipt: "inv_fp_42".into(),
            line_items: vec![
                LineItemRequest {
                    name: "API calls".into(),
                    amount: 50000,
                    currency: "INR".into(),
                    quantity: 2,
                    description: None,
                },
                LineItemRequest {
                    name: "Seats".into(),
                    amount: 12050,
                    currency: "INR".into(),
                    quantity: 1,
                    description: None,
                },
            ],
            ..InvoiceRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (invoice.amount, invoice.amount_due, invoice.status.as_str()),
        (Some(112050), Some(112050), "issued")
    );
    assert_eq!(invoice.line_items.len(), 2);
    assert!(invoice.order_id.is_some() && invoice.short_url.is_some());
    let by_receipt = client.find_invoices_by_receipt("inv_fp_42").await.unwrap();
    assert_eq!(by_receipt[0].id, invoice.id);
    let cancelled = client.cancel_invoice(&invoice.id).await.unwrap();
    assert_eq!(cancelled.status, "cancelled");
    assert_eq!(cancelled.amount_due, None);
    let (status, description, _) = api_error(client.cancel_invoice(&invoice.id).await.unwrap_err());
    assert_eq!(
        (status, description.as_str()),
        (
            400,
            "Operation not allowed for Invoice in cancelled status."
        )
    );
}

#[tokio::test]
async fn a_draft_invoice_is_not_payable_until_issued_and_is_issued_once() {
    let sim = sim().await;
    let client = client(&sim);
    let customer = client
        .create_customer(&customer_request(Some("ada@example.com")))
        .await
        .unwrap();
    let draft = client
        .create_invoice(&InvoiceRequest {
            kind: "invoice".into(),
            customer_id: customer.id.clone(),
            currency: "INR".into(),
            receipt: "inv_fp_draft".into(),
            line_items: vec![LineItemRequest {
                name: "Plan".into(),
                amount: 50000,
                currency: "INR".into(),
                quantity: 1,
                description: None,
            }],
            draft: Some("1".into()),
            ..InvoiceRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(draft.status.as_str(), "draft");
    assert_eq!(
        (draft.order_id.as_deref(), draft.short_url.as_deref()),
        (None, None)
    );
    let pay = reqwest::Client::new()
        .post(format!("{}/_sim/invoices/{}/pay", sim.url, draft.id))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(pay.status(), 400, "a draft cannot be paid");
    let issued = client.issue_invoice(&draft.id).await.unwrap();
    assert_eq!(issued.status.as_str(), "issued");
    assert!(issued.order_id.is_some() && issued.short_url.is_some());
    // Issuing twice is refused.
    let again = client.issue_invoice(&draft.id).await.unwrap_err();
    let (status, description, _) = api_error(again);
    assert_eq!(
        (status, description.as_str()),
        (400, "Operation not allowed for Invoice in issued status.")
    );
}

#[tokio::test]
async fn the_simulators_rules_come_back_as_typed_errors() {
    let sim = sim().await;
    let client = client(&sim);

    let (status, description, field) = api_error(
        client
            .create_payment_link(&link_request("r-min", 99))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (status, description.as_str(), field.as_deref()),
        (400, "The amount must be at least INR 1.00", Some("amount"))
    );

    client
        .create_payment_link(&link_request("r-dup", 1000))
        .await
        .unwrap();
    let (_, description, _) = api_error(
        client
            .create_payment_link(&link_request("r-dup", 1000))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        description,
        "payment link creation with reference ID already attempted"
    );
    // The refused duplicate was sent once: a plain refusal is not retried.
    assert_eq!(count(&sim, "POST", "/v1/payment_links"), 3);

    let mut long_note = link_request("r-notes", 1000);
    long_note.notes.insert("x", "y".repeat(256));
    let (_, description, field) =
        api_error(client.create_payment_link(&long_note).await.unwrap_err());
    assert_eq!(
        (description.as_str(), field.as_deref()),
        (
            "value: the length must not be greater than 255.",
            Some("notes")
        )
    );

    let mut many_notes = link_request("r-many", 1000);
    for i in 0..15 {
        many_notes.notes.insert(format!("k{i}"), "v");
    }
    assert_eq!(
        api_error(client.create_payment_link(&many_notes).await.unwrap_err())
            .2
            .as_deref(),
        Some("notes")
    );

    let mut soon = link_request("r-soon", 1000);
    soon.expire_by = Some(shared::ports::Clock::now_secs(&shared::ports::SystemClock) + 60);
    let (_, description, _) = api_error(client.create_payment_link(&soon).await.unwrap_err());
    assert_eq!(
        description,
        "timestamp must be atleast 15 minutes in future"
    );

    let mut post_callback = link_request("r-cb", 1000);
    post_callback.callback_method = Some("post".into());
    assert_eq!(
        api_error(
            client
                .create_payment_link(&post_callback)
                .await
                .unwrap_err()
        )
        .2
        .as_deref(),
        Some("callback_method")
    );

    // Without fail_existing "0", a second customer with the same email and contact is refused.
    let raw = shared::adapters::http::client(shared::adapters::http::Timeouts::default())
        .expect("an HTTP client")
        .post(format!("{}/v1/customers", sim.url))
        .basic_auth(KEY_ID, Some(KEY_SECRET))
        .json(&serde_json::json!({"name": "Ada", "email": "a@b.co", "contact": "+919876543210"}));
    assert_eq!(raw.try_clone().unwrap().send().await.unwrap().status(), 200);
    let body: serde_json::Value = raw.send().await.unwrap().json().await.unwrap();
    assert_eq!(
        body["error"]["description"],
        "Customer already exists for the merchant"
    );
}

#[tokio::test]
async fn wrong_credentials_are_refused_and_not_retried() {
    let sim = sim().await;
    let client = RazorpayClient::new(config(&sim.url, "wrong")).unwrap();
    let (status, description, _) = api_error(client.get_payment_link("plink_x").await.unwrap_err());
    assert_eq!(
        (status, description.as_str()),
        (401, "Authentication failed")
    );
    assert_eq!(count(&sim, "GET", "/v1/payment_links/plink_x"), 1);
}

#[tokio::test]
async fn reads_retry_500_and_429_then_succeed() {
    let sim = sim().await;
    let client = client(&sim);
    let link = client
        .create_payment_link(&link_request("r-read", 1000))
        .await
        .unwrap();
    sim.sim.add_fault(Fault::Status { status: 500 }, 1);
    sim.sim.add_fault(Fault::Status { status: 429 }, 1);
    assert_eq!(client.get_payment_link(&link.id).await.unwrap().id, link.id);
    assert_eq!(
        count(&sim, "GET", &format!("/v1/payment_links/{}", link.id)),
        3
    );
    // Out of attempts: the last error comes back, typed and retryable.
    sim.sim.add_fault(Fault::Status { status: 503 }, 3);
    let err = client.get_payment_link(&link.id).await.unwrap_err();
    assert!(
        shared::domain::error::Classify::is_retryable(&err),
        "{err:?}"
    );
    assert_eq!(api_error(err).0, 503);
}

#[tokio::test]
async fn a_throttled_create_is_retried_and_makes_one_link() {
    let sim = sim().await;
    let client = client(&sim);
    sim.sim.add_fault(Fault::Status { status: 429 }, 1);
    let link = client
        .create_payment_link(&link_request("r-429", 1000))
        .await
        .unwrap();
    assert_eq!(count(&sim, "POST", "/v1/payment_links"), 2);
    let links = client
        .find_payment_links_by_reference("r-429")
        .await
        .unwrap();
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].id, link.id);
}

#[tokio::test]
async fn a_create_that_failed_with_500_is_looked_up_then_retried_once() {
    let sim = sim().await;
    let client = client(&sim);
    sim.sim.add_fault(Fault::Status { status: 500 }, 1);
    client
        .create_payment_link(&link_request("r-500", 1000))
        .await
        .unwrap();
    assert_eq!(count(&sim, "POST", "/v1/payment_links"), 2);
    assert_eq!(
        count(&sim, "GET", "/v1/payment_links"),
        1,
        "looked up before creating again"
    );
    assert_eq!(
        client
            .find_payment_links_by_reference("r-500")
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_found_not_made_twice() {
    let sim = sim().await;
    let client = client(&sim);
    // The link is created, then the answer hangs past the client's timeout.
    sim.sim.add_fault(Fault::HangAfter { ms: 1500 }, 1);
    let link = client
        .create_payment_link(&link_request("r-lost", 1000))
        .await
        .unwrap();
    assert_eq!(
        count(&sim, "POST", "/v1/payment_links"),
        1,
        "created once, then found"
    );
    let links = client
        .find_payment_links_by_reference("r-lost")
        .await
        .unwrap();
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].id, link.id);

    // The same for an invoice, found by its receipt.
    let customer = client
        .create_customer(&customer_request(Some("i@example.com")))
        .await
        .unwrap();
    sim.sim.add_fault(Fault::HangAfter { ms: 1500 }, 1);
    let invoice = client
        .create_invoice(&InvoiceRequest {
            kind: "invoice".into(),
            customer_id: customer.id,
            currency: "INR".into(),
            receipt: "inv_lost".into(),
            line_items: vec![LineItemRequest {
                name: "Usage".into(),
                amount: 5000,
                currency: "INR".into(),
                quantity: 1,
                description: None,
            }],
            ..InvoiceRequest::default()
        })
        .await
        .unwrap();
    let invoices = client.find_invoices_by_receipt("inv_lost").await.unwrap();
    assert_eq!(invoices.len(), 1);
    assert_eq!(invoices[0].id, invoice.id);
}

#[tokio::test]
async fn a_create_without_a_recovery_path_is_not_retried() {
    let sim = sim().await;
    let client = client(&sim);
    // No email, no contact: nothing would find the customer a lost create made.
    sim.sim.add_fault(Fault::Status { status: 500 }, 1);
    let err = client
        .create_customer(&customer_request(None))
        .await
        .unwrap_err();
    assert_eq!(api_error(err).0, 500);
    assert_eq!(count(&sim, "POST", "/v1/customers"), 1);
    // Cancelling is not retried after an unknown outcome either.
    let link = client
        .create_payment_link(&link_request("r-cancel", 1000))
        .await
        .unwrap();
    sim.sim.add_fault(Fault::Status { status: 502 }, 1);
    assert_eq!(
        api_error(client.cancel_payment_link(&link.id).await.unwrap_err()).0,
        502
    );
    assert_eq!(
        count(
            &sim,
            "POST",
            &format!("/v1/payment_links/{}/cancel", link.id)
        ),
        1
    );
    assert_eq!(
        client.cancel_payment_link(&link.id).await.unwrap().status,
        "cancelled"
    );
}

#[tokio::test]
async fn a_hanging_server_times_out_within_the_budget() {
    let sim = sim().await;
    let client = client(&sim);
    sim.sim.add_fault(Fault::Hang { ms: 1500 }, 1);
    let started = std::time::Instant::now();
    let err = client
        .create_customer(&customer_request(None))
        .await
        .unwrap_err();
    assert!(matches!(err, RazorpayError::Timeout), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_millis(1200),
        "{:?}",
        started.elapsed()
    );
    // A read retries past one hang.
    let link = client
        .create_payment_link(&link_request("r-hang", 1000))
        .await
        .unwrap();
    sim.sim.add_fault(Fault::Hang { ms: 1500 }, 1);
    assert_eq!(client.get_payment_link(&link.id).await.unwrap().id, link.id);
}

/// A `/_sim` control of the simulator; its answer.
async fn control(sim: &RunningSim, path: &str, body: serde_json::Value) -> serde_json::Value {
    shared::adapters::http::client(shared::adapters::http::Timeouts::default())
        .expect("an HTTP client")
        .post(format!("{}{path}", sim.url))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A link of `amount` paid in full through the simulator's control; the payment id.
async fn paid_payment(sim: &RunningSim, reference: &str, amount: u64) -> String {
    let link = client(sim)
        .create_payment_link(&link_request(reference, amount))
        .await
        .unwrap();
    let paid = control(
        sim,
        &format!("/_sim/payment_links/{}/pay", link.id),
        serde_json::json!({}),
    )
    .await;
    paid["payments"][0].as_str().unwrap().to_owned()
}

fn refund_request(amount: u64) -> RefundRequest {
    RefundRequest {
        amount,
        speed: "normal".into(),
        receipt: None,
        notes: Notes::default(),
    }
}

#[tokio::test]
async fn refunds_follow_razorpays_idempotency_header_and_amount_rules() {
    let sim = sim().await;
    let client = client(&sim);
    let payment_id = paid_payment(&sim, "refund_ref_1", 10000).await;
    let key = "rfd_key_0001";
    let first = client
        .create_refund(&payment_id, key, &refund_request(4000))
        .await
        .unwrap();
    assert_eq!((first.amount, first.status.as_str()), (4000, "pending"));
    // The same key and body: the same refund. A 409 (the first still in flight) is asked again.
    sim.sim.add_fault(Fault::Status { status: 409 }, 1);
    let again = client
        .create_refund(&payment_id, key, &refund_request(4000))
        .await
        .unwrap();
    assert_eq!(again.id, first.id);
    let other_body = client
        .create_refund(&payment_id, key, &refund_request(5000))
        .await
        .unwrap_err();
    assert_eq!(
        api_error(other_body).1,
        "Different request with the same idempotency key has already been processed."
    );
    let short_key = client
        .create_refund(&payment_id, "short", &refund_request(100))
        .await
        .unwrap_err();
    assert_eq!(
        api_error(short_key).2.as_deref(),
        Some("X-Refund-Idempotency")
    );
    let too_much = client
        .create_refund(&payment_id, "rfd_key_0002", &refund_request(6001))
        .await
        .unwrap_err();
    assert_eq!(api_error(too_much).2.as_deref(), Some("amount"));
    let payment = client.get_payment(&payment_id).await.unwrap();
    assert_eq!(payment.amount_refunded, 4000);
    let rest = client
        .create_refund(&payment_id, "rfd_key_0003", &refund_request(6000))
        .await
        .unwrap();
    let refunded = client.get_payment(&payment_id).await.unwrap();
    assert_eq!(refunded.status.as_str(), "refunded");
    let listed = client.list_payment_refunds(&payment_id).await.unwrap();
    let mut ids: Vec<String> = listed.into_iter().map(|r| r.id).collect();
    ids.sort();
    let mut expected = vec![first.id.clone(), rest.id.clone()];
    expected.sort();
    assert_eq!(ids, expected, "two refunds, none twice");
    let window = PaymentsPage {
        from: first.created_at,
        to: first.created_at + 10,
        count: 100,
        skip: 0,
    };
    assert_eq!(client.list_refunds(&window).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_normal_refund_of_a_payment_older_than_six_months_is_refused_naming_speed() {
    let sim = sim().await;
    let client = client(&sim);
    let payment_id = paid_payment(&sim, "refund_ref_old", 10000).await;
    let aged = control(
        &sim,
        &format!("/_sim/payments/{payment_id}/age"),
        serde_json::json!({"days": 200}),
    )
    .await;
    assert_eq!(aged["id"], payment_id.as_str());
    let normal = client
        .create_refund(&payment_id, "rfd_old_0001", &refund_request(1000))
        .await
        .unwrap_err();
    assert_eq!(api_error(normal).2.as_deref(), Some("speed"));
    let optimum = RefundRequest {
        speed: "optimum".into(),
        ..refund_request(1000)
    };
    let made = client
        .create_refund(&payment_id, "rfd_old_0002", &optimum)
        .await
        .unwrap();
    assert_eq!(made.amount, 1000);
}
