//! The pure vocabulary of flexrzp. Nothing here talks to AWS, Razorpay or Flexprice, and
//! nothing here imports another layer (`shared/tests/layers.rs` fails the build otherwise).

pub mod collection;
pub mod customer;
pub mod dispute;
pub mod error;
pub mod events;
pub mod ids;
pub mod instruments;
pub mod invoice;
pub mod jobs;
pub mod keys;
pub mod money;
pub mod payment;
pub mod refund;
pub mod requests;
pub mod secret;
pub mod signature;
pub mod sweep;
pub mod sync;
pub mod timeline;
pub mod url;
