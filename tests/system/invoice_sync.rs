//! Invoice outbound sync end to end on the local stack: Flexprice's Svix-signed invoice events
//! through the gateway, the worker's sync and cancel jobs, the sync status API, and exactly one
//! Razorpay invoice per Flexprice invoice whose total is what is owed, to the subunit.

use std::time::Duration;

use local_stack::LocalStack;
use serde_json::{Value, json};
use shared::domain::secret::Secret;
use shared::domain::signature::SvixSecret;
use simulators::HasRecorder;
use system_tests::{
    api, finalized_invoice, flexprice, http, razorpay_control, start, sync_state, wait_for,
};

const WAIT: Duration = Duration::from_secs(30);

/// Razorpay invoices whose receipt is this Flexprice invoice.
async fn razorpay_invoices(stack: &LocalStack, receipt: &str) -> Vec<Value> {
    let found = system_tests::razorpay_api(stack, "/v1/invoices", &[("receipt", receipt)]).await;
    found["items"].as_array().cloned().unwrap_or_default()
}

async fn flexprice_invoice(stack: &LocalStack, id: &str) -> Value {
    flexprice(stack, "GET", &format!("/v1/invoices/{id}"), None)
        .await
        .1
}

/// A Flexprice event signed the Svix way, delivered to the gateway.
async fn deliver_svix(
    stack: &LocalStack,
    svix_id: &str,
    timestamp: u64,
    body: &str,
    secret: &str,
) -> (u16, Value) {
    let secret = SvixSecret::parse(&Secret::new(secret.to_owned())).unwrap();
    let response = http()
        .post(format!(
            "{}/v1/webhooks/flexprice/{}/{}",
            stack.ready.gateway_url, stack.ready.tenant_id, stack.ready.environment_id
        ))
        .header("svix-id", svix_id)
        .header("svix-timestamp", timestamp.to_string())
        .header(
            "svix-signature",
            secret.sign(svix_id, timestamp, body.as_bytes()),
        )
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn now() -> u64 {
    simulators::common::now()
}

#[tokio::test]
async fn a_finalized_invoice_becomes_one_exact_razorpay_invoice_with_its_url_stored_twice() {
    let stack = start("inv-").await;
    let id = finalized_invoice(
        &stack,
        "inr",
        json!({"taxes": [{"name": "GST", "amount": "201.69"}]}),
    )
    .await;
    let view = sync_state(&stack, &id, &["SYNCED"]).await;
    let remaining = flexprice_invoice(&stack, &id).await["amount_remaining"].clone();
    assert_eq!(remaining, "1321.19");
    assert_eq!(view["amount_minor"], 132119, "{view}");
    assert_eq!(view["form"], "itemized", "{view}");
    let found = razorpay_invoices(&stack, &id).await;
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0]["amount"], 132119,
        "the Razorpay total is the amount owed"
    );
    assert_eq!(found[0]["id"], view["razorpay_invoice_id"]);
    assert_eq!(found[0]["short_url"], view["payment_url"]);
    let metadata = wait_for("the Flexprice metadata", WAIT, || async {
        let invoice = flexprice_invoice(&stack, &id).await;
        invoice["metadata"]["razorpay_payment_url"]
            .is_string()
            .then(|| invoice["metadata"].clone())
    })
    .await;
    assert_eq!(metadata["razorpay_invoice_id"], view["razorpay_invoice_id"]);
    assert_eq!(metadata["razorpay_payment_url"], view["payment_url"]);
}

#[tokio::test]
async fn with_sync_off_nothing_is_created_and_the_reason_is_recorded() {
    let stack = start("inv-").await;
    let connection = json!({"key_id": local_stack::RAZORPAY_KEY_ID, "key_secret": stack.razorpay_key_secret,
        "webhook_secret": stack.ready.webhook_secret, "flexprice_api_key": stack.flexprice_api_key,
        "flexprice_webhook_secret": stack.ready.flexprice_webhook_secret, "invoice_outbound_sync": false});
    let (status, view) = api(
        &stack,
        "PUT",
        "/api/v1/connections/razorpay",
        Some(&connection),
    )
    .await;
    assert_eq!(status, 200, "{view}");
    let id = finalized_invoice(&stack, "inr", json!({})).await;
    let view = sync_state(&stack, &id, &["SKIPPED"]).await;
    assert!(
        view["skip_reason"]
            .as_str()
            .unwrap()
            .contains("sync is off"),
        "{view}"
    );
    assert!(razorpay_invoices(&stack, &id).await.is_empty());
}

#[tokio::test]
async fn five_deliveries_and_five_concurrent_manual_retries_make_one_invoice() {
    let stack = start("inv-").await;
    // Finalized quietly, so that all ten requests below race for the first sync.
    stack.flexprice.set_webhook_target(None);
    let id = finalized_invoice(&stack, "usd", json!({})).await;
    let body = json!({"event_type": "invoice.update.finalized", "invoice": {"id": id}}).to_string();
    let secret = stack.ready.flexprice_webhook_secret.clone();
    let deliveries = (0..5).map(|i| {
        let (stack, body, secret) = (&stack, body.clone(), secret.clone());
        async move {
            deliver_svix(stack, &format!("msg_extra_{i}"), now(), &body, &secret)
                .await
                .0
        }
    });
    let retries = (0..5).map(|_| async {
        api(&stack, "POST", &format!("/api/v1/invoices/{id}/sync"), None)
            .await
            .0
    });
    // And one batch of five sync jobs straight into the worker, whose messages run at once.
    let mut batch = aws_lambda_events::event::sqs::SqsEvent::default();
    batch.records = (0..5)
        .map(|i| {
            let job = shared::domain::jobs::Job::new(
                &shared::domain::keys::TenantScope::new(
                    &stack.ready.tenant_id,
                    &stack.ready.environment_id,
                )
                .unwrap(),
                shared::domain::jobs::Task::SyncInvoice {
                    invoice_id: id.clone(),
                },
            );
            let mut message = aws_lambda_events::event::sqs::SqsMessage::default();
            message.message_id = Some(format!("direct-{i}"));
            message.body = Some(serde_json::to_string(&job).unwrap());
            message
        })
        .collect();
    let direct = invoice_sync::handle(
        stack.adapters.clone(),
        batch,
        invoice_sync::deadline_from_now(&stack.adapters),
    );
    let (delivered, retried, _) = tokio::join!(
        futures::future::join_all(deliveries),
        futures::future::join_all(retries),
        direct
    );
    assert!(delivered.iter().all(|s| *s == 200), "{delivered:?}");
    assert!(retried.iter().all(|s| *s == 202), "{retried:?}");
    sync_state(&stack, &id, &["SYNCED"]).await;
    // Let every job (five deliveries, five retries) succeed, then count.
    wait_for("ten jobs to succeed", WAIT, || async {
        (stack.poller.snapshot().2 >= 10).then_some(())
    })
    .await;
    assert_eq!(razorpay_invoices(&stack, &id).await.len(), 1);
    let creates = stack
        .razorpay
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/invoices")
        .count();
    assert_eq!(creates, 1, "one create call in all");
}

#[tokio::test]
async fn a_razorpay_500_and_a_timeout_on_create_still_make_one_invoice_each() {
    let stack = start("inv-").await;
    // Sync the customer first (a payment link does), so the faults land on the invoice create.
    let body = json!({"amount": "1.00", "currency": "inr", "destination_id": stack.ready.invoice_ids[0],
        "destination_type": "INVOICE", "payment_method_type": "PAYMENT_LINK", "payment_gateway": "razorpay"});
    assert_eq!(
        api(&stack, "POST", "/api/v1/payments", Some(&body)).await.0,
        201
    );

    stack
        .razorpay
        .add_fault(simulators::Fault::Status { status: 500 }, 1);
    let first = finalized_invoice(&stack, "inr", json!({})).await;
    sync_state(&stack, &first, &["SYNCED"]).await;
    assert_eq!(razorpay_invoices(&stack, &first).await.len(), 1);

    // The create takes effect but its answer outlives the client's timeout.
    stack
        .razorpay
        .add_fault(simulators::Fault::HangAfter { ms: 9000 }, 1);
    let second = finalized_invoice(&stack, "inr", json!({})).await;
    let view = sync_state(&stack, &second, &["SYNCED"]).await;
    assert_eq!(razorpay_invoices(&stack, &second).await.len(), 1, "{view}");
}

#[tokio::test]
async fn every_kind_of_invoice_syncs_to_its_exact_remaining_amount() {
    let stack = start("inv-").await;
    let sixty: Vec<Value> = (0..60)
        .map(|i| json!({"display_name": format!("Meter {i}"), "amount": "1.01"}))
        .collect();
    let cases = [
        (
            "inr",
            json!({"taxes": [{"name": "GST", "amount": "201.69"}]}),
            "itemized",
        ),
        ("inr", json!({"total_discount": "100.25"}), "balance"),
        (
            "inr",
            json!({"prepaid_credits_applied": "19.50"}),
            "balance",
        ),
        (
            "inr",
            json!({"line_items": [{"display_name": "Plan", "amount": "500.00"},
            {"display_name": "Free tier", "amount": "0.00"}]}),
            "itemized",
        ),
        ("usd", json!({"line_items": sixty}), "balance"),
        (
            "jpy",
            json!({"line_items": [{"display_name": "Plan", "amount": "1500"}],
            "taxes": [{"name": "JCT", "amount": "150"}]}),
            "itemized",
        ),
        (
            "kwd",
            json!({"line_items": [{"display_name": "Plan", "amount": "10.250"},
            {"display_name": "Usage", "amount": "1.120"}]}),
            "itemized",
        ),
    ];
    let mut ids = Vec::new();
    for (currency, extra, form) in cases {
        ids.push((finalized_invoice(&stack, currency, extra).await, form));
    }
    // A partial earlier payment: finalized with Flexprice's webhooks off, partly paid, then
    // synced by hand.
    stack.flexprice.set_webhook_target(None);
    let partial = finalized_invoice(&stack, "inr", json!({})).await;
    let (status, _) = flexprice(&stack, "POST", "/v1/payments", Some(&json!({"destination_type": "INVOICE",
        "destination_id": partial, "payment_method_type": "OFFLINE", "amount": "119.50", "currency": "inr",
        "process_payment": true, "idempotency_key": "partial-before-sync"}))).await;
    assert_eq!(status, 201);
    assert_eq!(
        api(
            &stack,
            "POST",
            &format!("/api/v1/invoices/{partial}/sync"),
            None
        )
        .await
        .0,
        202
    );
    ids.push((partial, "balance"));
    for (id, form) in &ids {
        let view = sync_state(&stack, id, &["SYNCED"]).await;
        let invoice = flexprice_invoice(&stack, id).await;
        let currency =
            shared::domain::money::Currency::from_code(invoice["currency"].as_str().unwrap())
                .unwrap();
        let remaining = shared::domain::money::Money::parse(
            invoice["amount_remaining"].as_str().unwrap(),
            currency,
        )
        .unwrap();
        let found = razorpay_invoices(&stack, id).await;
        assert_eq!(found.len(), 1, "{id}");
        assert_eq!(
            found[0]["amount"],
            remaining.minor(),
            "{invoice} vs {}",
            found[0]
        );
        assert_eq!(view["form"], *form, "{view}");
    }
}

#[tokio::test]
async fn a_voided_invoice_cancels_its_razorpay_invoice() {
    let stack = start("inv-").await;
    let id = finalized_invoice(&stack, "inr", json!({})).await;
    let synced = sync_state(&stack, &id, &["SYNCED"]).await;
    let (status, _) = flexprice(&stack, "POST", &format!("/v1/invoices/{id}/void"), None).await;
    assert_eq!(status, 200);
    let view = sync_state(&stack, &id, &["CANCELLED"]).await;
    assert_eq!(view["razorpay_invoice_id"], synced["razorpay_invoice_id"]);
    let found = razorpay_invoices(&stack, &id).await;
    assert_eq!(found[0]["status"], "cancelled");
}

#[tokio::test]
async fn a_voided_invoice_already_paid_in_razorpay_is_flagged_for_review() {
    let stack = start("inv-").await;
    let id = finalized_invoice(&stack, "inr", json!({})).await;
    let synced = sync_state(&stack, &id, &["SYNCED"]).await;
    let rzp = synced["razorpay_invoice_id"].as_str().unwrap();
    // Paid with Razorpay's webhooks off, so that Flexprice still shows the invoice open.
    stack.razorpay.set_webhook_target(None);
    let (status, paid) =
        razorpay_control(&stack, &format!("/_sim/invoices/{rzp}/pay"), &json!({})).await;
    assert_eq!(status, 200, "{paid}");
    let (status, _) = flexprice(&stack, "POST", &format!("/v1/invoices/{id}/void"), None).await;
    assert_eq!(status, 200);
    let view = sync_state(&stack, &id, &["REVIEW"]).await;
    assert!(view["review"].as_str().unwrap().contains("paid"), "{view}");
    assert_eq!(razorpay_invoices(&stack, &id).await[0]["status"], "paid");
}

#[tokio::test]
async fn bad_stale_and_replayed_svix_deliveries_are_refused_or_ignored() {
    let stack = start("inv-").await;
    let id = finalized_invoice(&stack, "inr", json!({})).await;
    sync_state(&stack, &id, &["SYNCED"]).await;
    let body = json!({"event_type": "invoice.update.finalized", "invoice": {"id": id}}).to_string();
    let secret = stack.ready.flexprice_webhook_secret.clone();
    let other = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (status, problem) = deliver_svix(&stack, "msg_bad", now(), &body, other).await;
    assert_eq!(status, 401, "{problem}");
    let (status, problem) = deliver_svix(&stack, "msg_stale", now() - 600, &body, &secret).await;
    assert_eq!(status, 401, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("svix-timestamp"),
        "{problem}"
    );
    let (status, first) = deliver_svix(&stack, "msg_once", now(), &body, &secret).await;
    assert_eq!(
        (status, first["status"].as_str()),
        (200, Some("accepted")),
        "{first}"
    );
    // Until the worker settles it a redelivery is in progress (409, retryable); then a
    // duplicate.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let (status, again) = loop {
        let answer = deliver_svix(&stack, "msg_once", now(), &body, &secret).await;
        if answer.0 != 409 || std::time::Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(
        (status, again["status"].as_str()),
        (200, Some("duplicate")),
        "{again}"
    );
    let other_body =
        json!({"event_type": "invoice.update.finalized", "invoice": {"id": "inv_other"}})
            .to_string();
    let (status, _) = deliver_svix(&stack, "msg_once", now(), &other_body, &secret).await;
    assert_eq!(status, 409);
    // A signed event whose invoice id would change a URL: refused, nothing queued.
    let crafted =
        json!({"event_type": "invoice.update.finalized", "invoice": {"id": format!("{id}/../x")}})
            .to_string();
    let (status, problem) = deliver_svix(&stack, "msg_crafted", now(), &crafted, &secret).await;
    assert_eq!(
        (status, problem["errors"][0]["field"].as_str()),
        (400, Some("invoice.id")),
        "{problem}"
    );
    let ignored = json!({"event_type": "customer.created", "customer": {"id": "c"}}).to_string();
    let (status, view) = deliver_svix(&stack, "msg_ignored", now(), &ignored, &secret).await;
    assert_eq!(
        (status, view["status"].as_str()),
        (200, Some("ignored")),
        "{view}"
    );
    let (status, _) = api(&stack, "GET", "/api/v1/invoices/inv_never/sync", None).await;
    assert_eq!(status, 404);
    assert_eq!(razorpay_invoices(&stack, &id).await.len(), 1);
}

#[tokio::test]
async fn a_payment_on_the_synced_invoice_pays_the_flexprice_invoice_once() {
    let stack = start("inv-").await;
    let id = finalized_invoice(&stack, "inr", json!({})).await;
    let synced = sync_state(&stack, &id, &["SYNCED"]).await;
    let rzp = synced["razorpay_invoice_id"].as_str().unwrap();
    // Paid, and every webhook delivered twice (payment.captured and invoice.paid both carry
    // the payment).
    let (status, paid) = razorpay_control(
        &stack,
        &format!("/_sim/invoices/{rzp}/pay"),
        &json!({"duplicate": true}),
    )
    .await;
    assert_eq!(status, 200, "{paid}");
    let razorpay_payment = paid["payments"][0].as_str().unwrap().to_owned();
    let invoice = wait_for("the Flexprice invoice to be paid", WAIT, || async {
        let invoice = flexprice_invoice(&stack, &id).await;
        (invoice["payment_status"] == "SUCCEEDED").then_some(invoice)
    })
    .await;
    assert_eq!(invoice["amount_paid"], "1119.50");
    let scope = shared::domain::keys::TenantScope::new("demo", "sandbox").unwrap();
    let ours =
        shared::services::payments::payment_id_for(&scope, &format!("razorpay:{razorpay_payment}"));
    let payment =
        system_tests::payment_when(&stack, &ours, |p| p["payment_status"] == "SUCCEEDED").await;
    assert_eq!(payment["payment_method_type"], "RAZORPAY_INVOICE");
    assert_eq!(payment["destination_id"], id.as_str());
    assert_eq!(payment["razorpay_invoice_id"], rzp);
    assert_eq!(payment["amount_paid_minor"], 111950);
    wait_for("every delivery to be handled", WAIT, || async {
        (stack.razorpay.deliveries().len() >= 6).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        system_tests::flexprice_paid(&stack, &id).await,
        ("1119.50".to_owned(), 1)
    );
}

#[tokio::test]
async fn an_expired_razorpay_invoice_is_noted_on_its_sync_record() {
    let stack = start("inv-").await;
    let id = finalized_invoice(&stack, "inr", json!({})).await;
    let synced = sync_state(&stack, &id, &["SYNCED"]).await;
    let rzp = synced["razorpay_invoice_id"].as_str().unwrap();
    let (status, _) =
        razorpay_control(&stack, &format!("/_sim/invoices/{rzp}/expire"), &json!({})).await;
    assert_eq!(status, 200);
    let view = wait_for("the expiry to be noted", WAIT, || async {
        let (_, view) = api(&stack, "GET", &format!("/api/v1/invoices/{id}/sync"), None).await;
        (view["razorpay_status"] == "expired").then_some(view)
    })
    .await;
    assert_eq!(view["state"], "SYNCED", "{view}");
}

#[tokio::test]
async fn an_overdue_invoice_stays_payable_for_the_grace_period_not_minutes() {
    let stack = start("inv-").await;
    let id = finalized_invoice(&stack, "inr", json!({"due_date": "2026-01-01T00:00:00Z"})).await;
    sync_state(&stack, &id, &["SYNCED"]).await;
    let invoices = razorpay_invoices(&stack, &id).await;
    assert_eq!(invoices.len(), 1, "{invoices:?}");
    let expire_by = invoices[0]["expire_by"].as_u64().expect("an expiry");
    let seven_days = 7 * 24 * 3600;
    assert!(
        expire_by.abs_diff(now() + seven_days) < 120,
        "the default grace period of 7 days: {expire_by} vs now {}",
        now()
    );
}

#[tokio::test]
async fn an_invoice_with_lines_finer_than_the_subunit_syncs_as_one_exact_balance_line() {
    let stack = start("inv-").await;
    let lines = json!([
        {"display_name": "API calls (1,999,990 at 0.0005)", "entity_type": "usage", "amount": "999.995"},
        {"display_name": "Storage", "entity_type": "usage", "amount": "119.5025"}]);
    let id = finalized_invoice(&stack, "inr", json!({"line_items": lines})).await;
    let invoice = flexprice_invoice(&stack, &id).await;
    assert_eq!(
        invoice["subtotal"], "1119.4975",
        "the lines are finer than a paisa"
    );
    assert_eq!(invoice["amount_remaining"], "1119.50");
    let view = sync_state(&stack, &id, &["SYNCED"]).await;
    assert_eq!(
        (&view["form"], &view["amount_minor"]),
        (&json!("balance"), &json!(111950)),
        "{view}"
    );
    assert!(
        view["form_reason"]
            .as_str()
            .is_some_and(|r| r.contains("cannot be sent exactly")),
        "{view}"
    );
    let found = razorpay_invoices(&stack, &id).await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["amount"], 111950);
    assert_eq!(found[0]["line_items"].as_array().map(Vec::len), Some(1));
    // And a payment for what it owes is collected there, exactly.
    let body = json!({"amount": "1119.50", "currency": "INR", "destination_id": id,
        "destination_type": "INVOICE", "payment_method_type": "PAYMENT_LINK",
        "payment_gateway": "razorpay", "idempotency_key": "fine-lines"});
    let (status, payment) = api(&stack, "POST", "/api/v1/payments", Some(&body)).await;
    assert_eq!(status, 201, "{payment}");
    assert_eq!(payment["payment_url"], view["payment_url"]);
}
