//! The tenant-facing API: payments (payment links) and their refunds, the Razorpay connection,
//! invoice sync, an invoice's payment URL and timeline, and the webhook event log
//! (`docs/architecture.md` §3.3, §3.4, §3.9, §3.10).
//!
//! The handler is a library so that `main`, the local gateway and the tests run the very same
//! code. Every route needs an API key (401 otherwise); the key decides tenant and environment.

use lambda_http::{Body, Request, Response};
use shared::adapters::aws::Adapters;
use shared::api::problem::Problem;
use shared::api::requests::{
    ConnectionRequest, EventQuery, PaymentRequest, RefundRequest, TimelineQuery, event_id,
    flexprice_id,
};
use shared::api::routing::{Route, route};
use shared::api::views;
use shared::domain::ids::FlexpriceId;
use shared::domain::keys::TenantScope;
use shared::services::apikeys::{self, ApiKeyError};
use shared::services::{
    connection, invoice_sync, payment_url, payments, refund_requests, timeline, webhook_events,
};

pub const CREATE_PAYMENT: Route = Route::new("POST", "/api/v1/payments");
pub const GET_PAYMENT: Route = Route::new("GET", "/api/v1/payments/{payment_id}");
pub const CREATE_REFUND: Route = Route::new("POST", "/api/v1/payments/{payment_id}/refunds");
pub const LIST_REFUNDS: Route = Route::new("GET", "/api/v1/payments/{payment_id}/refunds");
pub const PUT_CONNECTION: Route = Route::new("PUT", "/api/v1/connections/razorpay");
pub const GET_CONNECTION: Route = Route::new("GET", "/api/v1/connections/razorpay");
pub const DELETE_CONNECTION: Route = Route::new("DELETE", "/api/v1/connections/razorpay");
pub const GET_INVOICE_SYNC: Route = Route::new("GET", "/api/v1/invoices/{invoice_id}/sync");
pub const RETRY_INVOICE_SYNC: Route = Route::new("POST", "/api/v1/invoices/{invoice_id}/sync");
pub const GET_PAYMENT_URL: Route = Route::new("GET", "/api/v1/invoices/{invoice_id}/payment-url");
pub const GET_INVOICE_TIMELINE: Route = Route::new("GET", "/api/v1/invoices/{invoice_id}/timeline");
pub const LIST_WEBHOOK_EVENTS: Route = Route::new("GET", "/api/v1/webhook-events");
pub const REPLAY_WEBHOOK_EVENT: Route =
    Route::new("POST", "/api/v1/webhook-events/{event_id}/replay");

/// Every route this function serves (the template wires exactly these to it).
pub const ROUTES: [Route; 13] = [
    CREATE_PAYMENT,
    GET_PAYMENT,
    CREATE_REFUND,
    LIST_REFUNDS,
    PUT_CONNECTION,
    GET_CONNECTION,
    DELETE_CONNECTION,
    GET_INVOICE_SYNC,
    RETRY_INVOICE_SYNC,
    GET_PAYMENT_URL,
    GET_INVOICE_TIMELINE,
    LIST_WEBHOOK_EVENTS,
    REPLAY_WEBHOOK_EVENT,
];

/// Handles one API request: route, then authenticate (the API key decides tenant and
/// environment), then the route's flow.
pub async fn handle(adapters: &Adapters, request: Request) -> Response<Body> {
    match respond(adapters, &request).await {
        Ok((status, body)) => json_response(status, body),
        Err(problem) => problem.to_response().map(Body::from),
    }
}

fn json_response(status: u16, body: Option<serde_json::Value>) -> Response<Body> {
    let mut response = Response::new(body.map_or(Body::Empty, |b| Body::from(b.to_string())));
    *response.status_mut() = lambda_http::http::StatusCode::from_u16(status)
        .unwrap_or(lambda_http::http::StatusCode::INTERNAL_SERVER_ERROR);
    if response.body() != &Body::Empty {
        response.headers_mut().insert(
            lambda_http::http::header::CONTENT_TYPE,
            lambda_http::http::HeaderValue::from_static("application/json"),
        );
    }
    response
}

fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The scope the request's API key names; the same 401 for a missing, unknown or revoked key.
async fn authenticated(adapters: &Adapters, request: &Request) -> Result<TenantScope, Problem> {
    match apikeys::authenticate(adapters.store.as_ref(), header(request, "x-api-key")).await {
        Ok(scope) => Ok(scope),
        Err(ApiKeyError::Unauthorized) => Err(ApiKeyError::unauthorized().into()),
        Err(e) => {
            tracing::error!(error = %e, "API key lookup failed");
            Err(Problem::internal())
        }
    }
}

async fn respond(
    adapters: &Adapters,
    request: &Request,
) -> Result<(u16, Option<serde_json::Value>), Problem> {
    let (route, params) = route(&ROUTES, request.method().as_str(), request.uri().path())?;
    let scope = authenticated(adapters, request).await?;
    let body = request.body().as_ref();
    let content_type = header(request, lambda_http::http::header::CONTENT_TYPE.as_str());
    let param = |name: &str| params.get(name).map(String::as_str).unwrap_or_default();
    let answered = match route {
        PUT_CONNECTION => connection::put(
            adapters,
            &scope,
            ConnectionRequest::parse(content_type, body)?,
        )
        .await
        .map(|(created, view)| (if created { 201 } else { 200 }, Some(view))),
        GET_CONNECTION => connection::get(adapters, &scope)
            .await
            .map(|view| (200, Some(view))),
        DELETE_CONNECTION => connection::delete(adapters, &scope)
            .await
            .map(|()| (204, None)),
        CREATE_PAYMENT => {
            payments::create(adapters, &scope, PaymentRequest::parse(content_type, body)?)
                .await
                .map(|created| {
                    let status = if created.new { 201 } else { 200 };
                    (status, Some(views::payment(&created.payment)))
                })
        }
        GET_PAYMENT => payments::get(adapters, &scope, param("payment_id"))
            .await
            .map(|p| (200, Some(views::payment(&p)))),
        CREATE_REFUND => {
            let request = RefundRequest::parse(content_type, body)?;
            refund_requests::create(adapters, &scope, param("payment_id"), request)
                .await
                .map(|made| {
                    let status = if made.new { 201 } else { 200 };
                    (status, Some(views::refund(&made.payment, &made.refund)))
                })
        }
        LIST_REFUNDS => refund_requests::list(adapters, &scope, param("payment_id"))
            .await
            .map(|p| (200, Some(views::payment_refunds(&p)))),
        GET_INVOICE_SYNC | RETRY_INVOICE_SYNC | GET_PAYMENT_URL | GET_INVOICE_TIMELINE => {
            let invoice_id = flexprice_id("invoice_id", param("invoice_id"))?;
            return invoice_route(adapters, &scope, route, &invoice_id, request).await;
        }
        LIST_WEBHOOK_EVENTS | REPLAY_WEBHOOK_EVENT => {
            return events_route(adapters, &scope, route, request, param("event_id")).await;
        }
        other => return Err(Problem::not_implemented(&other.describe())),
    };
    // The one mapping of a service's refusal to an answer (`api::problem`).
    answered.map_err(Problem::from)
}

/// The webhook event log: a page of it, or one event replayed.
async fn events_route(
    adapters: &Adapters,
    scope: &TenantScope,
    route: Route,
    request: &Request,
    event_id_param: &str,
) -> Result<(u16, Option<serde_json::Value>), Problem> {
    let answered = if route == LIST_WEBHOOK_EVENTS {
        let query = EventQuery::parse(request.uri().query())?;
        webhook_events::list(adapters, scope, &query.filter, query.after.as_deref())
            .await
            .map(|listing| (200, Some(views::webhook_events(&listing))))
    } else {
        webhook_events::replay(adapters, scope, &event_id(event_id_param)?)
            .await
            .map(|event| (202, Some(views::replay_queued(&event))))
    };
    answered.map_err(Problem::from)
}

/// The routes about one Flexprice invoice: its sync record, a manual sync, its payment URL,
/// its timeline.
async fn invoice_route(
    adapters: &Adapters,
    scope: &TenantScope,
    route: Route,
    invoice_id: &FlexpriceId,
    request: &Request,
) -> Result<(u16, Option<serde_json::Value>), Problem> {
    let trace_id = header(request, "x-amzn-trace-id");
    let answered = match route {
        GET_INVOICE_SYNC => invoice_sync::status(adapters, scope, invoice_id)
            .await
            .map(|sync| (200, Some(views::invoice_sync(&sync)))),
        RETRY_INVOICE_SYNC => invoice_sync::request_sync(adapters, scope, invoice_id, trace_id)
            .await
            .map(|queued| (202, Some(queued))),
        GET_INVOICE_TIMELINE => {
            let query = TimelineQuery::parse(request.uri().query())?;
            let after = query.after.as_deref();
            timeline::timeline(adapters, scope, invoice_id, after, query.limit)
                .await
                .map(|page| (200, Some(views::invoice_timeline(&page))))
        }
        _ => payment_url::get(adapters, scope, invoice_id)
            .await
            .map(|url| (200, Some(views::payment_url(&url)))),
    };
    answered.map_err(Problem::from)
}
