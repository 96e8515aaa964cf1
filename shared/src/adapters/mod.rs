//! The outside world: AWS (DynamoDB, SQS, Secrets Manager), the Razorpay and Flexprice APIs,
//! the HTTP client they share, configuration from the environment, and the JSON logs.

pub mod aws;
pub mod config;
pub mod flexprice;
pub mod http;
#[cfg(feature = "fakes")]
pub mod memory;
pub mod razorpay;
pub mod telemetry;
