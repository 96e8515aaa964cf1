//! The webhook routes, driven by the sample API Gateway events in `events/`.

use lambda_http::http::{Method, Request as HttpRequest};
use lambda_http::{Body, Request};
use testkit::TestEnv;

fn problem(response: &lambda_http::Response<Body>) -> serde_json::Value {
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    serde_json::from_slice(response.body().as_ref()).unwrap()
}

fn request(method: Method, path: &str) -> Request {
    HttpRequest::builder()
        .method(method)
        .uri(path)
        .body(Body::Empty)
        .unwrap()
}

#[tokio::test]
async fn the_razorpay_route_is_not_implemented_yet_and_says_so() {
    let env = TestEnv::new().await;
    let event = include_str!("../../../events/razorpay-payment-captured.json");
    let request = lambda_http::request::from_str(event).unwrap();
    let response = webhook_receiver::handle(&env.adapters(), request).await;
    assert_eq!(response.status(), 501);
    let body = problem(&response);
    assert_eq!(
        body["detail"],
        "POST /v1/webhooks/razorpay/{tenant_id}/{environment_id} is part of the API but is not implemented yet."
    );
}

#[tokio::test]
async fn unknown_paths_and_methods_are_problems() {
    let env = TestEnv::new().await;
    let adapters = env.adapters();
    let cases = [
        (Method::POST, "/v1/webhooks/flexprice/t1/live", 501),
        (Method::GET, "/v1/webhooks/razorpay/t1/live", 405),
        (Method::POST, "/v1/webhooks/razorpay/t1", 404),
        (Method::POST, "/v1/webhooks/stripe/t1/live", 404),
        (Method::POST, "/", 404),
    ];
    for (method, path, status) in cases {
        let response = webhook_receiver::handle(&adapters, request(method.clone(), path)).await;
        assert_eq!(response.status(), status, "{method} {path}");
        assert_eq!(problem(&response)["status"], status);
    }
}
