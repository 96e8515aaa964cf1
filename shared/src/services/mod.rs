//! The flows of flexrzp, each over the domain and the adapters: what happens when a tenant
//! connects, asks for a payment link, or when a webhook or a job arrives.

pub mod apikeys;
pub mod auto_refunds;
pub mod collection;
pub mod connection;
pub mod correlation;
pub mod credit_notes;
pub mod customers;
pub mod disputes;
pub mod intake;
pub mod invoice_sync;
pub mod parked;
pub mod payment_url;
pub mod payments;
pub mod reconcile;
pub mod recording;
pub mod refund_requests;
pub mod refunds;
pub mod sweep;
pub mod timeline;
pub mod webhook_events;
