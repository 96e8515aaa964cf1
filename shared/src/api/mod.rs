//! The HTTP edge the two `lambda_http` functions share: request bodies and path parameters
//! parsed into domain types, the problem+json shape of every error answer, route matching, and
//! the views (the records as the API shows them).

pub mod problem;
pub mod requests;
pub mod routing;
pub mod views;
