//! A captured payment on a link is recorded into Flexprice exactly once and settles the
//! invoice, end to end on the local stack.

use std::time::{Duration, Instant};

use local_stack::{LocalStack, Options};
use serde_json::{Value, json};
use shared::adapters::flexprice::{FlexpriceClient, FlexpriceConfig};
use shared::domain::secret::Secret;
use simulators::HasRecorder;

#[tokio::test]
async fn paying_the_link_pays_the_invoice_once_even_with_duplicate_webhooks() {
    let mut options = Options::from_env(0);
    options.resource_prefix = simulators::common::new_id("rec-").to_lowercase();
    let stack: LocalStack = LocalStack::start(options).await.unwrap();
    let http = shared::adapters::http::client(shared::adapters::http::Timeouts::default()).unwrap();
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
    shared::adapters::http::client(shared::adapters::http::Timeouts::default())
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
    let response = shared::adapters::http::client(shared::adapters::http::Timeouts::default())
        .unwrap()
        .post(format!("{}/_sim/{path}", stack.ready.razorpay_sim_url))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
}

/// Polls our payment until `done` holds and returns it.
async fn wait_payment(stack: &LocalStack, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    payment_when(stack, id, done).await
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
    let order = system_tests::open_link(&stack, link, None).await;
    let late = json!({"entity": "event", "account_id": stack.razorpay.account_id(),
        "event": "payment.failed", "contains": ["payment"],
        "payload": {"payment": {"entity": {"id": "pay_LateFailure000001", "entity": "payment", "amount": 10000,
            "currency": "INR", "status": "failed", "error_code": "BAD_REQUEST_ERROR", "order_id": order,
            "notes": {"flexprice_payment_id": id, "tenant_id": "demo", "environment_id": "sandbox"}}}},
        "created_at": 1764060000}).to_string();
    let signature = shared::domain::signature::razorpay_sign(
        &Secret::new("reconcile_secret".to_owned()),
        late.as_bytes(),
    );
    let response = shared::adapters::http::client(shared::adapters::http::Timeouts::default())
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

// ---- scenarios the flows above do not cover ----

use system_tests::{
    captured_event, deliver_razorpay, flexprice_paid, link_payment, payment_when, start, wait_for,
};

#[tokio::test]
async fn twenty_concurrent_deliveries_and_five_event_ids_for_one_payment_apply_it_once() {
    let stack = start("rec-").await;
    let payment = link_payment(&stack, "100.00", "twenty").await;
    let body = captured_event(&stack, &payment, "pay_TwentyTimes0001", 10000).await;
    let same = (0..20).map(|_| deliver_razorpay(&stack, "evt_twenty", &body));
    // The same Razorpay payment under other event ids (payment.captured and
    // payment_link.paid both carry it; a replay gets a new id).
    let others = (0..5).map(|i| {
        let id = format!("evt_other_{i}");
        let body = body.clone();
        let stack = &stack;
        async move { deliver_razorpay(stack, &id, &body).await }
    });
    let (same, others) = tokio::join!(
        futures::future::join_all(same),
        futures::future::join_all(others)
    );
    // A concurrent duplicate is told to come back (409 in progress), never accepted twice.
    let accepted = same
        .iter()
        .filter(|(_, b)| b["status"] == "accepted")
        .count();
    assert_eq!(accepted, 1, "{same:?}");
    assert!(same.iter().all(|(s, _)| *s == 200 || *s == 409), "{same:?}");
    assert!(others.iter().all(|(s, _)| *s == 200), "{others:?}");
    let id = payment["id"].as_str().unwrap();
    let paid = payment_when(&stack, id, |p| p["payment_status"] == "SUCCEEDED").await;
    assert_eq!(paid["amount_paid_minor"], 10000);
    // Every job has run (six accepted events), then nothing was recorded twice.
    wait_for("six jobs", Duration::from_secs(30), || async {
        (stack.poller.snapshot().2 >= 6).then_some(())
    })
    .await;
    let (amount_paid, recorded) = flexprice_paid(&stack, &stack.ready.invoice_ids[0]).await;
    assert_eq!((amount_paid.as_str(), recorded), ("100.00", 1));
    let again = payment_when(&stack, id, |_| true).await;
    assert_eq!(again["amount_paid_minor"], 10000, "{again}");
}

#[tokio::test]
async fn an_enqueue_failure_answers_503_releases_the_claim_and_the_redelivery_applies_once() {
    let stack = start("rec-").await;
    let payment = link_payment(&stack, "50.00", "enqueue").await;
    let body = captured_event(&stack, &payment, "pay_EnqueueFails001", 5000).await;
    // The same receiver, with a queue that does not exist.
    let mut config = stack.adapters.config.clone();
    config.job_queue_url = format!("{}-missing", config.job_queue_url);
    let broken = shared::adapters::aws::Adapters::new(&stack.sdk, config);
    let signature = shared::domain::signature::razorpay_sign(
        &Secret::new(stack.ready.webhook_secret.clone()),
        body.as_bytes(),
    );
    let refused = shared::services::intake::razorpay(
        &broken,
        shared::services::intake::Delivery {
            tenant_id: "demo",
            environment_id: "sandbox",
            signature: Some(&signature),
            event_id: Some("evt_enqueue"),
            trace_id: None,
            body: body.as_bytes(),
        },
    )
    .await
    .map_err(shared::api::problem::Problem::from)
    .unwrap_err();
    assert_eq!((refused.status, refused.retryable), (503, true));
    // Razorpay's retry: claimed afresh, queued, applied once.
    let (status, answer) = deliver_razorpay(&stack, "evt_enqueue", &body).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("accepted")),
        "{answer}"
    );
    let id = payment["id"].as_str().unwrap();
    payment_when(&stack, id, |p| p["payment_status"] == "SUCCEEDED").await;
    let (status, answer) = deliver_razorpay(&stack, "evt_enqueue", &body).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("duplicate"))
    );
    assert_eq!(
        flexprice_paid(&stack, &stack.ready.invoice_ids[0]).await.1,
        1
    );
}

#[tokio::test]
async fn a_capture_after_the_link_expired_records_the_money_and_flags_review() {
    let stack = start("rec-").await;
    let payment = link_payment(&stack, "30.00", "late-capture").await;
    let id = payment["id"].as_str().unwrap();
    control(
        &stack,
        &format!(
            "payment_links/{}/expire",
            payment["gateway_tracking_id"].as_str().unwrap()
        ),
    )
    .await;
    payment_when(&stack, id, |p| p["payment_status"] == "FAILED").await;
    let body = captured_event(&stack, &payment, "pay_AfterExpiry001", 3000).await;
    assert_eq!(
        deliver_razorpay(&stack, "evt_late_capture", &body).await.0,
        200
    );
    let paid = payment_when(&stack, id, |p| p["payment_status"] == "SUCCEEDED").await;
    assert!(
        paid["review"]
            .as_str()
            .is_some_and(|r| r.contains("pay_AfterExpiry001")),
        "{paid}"
    );
    assert_eq!(
        flexprice_paid(&stack, &stack.ready.invoice_ids[0]).await.0,
        "30.00"
    );
}

/// A new stack where a link payment of `amount` is paid while Flexprice answers the next
/// `times` calls with `fault`; answers the stack and our payment id.
async fn paid_while_flexprice_faults(
    amount: &str,
    key: &str,
    fault: simulators::Fault,
    times: u32,
) -> (LocalStack, String) {
    let stack = start("rec-").await;
    let payment = link_payment(&stack, amount, key).await;
    stack.flexprice.add_fault(fault, times);
    let link = payment["gateway_tracking_id"].as_str().unwrap();
    control(&stack, &format!("payment_links/{link}/pay")).await;
    let id = payment["id"].as_str().unwrap().to_owned();
    (stack, id)
}

/// Messages resting in the DLQ now.
async fn parked(stack: &LocalStack) -> usize {
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&stack.queues.dlq_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap();
    attributes
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn flexprice_down_longer_than_five_tries_last_parks_nothing_and_records_after_recovery() {
    // Down for 25 s: the old budget (five tries 180 s apart, 15 minutes) is 15 s at the local
    // stack's scale; the backoff (1 s doubling, scaled) keeps trying past it.
    let (stack, id) = paid_while_flexprice_faults(
        "80.00",
        "flexprice-outage",
        simulators::Fault::Status { status: 503 },
        100_000,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(25)).await;
    let failed_during_outage = stack.poller.snapshot().3;
    assert!(failed_during_outage >= 5, "{:?}", stack.poller.snapshot());
    assert_eq!(parked(&stack).await, 0, "nothing parked during the outage");
    stack.flexprice.clear_faults();
    let paid = wait_for(
        "the payment after recovery",
        Duration::from_secs(60),
        || async {
            let (_, payment) =
                system_tests::api(&stack, "GET", &format!("/api/v1/payments/{id}"), None).await;
            (payment["payment_status"] == "SUCCEEDED").then_some(payment)
        },
    )
    .await;
    assert_eq!(paid["amount_paid_minor"], 8000);
    let invoice = &stack.ready.invoice_ids[0];
    assert_eq!(
        flexprice_paid(&stack, invoice).await.0,
        "80.00",
        "recorded once"
    );
    assert_eq!(parked(&stack).await, 0);
}

#[tokio::test]
async fn flexprice_down_for_a_while_then_back_records_the_payment_once() {
    // Two job attempts' worth of 503s (the client tries three times per attempt).
    let (stack, id) = paid_while_flexprice_faults(
        "75.00",
        "flexprice-down",
        simulators::Fault::Status { status: 503 },
        6,
    )
    .await;
    let id = id.as_str();
    payment_when(&stack, id, |p| p["payment_status"] == "SUCCEEDED").await;
    assert!(
        stack.poller.snapshot().3 >= 1,
        "at least one attempt failed and was retried"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (amount_paid, recorded) = flexprice_paid(&stack, &stack.ready.invoice_ids[0]).await;
    assert_eq!((amount_paid.as_str(), recorded), ("75.00", 1));
}

#[tokio::test]
async fn a_permanent_flexprice_refusal_is_parked_noted_and_recorded_once_after_a_redrive() {
    let (stack, id) = paid_while_flexprice_faults(
        "60.00",
        "flexprice-refuses",
        simulators::Fault::Status { status: 400 },
        100,
    )
    .await;
    let id = id.as_str();
    let noted = payment_when(&stack, id, |p| p["last_error"].is_string()).await;
    assert!(
        noted["last_error"]
            .as_str()
            .unwrap()
            .contains("Flexprice refused"),
        "{noted}"
    );
    assert_eq!(noted["payment_status"], "PENDING");
    // Not retried forever: after maxReceiveCount deliveries the jobs rest in the DLQ.
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let parked = wait_for("the jobs in the DLQ", Duration::from_secs(40), || async {
        let dead = sqs
            .receive_message()
            .queue_url(&stack.queues.dlq_url)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .wait_time_seconds(1)
            .send()
            .await
            .ok()?;
        (!dead.messages().is_empty()).then(|| dead.messages().len())
    })
    .await;
    assert!(parked >= 1);
    stack.flexprice.clear_faults();
    assert_eq!(
        flexprice_paid(&stack, &stack.ready.invoice_ids[0]).await,
        ("0.00".to_owned(), 0)
    );
    // Once the cause is fixed, the operator redrives the DLQ and the money is recorded once.
    let status = system_tests::http()
        .post(format!("{}/_local/dlq/redrive", stack.ready.gateway_url))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    let paid = payment_when(&stack, id, |p| p["payment_status"] == "SUCCEEDED").await;
    assert_eq!(paid["amount_paid_minor"], 6000);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        flexprice_paid(&stack, &stack.ready.invoice_ids[0]).await,
        ("60.00".to_owned(), 1)
    );
}

#[tokio::test]
async fn partial_payments_then_the_rest_pay_the_invoice_each_recorded_once() {
    let stack = start("rec-").await;
    let first = link_payment(&stack, "1000.00", "part-1").await;
    let rest = link_payment(&stack, "675.01", "part-2").await;
    for payment in [&first, &rest] {
        let link = payment["gateway_tracking_id"].as_str().unwrap();
        let (status, _) = system_tests::razorpay_control(
            &stack,
            &format!("/_sim/payment_links/{link}/pay"),
            &json!({"duplicate": true}),
        )
        .await;
        assert_eq!(status, 200);
        payment_when(&stack, payment["id"].as_str().unwrap(), |p| {
            p["payment_status"] == "SUCCEEDED"
        })
        .await;
    }
    let invoice = &stack.ready.invoice_ids[0];
    let (_, view) =
        system_tests::flexprice(&stack, "GET", &format!("/v1/invoices/{invoice}"), None).await;
    assert_eq!(
        (
            view["payment_status"].as_str(),
            view["amount_remaining"].as_str()
        ),
        (Some("SUCCEEDED"), Some("0.00")),
        "{view}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        flexprice_paid(&stack, invoice).await,
        ("1675.01".to_owned(), 2)
    );
}

#[tokio::test]
async fn flexprice_hanging_during_the_record_is_retried_and_records_once() {
    // The first record call hangs past the client's timeout (it does take effect).
    let (stack, id) = paid_while_flexprice_faults(
        "33.00",
        "flexprice-hangs",
        simulators::Fault::HangAfter { ms: 9000 },
        1,
    )
    .await;
    payment_when(&stack, &id, |p| p["payment_status"] == "SUCCEEDED").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The hung call took effect; the retry was answered with it (same idempotency key).
    let (amount, _) = flexprice_paid(&stack, &stack.ready.invoice_ids[0]).await;
    assert_eq!(amount, "33.00", "recorded once");
    let calls = stack
        .flexprice
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/payments")
        .count();
    assert!(calls >= 2, "retried after the timeout: {calls} calls");
}
