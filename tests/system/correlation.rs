//! Whose money it is, and whether Flexprice really took it: a payment counts on its link's
//! order only (notes alone prove nothing), the webhook set the seed documents (two payment
//! events) still records link payments, and Flexprice's two-phase record (insert, then process)
//! is read, not trusted.

use std::time::Duration;

use serde_json::{Value, json};
use simulators::HasRecorder;
use system_tests::{
    deliver_razorpay, flexprice, flexprice_paid, link_payment, payment_when, razorpay_control,
    start, wait_for,
};

/// Waits until the worker has finished `count` jobs successfully.
async fn jobs_done(stack: &local_stack::LocalStack, count: u64) {
    wait_for("the worker's jobs", Duration::from_secs(30), || async {
        (stack.poller.snapshot().2 >= count).then_some(())
    })
    .await;
}

fn link_of(payment: &Value) -> &str {
    payment["gateway_tracking_id"].as_str().expect("a link")
}

async fn pay_link(stack: &local_stack::LocalStack, link: &str, action: &str) {
    let path = format!("/_sim/payment_links/{link}/{action}");
    let (status, answer) = razorpay_control(stack, &path, &json!({})).await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test]
async fn notes_naming_our_payment_on_another_order_credit_nothing() {
    let stack = start("corr-").await;
    let payment = link_payment(&stack, "100.00", "forged-notes").await;
    let id = payment["id"].as_str().unwrap();
    // A Checkout payment on the same account whose notes were copied from ours.
    let forged = json!({"entity": "event", "account_id": stack.razorpay.account_id(),
        "event": "payment.captured", "contains": ["payment"],
        "payload": {"payment": {"entity": {"id": "pay_ForgedNotes0001", "entity": "payment",
            "amount": 10000, "currency": "INR", "status": "captured", "captured": true,
            "order_id": "order_Checkout00001", "invoice_id": null,
            "notes": {"flexprice_payment_id": id, "tenant_id": stack.ready.tenant_id,
                "environment_id": stack.ready.environment_id}}}},
        "created_at": 1764060000})
    .to_string();
    let (status, answer) = deliver_razorpay(&stack, "evt_forged_notes", &forged).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("accepted")));
    jobs_done(&stack, 1).await;
    let (_, open) = system_tests::api(&stack, "GET", &format!("/api/v1/payments/{id}"), None).await;
    assert_eq!(
        (open["payment_status"].as_str(), &open["amount_paid_minor"]),
        (Some("PENDING"), &json!(0))
    );
    // The real payment on the link counts, once.
    pay_link(&stack, link_of(&payment), "pay").await;
    let paid = payment_when(&stack, id, |p| p["payment_status"] == "SUCCEEDED").await;
    assert_eq!(paid["amount_paid_minor"], 10000);
    let invoice = &stack.ready.invoice_ids[0];
    assert_eq!(
        flexprice_paid(&stack, invoice).await,
        ("100.00".to_owned(), 1)
    );
    assert_eq!(stack.poller.snapshot().3, 0, "nothing parked or retried");
}

#[tokio::test]
async fn with_only_the_two_payment_events_subscribed_link_payments_are_still_recorded() {
    let stack = start("corr-").await;
    let events = json!({"events": ["payment.captured", "payment.failed"]});
    let (status, _) = razorpay_control(&stack, "/_sim/webhook-subscription", &events).await;
    assert_eq!(status, 200);
    let payment = link_payment(&stack, "100.00", "two-events").await;
    let id = payment["id"].as_str().unwrap();
    pay_link(&stack, link_of(&payment), "fail").await;
    let tried = payment_when(&stack, id, |p| {
        p["attempts"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    assert_eq!(tried["payment_status"], "PENDING");
    pay_link(&stack, link_of(&payment), "pay").await;
    let paid = payment_when(&stack, id, |p| p["payment_status"] == "SUCCEEDED").await;
    assert_eq!(paid["amount_paid_minor"], 10000);
    let deliveries = stack.razorpay.deliveries();
    assert!(
        deliveries.iter().all(|d| d.event.starts_with("payment.")),
        "only the subscribed events were sent: {deliveries:?}"
    );
    // The link's order was asked of Razorpay once, then remembered.
    let link_reads = stack
        .razorpay
        .requests()
        .iter()
        .filter(|r| {
            r.method == "GET" && r.path == format!("/v1/payment_links/{}", link_of(&payment))
        })
        .count();
    assert_eq!(link_reads, 1);
}

/// The statuses Flexprice answered to payment records, in order.
fn record_statuses(stack: &local_stack::LocalStack) -> Vec<u16> {
    let requests = stack.flexprice.requests();
    let records = requests
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/payments");
    records.map(|r| r.status).collect()
}

async fn set_processing(stack: &local_stack::LocalStack, processing: Value) {
    let (status, _) = flexprice(stack, "POST", "/_sim/payment-processing", Some(&processing)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_payment_flexprice_inserted_but_did_not_process_is_processed_not_assumed() {
    let stack = start("corr-").await;
    set_processing(&stack, json!({"fail": 1})).await;
    let payment = link_payment(&stack, "100.00", "two-phase").await;
    pay_link(&stack, link_of(&payment), "pay").await;
    let id = payment["id"].as_str().unwrap();
    let paid = payment_when(&stack, id, |p| p["payment_status"] == "SUCCEEDED").await;
    assert_eq!(paid["amount_paid_minor"], 10000);
    let invoice = &stack.ready.invoice_ids[0];
    let (_, view) = flexprice(&stack, "GET", &format!("/v1/invoices/{invoice}"), None).await;
    assert_eq!(view["amount_paid"], "100.00", "processed once: {view}");
    let processed = stack
        .flexprice
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/process"))
        .map(|r| r.status)
        .collect::<Vec<_>>();
    // Processed once. The capture's two events may reach the row together; Flexprice then
    // refuses the second process call (the row is processed already), and that job's retry
    // reads the row as processed.
    let done = processed.iter().filter(|s| **s == 200).count();
    assert_eq!(
        done, 1,
        "the unprocessed row was processed, once: {processed:?}"
    );
    assert!(
        processed.iter().all(|s| *s == 200 || *s == 400),
        "{processed:?}"
    );
    assert_eq!(
        record_statuses(&stack)[..2],
        [500, 200],
        "inserted, failed; replayed"
    );
}

#[tokio::test]
async fn two_deliveries_racing_on_one_flexprice_key_both_succeed_and_record_once() {
    let stack = start("corr-").await;
    set_processing(&stack, json!({"delay_ms": 500})).await;
    let payment = link_payment(&stack, "100.00", "racing-key").await;
    let body = system_tests::captured_event(&stack, &payment, "pay_RacingKey00001", 10000).await;
    let (a, b) = tokio::join!(
        deliver_razorpay(&stack, "evt_race_a", &body),
        deliver_razorpay(&stack, "evt_race_b", &body)
    );
    assert_eq!((a.0, b.0), (200, 200));
    jobs_done(&stack, 2).await;
    let id = payment["id"].as_str().unwrap();
    let paid = payment_when(&stack, id, |p| p["payment_status"] == "SUCCEEDED").await;
    assert_eq!(
        (&paid["amount_paid_minor"], &paid["last_error"]),
        (&json!(10000), &Value::Null)
    );
    let invoice = &stack.ready.invoice_ids[0];
    assert_eq!(
        flexprice_paid(&stack, invoice).await,
        ("100.00".to_owned(), 1)
    );
    assert_eq!(
        stack.poller.snapshot().3,
        0,
        "a 409 on our own key is not a failure"
    );
}
