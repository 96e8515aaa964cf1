//! The API routes, driven by the sample API Gateway events in `events/`.

use testkit::TestEnv;
use testkit::http::{problem, request, request_from_event};

#[tokio::test]
async fn every_route_exists_and_answers_501_until_its_flow_lands() {
    let env = TestEnv::new().await;
    let adapters = env.adapters();
    let event = include_str!("../../../events/create-payment.json");
    let response = payment_link_api::handle(&adapters, request_from_event(event)).await;
    assert_eq!(response.status(), 501);
    for route in payment_link_api::ROUTES {
        let path = route
            .template
            .replace("{payment_id}", "pay_1")
            .replace("{invoice_id}", "inv_1");
        let response = payment_link_api::handle(&adapters, request(route.method, &path)).await;
        assert_eq!(response.status(), 501, "{}", route.describe());
        assert_eq!(problem(&response)["status"], 501);
    }
}

#[tokio::test]
async fn unknown_paths_and_methods_are_problems() {
    let env = TestEnv::new().await;
    let adapters = env.adapters();
    let cases = [
        ("PATCH", "/api/v1/payments", 405),
        ("GET", "/api/v1/refunds", 404),
        ("POST", "/api/v1/connections/stripe", 404),
    ];
    for (method, path, status) in cases {
        let response = payment_link_api::handle(&adapters, request(method, path)).await;
        assert_eq!(response.status(), status, "{method} {path}");
        assert_eq!(problem(&response)["status"], status);
    }
}
