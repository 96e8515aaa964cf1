//! The webhook routes, driven by the sample API Gateway events in `events/`.

use testkit::TestEnv;
use testkit::http::{problem, request, request_from_event};

#[tokio::test]
async fn the_razorpay_route_is_not_implemented_yet_and_says_so() {
    let env = TestEnv::new().await;
    let event = include_str!("../../../events/razorpay-payment-captured.json");
    let response = webhook_receiver::handle(&env.adapters(), request_from_event(event)).await;
    assert_eq!(response.status(), 501);
    assert_eq!(
        problem(&response)["detail"],
        "POST /v1/webhooks/razorpay/{tenant_id}/{environment_id} is part of the API but is not implemented yet."
    );
}

#[tokio::test]
async fn unknown_paths_and_methods_are_problems() {
    let env = TestEnv::new().await;
    let adapters = env.adapters();
    let cases = [
        ("POST", "/v1/webhooks/flexprice/t1/live", 501),
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
