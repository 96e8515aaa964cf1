//! AWS calls per operation, counted by an SDK interceptor on every client, so they cannot
//! creep: a new webhook is two calls (the event received into the log, its job queued), a
//! duplicate one; a payment
//! link for a customer already synced, and the worker's applying of a captured payment, are
//! listed call by call.

use local_stack::LocalStack;
use serde_json::json;
use shared::adapters::aws::Adapters;
use shared::domain::keys::TenantScope;
use shared::domain::secret::Secret;
use shared::domain::signature::razorpay_sign;
use testkit::CallCounter;

fn counted(stack: &LocalStack) -> (Adapters, CallCounter) {
    let counter = CallCounter::new();
    let adapters = testkit::counted_adapters(&stack.sdk, stack.adapters.config.clone(), &counter);
    (adapters, counter)
}

async fn webhook(stack: &LocalStack, adapters: &Adapters, event_id: &str) -> serde_json::Value {
    let body = json!({"entity": "event", "account_id": stack.razorpay.account_id(),
        "event": "payment.authorized", "contains": ["payment"],
        "payload": {"payment": {"entity": {"id": format!("pay_{event_id}"), "amount": 100,
            "currency": "INR", "status": "authorized"}}}})
    .to_string();
    let signature = razorpay_sign(
        &Secret::new(stack.ready.webhook_secret.clone()),
        body.as_bytes(),
    );
    shared::services::intake::razorpay(
        adapters,
        shared::services::intake::Delivery {
            tenant_id: "demo",
            environment_id: "sandbox",
            signature: Some(&signature),
            event_id: Some(event_id),
            trace_id: None,
            body: body.as_bytes(),
        },
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_new_webhook_is_two_calls_and_a_duplicate_one() {
    let stack = system_tests::start("calls-").await;
    let (adapters, counter) = counted(&stack);
    // The first request of a Lambda instance also reads the tenant's secret (then cached).
    assert_eq!(
        webhook(&stack, &adapters, "evt_calls_0").await["status"],
        "accepted"
    );
    assert_eq!(
        counter.calls(),
        [
            "Secrets Manager.GetSecretValue",
            "DynamoDB.PutItem",
            "SQS.SendMessage",
        ]
    );
    counter.reset();
    assert_eq!(
        webhook(&stack, &adapters, "evt_calls_1").await["status"],
        "accepted"
    );
    assert_eq!(counter.calls(), ["DynamoDB.PutItem", "SQS.SendMessage"]);
    // Once the worker settled it, a redelivery is one read-only conditional put.
    let scope = TenantScope::new("demo", "sandbox").unwrap();
    let done = shared::domain::events::Done::Applied;
    let origin = shared::domain::events::EventRef {
        source: shared::domain::events::Source::Razorpay,
        id: "evt_calls_1".to_owned(),
        replay: false,
    };
    shared::services::webhook_events::settle(&adapters, &scope, &origin, Ok(&done)).await;
    counter.reset();
    assert_eq!(
        webhook(&stack, &adapters, "evt_calls_1").await["status"],
        "duplicate"
    );
    assert_eq!(counter.calls(), ["DynamoDB.PutItem"]);
}

#[tokio::test]
async fn a_payment_link_for_a_synced_customer_makes_these_calls() {
    let stack = system_tests::start("calls-").await;
    let (adapters, counter) = counted(&stack);
    let scope = TenantScope::new("demo", "sandbox").unwrap();
    let body = |amount: &str, key: &str| {
        let body = json!({"amount": amount, "currency": "inr", "destination_id": stack.ready.invoice_ids[0],
            "destination_type": "INVOICE", "payment_method_type": "PAYMENT_LINK",
            "payment_gateway": "razorpay", "idempotency_key": key})
        .to_string();
        shared::api::requests::PaymentRequest::parse(Some("application/json"), body.as_bytes())
            .unwrap()
    };
    // The first payment syncs the customer; the second finds the mapping. (Through the
    // handler, one more GetItem comes first: the API key. The tenant's secret is cached.)
    shared::services::payments::create(&adapters, &scope, body("1.00", "calls-1"))
        .await
        .unwrap();
    counter.reset();
    shared::services::payments::create(&adapters, &scope, body("2.00", "calls-2"))
        .await
        .unwrap();
    assert_eq!(
        counter.calls(),
        [
            // the payment this key made before, if any (a finished one is the answer as it is)
            "DynamoDB.GetItem",
            // the payment, created INITIATED (its own idempotency record)
            "DynamoDB.PutItem",
            // the invoice's instruments: what is payable already
            "DynamoDB.GetItem",
            // the link reserved among them, under the version read
            "DynamoDB.UpdateItem",
            // the customer mapping
            "DynamoDB.GetItem",
            // the link → payment mapping
            "DynamoDB.PutItem",
            // the link open among the instruments (the version just written, no read)
            "DynamoDB.UpdateItem",
            // the payment, PENDING with its link
            "DynamoDB.UpdateItem",
        ]
    );
    // The same request again: the payment is found and answered, nothing else is asked.
    counter.reset();
    shared::services::payments::create(&adapters, &scope, body("2.00", "calls-2"))
        .await
        .unwrap();
    assert_eq!(counter.calls(), ["DynamoDB.GetItem"]);
}

#[tokio::test]
async fn ten_thousand_requests_for_unknown_tenants_or_with_bad_signatures_read_a_handful_of_secrets()
 {
    let stack = system_tests::start("calls-").await;
    let (adapters, counter) = counted(&stack);
    let body = json!({"entity": "event", "account_id": stack.razorpay.account_id(),
        "event": "payment.authorized", "contains": ["payment"], "payload": {}})
    .to_string();
    let good = razorpay_sign(
        &Secret::new(stack.ready.webhook_secret.clone()),
        body.as_bytes(),
    );
    let forged = razorpay_sign(&Secret::new("not-the-secret".to_owned()), body.as_bytes());
    let ghosts: Vec<String> = (0..10).map(|n| format!("ghost{n}")).collect();
    let mut refused = std::collections::BTreeMap::<u16, usize>::new();
    for n in 0..10_000 {
        // Half to ten tenants that do not exist (well signed), half to ours with a bad signature.
        let (tenant, signature) = if n % 2 == 0 {
            (ghosts[(n / 2) % 10].as_str(), good.as_str())
        } else {
            ("demo", forged.as_str())
        };
        let delivery = shared::services::intake::Delivery {
            tenant_id: tenant,
            environment_id: "sandbox",
            signature: Some(signature),
            event_id: Some("evt_attack"),
            trace_id: None,
            body: body.as_bytes(),
        };
        let refusal = shared::services::intake::razorpay(&adapters, delivery)
            .await
            .unwrap_err();
        *refused
            .entry(shared::api::problem::Problem::from(refusal).status)
            .or_default() += 1;
    }
    assert_eq!(refused, [(401, 5_000), (404, 5_000)].into());
    let reads = counter
        .calls()
        .iter()
        .filter(|call| call.ends_with("GetSecretValue"))
        .count();
    // Each ghost once, ours once, and one forced read for the first bad signature.
    assert_eq!(reads, 12, "{:?}", counter.calls());
    // The bad signatures are counted in the log, a write a minute (here: one), not one each.
    let mut others = counter.calls();
    others.retain(|c| !c.starts_with("Secrets Manager"));
    assert_eq!(
        others,
        ["DynamoDB.UpdateItem"],
        "a refused request touches nothing else"
    );
}
