//! The shared core of flexrzp: domain types, services and the AWS adapters every Lambda
//! function uses. Business rules live here, never in a function crate.

pub mod apikeys;
pub mod aws;
pub mod clock;
pub mod config;
pub mod connection;
pub mod customers;
pub mod failpoint;
pub mod flexprice;
pub mod http;
pub mod intake;
pub mod invoice_sync;
pub mod jobs;
pub mod keys;
pub mod money;
pub mod payments;
pub mod problem;
pub mod razorpay;
pub mod reconcile;
pub mod routing;
pub mod secret;
pub mod signature;
pub mod telemetry;
