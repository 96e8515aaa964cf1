//! The tenant-facing API: payments (payment links), the Razorpay connection and invoice sync
//! (DESIGN §3.3).
//!
//! The handler is a library so that `main`, the local gateway and the tests run the very same
//! code. Every route needs an API key (401 otherwise); until the flows land, an authenticated
//! request answers 501 problem+json: the route exists, it does not pretend to work.

use lambda_http::{Body, Request, Response};
use shared::apikeys::{self, ApiKeyError};
use shared::aws::Adapters;
use shared::problem::Problem;
use shared::routing::{Route, route};

pub const CREATE_PAYMENT: Route = Route::new("POST", "/api/v1/payments");
pub const GET_PAYMENT: Route = Route::new("GET", "/api/v1/payments/{payment_id}");
pub const PUT_CONNECTION: Route = Route::new("PUT", "/api/v1/connections/razorpay");
pub const GET_CONNECTION: Route = Route::new("GET", "/api/v1/connections/razorpay");
pub const DELETE_CONNECTION: Route = Route::new("DELETE", "/api/v1/connections/razorpay");
pub const GET_INVOICE_SYNC: Route = Route::new("GET", "/api/v1/invoices/{invoice_id}/sync");
pub const RETRY_INVOICE_SYNC: Route = Route::new("POST", "/api/v1/invoices/{invoice_id}/sync");

/// Every route this function serves (the template wires exactly these to it).
pub const ROUTES: [Route; 7] = [
    CREATE_PAYMENT,
    GET_PAYMENT,
    PUT_CONNECTION,
    GET_CONNECTION,
    DELETE_CONNECTION,
    GET_INVOICE_SYNC,
    RETRY_INVOICE_SYNC,
];

/// Handles one API request: route, then authenticate (the API key decides tenant and
/// environment), then the route's flow.
pub async fn handle(adapters: &Adapters, request: Request) -> Response<Body> {
    problem_or(adapters, request)
        .await
        .to_response()
        .map(Body::from)
}

async fn problem_or(adapters: &Adapters, request: Request) -> Problem {
    let (route, _params) = match route(&ROUTES, request.method().as_str(), request.uri().path()) {
        Ok(matched) => matched,
        Err(problem) => return problem,
    };
    let header = request
        .headers()
        .get("x-api-key")
        .and_then(|v| v.to_str().ok());
    match apikeys::authenticate(&adapters.store, header).await {
        Ok(_scope) => Problem::not_implemented(&route.describe()),
        Err(ApiKeyError::Unauthorized) => ApiKeyError::unauthorized_problem(),
        Err(e) => {
            tracing::error!(error = %e, "API key lookup failed");
            Problem::internal()
        }
    }
}
