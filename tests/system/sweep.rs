//! The reconciliation sweep with Razorpay's webhooks gone: links and a synced invoice paid, a
//! payment captured late after it failed, and not one webhook delivered. One sweep records every
//! one exactly once, the next changes nothing, and the connection says the webhook looks
//! degraded. The simulators' state is the judge.

use std::time::Duration;

use serde_json::{Value, json};
use simulators::HasRecorder;
use system_tests::{api, flexprice, link_payment, razorpay_control, start, sync_state, wait_for};

async fn control(stack: &local_stack::LocalStack, path: &str) -> Value {
    let (status, answer) = razorpay_control(stack, path, &json!({})).await;
    assert_eq!(status, 200, "{path}: {answer}");
    answer
}

async fn paid_in_flexprice(stack: &local_stack::LocalStack, invoice_id: &str) -> String {
    let (_, invoice) = flexprice(stack, "GET", &format!("/v1/invoices/{invoice_id}"), None).await;
    invoice["amount_paid"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// How many payments Flexprice recorded (a 201 on `POST /v1/payments`).
fn recorded(stack: &local_stack::LocalStack) -> usize {
    let requests = stack.flexprice.requests();
    let created = requests
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/payments" && r.status == 201);
    created.count()
}

async fn sweep_now(stack: &local_stack::LocalStack) {
    let response = system_tests::http()
        .post(format!("{}/_local/sweep", stack.ready.gateway_url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn with_every_webhook_dropped_one_sweep_records_each_payment_once_and_flags_the_webhook() {
    let stack = start("sweep-").await;
    // A synced Razorpay invoice first (Flexprice's webhooks still come), then Razorpay's stop.
    let invoice = system_tests::finalized_invoice(&stack, "inr", json!({})).await;
    let synced = sync_state(&stack, &invoice, &["SYNCED"]).await;
    let lapsing = system_tests::finalized_invoice(&stack, "inr", json!({})).await;
    let lapsing_sync = sync_state(&stack, &lapsing, &["SYNCED"]).await;
    let dropped = json!({"events": null, "drop": true});
    let (status, _) = razorpay_control(&stack, "/_sim/webhook-subscription", &dropped).await;
    assert_eq!(status, 200);

    let paid = link_payment(&stack, "100.00", "sweep-paid").await;
    let late = link_payment(&stack, "50.00", "sweep-late").await;
    let link = |p: &Value| p["gateway_tracking_id"].as_str().unwrap().to_owned();
    control(&stack, &format!("/_sim/payment_links/{}/pay", link(&paid))).await;
    let failed = control(&stack, &format!("/_sim/payment_links/{}/fail", link(&late))).await;
    let failed_id = failed["payments"][0].as_str().unwrap().to_owned();
    control(&stack, &format!("/_sim/payments/{failed_id}/capture")).await;
    let razorpay_invoice = synced["razorpay_invoice_id"].as_str().unwrap();
    control(&stack, &format!("/_sim/invoices/{razorpay_invoice}/pay")).await;
    let lapsed = lapsing_sync["razorpay_invoice_id"].as_str().unwrap();
    control(&stack, &format!("/_sim/invoices/{lapsed}/expire")).await;
    assert!(
        stack.razorpay.deliveries().is_empty(),
        "no webhook was delivered"
    );

    // Past the sweep's grace (2 s locally), one sweep finds all three.
    tokio::time::sleep(Duration::from_secs(3)).await;
    sweep_now(&stack).await;
    let seeded = &stack.ready.invoice_ids[0];
    wait_for(
        "the sweep to record all three",
        Duration::from_secs(30),
        || async {
            let links = paid_in_flexprice(&stack, seeded).await == "150.00";
            let synced = paid_in_flexprice(&stack, &invoice).await == "1119.50";
            (links && synced).then_some(())
        },
    )
    .await;
    for (payment, amount) in [(&paid, 10000), (&late, 5000)] {
        let id = payment["id"].as_str().unwrap();
        let (_, view) = api(&stack, "GET", &format!("/api/v1/payments/{id}"), None).await;
        assert_eq!(
            (&view["payment_status"], &view["amount_paid_minor"]),
            (&json!("SUCCEEDED"), &json!(amount))
        );
    }
    // The run saves what it found once it is done applying.
    let connection = wait_for("the sweep to finish", Duration::from_secs(30), || async {
        let (_, connection) = api(&stack, "GET", "/api/v1/connections/razorpay", None).await;
        (!connection["webhook"]["last_sweep_at"].is_null()).then_some(connection)
    })
    .await;
    assert_eq!(connection["webhook"]["status"], "degraded", "{connection}");
    assert!(
        connection["webhook"]["missed"].as_u64().unwrap() >= 3,
        "{connection}"
    );

    // The invoice's timeline shows what the sweep applied in place of the missed webhooks.
    let path = format!("/api/v1/invoices/{seeded}/timeline?limit=100");
    let (_, timeline) = api(&stack, "GET", &path, None).await;
    let corrections: Vec<&Value> = timeline["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "sweep_correction" && e["status"] == "counted")
        .collect();
    assert_eq!(corrections.len(), 2, "{timeline}");

    // The next sweeps change nothing: each payment was recorded once.
    let once = recorded(&stack);
    assert_eq!(once, 3);
    sweep_now(&stack).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(recorded(&stack), once);
    assert_eq!(paid_in_flexprice(&stack, seeded).await, "150.00");
}
