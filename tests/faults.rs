//! Failure between two writes: the process stops (here: a failure point makes the job fail
//! right there) after the first write and before the second. The retry must apply everything
//! exactly once — counted in the simulators' request logs and in the table. One test, so that
//! no other test of this binary passes through the armed points.

use std::time::Duration;

use serde_json::json;
use shared::failpoint;
use simulators::HasRecorder;
use system_tests::{api, flexprice, flexprice_paid, link_payment, payment_when, wait_for};

#[tokio::test]
async fn a_job_stopped_between_two_writes_is_applied_once_on_retry() {
    let stack = system_tests::start("faults-").await;

    // 1. Money recorded in Flexprice, the job stops before counting it on our payment.
    failpoint::arm(failpoint::AFTER_FLEXPRICE_RECORD, 2);
    let payment = link_payment(&stack, "42.00", "stopped-after-record").await;
    let link = payment["gateway_tracking_id"].as_str().unwrap();
    let (status, _) = system_tests::razorpay_control(
        &stack,
        &format!("/_sim/payment_links/{link}/pay"),
        &json!({}),
    )
    .await;
    assert_eq!(status, 200);
    let paid = payment_when(&stack, payment["id"].as_str().unwrap(), |p| {
        p["payment_status"] == "SUCCEEDED"
    })
    .await;
    assert_eq!(paid["amount_paid_minor"], 4200, "counted once");
    assert!(
        !failpoint::hit(failpoint::AFTER_FLEXPRICE_RECORD),
        "both stops happened"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let invoice = &stack.ready.invoice_ids[0];
    let (amount, recorded) = flexprice_paid(&stack, invoice).await;
    assert_eq!(
        (amount.as_str(), recorded),
        ("42.00", 1),
        "recorded once in Flexprice"
    );
    let record_calls = stack
        .flexprice
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/payments")
        .count();
    assert!(
        record_calls >= 3,
        "the stopped jobs recorded again, deduplicated: {record_calls}"
    );

    // 2. The Razorpay invoice created, the job stops before the sync record says so.
    failpoint::arm(failpoint::AFTER_RAZORPAY_INVOICE_CREATE, 1);
    let (status, created) = flexprice(
        &stack,
        "POST",
        "/v1/invoices",
        Some(
            &json!({"customer_id": stack.ready.customer_id, "currency": "inr",
            "line_items": [{"display_name": "Plan", "amount": "300.00"}]}),
        ),
    )
    .await;
    assert_eq!(status, 201);
    let id = created["id"].as_str().unwrap().to_owned();
    flexprice(&stack, "POST", &format!("/v1/invoices/{id}/finalize"), None).await;
    let view = wait_for("the invoice to sync", Duration::from_secs(30), || async {
        let (_, view) = api(&stack, "GET", &format!("/api/v1/invoices/{id}/sync"), None).await;
        (view["state"] == "SYNCED").then_some(view)
    })
    .await;
    assert_eq!(view["attempts"], 2, "{view}");
    let requests = stack.razorpay.requests();
    let creates = requests
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/invoices")
        .count();
    assert_eq!(
        creates, 1,
        "the retry found the invoice by receipt, did not create another"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.path == "/v1/invoices" && r.query.contains(&format!("receipt={id}"))),
        "looked up by receipt"
    );

    // 3. The same stop, and 100.00 paid in Flexprice before the retry: the invoice the first
    // attempt made asks too much now, so the resumed sync cancels it and issues the next one.
    failpoint::arm(failpoint::AFTER_RAZORPAY_INVOICE_CREATE, 1000);
    let id = finalized(&stack, "300.00").await;
    let first = razorpay_invoice(&stack, &id).await;
    assert_eq!(first["amount"], 30000);
    let elsewhere = json!({"destination_type": "INVOICE", "destination_id": id,
        "payment_method_type": "OFFLINE", "amount": "100.00", "currency": "INR",
        "process_payment": true, "idempotency_key": "cash-before-the-retry"});
    let (status, _) = flexprice(&stack, "POST", "/v1/payments", Some(&elsewhere)).await;
    assert_eq!(status, 201);
    let next = razorpay_invoice(&stack, &format!("{id}/1")).await;
    failpoint::arm(failpoint::AFTER_RAZORPAY_INVOICE_CREATE, 0);
    assert_eq!(next["amount"], 20000, "what is owed now");
    let view = wait_for(
        "the re-issued invoice to sync",
        Duration::from_secs(30),
        || async {
            let (_, view) = api(&stack, "GET", &format!("/api/v1/invoices/{id}/sync"), None).await;
            (view["state"] == "SYNCED").then_some(view)
        },
    )
    .await;
    assert_eq!(view["razorpay_invoice_id"], next["id"], "{view}");
    assert_eq!(
        (&view["receipt"], &view["amount_minor"]),
        (&json!(format!("{id}/1")), &json!(20000))
    );
    let first = razorpay_invoice(&stack, &id).await;
    assert_eq!(first["status"], "cancelled", "never two live invoices");

    // 4. The crash window: the invoice issued (and emailed), the job stops before its record
    // says so, and the customer pays it meanwhile. The mapping was written before the issue, so
    // the payment is found and recorded exactly once; the resumed sync adopts the paid invoice.
    failpoint::arm(failpoint::AFTER_RAZORPAY_INVOICE_CREATE, 1000);
    let id = finalized(&stack, "250.00").await;
    let issued = wait_for("the invoice issued", Duration::from_secs(30), || async {
        let found = razorpay_invoice(&stack, &id).await;
        (found["status"] == "issued").then_some(found)
    })
    .await;
    let path = format!("/_sim/invoices/{}/pay", issued["id"].as_str().unwrap());
    let (status, _) = system_tests::razorpay_control(&stack, &path, &json!({})).await;
    assert_eq!(status, 200);
    let paid_in_flexprice = || async {
        let (_, invoice) = flexprice(&stack, "GET", &format!("/v1/invoices/{id}"), None).await;
        invoice["amount_paid"].as_str().map(str::to_owned)
    };
    wait_for("the payment recorded", Duration::from_secs(30), || async {
        paid_in_flexprice().await.filter(|paid| paid == "250.00")
    })
    .await;
    failpoint::arm(failpoint::AFTER_RAZORPAY_INVOICE_CREATE, 0);
    // The resumed sync finds nothing owed: done, with nothing more made.
    let view = wait_for(
        "the paid invoice's sync",
        Duration::from_secs(30),
        || async {
            let (_, view) = api(&stack, "GET", &format!("/api/v1/invoices/{id}/sync"), None).await;
            (view["state"] == "SKIPPED").then_some(view)
        },
    )
    .await;
    assert_eq!(view["skip_reason"], "the invoice is paid", "{view}");
    let receipt = [("receipt", id.as_str())];
    let made = system_tests::razorpay_api(&stack, "/v1/invoices", &receipt).await;
    assert_eq!(made["count"], 1, "{made}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        paid_in_flexprice().await.as_deref(),
        Some("250.00"),
        "recorded once"
    );

    // 4. A webhook received into the log, the intake stops before queuing its job: the answer
    //    is a retryable 5xx, the event stays claimed (a redelivery inside the lock is 409), and
    //    Razorpay's redelivery after the lock is received again, queued and applied.
    stopped_between_receive_and_enqueue(&stack).await;
}

async fn stopped_between_receive_and_enqueue(stack: &local_stack::LocalStack) {
    use shared::domain::events::{Outcome, Source};
    use shared::domain::secret::Secret;
    use shared::domain::signature::razorpay_sign;
    use shared::services::intake;
    let body = json!({"entity": "event", "account_id": stack.razorpay.account_id(),
        "event": "payment.authorized", "contains": ["payment"],
        "payload": {"payment": {"entity": {"id": "pay_stopped", "amount": 100,
            "currency": "INR", "status": "authorized"}}}})
    .to_string();
    let signature = razorpay_sign(
        &Secret::new(stack.ready.webhook_secret.clone()),
        body.as_bytes(),
    );
    let delivery = || intake::Delivery {
        tenant_id: "demo",
        environment_id: "sandbox",
        signature: Some(&signature),
        event_id: Some("evt_stopped"),
        trace_id: None,
        body: body.as_bytes(),
    };
    failpoint::arm(failpoint::AFTER_EVENT_RECEIVED, 1);
    let stopped = intake::razorpay(&stack.adapters, delivery())
        .await
        .unwrap_err();
    assert!(stopped.is_retryable(), "{stopped:?}");
    let locked = intake::razorpay(&stack.adapters, delivery())
        .await
        .unwrap_err();
    assert!(
        matches!(locked, shared::domain::error::Refusal::InProgress(_)),
        "{locked:?}"
    );
    // Razorpay's retry comes after the lock (a clock past it stands for the wait).
    let now = stack.adapters.clock.now_millis();
    let later = shared::adapters::aws::Adapters::with_clock(
        stack.adapters.config.clone(),
        aws_sdk_dynamodb::Client::new(&stack.sdk),
        aws_sdk_sqs::Client::new(&stack.sdk),
        aws_sdk_secretsmanager::Client::new(&stack.sdk),
        std::sync::Arc::new(shared::ports::ManualClock::at_millis(now + 31_000)),
    );
    let accepted = intake::razorpay(&later, delivery()).await.unwrap();
    assert_eq!(accepted["status"], "accepted");
    let scope = shared::domain::keys::TenantScope::new("demo", "sandbox").unwrap();
    let settled = wait_for(
        "the redelivered event settled",
        Duration::from_secs(30),
        || async {
            let event = stack
                .adapters
                .events
                .get(&scope, Source::Razorpay, "evt_stopped")
                .await;
            event
                .ok()
                .flatten()
                .filter(|e| e.outcome != Outcome::Queued)
        },
    )
    .await;
    assert_eq!(settled.outcome, Outcome::Ignored, "{settled:?}");
    assert_eq!(settled.history.len(), 1, "one job ran: {settled:?}");
    let again = intake::razorpay(&stack.adapters, delivery()).await.unwrap();
    assert_eq!(again["status"], "duplicate");
}

/// A finalized INR invoice of one line; its id.
async fn finalized(stack: &local_stack::LocalStack, amount: &str) -> String {
    let body = json!({"customer_id": stack.ready.customer_id, "currency": "inr",
        "line_items": [{"display_name": "Plan", "amount": amount}]});
    let (status, created) = flexprice(stack, "POST", "/v1/invoices", Some(&body)).await;
    assert_eq!(status, 201);
    let id = created["id"].as_str().unwrap().to_owned();
    flexprice(stack, "POST", &format!("/v1/invoices/{id}/finalize"), None).await;
    id
}

/// The Razorpay invoice with this receipt, once there is one.
async fn razorpay_invoice(stack: &local_stack::LocalStack, receipt: &str) -> serde_json::Value {
    wait_for(
        &format!("a Razorpay invoice {receipt}"),
        Duration::from_secs(30),
        || async {
            let query = [("receipt", receipt)];
            let found = system_tests::razorpay_api(stack, "/v1/invoices", &query).await;
            found["items"].get(0).cloned()
        },
    )
    .await
}
