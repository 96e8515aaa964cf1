//! The API routes, driven by the sample API Gateway events in `events/`.

use lambda_http::http::{Method, Request as HttpRequest};
use lambda_http::{Body, Request};
use testkit::TestEnv;

fn request(method: Method, path: &str) -> Request {
    HttpRequest::builder()
        .method(method)
        .uri(path)
        .body(Body::Empty)
        .unwrap()
}

#[tokio::test]
async fn every_route_exists_and_answers_501_until_its_flow_lands() {
    let env = TestEnv::new().await;
    let adapters = env.adapters();
    let event = include_str!("../../../events/create-payment.json");
    let response =
        payment_link_api::handle(&adapters, lambda_http::request::from_str(event).unwrap()).await;
    assert_eq!(response.status(), 501);
    for route in payment_link_api::ROUTES {
        let path = route
            .template
            .replace("{payment_id}", "pay_1")
            .replace("{invoice_id}", "inv_1");
        let method = Method::from_bytes(route.method.as_bytes()).unwrap();
        let response = payment_link_api::handle(&adapters, request(method, &path)).await;
        assert_eq!(response.status(), 501, "{}", route.describe());
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }
}

#[tokio::test]
async fn unknown_paths_and_methods_are_problems() {
    let env = TestEnv::new().await;
    let adapters = env.adapters();
    let cases = [
        (Method::PATCH, "/api/v1/payments", 405),
        (Method::GET, "/api/v1/refunds", 404),
        (Method::POST, "/api/v1/connections/stripe", 404),
    ];
    for (method, path, status) in cases {
        let response = payment_link_api::handle(&adapters, request(method.clone(), path)).await;
        assert_eq!(response.status(), status, "{method} {path}");
    }
}
