//! Stand-ins for the two outside services, for the local stack and the tests: stateful,
//! in-memory simulators of the Razorpay and Flexprice APIs, with their rules, error bodies,
//! signed webhooks, fault injection and request logs (think stripe-mock).

pub mod common;
pub mod flexprice;
pub mod razorpay;

pub use common::{Delivery, Fault, HasRecorder, LoggedRequest, Running};
