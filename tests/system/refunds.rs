//! Refunds made in Razorpay's dashboard (the simulator's control routes: no call of ours),
//! reflected on our payment and in Flexprice: partial then full, each refund counted once under
//! duplicated and reordered delivery, and found by the sweep when its webhooks are dropped. The
//! simulators' state is the judge.

use std::time::Duration;

use serde_json::{Value, json};
use simulators::HasRecorder;
use system_tests::{api, flexprice, link_payment, payment_when, razorpay_control, start, wait_for};

async fn control(stack: &local_stack::LocalStack, path: &str, body: Value) -> Value {
    let (status, answer) = razorpay_control(stack, path, &body).await;
    assert_eq!(status, 200, "{path}: {answer}");
    answer
}

/// A link payment of 100.00 paid in full; its Razorpay payment id.
async fn paid(stack: &local_stack::LocalStack, key: &str) -> (String, String) {
    let payment = link_payment(stack, "100.00", key).await;
    let id = payment["id"].as_str().unwrap().to_owned();
    let link = payment["gateway_tracking_id"].as_str().unwrap();
    let pay = control(stack, &format!("/_sim/payment_links/{link}/pay"), json!({})).await;
    payment_when(stack, &id, |p| p["payment_status"] == "SUCCEEDED").await;
    (id, pay["payments"][0].as_str().unwrap().to_owned())
}

/// A dashboard refund of `amount` subunits (all that is left with `None`), then processed,
/// each delivered as `delivery` says; the refund id.
async fn refund_in_dashboard(
    stack: &local_stack::LocalStack,
    razorpay_payment_id: &str,
    amount: Option<u64>,
    delivery: Value,
) -> String {
    let mut body = delivery.clone();
    if let Some(amount) = amount {
        body["amount"] = json!(amount);
    }
    let path = format!("/_sim/payments/{razorpay_payment_id}/refund");
    let made = control(stack, &path, body).await;
    let id = made["refund"]["id"].as_str().unwrap().to_owned();
    let processed = json!({"duplicate": delivery["duplicate"]});
    control(stack, &format!("/_sim/refunds/{id}/process"), processed).await;
    id
}

/// The Flexprice payment our refunds were written to (the only one updated).
async fn flexprice_payment(stack: &local_stack::LocalStack, status: &str) -> Value {
    wait_for(
        &format!("a Flexprice payment {status}"),
        Duration::from_secs(30),
        || async {
            let requests = stack.flexprice.requests();
            let put = requests
                .iter()
                .rfind(|r| r.method == "PUT" && r.path.starts_with("/v1/payments/"))?;
            let (_, payment) = flexprice(stack, "GET", &put.path, None).await;
            (payment["payment_status"] == status).then_some(payment)
        },
    )
    .await
}

#[tokio::test]
async fn a_dashboard_refund_makes_the_payment_partially_then_fully_refunded_counted_once() {
    let stack = start("refund-").await;
    let (id, razorpay_payment_id) = paid(&stack, "refund-dashboard").await;
    // Every event twice, and `refund.created` held back until after `refund.processed`.
    let reordered = json!({"duplicate": true, "delay_ms": 1500});
    let first = refund_in_dashboard(&stack, &razorpay_payment_id, Some(4000), reordered).await;
    let partial = flexprice_payment(&stack, "PARTIALLY_REFUNDED").await;
    assert_eq!(
        partial["metadata"]["razorpay_refund_ids"], first,
        "{partial}"
    );
    assert_eq!(partial["metadata"]["amount_refunded"], "40.00");
    assert!(
        partial["refunded_at"]
            .as_str()
            .is_some_and(|at| at.ends_with('Z'))
    );
    let shown = payment_when(&stack, &id, |p| p["amount_refunded"] == "40.00").await;
    assert_eq!(shown["refund_status"], "partial");
    // The late, duplicated `refund.created` changes nothing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, shown) = api(&stack, "GET", &format!("/api/v1/payments/{id}"), None).await;
    assert_eq!(
        shown["refunds"].as_array().map(Vec::len),
        Some(1),
        "{shown}"
    );
    assert_eq!(shown["refunds"][0]["status"], "PROCESSED");

    let rest = refund_in_dashboard(&stack, &razorpay_payment_id, None, json!({})).await;
    let full = flexprice_payment(&stack, "REFUNDED").await;
    assert_eq!(
        full["metadata"]["razorpay_refund_ids"],
        format!("{first},{rest}")
    );
    assert_eq!(full["metadata"]["amount_refunded"], "100.00");
    let shown = payment_when(&stack, &id, |p| p["refund_status"] == "full").await;
    assert_eq!(
        (&shown["amount_refunded"], &shown["amount_paid_minor"]),
        (&json!("100.00"), &json!(10000)),
        "{shown}"
    );
    let events = stack.razorpay.deliveries();
    assert!(
        events.iter().any(|d| d.event == "refund.processed"),
        "{events:?}"
    );
}

#[tokio::test]
async fn the_sweep_finds_a_refund_whose_webhooks_were_dropped() {
    let stack = start("refund-sweep-").await;
    let (id, razorpay_payment_id) = paid(&stack, "refund-swept").await;
    let dropped = json!({"events": null, "drop": true});
    control(&stack, "/_sim/webhook-subscription", dropped).await;
    refund_in_dashboard(&stack, &razorpay_payment_id, Some(2500), json!({})).await;
    // Past the sweep's grace (2 s locally).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let response = system_tests::http()
        .post(format!("{}/_local/sweep", stack.ready.gateway_url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let recorded = flexprice_payment(&stack, "PARTIALLY_REFUNDED").await;
    assert_eq!(recorded["metadata"]["amount_refunded"], "25.00");
    payment_when(&stack, &id, |p| p["amount_refunded"] == "25.00").await;
    let (_, connection) = api(&stack, "GET", "/api/v1/connections/razorpay", None).await;
    assert_eq!(connection["webhook"]["status"], "degraded", "{connection}");
}

#[tokio::test]
async fn api_refunds_are_idempotent_and_concurrent_ones_never_exceed_the_capture() {
    let stack = start("refund-api-").await;
    let (id, razorpay_payment_id) = paid(&stack, "refund-api").await;
    let path = format!("/api/v1/payments/{id}/refunds");
    let ask = |key: &str, amount: &str| json!({"idempotency_key": key, "amount": amount, "reason": "duplicate payment"});
    let first = ask("refund-once", "30.00");
    let (status, made) = api(&stack, "POST", &path, Some(&first)).await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(
        (&made["status"], &made["amount"]),
        (&json!("PENDING"), &json!("30.00"))
    );
    let (status, again) = api(&stack, "POST", &path, Some(&first)).await;
    assert_eq!((status, &again["id"]), (200, &made["id"]), "{again}");
    let refund_calls = |stack: &local_stack::LocalStack| {
        let refund_path = format!("/v1/payments/{razorpay_payment_id}/refund");
        stack
            .razorpay
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path == refund_path)
            .count()
    };
    assert_eq!(refund_calls(&stack), 1, "one Razorpay refund for one key");

    // 70.00 is left: two concurrent asks of 60.00, exactly one made.
    let (a, b) = (ask("refund-a", "60.00"), ask("refund-b", "60.00"));
    let (one, other) = tokio::join!(
        api(&stack, "POST", &path, Some(&a)),
        api(&stack, "POST", &path, Some(&b))
    );
    let mut statuses = [one.0, other.0];
    statuses.sort();
    assert_eq!(statuses, [201, 422], "{one:?} {other:?}");
    let refused = if one.0 == 422 { &one.1 } else { &other.1 };
    assert_eq!(refused["errors"][0]["field"], "amount", "{refused}");
    assert_eq!(refused["errors"][0]["rule"], "refundable", "{refused}");
    assert_eq!(refund_calls(&stack), 2);

    let (status, listed) = api(&stack, "GET", &path, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        listed["refunds"].as_array().map(Vec::len),
        Some(2),
        "{listed}"
    );
    let (status, bad) = api(&stack, "POST", &path, Some(&json!({"amount": "1.00"}))).await;
    assert_eq!(
        (status, &bad["errors"][0]["field"]),
        (400, &json!("idempotency_key")),
        "{bad}"
    );
}

#[tokio::test]
async fn a_dispute_opened_and_lost_shows_on_the_payment_and_refunds_it_in_flexprice() {
    let stack = start("dispute-").await;
    let (id, razorpay_payment_id) = paid(&stack, "disputed").await;
    let opened = control(
        &stack,
        &format!("/_sim/payments/{razorpay_payment_id}/dispute"),
        json!({"respond_in_secs": 3600}),
    )
    .await;
    let dispute = opened["dispute"]["id"].as_str().unwrap().to_owned();
    let shown = payment_when(&stack, &id, |p| p["disputes"][0]["status"] == "open").await;
    assert_eq!(shown["disputes"][0]["phase"], "chargeback", "{shown}");
    control(
        &stack,
        &format!("/_sim/disputes/{dispute}/under_review"),
        json!({}),
    )
    .await;
    control(
        &stack,
        &format!("/_sim/disputes/{dispute}/lose"),
        json!({"duplicate": true}),
    )
    .await;
    let shown = payment_when(&stack, &id, |p| p["disputes"][0]["status"] == "lost").await;
    assert_eq!(shown["disputes"][0]["amount_deducted"], "100.00", "{shown}");
    let recorded = flexprice_payment(&stack, "REFUNDED").await;
    assert_eq!(
        recorded["metadata"]["razorpay_dispute_ids"], dispute,
        "{recorded}"
    );
    assert_eq!(recorded["metadata"]["amount_refunded"], "100.00");
}

#[tokio::test]
async fn under_the_refund_policy_a_double_payment_is_refunded_once() {
    let stack = start("overpaid-").await;
    let mut connection = system_tests::connection_body(&stack);
    connection["overcollection"] = json!("refund");
    let (status, shown) = api(
        &stack,
        "PUT",
        "/api/v1/connections/razorpay",
        Some(&connection),
    )
    .await;
    assert_eq!(
        (status, &shown["overcollection"]),
        (200, &json!("refund")),
        "{shown}"
    );
    let payment = link_payment(&stack, "1675.01", "double-pay").await;
    let id = payment["id"].as_str().unwrap().to_owned();
    let link = payment["gateway_tracking_id"].as_str().unwrap();
    // The customer pays the link (Razorpay's webhooks come 2 s late) while the invoice is paid
    // in full by bank transfer in Flexprice: paid twice.
    let paid = control(
        &stack,
        &format!("/_sim/payment_links/{link}/pay"),
        json!({"delay_ms": 2000}),
    )
    .await;
    let razorpay_payment_id = paid["payments"][0].as_str().unwrap().to_owned();
    let transfer = json!({"destination_type": "INVOICE", "destination_id": stack.ready.invoice_ids[0],
        "payment_method_type": "OFFLINE", "amount": "1675.01", "currency": "INR",
        "process_payment": true, "idempotency_key": "bank-transfer"});
    let (status, _) = flexprice(&stack, "POST", "/v1/payments", Some(&transfer)).await;
    assert_eq!(status, 201);
    payment_when(&stack, &id, |p| p["payment_status"] == "SUCCEEDED").await;
    let path = format!("/v1/payments/{razorpay_payment_id}/refunds");
    let refunds = wait_for("the excess refunded", Duration::from_secs(30), || async {
        let listed = system_tests::razorpay_api(&stack, &path, &[]).await;
        let items = listed["items"].as_array().cloned().unwrap_or_default();
        (!items.is_empty()).then_some(items)
    })
    .await;
    assert_eq!(refunds[0]["amount"], 167501, "{refunds:?}");
    // Settled again (a Flexprice webhook, a sweep): still one refund, nothing flagged.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let listed = system_tests::razorpay_api(&stack, &path, &[]).await;
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    let (_, shown) = api(&stack, "GET", &format!("/api/v1/payments/{id}"), None).await;
    assert_eq!(shown["refunds"][0]["source"], "POLICY", "{shown}");
    assert!(shown["review"].is_null(), "{shown}");
}

#[tokio::test]
async fn a_refund_credit_note_is_refunded_once_at_razorpay_when_the_setting_is_on() {
    let stack = start("creditnote-").await;
    let mut connection = system_tests::connection_body(&stack);
    connection["credit_note_refunds"] = json!(true);
    let (status, shown) = api(
        &stack,
        "PUT",
        "/api/v1/connections/razorpay",
        Some(&connection),
    )
    .await;
    assert_eq!(
        (status, &shown["credit_note_refunds"]),
        (200, &json!(true)),
        "{shown}"
    );
    let (id, razorpay_payment_id) = paid(&stack, "credit-noted").await;
    let note = json!({"invoice_id": stack.ready.invoice_ids[0], "credit_note_type": "REFUND",
        "reason": "SERVICE_ISSUE", "total_amount": "30.00"});
    let (status, made) = flexprice(&stack, "POST", "/v1/creditnotes", Some(&note)).await;
    assert_eq!(status, 201, "{made}");
    let path = format!("/v1/payments/{razorpay_payment_id}/refunds");
    let refunds = wait_for(
        "the credit note refunded",
        Duration::from_secs(30),
        || async {
            let listed = system_tests::razorpay_api(&stack, &path, &[]).await;
            let items = listed["items"].as_array().cloned().unwrap_or_default();
            (!items.is_empty()).then_some(items)
        },
    )
    .await;
    assert_eq!(refunds[0]["amount"], 3000, "{refunds:?}");
    let (_, shown) = api(&stack, "GET", &format!("/api/v1/payments/{id}"), None).await;
    assert_eq!(shown["refunds"][0]["source"], "CREDIT_NOTE", "{shown}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let listed = system_tests::razorpay_api(&stack, &path, &[]).await;
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(1),
        "once: {listed}"
    );
}
