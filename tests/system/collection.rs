//! One invoice, one live way to pay, end to end on the local stack: what open instruments ask
//! never exceeds what the invoice owes; a payment for what the synced Razorpay invoice asks is
//! that invoice; full payments, payments recorded in Flexprice directly and voids close the
//! links they leave nothing for, at Razorpay.

use std::time::Duration;

use local_stack::LocalStack;
use serde_json::{Value, json};
use system_tests::{
    api, finalized_invoice, flexprice, flexprice_paid, http, link_payment, payment_when,
    razorpay_control, start, sync_state,
};

fn body(invoice_id: &str, amount: &str, key: &str) -> Value {
    json!({"amount": amount, "currency": "INR", "destination_id": invoice_id,
        "destination_type": "INVOICE", "payment_method_type": "PAYMENT_LINK",
        "payment_gateway": "razorpay", "idempotency_key": key})
}

/// A link's status at the Razorpay simulator.
async fn link_status(stack: &LocalStack, link_id: &str) -> String {
    let link: Value = http()
        .get(format!(
            "{}/v1/payment_links/{link_id}",
            stack.ready.razorpay_sim_url
        ))
        .basic_auth(
            local_stack::RAZORPAY_KEY_ID,
            Some(&stack.razorpay_key_secret),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    link["status"].as_str().unwrap_or_default().to_owned()
}

fn links_made(stack: &LocalStack) -> usize {
    use simulators::HasRecorder;
    stack
        .razorpay
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/payment_links" && r.status == 200)
        .count()
}

/// The payment's link, once the settle job has cancelled it at Razorpay and failed it.
async fn cancelled(stack: &LocalStack, payment: &Value) {
    let id = payment["id"].as_str().unwrap();
    let failed = payment_when(stack, id, |p| p["payment_status"] == "FAILED").await;
    let link = payment["gateway_tracking_id"].as_str().unwrap();
    assert_eq!(link_status(stack, link).await, "cancelled", "{failed}");
    let (status, refused) = razorpay_control(
        stack,
        &format!("/_sim/payment_links/{link}/pay"),
        &json!({}),
    )
    .await;
    assert_eq!(status, 400, "a cancelled link takes no money: {refused}");
}

#[tokio::test]
async fn a_payment_for_what_the_synced_invoice_asks_is_that_invoice_and_no_second_way_opens() {
    let stack = start("col-").await;
    let id = finalized_invoice(&stack, "inr", json!({})).await;
    let synced = sync_state(&stack, &id, &["SYNCED"]).await;
    let (status, payment) = api(
        &stack,
        "POST",
        "/api/v1/payments",
        Some(&body(&id, "1119.50", "whole-1")),
    )
    .await;
    assert_eq!(status, 201, "{payment}");
    assert_eq!(payment["payment_method_type"], "RAZORPAY_INVOICE");
    assert_eq!(payment["payment_url"], synced["payment_url"]);
    assert_eq!(
        payment["razorpay_invoice_id"],
        synced["razorpay_invoice_id"]
    );
    assert!(
        payment["notice"]
            .as_str()
            .is_some_and(|n| n.contains("one way to pay")),
        "{payment}"
    );
    // A link beside it, for any amount, would let the customer pay more than is owed.
    let (status, problem) = api(
        &stack,
        "POST",
        "/api/v1/payments",
        Some(&body(&id, "10.00", "part-1")),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "amount");
    assert_eq!(problem["errors"][0]["rule"], "payable_remaining");
    assert_eq!(links_made(&stack), 0);
    // Paid at Razorpay: the caller's payment is the one that succeeds, once.
    let rzp = synced["razorpay_invoice_id"].as_str().unwrap();
    let (status, _) =
        razorpay_control(&stack, &format!("/_sim/invoices/{rzp}/pay"), &json!({})).await;
    assert_eq!(status, 200);
    let paid = payment_when(&stack, payment["id"].as_str().unwrap(), |p| {
        p["payment_status"] == "SUCCEEDED"
    })
    .await;
    assert_eq!(paid["amount_paid_minor"], 111950);
    assert_eq!(flexprice_paid(&stack, &id).await, ("1119.50".to_owned(), 1));
}

#[tokio::test]
async fn a_second_link_for_the_whole_remainder_is_refused_and_partial_links_share_it() {
    let stack = start("col-").await;
    let invoice = stack.ready.invoice_ids[0].clone();
    link_payment(&stack, "1675.01", "whole-a").await;
    let (status, problem) = api(
        &stack,
        "POST",
        "/api/v1/payments",
        Some(&body(&invoice, "1675.01", "whole-b")),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["rule"], "payable_remaining");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("plink_")),
        "the refusal names the open link: {problem}"
    );
    assert_eq!(links_made(&stack), 1);
}

#[tokio::test]
async fn money_recorded_in_flexprice_directly_cancels_the_link_it_leaves_nothing_for() {
    let stack = start("col-").await;
    let invoice = stack.ready.invoice_ids[0].clone();
    let a = link_payment(&stack, "675.01", "part-a").await;
    let b = link_payment(&stack, "1000.00", "part-b").await;
    // b paid: the invoice still owes a's share, so a stays payable.
    let link_b = b["gateway_tracking_id"].as_str().unwrap();
    let (status, _) = razorpay_control(
        &stack,
        &format!("/_sim/payment_links/{link_b}/pay"),
        &json!({}),
    )
    .await;
    assert_eq!(status, 200);
    payment_when(&stack, b["id"].as_str().unwrap(), |p| {
        p["payment_status"] == "SUCCEEDED"
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let link_a = a["gateway_tracking_id"].as_str().unwrap();
    assert_eq!(link_status(&stack, link_a).await, "created");
    // The rest is paid in Flexprice directly (a bank transfer): a's link would take it twice.
    let transfer = json!({"destination_type": "INVOICE", "destination_id": invoice,
        "payment_method_type": "OFFLINE", "amount": "675.01", "currency": "INR",
        "process_payment": true, "idempotency_key": "bank-transfer-1"});
    let (status, recorded) = flexprice(&stack, "POST", "/v1/payments", Some(&transfer)).await;
    assert_eq!(status, 201, "{recorded}");
    cancelled(&stack, &a).await;
}

#[tokio::test]
async fn a_void_cancels_every_link_still_open() {
    let stack = start("col-").await;
    let invoice = stack.ready.invoice_ids[0].clone();
    let a = link_payment(&stack, "100.00", "void-a").await;
    let (status, _) = flexprice(
        &stack,
        "POST",
        &format!("/v1/invoices/{invoice}/void"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    cancelled(&stack, &a).await;
    let (status, problem) = api(
        &stack,
        "POST",
        "/api/v1/payments",
        Some(&body(&invoice, "100.00", "void-b")),
    )
    .await;
    assert_eq!(status, 422, "a voided invoice takes no new link: {problem}");
}

#[tokio::test]
async fn the_payment_url_heals_an_expired_link_and_a_synced_invoice_expired_at_razorpay() {
    let stack = start("col-").await;
    let invoice = stack.ready.invoice_ids[0].clone();
    let path = format!("/api/v1/invoices/{invoice}/payment-url");
    let (status, first) = api(&stack, "GET", &path, None).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        (&first["instrument"], &first["reissued"]),
        (&json!("payment_link"), &json!(true))
    );
    assert_eq!(first["amount"], "1675.01");
    let (_, same) = api(&stack, "GET", &path, None).await;
    assert_eq!(
        (&same["payment_url"], &same["reissued"]),
        (&first["payment_url"], &json!(false))
    );
    // Razorpay expires the link (its webhook delivered): the URL heals with a new link.
    let link = first["razorpay_id"].as_str().unwrap();
    let (status, _) = razorpay_control(
        &stack,
        &format!("/_sim/payment_links/{link}/expire"),
        &json!({}),
    )
    .await;
    assert_eq!(status, 200);
    payment_when(&stack, first["payment_id"].as_str().unwrap(), |p| {
        p["payment_status"] == "FAILED"
    })
    .await;
    let (status, healed) = api(&stack, "GET", &path, None).await;
    assert_eq!(status, 200, "{healed}");
    assert_eq!(healed["reissued"], true);
    assert_ne!(healed["payment_url"], first["payment_url"]);
    assert_eq!(
        link_status(&stack, healed["razorpay_id"].as_str().unwrap()).await,
        "created"
    );
    assert_eq!(links_made(&stack), 2);

    // A synced invoice that expired at Razorpay is issued again, under its next receipt.
    let synced_id = finalized_invoice(&stack, "inr", json!({})).await;
    let synced = sync_state(&stack, &synced_id, &["SYNCED"]).await;
    let rzp = synced["razorpay_invoice_id"].as_str().unwrap();
    let (status, _) =
        razorpay_control(&stack, &format!("/_sim/invoices/{rzp}/expire"), &json!({})).await;
    assert_eq!(status, 200);
    let path = format!("/api/v1/invoices/{synced_id}/payment-url");
    let (status, reissued) = api(&stack, "GET", &path, None).await;
    assert_eq!(status, 200, "{reissued}");
    assert_eq!(
        (&reissued["instrument"], &reissued["reissued"]),
        (&json!("razorpay_invoice"), &json!(true))
    );
    assert_ne!(reissued["razorpay_id"], synced["razorpay_invoice_id"]);
    let (_, view) = api(
        &stack,
        "GET",
        &format!("/api/v1/invoices/{synced_id}/sync"),
        None,
    )
    .await;
    assert_eq!(
        view["razorpay_invoice_id"], reissued["razorpay_id"],
        "{view}"
    );
    assert_eq!(view["payment_url"], reissued["payment_url"]);
}
