//! Building Lambda HTTP requests and reading problem+json responses in tests.

use lambda_http::http::{Method, Request as HttpRequest};
use lambda_http::{Body, Request, Response};

/// A request as the local gateway or a function URL delivers it: method and path, no body.
pub fn request(method: &str, path: &str) -> Request {
    let method = Method::from_bytes(method.as_bytes())
        .unwrap_or_else(|e| panic!("bad method {method:?}: {e}"));
    HttpRequest::builder()
        .method(method)
        .uri(path)
        .body(Body::Empty)
        .unwrap_or_else(|e| panic!("bad request {path:?}: {e}"))
}

/// Parses an API Gateway (HTTP API v2) event, as in `events/`.
pub fn request_from_event(event_json: &str) -> Request {
    lambda_http::request::from_str(event_json)
        .unwrap_or_else(|e| panic!("not an API Gateway event: {e}"))
}

/// The body of a problem+json response, after checking its content type.
pub fn problem(response: &Response<Body>) -> serde_json::Value {
    assert_eq!(
        response.headers().get("content-type").map(|v| v.as_bytes()),
        Some(shared::api::problem::PROBLEM_CONTENT_TYPE.as_bytes()),
        "not a problem+json response"
    );
    serde_json::from_slice(response.body().as_ref())
        .unwrap_or_else(|e| panic!("problem body is not JSON: {e}"))
}
