//! The whole system end to end on the local stack, one area a module, in one test binary (one
//! emulator, one build): what the areas share is in the `system_tests` library (`tests/lib.rs`).
//! Tests that change process-wide state (failure points, the log subscriber) and the checks of
//! `template.yaml` and of the binaries under a Lambda runtime emulator have binaries of their own.

mod call_counts;
mod collection;
mod correlation;
mod customer_sync;
mod event_log;
mod events;
mod invoice_sync;
mod local_stack;
mod openapi;
mod payments;
mod reconcile;
mod refunds;
mod sweep;
mod webhooks;
