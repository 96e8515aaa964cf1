//! Inbound webhooks: Razorpay payment events and Flexprice invoice events (`docs/architecture.md` §3.1).
//!
//! The handler is a library so that `main`, the local gateway and the tests run the very same
//! code. Both routes go through `shared::services::intake`.

use lambda_http::{Body, Request, Response};
use shared::adapters::aws::Adapters;
use shared::api::problem::Problem;
use shared::api::routing::{Route, route};
use shared::domain::events::Source;
use shared::domain::signature::SvixHeaders;
use shared::services::intake;

pub const RAZORPAY_WEBHOOK: Route =
    Route::new("POST", "/v1/webhooks/razorpay/{tenant_id}/{environment_id}");
pub const FLEXPRICE_WEBHOOK: Route = Route::new(
    "POST",
    "/v1/webhooks/flexprice/{tenant_id}/{environment_id}",
);
/// Every route this function serves (the template wires exactly these to it).
pub const ROUTES: [Route; 2] = [RAZORPAY_WEBHOOK, FLEXPRICE_WEBHOOK];

/// Handles one webhook request.
pub async fn handle(adapters: &Adapters, request: Request) -> Response<Body> {
    match respond(adapters, &request).await {
        Ok(body) => {
            let mut response = Response::new(Body::from(body.to_string()));
            response.headers_mut().insert(
                lambda_http::http::header::CONTENT_TYPE,
                lambda_http::http::HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(problem) => problem.to_response().map(Body::from),
    }
}

async fn respond(adapters: &Adapters, request: &Request) -> Result<serde_json::Value, Problem> {
    let (route, params) = route(&ROUTES, request.method().as_str(), request.uri().path())?;
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
    let param = |name: &str| params.get(name).map(String::as_str).unwrap_or_default();
    let body = request.body().as_ref();
    if route == FLEXPRICE_WEBHOOK {
        let answered = intake::flexprice(
            adapters,
            intake::SvixDelivery {
                tenant_id: param("tenant_id"),
                environment_id: param("environment_id"),
                headers: SvixHeaders {
                    id: header("svix-id"),
                    timestamp: header("svix-timestamp"),
                    signature: header("svix-signature"),
                },
                trace_id: header("x-amzn-trace-id"),
                body,
            },
        )
        .await;
        intake::count_delivery(Source::Flexprice, &answered);
        return answered.map_err(Problem::from);
    }
    let answered = intake::razorpay(
        adapters,
        intake::Delivery {
            tenant_id: param("tenant_id"),
            environment_id: param("environment_id"),
            signature: header("x-razorpay-signature"),
            event_id: header("x-razorpay-event-id"),
            trace_id: header("x-amzn-trace-id"),
            body,
        },
    )
    .await;
    intake::count_delivery(Source::Razorpay, &answered);
    answered.map_err(Problem::from)
}
