//! The shared core of flexrzp: every business rule, and every adapter the three Lambda
//! functions use. A function crate only routes a request or a batch here. The layers, inner
//! to outer (`docs/architecture.md` walks through each flow):
//!
//! - [`domain`]: the pure vocabulary: exact money, tenant scopes, signatures, secrets, jobs,
//!   the retryable/permanent split. No AWS, HTTP client or JSON value in its signatures; it
//!   uses nothing from the other layers (a test holds it to that).
//! - [`ports`]: the traits services depend on instead of concrete adapters (the clock today).
//! - [`services`]: the flows: API keys, the Razorpay connection, customer sync, payment links,
//!   webhook intake, reconciliation of Razorpay events, invoice sync.
//! - [`adapters`]: the outside world: DynamoDB (store, idempotency), SQS, Secrets Manager,
//!   the Razorpay and Flexprice clients and their wire types, HTTP, configuration, logs.
//! - [`api`]: the HTTP edge both `lambda_http` functions share: problem+json answers and
//!   route matching.
//!
//! [`failpoint`] is test support: named points between two writes where a test can stop a
//! flow, as a crash would.

pub mod adapters;
pub mod api;
pub mod domain;
pub mod failpoint;
pub mod ports;
pub mod services;
