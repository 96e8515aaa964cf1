//! The local API gateway: serves every HTTP route of `template.yaml` by building the API
//! Gateway HTTP API (v2) event Lambda would receive (path parameters, headers, a text or
//! base64 body) and calling the function crate's handler in process.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body as AxumBody, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use lambda_http::Body;
use serde_json::json;
use shared::adapters::aws::Adapters;
use shared::api::problem::Problem;
use shared::api::routing::{Route, match_route};
use tracing::Instrument;

use crate::logs;

/// Which function serves a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    WebhookReceiver,
    PaymentLinkApi,
}

fn find(method: &Method, path: &str) -> Option<(Function, Route, HashMap<String, String>)> {
    let functions = [
        (Function::WebhookReceiver, &webhook_receiver::ROUTES[..]),
        (Function::PaymentLinkApi, &payment_link_api::ROUTES[..]),
    ];
    functions.into_iter().find_map(|(function, routes)| {
        routes.iter().find_map(|route| {
            let params = match_route(route.template, path)?;
            (route.method == method.as_str()).then_some((function, *route, params))
        })
    })
}

/// The API Gateway v2 event for a request, as API Gateway would build it.
pub fn api_gateway_event(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    route: Route,
    params: &HashMap<String, String>,
) -> serde_json::Value {
    // API Gateway (payload 2.0) joins repeated headers with commas, as here: a second
    // signature header never replaces the first.
    let mut header_map = serde_json::Map::new();
    for (name, value) in headers {
        let Ok(value) = value.to_str() else { continue };
        match header_map.get_mut(name.as_str()) {
            Some(serde_json::Value::String(joined)) => {
                joined.push(',');
                joined.push_str(value);
            }
            _ => {
                header_map.insert(name.as_str().to_owned(), json!(value));
            }
        }
    }
    let (body, is_base64) = match std::str::from_utf8(body) {
        Ok(text) => (json!(text), false),
        Err(_) => (
            json!(base64::engine::general_purpose::STANDARD.encode(body)),
            true,
        ),
    };
    let route_key = format!("{} {}", route.method, route.template);
    json!({
        "version": "2.0", "routeKey": route_key, "rawPath": uri.path(),
        "rawQueryString": uri.query().unwrap_or_default(), "headers": header_map,
        "pathParameters": if params.is_empty() { serde_json::Value::Null } else { json!(params) },
        "requestContext": {"accountId": "000000000000", "apiId": "local", "domainName": "localhost",
            "domainPrefix": "localhost", "http": {"method": method.as_str(), "path": uri.path(),
            "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
            "userAgent": headers.get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or_default()},
            "requestId": simulators::common::new_id("req_"), "routeKey": route_key, "stage": "$default",
            "time": "", "timeEpoch": simulators::common::now() * 1000},
        "body": body, "isBase64Encoded": is_base64,
    })
}

fn into_axum(response: lambda_http::Response<Body>) -> Response {
    let (parts, body) = response.into_parts();
    let bytes = match body {
        Body::Empty => Vec::new(),
        Body::Text(text) => text.into_bytes(),
        Body::Binary(bytes) => bytes,
        _ => Vec::new(),
    };
    Response::from_parts(parts, AxumBody::from(bytes))
}

/// Serves one request.
pub async fn serve(
    State(adapters): State<Arc<Adapters>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((function, route, params)) = find(&method, uri.path()) else {
        // API Gateway answers unmatched routes itself.
        return into_axum(Problem::not_found().to_response().map(Body::from));
    };
    let event = api_gateway_event(&method, &uri, &headers, &body, route, &params);
    let request = match lambda_http::request::from_str(&event.to_string()) {
        Ok(request) => request,
        Err(e) => {
            tracing::error!(error = %e, "the gateway built an event lambda_http cannot read");
            return into_axum(Problem::internal().to_response().map(Body::from));
        }
    };
    let started = std::time::Instant::now();
    let span = logs::function_span(match function {
        Function::WebhookReceiver => logs::WEBHOOK_RECEIVER,
        Function::PaymentLinkApi => logs::PAYMENT_LINK_API,
    });
    let response = async {
        match function {
            Function::WebhookReceiver => webhook_receiver::handle(&adapters, request).await,
            Function::PaymentLinkApi => payment_link_api::handle(&adapters, request).await,
        }
    }
    .instrument(span.clone())
    .await;
    // What API Gateway's access log would say (the path, never the query or a header).
    span.in_scope(|| {
        tracing::info!(
            method = %method,
            route = route.template,
            path = uri.path(),
            status = response.status().as_u16(),
            ms = started.elapsed().as_millis() as u64,
            "request"
        )
    });
    into_axum(response).into_response()
}

pub fn router(adapters: Arc<Adapters>) -> axum::Router {
    axum::Router::new().fallback(serve).with_state(adapters)
}
