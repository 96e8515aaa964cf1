//! Every file of `events/` parses into its `aws_lambda_events` type and, run through its
//! function's handler on the local stack (with the documented test identity,
//! `Options::events`), has the outcome `events/README.md` documents.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_http::Body;
use local_stack::{LocalStack, Options};
use serde_json::Value;
use shared::adapters::aws::Adapters;
use shared::ports::ManualClock;
use system_tests::wait_for;

fn read(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Which function takes a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Function {
    Api,
    Webhooks,
    Worker,
}

/// Every file, in the order the story runs, with its function and documented status (for the
/// worker: the message ids it reports failed).
const FILES: [(&str, Function, u16); 13] = [
    ("put-connection.json", Function::Api, 200),
    ("get-connection.json", Function::Api, 200),
    ("create-payment.json", Function::Api, 201),
    ("get-payment.json", Function::Api, 200),
    ("razorpay-payment-captured.json", Function::Webhooks, 200),
    ("razorpay-bad-signature.json", Function::Webhooks, 401),
    ("flexprice-invoice-finalized.json", Function::Webhooks, 200),
    ("post-invoice-sync.json", Function::Api, 202),
    ("get-invoice-sync.json", Function::Api, 200),
    ("sqs-sync-invoice.json", Function::Worker, 0),
    ("sqs-apply-razorpay-event.json", Function::Worker, 0),
    ("sqs-poison.json", Function::Worker, 1),
    ("delete-connection.json", Function::Api, 204),
];

#[test]
fn every_file_is_listed_and_parses_into_its_lambda_event_type() {
    let mut on_disk: Vec<String> =
        std::fs::read_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".json"))
            .collect();
    on_disk.sort();
    let mut listed: Vec<String> = FILES.iter().map(|(n, _, _)| (*n).to_owned()).collect();
    listed.sort();
    assert_eq!(on_disk, listed, "every event file is run by this test");
    let readme = read("README.md");
    for (name, function, _) in FILES {
        assert!(readme.contains(name), "events/README.md documents {name}");
        let text = read(name);
        match function {
            Function::Worker => {
                serde_json::from_str::<SqsEvent>(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
            _ => {
                let event: ApiGatewayV2httpRequest =
                    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(event.version.as_deref(), Some("2.0"), "{name}");
            }
        }
    }
}

/// The payment `create-payment.json` makes (its idempotency key decides the id).
const PAYMENT_ID: &str = "fxp_fa138202bb6c6a894bb1af42";

#[test]
fn the_files_name_the_payment_id_the_service_derives() {
    let scope = shared::domain::keys::TenantScope::new("demo", "sandbox").unwrap();
    let key = shared::domain::payment::PaymentKey::Caller("events-demo-payment");
    let id = shared::services::payments::payment_id_for(&scope, &key.namespaced());
    let event: Value = serde_json::from_str(&read("get-payment.json")).unwrap();
    assert_eq!(event["pathParameters"]["payment_id"], id.as_str());
    assert_eq!(id, PAYMENT_ID);
}

async fn run_http(
    stack: &LocalStack,
    signed_at: &Adapters,
    name: &str,
    function: Function,
) -> (u16, Value) {
    let request = lambda_http::request::from_str(&read(name)).unwrap();
    let response = match function {
        Function::Api => payment_link_api::handle(&stack.adapters, request).await,
        // The Flexprice file was signed at a fixed time: its clock says so.
        Function::Webhooks if name.starts_with("flexprice") => {
            webhook_receiver::handle(signed_at, request).await
        }
        _ => webhook_receiver::handle(&stack.adapters, request).await,
    };
    let status = response.status().as_u16();
    let body = match response.body() {
        Body::Empty => Value::Null,
        body => serde_json::from_slice(body.as_ref()).unwrap_or(Value::Null),
    };
    (status, body)
}

/// Opens the link of `create-payment.json`'s payment with the order its captured payment names.
async fn open_link(stack: &LocalStack) {
    let (_, payment) = system_tests::api(
        stack,
        "GET",
        &format!("/api/v1/payments/{PAYMENT_ID}"),
        None,
    )
    .await;
    let link = payment["gateway_tracking_id"]
        .as_str()
        .expect("the payment's link");
    let order = system_tests::open_link(stack, link, Some("order_LocalEvents0001")).await;
    assert_eq!(order, "order_LocalEvents0001");
}

#[tokio::test]
async fn every_file_has_its_documented_outcome_through_its_handler() {
    let mut options = Options::events(0);
    options.resource_prefix = simulators::common::new_id("events-").to_lowercase();
    let stack = LocalStack::start(options)
        .await
        .expect("the local stack starts");
    let mut signed_at = Adapters::new(&stack.sdk, stack.adapters.config.clone());
    signed_at.clock = Arc::new(ManualClock::at_millis(1_795_600_805_000 + 30_000));

    for (name, function, expected) in FILES {
        if function == Function::Worker {
            let event: SqsEvent = serde_json::from_str(&read(name)).unwrap();
            let response = invoice_sync::handle(
                stack.adapters.clone(),
                event,
                invoice_sync::deadline_from_now(&stack.adapters),
            )
            .await
            .unwrap();
            assert_eq!(
                response.batch_item_failures.len(),
                usize::from(expected),
                "{name}: {response:?}"
            );
            continue;
        }
        if name == "razorpay-payment-captured.json" {
            // The customer opened the link: Razorpay made its order, the one the file's
            // payment is on (a payment counts only on its link's order).
            open_link(&stack).await;
        }
        if name == "get-invoice-sync.json" {
            // The sync queued by the two files before runs on the worker first.
            wait_for(
                "the USD invoice's sync",
                Duration::from_secs(30),
                || async {
                    let (_, view) = run_http(&stack, &signed_at, name, function).await;
                    (view["state"] == "SYNCED").then_some(())
                },
            )
            .await;
        }
        let (status, body) = run_http(&stack, &signed_at, name, function).await;
        assert_eq!(status, expected, "{name}: {body}");
        match name {
            "create-payment.json" => assert_eq!(body["payment_status"], "PENDING"),
            "razorpay-payment-captured.json" => {
                assert_eq!(body["status"], "accepted", "{name}");
                // The worker records the captured payment into Flexprice, once.
                let paid = system_tests::payment_when(&stack, PAYMENT_ID, |p| {
                    p["payment_status"] == "SUCCEEDED"
                })
                .await;
                assert_eq!(paid["amount_paid_minor"], 112050);
            }
            "flexprice-invoice-finalized.json" => assert_eq!(body["status"], "accepted"),
            "get-connection.json" => assert_eq!(body["key_secret"], "********"),
            _ => {}
        }
    }
    let (_, invoice) =
        system_tests::flexprice(&stack, "GET", "/v1/invoices/inv_local_inr_0001", None).await;
    assert_eq!(
        invoice["amount_paid"], "1120.50",
        "recorded once: {invoice}"
    );
}
