//! Razorpay webhook intake end to end on the local stack: verified, claimed once, enqueued.

use local_stack::{LocalStack, Options};
use serde_json::{Value, json};
use shared::domain::secret::Secret;
use shared::domain::signature::razorpay_sign;

const SECRET: &str = "webhooks_test_secret";

async fn stack() -> LocalStack {
    let mut options = Options::from_env(0);
    options.webhook_secret = Some(SECRET.into());
    options.resource_prefix = simulators::common::new_id("hook-").to_lowercase();
    LocalStack::start(options)
        .await
        .expect("the local stack starts")
}

fn event(stack: &LocalStack, name: &str, payment_id: &str) -> String {
    json!({"entity": "event", "account_id": stack.razorpay.account_id(), "event": name, "contains": ["payment"],
        "payload": {"payment": {"entity": {"id": payment_id, "entity": "payment", "amount": 10000,
        "currency": "INR", "status": "captured", "notes": []}}}, "created_at": 1764060000})
    .to_string()
}

async fn deliver(
    stack: &LocalStack,
    tenant: &str,
    body: &str,
    secret: &str,
    event_id: &str,
) -> (u16, Value) {
    let signature = razorpay_sign(&Secret::new(secret.to_owned()), body.as_bytes());
    let response = shared::adapters::http::client(shared::adapters::http::Timeouts::default())
        .unwrap()
        .post(format!(
            "{}/v1/webhooks/razorpay/{tenant}/sandbox",
            stack.ready.gateway_url
        ))
        .header("x-razorpay-signature", signature)
        .header("x-razorpay-event-id", event_id)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Delivers again as Razorpay retries: while the first delivery's job is not settled the
/// answer is 409 (in progress, retryable); once the worker settled it, a duplicate.
async fn redeliver(stack: &LocalStack, body: &str, event_id: &str) -> (u16, Value) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let (status, answer) = deliver(stack, "demo", body, SECRET, event_id).await;
        if status != 409 || std::time::Instant::now() > deadline {
            return (status, answer);
        }
        assert_eq!(answer["retryable"], true, "{answer}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn accepted_once_duplicates_acknowledged_conflicts_refused() {
    let stack = stack().await;
    let body = event(&stack, "payment.captured", "pay_A");
    let (status, first) = deliver(&stack, "demo", &body, SECRET, "evt_1").await;
    assert_eq!(
        (status, first["status"].as_str()),
        (200, Some("accepted")),
        "{first}"
    );
    let (status, again) = redeliver(&stack, &body, "evt_1").await;
    assert_eq!((status, again["status"].as_str()), (200, Some("duplicate")));
    let other = event(&stack, "payment.captured", "pay_B");
    let (status, conflict) = deliver(&stack, "demo", &other, SECRET, "evt_1").await;
    assert_eq!(status, 409, "{conflict}");
    // The accepted event became exactly one job for the worker.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while stack.poller.snapshot().1 == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the job never reached the worker"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Events we do not handle are acknowledged and recorded as ignored.
    let order = event(&stack, "order.paid", "pay_C");
    let (status, ignored) = deliver(&stack, "demo", &order, SECRET, "evt_2").await;
    assert_eq!((status, ignored["status"].as_str()), (200, Some("ignored")));
}

#[tokio::test]
async fn bad_input_gets_its_own_status() {
    let stack = stack().await;
    let body = event(&stack, "payment.captured", "pay_D");
    assert_eq!(
        deliver(&stack, "demo", &body, "wrong-secret", "evt_3")
            .await
            .0,
        401
    );
    let unsigned = shared::adapters::http::client(shared::adapters::http::Timeouts::default())
        .unwrap()
        .post(format!(
            "{}/v1/webhooks/razorpay/demo/sandbox",
            stack.ready.gateway_url
        ))
        .header("x-razorpay-event-id", "evt_4")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    // Unknown tenant and impossible tenant ids: the same generic 404.
    let (unknown, a) = deliver(&stack, "nobody", &body, SECRET, "evt_5").await;
    let (bad_id, b) = deliver(&stack, "de%23mo", &body, SECRET, "evt_6").await;
    assert_eq!((unknown, bad_id), (404, 404));
    assert_eq!(a, b);
    let huge = "x".repeat(65 * 1024);
    assert_eq!(deliver(&stack, "demo", &huge, SECRET, "evt_7").await.0, 413);
    assert_eq!(
        deliver(&stack, "demo", "{not json", SECRET, "evt_8")
            .await
            .0,
        400
    );
    let mut foreign: Value = serde_json::from_str(&body).unwrap();
    foreign["account_id"] = json!("acc_SomeoneElse000");
    assert_eq!(
        deliver(&stack, "demo", &foreign.to_string(), SECRET, "evt_9")
            .await
            .0,
        403
    );
}

#[tokio::test]
async fn the_previous_secret_still_verifies_after_a_rotation() {
    let stack = stack().await;
    let put = shared::adapters::http::client(shared::adapters::http::Timeouts::default())
        .unwrap()
        .put(format!(
            "{}/api/v1/connections/razorpay",
            stack.ready.gateway_url
        ))
        .header("x-api-key", &stack.ready.api_key)
        .json(
            &json!({"key_id": local_stack::RAZORPAY_KEY_ID, "key_secret": stack.razorpay_key_secret,
            "webhook_secret": "rotated_secret", "flexprice_api_key": stack.flexprice_api_key,
            "invoice_outbound_sync": true, "razorpay_account_id": stack.razorpay.account_id()}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let old = event(&stack, "payment.captured", "pay_E");
    assert_eq!(deliver(&stack, "demo", &old, SECRET, "evt_10").await.0, 200);
    let new = event(&stack, "payment.captured", "pay_F");
    assert_eq!(
        deliver(&stack, "demo", &new, "rotated_secret", "evt_11")
            .await
            .0,
        200
    );
    assert_eq!(
        deliver(&stack, "demo", &new, "never_configured", "evt_12")
            .await
            .0,
        401
    );
}

#[tokio::test]
async fn every_documented_razorpay_sample_is_verified_and_accepted() {
    let stack = stack().await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/razorpay");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        // Sent from this stack's Razorpay account, byte for byte otherwise.
        let body = std::fs::read_to_string(&path)
            .unwrap()
            .replace("acc_BFQ7uQEaa7j2z7", &stack.razorpay.account_id())
            .replace("acc_OU2H3nkLn9jDVo", &stack.razorpay.account_id());
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let (status, answer) = deliver(&stack, "demo", &body, SECRET, &format!("evt_{name}")).await;
        assert_eq!(
            (status, answer["status"].as_str()),
            (200, Some("accepted")),
            "{name}: {answer}"
        );
        seen += 1;
    }
    assert_eq!(seen, 8, "every sample was sent");
    // They are about payments and links this stack never made: the worker acknowledges them
    // (not parked), except the docs' elided envelope, which is not a payment at all.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while stack.poller.snapshot().2 < 7 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        stack.poller.snapshot().2,
        7,
        "{:?}",
        stack.poller.snapshot()
    );
}

#[tokio::test]
async fn hostile_bodies_and_paths_get_clear_answers_and_leave_nothing_behind() {
    let stack = stack().await;
    let gateway = &stack.ready.gateway_url;
    let http = shared::adapters::http::client(shared::adapters::http::Timeouts::default()).unwrap();
    let signed = |body: &[u8]| razorpay_sign(&Secret::new(SECRET.to_owned()), body);
    let post = |path: String, body: Vec<u8>, event_id: &'static str| {
        let request = http
            .post(format!("{gateway}{path}"))
            .header("x-razorpay-signature", signed(&body))
            .header("x-razorpay-event-id", event_id)
            .body(body);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let demo = "/v1/webhooks/razorpay/demo/sandbox".to_owned();
    // Over 64 KiB: refused before any work.
    let huge = format!(
        r#"{{"event":"payment.captured","pad":"{}"}}"#,
        "x".repeat(70_000)
    );
    assert_eq!(post(demo.clone(), huge.into_bytes(), "evt_huge").await, 413);
    // Correctly signed, but not UTF-8, or naming two events (read one way here and another
    // elsewhere): 400.
    let not_utf8 = b"{\"event\":\"a\xff\"}".to_vec();
    assert_eq!(post(demo.clone(), not_utf8, "evt_bytes").await, 400);
    let twice = br#"{"event":"payment.failed","event":"payment.captured"}"#.to_vec();
    assert_eq!(post(demo.clone(), twice, "evt_twice").await, 400);
    // Nested 5,000 deep: the intake reads only the envelope, so it is taken (and kept: the
    // worker parks what it cannot apply), never a crash.
    let deep = format!(
        r#"{{"event":"payment.captured","account_id":"{}","payload":{}{}}}"#,
        stack.razorpay.account_id(),
        "[".repeat(5000),
        "]".repeat(5000)
    );
    assert_eq!(post(demo.clone(), deep.into_bytes(), "evt_deep").await, 200);
    // Path parameters that try to reach another key space or smuggle a header: 404.
    for path in [
        "/v1/webhooks/razorpay/demo%23E%23sandbox/sandbox",
        "/v1/webhooks/razorpay/demo%0d%0ax-api-key:%20x/sandbox",
        "/v1/webhooks/razorpay/d%C3%A9mo/sandbox",
        "/v1/webhooks/razorpay/demo/sandbox%2F..",
    ] {
        let status = post(path.to_owned(), b"{}".to_vec(), "evt_path").await;
        assert_eq!(status, 404, "{path}");
    }
    // Only the deep event was claimed; the refused ones left nothing behind.
    let scope = shared::domain::keys::TenantScope::new("demo", "sandbox").unwrap();
    for (event_id, kept) in [
        ("evt_huge", false),
        ("evt_bytes", false),
        ("evt_twice", false),
        ("evt_path", false),
        ("evt_deep", true),
    ] {
        let claim = stack
            .adapters
            .store
            .get(&scope.key("EVENT", event_id))
            .await
            .unwrap();
        assert_eq!(claim.is_some(), kept, "{event_id}");
    }
}

#[tokio::test]
async fn with_the_aws_endpoint_unreachable_a_webhook_is_a_retryable_503_and_its_retry_applies_once()
{
    let stack = stack().await;
    // The same receiver, its AWS endpoint gone (a closed loopback port).
    let gone = testkit::sdk_config("http://127.0.0.1:9").await;
    let unreachable = shared::adapters::aws::Adapters::new(&gone, stack.adapters.config.clone());
    let body = event(&stack, "payment.captured", "pay_Unreachable1");
    let signature = razorpay_sign(&Secret::new(SECRET.to_owned()), body.as_bytes());
    let delivery = shared::services::intake::Delivery {
        tenant_id: "demo",
        environment_id: "sandbox",
        signature: Some(&signature),
        event_id: Some("evt_unreachable"),
        trace_id: None,
        body: body.as_bytes(),
    };
    let problem = shared::services::intake::razorpay(&unreachable, delivery)
        .await
        .map_err(shared::api::problem::Problem::from)
        .unwrap_err();
    assert_eq!(
        (problem.status, problem.retryable),
        (503, true),
        "{problem:?}"
    );
    // Razorpay retries once AWS is back: taken once.
    let (status, first) = deliver(&stack, "demo", &body, SECRET, "evt_unreachable").await;
    assert_eq!((status, first["status"].as_str()), (200, Some("accepted")));
    let (status, again) = redeliver(&stack, &body, "evt_unreachable").await;
    assert_eq!((status, again["status"].as_str()), (200, Some("duplicate")));
}
