//! A run of the flows on the local stack logs no secret value: not the API key, the Razorpay
//! key secret, the webhook secrets or the Flexprice API key.

use std::io::Write;
use std::sync::{Arc, Mutex};

use local_stack::{LocalStack, Options};
use serde_json::json;
use shared::domain::jobs::{Job, Task};
use shared::domain::keys::TenantScope;
use simulators::HasRecorder;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_of_a_run_hold_no_secret() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "info,shared=debug,payment_link_api=debug,webhook_receiver=debug,invoice_sync=debug,local_stack=debug,simulators=debug",
        ))
        .with_writer(move || writer.clone())
        .init();

    let mut options = Options::from_env(0);
    options.resource_prefix = simulators::common::new_id("logs-").to_lowercase();
    let stack = LocalStack::start(options).await.unwrap();
    let http = shared::adapters::http::client(shared::adapters::http::Timeouts::default()).unwrap();
    let key = &stack.ready.api_key;
    let get = http
        .get(format!(
            "{}/api/v1/connections/razorpay",
            stack.ready.gateway_url
        ))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    let body = json!({"amount": "100.00", "currency": "INR", "destination_id": stack.ready.invoice_ids[0],
        "destination_type": "INVOICE", "payment_method_type": "PAYMENT_LINK", "payment_gateway": "razorpay"});
    let payment: serde_json::Value = http
        .post(format!("{}/api/v1/payments", stack.ready.gateway_url))
        .header("x-api-key", key)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let link = payment["gateway_tracking_id"].as_str().unwrap();
    http.post(format!(
        "{}/_sim/payment_links/{link}/pay",
        stack.ready.razorpay_sim_url
    ))
    .json(&json!({}))
    .send()
    .await
    .unwrap();
    // A refused key and a failing job, so that warnings are logged too.
    http.get(format!("{}/api/v1/payments/x", stack.ready.gateway_url))
        .header("x-api-key", "fxr_wrong")
        .send()
        .await
        .unwrap();
    let job = Job::new(
        &TenantScope::new("demo", "sandbox").unwrap(),
        Task::ApplyRazorpayEvent {
            event_id: "evt_unappliable".into(),
            body: "{}".into(),
        },
    );
    stack.adapters.queue.send(&job, None).await.unwrap();
    // And an invoice sync, which reads every credential of the tenant.
    let invoice = &stack.ready.invoice_ids[1];
    let (status, _) = system_tests::api(
        &stack,
        "POST",
        &format!("/api/v1/invoices/{invoice}/sync"),
        None,
    )
    .await;
    assert_eq!(status, 202);
    system_tests::wait_for(
        "the invoice sync",
        std::time::Duration::from_secs(20),
        || async {
            let (_, view) = system_tests::api(
                &stack,
                "GET",
                &format!("/api/v1/invoices/{invoice}/sync"),
                None,
            )
            .await;
            (view["state"] == "SYNCED").then_some(())
        },
    )
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while (stack.razorpay.deliveries().len() < 3 || stack.poller.snapshot().3 == 0)
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("job failed"),
        "the run logged nothing to check: {logs}"
    );
    let secrets = [
        key.as_str(),
        stack.razorpay_key_secret.as_str(),
        stack.ready.webhook_secret.as_str(),
        stack.ready.flexprice_webhook_secret.as_str(),
        stack.flexprice_api_key.as_str(),
    ];
    for secret in secrets {
        assert!(!logs.contains(secret), "a secret value appears in the logs");
    }
}
