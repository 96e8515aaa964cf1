//! The tenant-facing API: payments (payment links), the Razorpay connection and invoice sync
//! (DESIGN §3.3).
//!
//! The handler is a library so that `main`, the local gateway and the tests run the very same
//! code. Until the flows land, every route answers 501 problem+json: it exists in the API, it
//! does not pretend to work.

use lambda_http::{Body, Request, Response};
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

/// Handles one API request.
pub async fn handle(_adapters: &Adapters, request: Request) -> Response<Body> {
    let problem = match route(&ROUTES, request.method().as_str(), request.uri().path()) {
        Ok((route, _params)) => Problem::not_implemented(&route.describe()),
        Err(problem) => problem,
    };
    problem.to_response().map(Body::from)
}
