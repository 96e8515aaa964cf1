//! Inbound webhooks: Razorpay payment events and Flexprice invoice events (DESIGN §3.1).
//!
//! The handler is a library so that `main`, the local gateway and the tests run the very same
//! code. Until the intake flows land, both routes answer 501 problem+json: they exist in the
//! API, they do not pretend to accept events.

use lambda_http::{Body, Request, Response};
use shared::aws::Adapters;
use shared::problem::Problem;
use shared::routing::{Route, route};

pub const RAZORPAY_WEBHOOK: Route =
    Route::new("POST", "/v1/webhooks/razorpay/{tenant_id}/{environment_id}");
pub const FLEXPRICE_WEBHOOK: Route = Route::new(
    "POST",
    "/v1/webhooks/flexprice/{tenant_id}/{environment_id}",
);
/// Every route this function serves (the template wires exactly these to it).
pub const ROUTES: [Route; 2] = [RAZORPAY_WEBHOOK, FLEXPRICE_WEBHOOK];

/// Handles one webhook request.
pub async fn handle(_adapters: &Adapters, request: Request) -> Response<Body> {
    let problem = match route(&ROUTES, request.method().as_str(), request.uri().path()) {
        Ok((route, _params)) => Problem::not_implemented(&route.describe()),
        Err(problem) => problem,
    };
    problem.to_response().map(Body::from)
}
