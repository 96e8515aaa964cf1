//! The webhook routes, driven by the sample API Gateway events in `events/`.

use testkit::TestEnv;
use testkit::http::{problem, request, request_from_event};

#[tokio::test]
async fn an_event_for_an_unconnected_tenant_is_a_generic_404() {
    let env = TestEnv::new().await;
    let event = include_str!("../../../events/razorpay-payment-captured.json");
    let response = webhook_receiver::handle(&env.adapters(), request_from_event(event)).await;
    assert_eq!(response.status(), 404);
    assert_eq!(
        problem(&response)["detail"],
        "There is nothing at this address."
    );
}

#[tokio::test]
async fn unknown_paths_and_methods_are_problems() {
    let env = TestEnv::new().await;
    let adapters = env.adapters();
    let cases = [
        ("POST", "/v1/webhooks/flexprice/t1/live", 404),
        ("POST", "/v1/webhooks/razorpay/t1/live", 404),
        ("GET", "/v1/webhooks/razorpay/t1/live", 405),
        ("POST", "/v1/webhooks/razorpay/t1", 404),
        ("POST", "/v1/webhooks/stripe/t1/live", 404),
        ("POST", "/", 404),
    ];
    for (method, path, status) in cases {
        let response = webhook_receiver::handle(&adapters, request(method, path)).await;
        assert_eq!(response.status(), status, "{method} {path}");
        assert_eq!(problem(&response)["status"], status);
    }
}
