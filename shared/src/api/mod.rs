//! The HTTP edge the two `lambda_http` functions share: request bodies and path parameters
//! parsed into domain types, the problem+json shape of every error answer, and route matching.

pub mod problem;
pub mod requests;
pub mod routing;
