//! A captured payment on a link is recorded into Flexprice exactly once and settles the
//! invoice, end to end on the local stack.

use std::time::{Duration, Instant};

use local_stack::{LocalStack, Options};
use serde_json::{Value, json};
use shared::flexprice::{FlexpriceClient, FlexpriceConfig};
use shared::secret::Secret;

#[tokio::test]
async fn paying_the_link_pays_the_invoice_once_even_with_duplicate_webhooks() {
    let mut options = Options::from_env(0);
    options.resource_prefix = simulators::common::new_id("rec-").to_lowercase();
    let stack: LocalStack = LocalStack::start(options).await.unwrap();
    let http = shared::http::client(shared::http::Timeouts::default()).unwrap();
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
