//! Failure points: named places between two writes where a test can make the next N passes
//! fail, as if the process had died there (the fault tests prove that a retry then applies
//! everything exactly once). Nothing is armed outside tests; an unarmed point costs one
//! relaxed atomic load.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

static ANY_ARMED: AtomicBool = AtomicBool::new(false);
static ARMED: Mutex<Option<HashMap<String, u32>>> = Mutex::new(None);

/// After a webhook event is received into the log, before its job is queued.
pub const AFTER_EVENT_RECEIVED: &str = "intake.after_event_received";
/// After the money is recorded in Flexprice, before it is counted on our payment.
pub const AFTER_FLEXPRICE_RECORD: &str = "reconcile.after_flexprice_record";
/// After the Razorpay invoice is made as a draft and mapped, before it is issued.
pub const AFTER_RAZORPAY_INVOICE_DRAFT: &str = "invoice_sync.after_razorpay_invoice_draft";
/// After the Razorpay invoice is issued, before the sync record says SYNCED.
pub const AFTER_RAZORPAY_INVOICE_CREATE: &str = "invoice_sync.after_razorpay_invoice_create";

/// Makes the next `times` passes through `name` fail (tests only).
pub fn arm(name: &str, times: u32) {
    let mut armed = ARMED.lock().unwrap_or_else(|p| p.into_inner());
    armed
        .get_or_insert_with(HashMap::new)
        .insert(name.to_owned(), times);
    ANY_ARMED.store(true, Ordering::SeqCst);
}

/// Whether this pass through `name` must fail.
pub fn hit(name: &str) -> bool {
    if !ANY_ARMED.load(Ordering::Relaxed) {
        return false;
    }
    let mut armed = ARMED.lock().unwrap_or_else(|p| p.into_inner());
    match armed.as_mut().and_then(|a| a.get_mut(name)) {
        Some(left) if *left > 0 => {
            *left -= 1;
            tracing::warn!(failpoint = name, "failure point hit");
            true
        }
        _ => false,
    }
}
