//! End to end on the local stack: a signed request through the gateway to a function handler,
//! and jobs through the SQS poller to the worker, parked in the DLQ after maxReceiveCount.

use std::time::{Duration, Instant};

use local_stack::{LocalStack, Options};
use serde_json::Value;
use shared::domain::jobs::{Job, Task};
use shared::domain::keys::TenantScope;
use shared::domain::secret::Secret;
use shared::domain::signature::razorpay_sign;

async fn stack() -> LocalStack {
    let mut options = Options::from_env(0);
    options.webhook_secret = Some("e2e_webhook_secret".into());
    options.resource_prefix = simulators::common::new_id("e2e-").to_lowercase();
    LocalStack::start(options)
        .await
        .expect("the local stack starts")
}

#[tokio::test]
async fn the_ready_line_names_everything_a_client_needs() {
    let stack = stack().await;
    let line = stack.ready_line();
    let json: Value =
        serde_json::from_str(line.strip_prefix("READY ").expect("READY prefix")).unwrap();
    for field in [
        "gateway_url",
        "razorpay_sim_url",
        "flexprice_sim_url",
        "tenant_id",
        "environment_id",
        "api_key",
        "webhook_secret",
        "flexprice_webhook_secret",
        "customer_id",
    ] {
        assert!(
            json[field].as_str().is_some_and(|v| !v.is_empty()),
            "{field} in {line}"
        );
    }
    assert_eq!(json["tenant_id"], "demo");
    assert_eq!(json["environment_id"], "sandbox");
    assert_eq!(json["webhook_secret"], "e2e_webhook_secret");
    assert_eq!(json["invoice_ids"].as_array().unwrap().len(), 2);
    // The seeded invoices: INR and USD, finalized, each owing more than 1,000.00.
    let flexprice = shared::adapters::flexprice::FlexpriceClient::new(
        shared::adapters::flexprice::FlexpriceConfig::new(
            &stack.ready.flexprice_sim_url,
            Secret::new(stack.flexprice_api_key.clone()),
        ),
    )
    .unwrap();
    let mut currencies = Vec::new();
    for id in &stack.ready.invoice_ids {
        let invoice = flexprice.get_invoice(id).await.unwrap();
        let amounts = invoice.amounts().unwrap();
        assert_eq!(invoice.invoice_status, "FINALIZED");
        assert!(invoice.line_items.len() >= 3);
        assert!(
            amounts.remaining.minor() > 1000 * 100,
            "{}",
            amounts.remaining
        );
        currencies.push(amounts.currency.code());
    }
    assert_eq!(currencies, ["INR", "USD"]);
}

#[tokio::test]
async fn a_signed_webhook_goes_through_the_gateway_to_the_handler() {
    let stack = stack().await;
    let event: Value =
        serde_json::from_str(include_str!("../../events/razorpay-payment-captured.json")).unwrap();
    let mut body: Value = serde_json::from_str(event["body"].as_str().unwrap()).unwrap();
    body["account_id"] = Value::from(stack.razorpay.account_id());
    let body = body.to_string();
    let signature = razorpay_sign(
        &Secret::new("e2e_webhook_secret".to_owned()),
        body.as_bytes(),
    );
    let url = format!(
        "{}/v1/webhooks/razorpay/demo/sandbox",
        stack.ready.gateway_url
    );
    // A wrong signature header before the right one: API Gateway joins the two with a comma,
    // and so does the local gateway, so the pair is no signature at all.
    let doubled = shared::adapters::http::client(shared::adapters::http::Timeouts::default())
        .expect("an HTTP client")
        .post(&url)
        .header("x-razorpay-signature", "0".repeat(64))
        .header("x-razorpay-signature", &signature)
        .header("x-razorpay-event-id", "evt_e2e_1")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(doubled.status(), 401);
    let response = shared::adapters::http::client(shared::adapters::http::Timeouts::default())
        .expect("an HTTP client")
        .post(&url)
        .header("x-razorpay-signature", signature)
        .header("x-razorpay-event-id", "evt_e2e_1")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let accepted: Value = response.json().await.unwrap();
    assert_eq!(accepted["status"], "accepted");
    // Routes the template does not have are the gateway's own 404.
    let missing = shared::adapters::http::client(shared::adapters::http::Timeouts::default())
        .expect("an HTTP client")
        .post(format!(
            "{}/v1/webhooks/stripe/demo/sandbox",
            stack.ready.gateway_url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    // A non-UTF-8 body arrives base64-encoded in the event and reaches the handler, which
    // checks its signature.
    let binary = shared::adapters::http::client(shared::adapters::http::Timeouts::default())
        .expect("an HTTP client")
        .post(&url)
        .body(vec![0xff, 0xfe, 0x00])
        .send()
        .await
        .unwrap();
    assert_eq!(binary.status(), 401);
}

#[tokio::test]
async fn a_failing_job_goes_through_the_poller_to_the_worker_and_lands_in_the_dlq() {
    let stack = stack().await;
    let scope = TenantScope::new("demo", "sandbox").unwrap();
    let job = Job::new(
        &scope,
        // An event the worker can never apply: parked, not dropped.
        Task::ApplyRazorpayEvent {
            event_id: "evt_unappliable".into(),
            body: "{}".into(),
        },
    );
    let message_id = stack.adapters.queue.send(&job, Some("e2e")).await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        assert!(
            Instant::now() < deadline,
            "the job never reached the DLQ: {:?}",
            stack.poller.snapshot()
        );
        let dead = sqs
            .receive_message()
            .queue_url(&stack.queues.dlq_url)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        if let Some(message) = dead
            .messages()
            .iter()
            .find(|m| m.message_id() == Some(message_id.as_str()))
        {
            let body: Job = serde_json::from_str(message.body().unwrap()).unwrap();
            assert_eq!(body, job);
            break;
        }
    }
    let (batches, messages, succeeded, failed) = stack.poller.snapshot();
    // A job that fails for good comes back at once: the worker saw it maxReceiveCount (16)
    // times within seconds, failed it each time, deleted nothing.
    let tries = u64::from(shared::domain::jobs::RetrySchedule::PRODUCTION.max_receives);
    assert!(batches >= tries, "{batches}");
    assert_eq!((messages, succeeded, failed), (tries, 0, tries));
}

/// Two rounds of the stress run (`local-stack stress`, which runs ten): concurrent identical
/// requests, manual syncs racing webhook-driven ones, webhooks twice and reversed, the same
/// capture under other event ids, a late failure, injected 503s; each round settles every
/// payment and sync exactly once with nothing in the DLQ.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stress_rounds_settle_every_payment_and_sync_exactly_once() {
    let stack = stack().await;
    let driver = local_stack::driver::Driver::new(&stack).unwrap();
    for number in 1..=2 {
        let done =
            local_stack::stress::round(&driver, local_stack::stress::Plan::default(), number)
                .await
                .unwrap_or_else(|e| panic!("round {number}: {e}"));
        assert!(done.contains("paid once each"), "{done}");
    }
}
