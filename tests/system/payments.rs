//! `POST /api/v1/payments` and `GET /api/v1/payments/{id}` end to end on the local stack.

use local_stack::LocalStack;
use serde_json::{Value, json};
use simulators::HasRecorder;
use system_tests::http;

async fn stack() -> LocalStack {
    system_tests::start("pay-").await
}

async fn post(stack: &LocalStack, key: &str, body: &Value) -> (u16, Value) {
    let response = http()
        .post(format!("{}/api/v1/payments", stack.ready.gateway_url))
        .header("x-api-key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The README's example body for the seeded INR invoice, which owes 1675.01.
fn seed_body(stack: &LocalStack, amount: Value) -> Value {
    json!({"amount": amount, "currency": "inr", "destination_id": stack.ready.invoice_ids[0],
        "destination_type": "INVOICE", "payment_method_type": "PAYMENT_LINK",
        "payment_gateway": "razorpay", "process_payment": true,
        "success_url": "https://example.com/paid", "cancel_url": "https://example.com/cancelled"})
}

fn count(stack: &LocalStack, method: &str, path: &str) -> usize {
    stack
        .razorpay
        .requests()
        .iter()
        .filter(|r| r.method == method && r.path == path && r.status == 200)
        .count()
}

#[tokio::test]
async fn the_example_body_creates_one_link_and_a_retry_returns_it() {
    let stack = stack().await;
    let key = stack.ready.api_key.clone();
    let body = seed_body(&stack, json!(1120.50));
    let (status, payment) = post(&stack, &key, &body).await;
    assert_eq!(status, 201, "{payment}");
    assert_eq!(payment["payment_status"], "PENDING");
    assert_eq!(payment["amount"], "1120.50");
    assert_eq!(payment["amount_minor"], 112050);
    assert_eq!(payment["currency"], "INR");
    let link_id = payment["gateway_tracking_id"].as_str().unwrap();
    assert!(link_id.starts_with("plink_"));
    assert!(
        payment["payment_url"]
            .as_str()
            .unwrap()
            .starts_with("https://rzp.io/")
    );
    assert_eq!(count(&stack, "POST", "/v1/customers"), 1);
    assert_eq!(count(&stack, "POST", "/v1/payment_links"), 1);

    let (again, same) = post(&stack, &key, &body).await;
    assert_eq!((again, &same["id"]), (200, &payment["id"]));
    assert_eq!(count(&stack, "POST", "/v1/payment_links"), 1);

    // The link carries our ids in its notes, never line items or caller metadata.
    let link =
        system_tests::razorpay_api(&stack, &format!("/v1/payment_links/{link_id}"), &[]).await;
    assert_eq!(link["reference_id"], payment["id"]);
    assert_eq!(
        link["notes"]["flexprice_invoice_id"],
        stack.ready.invoice_ids[0].as_str()
    );
    assert_eq!(link["callback_url"], "https://example.com/paid");
    assert_eq!(link["callback_method"], "get");

    let got = http()
        .get(format!(
            "{}/api/v1/payments/{}",
            stack.ready.gateway_url,
            payment["id"].as_str().unwrap()
        ))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(
        got.json::<Value>().await.unwrap()["gateway_tracking_id"],
        link_id
    );
}

#[tokio::test]
async fn a_different_body_under_the_same_key_is_409() {
    let stack = stack().await;
    let key = stack.ready.api_key.clone();
    let mut first = seed_body(&stack, json!("100.00"));
    first["idempotency_key"] = json!("order-7");
    assert_eq!(post(&stack, &key, &first).await.0, 201);
    let mut second = seed_body(&stack, json!("200.00"));
    second["idempotency_key"] = json!("order-7");
    let (status, problem) = post(&stack, &key, &second).await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "idempotency_key");
}

#[tokio::test]
async fn ten_concurrent_identical_requests_make_one_payment_and_one_link() {
    let stack = std::sync::Arc::new(stack().await);
    let requests = (0..10).map(|_| {
        let stack = stack.clone();
        tokio::spawn(async move {
            let body = seed_body(&stack, json!("500.00"));
            post(&stack, &stack.ready.api_key, &body).await
        })
    });
    let results: Vec<(u16, Value)> = futures::future::join_all(requests)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let ids: std::collections::HashSet<String> = results
        .iter()
        .map(|(_, p)| p["id"].as_str().unwrap_or("none").to_owned())
        .collect();
    assert_eq!(ids.len(), 1, "{results:?}");
    assert_eq!(
        results.iter().filter(|(s, _)| *s == 201).count(),
        1,
        "{results:?}"
    );
    assert!(
        results.iter().all(|(s, _)| *s == 201 || *s == 200),
        "{results:?}"
    );
    assert_eq!(count(&stack, "POST", "/v1/payment_links"), 1);
}

#[tokio::test]
async fn each_validation_rule_names_its_field() {
    let stack = stack().await;
    let key = stack.ready.api_key.clone();
    let mut cases: Vec<(Value, u16, &str, &str)> = vec![
        (
            seed_body(&stack, json!("0.50")),
            422,
            "amount",
            "currency_minimum",
        ),
        (
            seed_body(&stack, json!("1675.02")),
            422,
            "amount",
            "invoice_remaining",
        ),
        (
            seed_body(&stack, json!("10.005")),
            422,
            "amount",
            "currency_precision",
        ),
        (seed_body(&stack, json!("0")), 422, "amount", "positive"),
        (
            seed_body(&stack, json!("-5")),
            422,
            "amount",
            "non_negative",
        ),
        (
            seed_body(&stack, json!("1e3")),
            422,
            "amount",
            "no_exponent_notation",
        ),
    ];
    let mut usd = seed_body(&stack, json!("10.00"));
    usd["currency"] = json!("usd");
    cases.push((usd, 422, "currency", "invoice_currency"));
    let mut missing = seed_body(&stack, json!("10.00"));
    missing["destination_id"] = json!("inv_missing");
    cases.push((missing, 422, "destination_id", "invoice_exists"));
    let mut customer = seed_body(&stack, json!("10.00"));
    customer["destination_type"] = json!("CUSTOMER");
    cases.push((customer, 422, "destination_type", "supported_value"));
    let mut no_amount = seed_body(&stack, json!("10.00"));
    no_amount.as_object_mut().unwrap().remove("amount");
    cases.push((no_amount, 400, "amount", "required"));
    for (body, status, field, rule) in cases {
        let (got, problem) = post(&stack, &key, &body).await;
        assert_eq!(got, status, "{field}/{rule}: {problem}");
        assert_eq!(
            (
                problem["errors"][0]["field"].as_str(),
                problem["errors"][0]["rule"].as_str()
            ),
            (Some(field), Some(rule)),
            "{problem}"
        );
    }
    let (_, problem) = post(&stack, &key, &seed_body(&stack, json!("0.50"))).await;
    assert_eq!(
        problem["errors"][0]["detail"],
        "amount 0.50 INR is below the minimum 1.00 INR"
    );
    let (_, problem) = post(&stack, &key, &seed_body(&stack, json!("1675.02"))).await;
    assert_eq!(
        problem["errors"][0]["detail"],
        "amount 1675.02 exceeds the invoice's remaining 1675.01"
    );
    assert_eq!(count(&stack, "POST", "/v1/payment_links"), 0);
}

/// After a first payment (which syncs the customer), `times` faults on the next Razorpay
/// calls land on the second payment's link create: it still answers 201 with one link.
async fn one_link_despite(fault: simulators::Fault, times: u32) {
    let stack = stack().await;
    let key = stack.ready.api_key.clone();
    assert_eq!(
        post(&stack, &key, &seed_body(&stack, json!("1.00")))
            .await
            .0,
        201
    );
    stack.razorpay.add_fault(fault, times);
    let (status, payment) = post(&stack, &key, &seed_body(&stack, json!("2.00"))).await;
    assert_eq!(status, 201, "{payment}");
    assert_eq!(
        count(&stack, "POST", "/v1/payment_links"),
        2,
        "one link per payment"
    );
}

#[tokio::test]
async fn a_razorpay_500_on_the_link_still_makes_exactly_one_link() {
    one_link_despite(simulators::Fault::Status { status: 500 }, 1).await;
}

#[tokio::test]
async fn another_tenants_key_cannot_read_a_payment() {
    let stack = stack().await;
    let (_, payment) = post(
        &stack,
        &stack.ready.api_key,
        &seed_body(&stack, json!("3.00")),
    )
    .await;
    let other = shared::services::apikeys::create(
        stack.adapters.store.as_ref(),
        &shared::ports::SystemClock,
        &shared::domain::keys::TenantScope::new("intruder", "sandbox").unwrap(),
        "other",
        None,
    )
    .await
    .unwrap();
    let response = http()
        .get(format!(
            "{}/api/v1/payments/{}",
            stack.ready.gateway_url,
            payment["id"].as_str().unwrap()
        ))
        .header("x-api-key", other.key.expose())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

async fn flexprice(stack: &LocalStack, path: &str, body: Value) -> Value {
    system_tests::flexprice(stack, "POST", path, Some(&body))
        .await
        .1
}

#[tokio::test]
async fn draft_voided_and_paid_invoices_are_refused() {
    let stack = stack().await;
    let key = stack.ready.api_key.clone();
    let draft = flexprice(
        &stack,
        "/v1/invoices",
        json!({"customer_id": stack.ready.customer_id, "currency": "inr",
        "line_items": [{"display_name": "Plan", "amount": "500.00"}]}),
    )
    .await;
    let draft_id = draft["id"].as_str().unwrap().to_owned();
    let mut body = seed_body(&stack, json!("10.00"));
    body["destination_id"] = json!(draft_id);
    let (status, problem) = post(&stack, &key, &body).await;
    assert_eq!(
        (status, problem["errors"][0]["rule"].as_str()),
        (422, Some("invoice_finalized")),
        "{problem}"
    );

    flexprice(&stack, &format!("/v1/invoices/{draft_id}/void"), json!({})).await;
    let (status, problem) = post(&stack, &key, &body).await;
    assert_eq!(
        (status, problem["errors"][0]["rule"].as_str()),
        (422, Some("invoice_not_voided")),
        "{problem}"
    );

    let usd = stack.ready.invoice_ids[1].clone();
    flexprice(
        &stack,
        "/v1/payments",
        json!({"destination_type": "INVOICE", "destination_id": usd,
        "payment_method_type": "OFFLINE", "amount": "1225.00", "currency": "usd",
        "process_payment": true, "idempotency_key": "paid-elsewhere"}),
    )
    .await;
    let mut paid = seed_body(&stack, json!("10.00"));
    paid["destination_id"] = json!(usd);
    paid["currency"] = json!("USD");
    let (status, problem) = post(&stack, &key, &paid).await;
    assert_eq!(
        (status, problem["errors"][0]["rule"].as_str()),
        (422, Some("invoice_unpaid")),
        "{problem}"
    );
}

#[tokio::test]
async fn a_link_whose_answer_timed_out_is_adopted_not_created_twice() {
    let stack = stack().await;
    let key = stack.ready.api_key.clone();
    assert_eq!(
        post(&stack, &key, &seed_body(&stack, json!("1.00")))
            .await
            .0,
        201
    );
    // The next Razorpay call (the link create) succeeds, but its answer outlives the timeout.
    stack
        .razorpay
        .add_fault(simulators::Fault::HangAfter { ms: 9000 }, 1);
    let (status, payment) = post(&stack, &key, &seed_body(&stack, json!("2.00"))).await;
    assert_eq!(status, 201, "{payment}");
    let creates = stack
        .razorpay
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/payment_links")
        .count();
    assert_eq!(creates, 2, "one create per payment, none repeated");
    let link = payment["gateway_tracking_id"].as_str().unwrap();
    let found = stack
        .razorpay
        .requests()
        .iter()
        .any(|r| r.path == "/v1/payment_links" && r.query.contains("reference_id"));
    assert!(found, "the link {link} was found by reference_id");
}

#[tokio::test]
async fn flexprice_unavailable_is_a_retryable_503_and_the_retry_succeeds() {
    let stack = stack().await;
    let key = stack.ready.api_key.clone();
    // The client tries a read three times; all three fail.
    stack
        .flexprice
        .add_fault(simulators::Fault::Status { status: 503 }, 3);
    let body = seed_body(&stack, json!("5.00"));
    let (status, problem) = post(&stack, &key, &body).await;
    assert_eq!(status, 503, "{problem}");
    assert_eq!(problem["retryable"], true, "{problem}");
    assert_eq!(count(&stack, "POST", "/v1/payment_links"), 0);
    let (status, payment) = post(&stack, &key, &body).await;
    assert_eq!(status, 201, "{payment}");
    assert_eq!(count(&stack, "POST", "/v1/payment_links"), 1);
}

#[tokio::test]
async fn razorpay_throttling_the_link_create_is_retried_and_makes_one_link() {
    one_link_despite(simulators::Fault::Status { status: 429 }, 2).await;
}

/// A raw body through the gateway: (status, first field at fault, its rule).
async fn post_raw(
    stack: &LocalStack,
    path: &str,
    method: reqwest::Method,
    content_type: &str,
    body: String,
) -> (u16, String, String) {
    let response = http()
        .request(method, format!("{}{path}", stack.ready.gateway_url))
        .header("x-api-key", &stack.ready.api_key)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let problem: Value = response.json().await.unwrap_or(Value::Null);
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    (
        status,
        text(&problem["errors"][0]["field"]),
        text(&problem["errors"][0]["rule"]),
    )
}

/// A JSON body to `POST /api/v1/payments`.
async fn payment_raw(stack: &LocalStack, body: String) -> (u16, String, String) {
    let method = reqwest::Method::POST;
    post_raw(stack, "/api/v1/payments", method, "application/json", body).await
}

/// A JSON body to `PUT /api/v1/connections/razorpay`.
async fn connection_raw(stack: &LocalStack, body: String) -> (u16, String, String) {
    let path = "/api/v1/connections/razorpay";
    post_raw(stack, path, reqwest::Method::PUT, "application/json", body).await
}

/// Every request the simulators have been sent so far.
fn sent(stack: &LocalStack) -> usize {
    stack.razorpay.requests().len() + stack.flexprice.requests().len()
}

#[tokio::test]
async fn hostile_payment_bodies_are_refused_by_field_and_reach_no_other_service() {
    let stack = stack().await;
    let with = |field: &str, value: Value| {
        let mut body = seed_body(&stack, json!("10.00"));
        body[field] = value;
        body.to_string()
    };
    let invoice = stack.ready.invoice_ids[0].clone();
    let cases = [
        (
            with("destination_id", json!(format!("inv_nope/../{invoice}"))),
            400,
            "destination_id",
            "charset",
        ),
        (
            with("destination_id", json!(format!("{invoice}#frag"))),
            400,
            "destination_id",
            "charset",
        ),
        (
            with("destination_id", json!(format!("{invoice}?x=1"))),
            400,
            "destination_id",
            "charset",
        ),
        (
            with("destination_id", json!(format!("{invoice}\u{0}"))),
            400,
            "destination_id",
            "charset",
        ),
        (
            with("destination_id", json!(format!(" {invoice}\n"))),
            400,
            "destination_id",
            "charset",
        ),
        (
            with("destination_id", json!(format!("{invoice}/finalize"))),
            400,
            "destination_id",
            "charset",
        ),
        (
            with("success_url", json!("http://")),
            400,
            "success_url",
            "http_url_host",
        ),
        (
            with("success_url", json!("https://exa mple.com/")),
            400,
            "success_url",
            "charset",
        ),
        (
            with("cancel_url", json!("javascript:alert(1)")),
            400,
            "cancel_url",
            "http_url",
        ),
        (
            with(
                "success_url",
                json!(format!("https://e.com/{}", "a".repeat(3000))),
            ),
            400,
            "success_url",
            "max_length",
        ),
        (
            with("currency", json!("inr ")),
            400,
            "currency",
            "currency_code",
        ),
        (
            with("payment_gateway", json!("razorpay ")),
            422,
            "payment_gateway",
            "supported_value",
        ),
        (
            with("process_payment", json!("yes")),
            400,
            "process_payment",
            "boolean",
        ),
        (
            with("metadata", json!({"note": "x".repeat(20_000)})),
            413,
            "body",
            "max_size",
        ),
        (
            with("metadata", json!({"note": "x".repeat(600)})),
            422,
            "metadata",
            "max_length",
        ),
    ];
    let before = sent(&stack);
    for (body, status, field, rule) in cases {
        let got = payment_raw(&stack, body).await;
        assert_eq!(got, (status, field.to_owned(), rule.to_owned()));
    }
    let plain = post_raw(
        &stack,
        "/api/v1/payments",
        reqwest::Method::POST,
        "text/plain",
        with("currency", json!("INR")),
    )
    .await;
    assert_eq!(plain.0, 415);
    assert_eq!(
        sent(&stack),
        before,
        "nothing malformed was sent to Razorpay or Flexprice"
    );
    // An amount no float can hold is the amount's problem, found against the invoice.
    let huge = with("amount", json!(null)).replace("\"amount\":null", "\"amount\":1e309");
    let got = payment_raw(&stack, huge).await;
    assert_eq!((got.0, got.1.as_str()), (422, "amount"), "{got:?}");
    // The invoice id of the manual sync routes is parsed the same way.
    let (status, _) = system_tests::api(&stack, "GET", "/api/v1/invoices/inv%20x/sync", None).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn hostile_connection_bodies_are_refused_before_razorpay_is_asked() {
    let stack = stack().await;
    let with = |field: &str, value: Value| {
        let mut body = json!({"key_id": "rzp_test_localdemo", "key_secret": stack.razorpay_key_secret,
            "webhook_secret": stack.ready.webhook_secret, "flexprice_api_key": stack.flexprice_api_key,
            "flexprice_webhook_secret": stack.ready.flexprice_webhook_secret,
            "invoice_outbound_sync": true});
        body[field] = value;
        body.to_string()
    };
    let before = stack.razorpay.requests().len();
    for (field, value, rule) in [
        (
            "flexprice_webhook_secret",
            json!("whsec_!!!not base64!!!"),
            "svix_secret",
        ),
        (
            "key_id",
            json!("rzp_test_local\u{0}demo"),
            "razorpay_key_id",
        ),
        ("key_id", json!("rzp_test_localdemo\r\n"), "razorpay_key_id"),
        ("key_secret", json!("x".repeat(300)), "token"),
    ] {
        let got = connection_raw(&stack, with(field, value)).await;
        assert_eq!(got, (422, field.to_owned(), rule.to_owned()));
    }
    let huge = with("key_secret", json!("x".repeat(20_000)));
    let got = connection_raw(&stack, huge).await;
    assert_eq!(got.0, 413);
    assert_eq!(
        stack.razorpay.requests().len(),
        before,
        "Razorpay was not asked"
    );
    // The connection that works is still the one in place.
    let (status, view) =
        system_tests::api(&stack, "GET", "/api/v1/connections/razorpay", None).await;
    assert_eq!(
        (status, view["key_id"].as_str()),
        (200, Some("rzp_test_localdemo"))
    );
}

// ---- idempotency edges ----

#[tokio::test]
async fn a_retry_after_the_link_was_paid_returns_the_paid_payment() {
    let stack = stack().await;
    let key = stack.ready.api_key.clone();
    let mut body = seed_body(&stack, json!("1675.01"));
    body["idempotency_key"] = json!("pay-it-all");
    let (status, payment) = post(&stack, &key, &body).await;
    assert_eq!(status, 201, "{payment}");
    let link = payment["gateway_tracking_id"].as_str().unwrap().to_owned();
    let (paid, answer) = system_tests::razorpay_control(
        &stack,
        &format!("/_sim/payment_links/{link}/pay"),
        &json!({}),
    )
    .await;
    assert_eq!(paid, 200, "{answer}");
    let id = payment["id"].as_str().unwrap();
    system_tests::payment_when(&stack, id, |p| p["payment_status"] == "SUCCEEDED").await;
    // The invoice is paid now; the caller's retry still gets its payment, not a refusal.
    let (status, again) = post(&stack, &key, &body).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        (again["id"].as_str(), again["payment_status"].as_str()),
        (Some(id), Some("SUCCEEDED"))
    );
    assert_eq!(count(&stack, "POST", "/v1/payment_links"), 1);
    // A new key for the paid invoice is refused by the invoice's state.
    body["idempotency_key"] = json!("pay-it-again");
    let (status, problem) = post(&stack, &key, &body).await;
    assert_eq!(
        (status, problem["errors"][0]["field"].as_str()),
        (422, Some("destination_id")),
        "{problem}"
    );
}

#[tokio::test]
async fn without_a_key_a_request_after_the_link_expired_makes_a_new_payment() {
    let stack = stack().await;
    let key = stack.ready.api_key.clone();
    let body = seed_body(&stack, json!("10.00"));
    let (status, first) = post(&stack, &key, &body).await;
    assert_eq!(status, 201, "{first}");
    let (status, retried) = post(&stack, &key, &body).await;
    assert_eq!(
        (status, &retried["id"]),
        (200, &first["id"]),
        "a retry meets the first"
    );
    let link = first["gateway_tracking_id"].as_str().unwrap();
    let (expired, answer) = system_tests::razorpay_control(
        &stack,
        &format!("/_sim/payment_links/{link}/expire"),
        &json!({}),
    )
    .await;
    assert_eq!(expired, 200, "{answer}");
    let id = first["id"].as_str().unwrap();
    system_tests::payment_when(&stack, id, |p| p["payment_status"] == "FAILED").await;
    let (status, next) = post(&stack, &key, &body).await;
    assert_eq!(status, 201, "{next}");
    assert_ne!(next["id"], first["id"]);
    assert_ne!(next["gateway_tracking_id"], first["gateway_tracking_id"]);
    assert_eq!(next["payment_status"], "PENDING");
}

#[tokio::test]
async fn a_caller_key_shaped_like_an_internal_one_makes_its_own_payment() {
    let stack = stack().await;
    let key = stack.ready.api_key.clone();
    let mut body = seed_body(&stack, json!("5.00"));
    body["idempotency_key"] = json!("razorpay:pay_LocalEvents00001");
    let (status, payment) = post(&stack, &key, &body).await;
    assert_eq!(status, 201, "{payment}");
    let scope =
        shared::domain::keys::TenantScope::new(&stack.ready.tenant_id, &stack.ready.environment_id)
            .unwrap();
    let internal =
        shared::services::payments::payment_id_for(&scope, "razorpay:pay_LocalEvents00001");
    assert_ne!(payment["id"].as_str(), Some(internal.as_str()));
    assert_eq!(payment["idempotency_key"], "razorpay:pay_LocalEvents00001");
}

// ---- expiry ----

/// The link as Razorpay holds it.
async fn razorpay_link(
    stack: &LocalStack,
    id: &str,
) -> shared::adapters::razorpay::wire::PaymentLink {
    shared::adapters::razorpay::RazorpayClient::new(
        shared::adapters::razorpay::RazorpayConfig::new(
            &stack.ready.razorpay_sim_url,
            local_stack::RAZORPAY_KEY_ID,
            shared::domain::secret::Secret::new(stack.razorpay_key_secret.clone()),
        ),
    )
    .unwrap()
    .get_payment_link(id)
    .await
    .unwrap()
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn every_link_expires_by_the_connection_s_policy() {
    let stack = stack().await;
    let key = stack.ready.api_key.clone();
    let (status, payment) = post(&stack, &key, &seed_body(&stack, json!("3.00"))).await;
    assert_eq!(status, 201, "{payment}");
    let link = razorpay_link(&stack, payment["gateway_tracking_id"].as_str().unwrap()).await;
    let expire_by = link.expire_by.expect("the link has an expiry");
    let thirty_days = 30 * 24 * 3600;
    assert!(
        expire_by.abs_diff(now_secs() + thirty_days) < 120,
        "default 30 days: {expire_by}"
    );
    // The connection says 2 days: the next link follows.
    let (_, connection) =
        system_tests::api(&stack, "GET", "/api/v1/connections/razorpay", None).await;
    assert_eq!(
        (
            connection["link_expiry_days"].as_u64(),
            connection["overdue_grace_days"].as_u64()
        ),
        (Some(30), Some(7))
    );
    let mut settings = system_tests::connection_body(&stack);
    settings["link_expiry_days"] = json!(2);
    let (status, answer) = system_tests::api(
        &stack,
        "PUT",
        "/api/v1/connections/razorpay",
        Some(&settings),
    )
    .await;
    assert_eq!(
        (status, answer["link_expiry_days"].as_u64()),
        (200, Some(2)),
        "{answer}"
    );
    let (_, second) = post(&stack, &key, &seed_body(&stack, json!("4.00"))).await;
    let link = razorpay_link(&stack, second["gateway_tracking_id"].as_str().unwrap()).await;
    assert!(
        link.expire_by.unwrap().abs_diff(now_secs() + 2 * 24 * 3600) < 120,
        "{link:?}"
    );
    // Out of Razorpay's bounds: refused, naming the field.
    settings["link_expiry_days"] = json!(200);
    let (status, problem) = system_tests::api(
        &stack,
        "PUT",
        "/api/v1/connections/razorpay",
        Some(&settings),
    )
    .await;
    assert_eq!(
        (status, problem["errors"][0]["field"].as_str()),
        (422, Some("link_expiry_days")),
        "{problem}"
    );
}

#[tokio::test]
async fn a_customer_razorpay_refuses_is_a_422_naming_the_customer_field_and_razorpay_s_reason() {
    let stack = stack().await;
    let key = stack.ready.api_key.clone();
    let refusal = json!({"field": "contact",
        "description": "Contact number is not valid for the customer's country"});
    let (status, _) =
        system_tests::razorpay_control(&stack, "/_sim/refuse-customer", &refusal).await;
    assert_eq!(status, 200);
    let body = seed_body(&stack, json!("5.00"));
    let (status, problem) = post(&stack, &key, &body).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(
        problem["errors"][0]["field"], "customer.contact",
        "{problem}"
    );
    assert!(
        problem["errors"][0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("not valid for the customer's country")),
        "Razorpay's reason is passed on: {problem}"
    );
    assert_eq!(count(&stack, "POST", "/v1/payment_links"), 0);
    // Once Razorpay takes the customer (the data fixed), the same request makes its link (on
    // the payment the first attempt left, taken over: 200).
    let (status, payment) = post(&stack, &key, &body).await;
    assert!(matches!(status, 200 | 201), "{status} {payment}");
    assert_eq!(payment["payment_status"], "PENDING", "{payment}");
    assert_eq!(count(&stack, "POST", "/v1/payment_links"), 1);
}
