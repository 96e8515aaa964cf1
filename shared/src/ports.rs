//! The ports: what the services need from outside, as small traits, so that a service can be
//! run over an in-memory fake (`adapters::memory`, behind the `fakes` feature) as well as over
//! AWS. `shared/tests/contract.rs` runs the same cases against both, so a fake cannot promise
//! what DynamoDB does not keep.
//!
//! - [`Table`]: the one DynamoDB table: reads, conditional writes, transactions. (It speaks in
//!   items; typed records will take their place.)
//! - [`Claims`]: claims on work that must happen once (a webhook event), with a lock that
//!   runs out when a worker dies and a stored result for duplicates.
//! - [`EventLog`]: the webhook events received, what became of each, and the refusals.
//! - [`Queue`]: the job queue (SQS here; a fake that keeps the jobs in service tests).
//! - [`SecretStore`]: each tenant's credentials, one secret string per scope.
//! - [`RazorpayApi`], [`FlexpriceApi`]: the calls the services make to the two providers
//!   (HTTP clients here, stateful fakes in service tests).
//! - [`Clock`]: time, so expiry and signature tolerance can be tested without sleeping.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::adapters::aws::idempotency::{Claim, ClaimToken, IdempotencyError, Lifetimes};
use crate::adapters::aws::queue::QueueError;
use crate::adapters::aws::secrets::SecretsError;
use crate::adapters::aws::store::{Expect, Item, StoreError, Update, Write};
use crate::adapters::flexprice::FlexpriceError;
use crate::adapters::flexprice::wire::{
    CreditNote, Customer as FlexpriceCustomer, Invoice as FlexpriceInvoice,
    Payment as FlexpricePayment, RecordPaymentRequest, UpdatePaymentRequest,
};
use crate::adapters::razorpay::wire::{
    Customer, CustomerRequest, Dispute, Invoice, InvoiceRequest, Payment, PaymentLink,
    PaymentLinkRequest, Refund, RefundRequest,
};
use crate::adapters::razorpay::{PaymentsPage, RazorpayError};
use crate::domain::events::{EventFilter, EventPage, Refused, Source, Step, WebhookEvent};
use crate::domain::jobs::{Job, Retry};
use crate::domain::keys::{Key, TenantScope};
use crate::domain::secret::Secret;
use crate::domain::timeline::{Correction, Heard};

/// At most this many events and corrections are read about one invoice (a timeline that
/// long is a problem of its own; the newest past it are not shown).
pub const MAX_HEARD: usize = 1000;

/// A future a port returns (boxed, so the ports can be used as `dyn` traits).
pub type PortFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The table: every item under a [`Key`]; writes happen only when their conditions hold, and a
/// transaction's writes all happen or none does (with one reason per write when it does not).
pub trait Table: Send + Sync {
    /// Reads an item (strongly consistent).
    fn get<'a>(&'a self, key: &'a Key) -> PortFuture<'a, Result<Option<Item>, StoreError>>;
    /// Puts an item, replacing whatever was there.
    fn put<'a>(&'a self, key: &'a Key, attrs: Item) -> PortFuture<'a, Result<(), StoreError>>;
    /// Puts an item only if its key is free ([`StoreError::AlreadyExists`] with the stored item
    /// otherwise).
    fn create<'a>(&'a self, key: &'a Key, attrs: Item) -> PortFuture<'a, Result<(), StoreError>>;
    /// Updates an existing item under the update's conditions; returns the new item.
    fn update<'a>(
        &'a self,
        key: &'a Key,
        update: &'a Update,
    ) -> PortFuture<'a, Result<Item, StoreError>>;
    /// Deletes an item; with conditions, only if it meets them.
    fn delete<'a>(
        &'a self,
        key: &'a Key,
        expect: &'a [Expect],
    ) -> PortFuture<'a, Result<(), StoreError>>;
    /// Writes all of `writes` or none of them.
    fn transact(&self, writes: Vec<Write>) -> PortFuture<'_, Result<(), StoreError>>;
}

/// Claims on work that must be done once: the first claim of a key acquires it (with a lock
/// for `lifetimes.lock`); a claim while the lock holds is refused as in progress; a claim of
/// completed work returns its stored result; another payload under the same key is refused.
/// An expired lock or record can be claimed again; only the holder's token completes or
/// releases a claim.
pub trait Claims: Send + Sync {
    fn claim<'a>(
        &'a self,
        key: &'a Key,
        payload_hash: &'a str,
        lifetimes: Lifetimes,
    ) -> PortFuture<'a, Result<Claim, IdempotencyError>>;
    /// Marks the claim completed with an optional result, kept for `keep` from now.
    fn complete<'a>(
        &'a self,
        token: &'a ClaimToken,
        result: Option<&'a str>,
        keep: Duration,
    ) -> PortFuture<'a, Result<(), IdempotencyError>>;
    /// Gives the claim up so that a retry does the work again.
    fn release<'a>(&'a self, token: &'a ClaimToken)
    -> PortFuture<'a, Result<(), IdempotencyError>>;
}

/// The webhook event log. An event is received with the claim on its id (one conditional
/// write: the claim of [`Claims`], the event's record with it): queued under a lock until the
/// worker settles it, or settled at once when there is nothing to do. The worker settles it
/// (each settling a step of its history, at the version read). Listings are newest first,
/// within one scope; refusals are counted per scope, day and reason.
pub trait EventLog: Send + Sync {
    fn receive<'a>(
        &'a self,
        scope: &'a TenantScope,
        event: &'a WebhookEvent,
        payload_hash: &'a str,
        lifetimes: Lifetimes,
    ) -> PortFuture<'a, Result<Claim, IdempotencyError>>;
    /// Gives a queued event's claim up (its job could not be queued), so a redelivery is
    /// received again.
    fn release<'a>(&'a self, token: &'a ClaimToken)
    -> PortFuture<'a, Result<(), IdempotencyError>>;
    fn get<'a>(
        &'a self,
        scope: &'a TenantScope,
        source: Source,
        event_id: &'a str,
    ) -> PortFuture<'a, Result<Option<WebhookEvent>, StoreError>>;
    /// Adds `step` to the event `read` (as last read: it is read again when another settling
    /// wrote it first), and its invoice once known; the event as stored, `None` if it is gone.
    /// Nothing is written when neither is new.
    fn settle<'a>(
        &'a self,
        scope: &'a TenantScope,
        read: WebhookEvent,
        step: Step,
        invoice_id: Option<&'a str>,
    ) -> PortFuture<'a, Result<Option<WebhookEvent>, StoreError>>;
    /// What was heard about one invoice (its events, once they know it, and the sweep's
    /// corrections), oldest first and at most [`MAX_HEARD`] items.
    fn about<'a>(
        &'a self,
        scope: &'a TenantScope,
        invoice_id: &'a str,
    ) -> PortFuture<'a, Result<Heard, StoreError>>;
    /// Keeps a sweep correction beside its invoice, as long as events are kept (once per
    /// Razorpay object and event: keeping it again changes nothing).
    fn corrected<'a>(
        &'a self,
        scope: &'a TenantScope,
        invoice_id: &'a str,
        correction: &'a Correction,
    ) -> PortFuture<'a, Result<(), StoreError>>;
    /// The events after `after` (a position a page returned) that `filter` takes.
    fn list<'a>(
        &'a self,
        scope: &'a TenantScope,
        filter: &'a EventFilter,
        after: Option<&'a str>,
    ) -> PortFuture<'a, Result<EventPage, StoreError>>;
    /// Counts one refusal on `day` (`YYYY-MM-DD`), kept as long as events are.
    fn refuse<'a>(
        &'a self,
        scope: &'a TenantScope,
        refused: Refused,
        day: &'a str,
    ) -> PortFuture<'a, Result<(), StoreError>>;
    /// The refusals counted on `since_day` and after, by reason.
    fn refusals<'a>(
        &'a self,
        scope: &'a TenantScope,
        since_day: &'a str,
    ) -> PortFuture<'a, Result<Vec<(Refused, u64)>, StoreError>>;
}

/// Where work that cannot be done now goes: each job is delivered (at least once) to the
/// worker, with the trace id of the request that made it.
pub trait Queue: Send + Sync {
    /// Sends a job; returns its message id.
    fn send<'a>(
        &'a self,
        job: &'a Job,
        trace_id: Option<&'a str>,
    ) -> PortFuture<'a, Result<String, QueueError>>;
    /// Makes failed messages visible again only after their waits (the backoff of a retry).
    fn retry_later<'a>(&'a self, retries: &'a [Retry]) -> PortFuture<'a, Result<(), QueueError>>;
}

/// Secret strings by id, served from a cache where the adapter keeps one.
pub trait SecretStore: Send + Sync {
    /// The current value ([`SecretsError::NotFound`] when there is none).
    fn get<'a>(
        &'a self,
        id: &'a str,
    ) -> PortFuture<'a, Result<std::sync::Arc<Secret<String>>, SecretsError>>;
    /// The current value, read again past any cache (after a failure a rotation may explain).
    fn refresh<'a>(
        &'a self,
        id: &'a str,
    ) -> PortFuture<'a, Result<std::sync::Arc<Secret<String>>, SecretsError>>;
    /// Stores `value` as the current value, creating the secret if needed.
    fn put<'a>(
        &'a self,
        id: &'a str,
        value: Secret<String>,
    ) -> PortFuture<'a, Result<(), SecretsError>>;
    /// Deletes the secret at once (deleting a missing one is fine).
    fn delete<'a>(&'a self, id: &'a str) -> PortFuture<'a, Result<(), SecretsError>>;
}

/// What the services ask of Razorpay.
pub trait RazorpayApi: Send + Sync {
    /// Creates a customer, or (`fail_existing: "0"`) returns the one with the same email and
    /// contact.
    fn create_customer<'a>(
        &'a self,
        request: &'a CustomerRequest,
    ) -> PortFuture<'a, Result<Customer, RazorpayError>>;
    fn create_payment_link<'a>(
        &'a self,
        request: &'a PaymentLinkRequest,
    ) -> PortFuture<'a, Result<PaymentLink, RazorpayError>>;
    /// The links made with this `reference_id` (at most one: Razorpay keeps it unique).
    fn find_payment_links_by_reference<'a>(
        &'a self,
        reference_id: &'a str,
    ) -> PortFuture<'a, Result<Vec<PaymentLink>, RazorpayError>>;
    fn get_payment_link<'a>(
        &'a self,
        id: &'a str,
    ) -> PortFuture<'a, Result<PaymentLink, RazorpayError>>;
    /// Cancels a link; Razorpay refuses (400) one that is paid, expired or cancelled.
    fn cancel_payment_link<'a>(
        &'a self,
        id: &'a str,
    ) -> PortFuture<'a, Result<PaymentLink, RazorpayError>>;
    fn create_invoice<'a>(
        &'a self,
        request: &'a InvoiceRequest,
    ) -> PortFuture<'a, Result<Invoice, RazorpayError>>;
    fn get_invoice<'a>(&'a self, id: &'a str) -> PortFuture<'a, Result<Invoice, RazorpayError>>;
    /// The invoices made with this `receipt`.
    fn find_invoices_by_receipt<'a>(
        &'a self,
        receipt: &'a str,
    ) -> PortFuture<'a, Result<Vec<Invoice>, RazorpayError>>;
    fn cancel_invoice<'a>(&'a self, id: &'a str) -> PortFuture<'a, Result<Invoice, RazorpayError>>;
    /// A payment, as Razorpay has it now.
    fn get_payment<'a>(&'a self, id: &'a str) -> PortFuture<'a, Result<Payment, RazorpayError>>;
    /// One page of the payments created in a window, newest first.
    fn list_payments<'a>(
        &'a self,
        page: &'a PaymentsPage,
    ) -> PortFuture<'a, Result<Vec<Payment>, RazorpayError>>;
    /// The account's payment links.
    fn list_payment_links(&self) -> PortFuture<'_, Result<Vec<PaymentLink>, RazorpayError>>;
    /// A page of the account's invoices, newest first.
    fn list_invoices(
        &self,
        count: u32,
        skip: u32,
    ) -> PortFuture<'_, Result<Vec<Invoice>, RazorpayError>>;
    /// Issues a draft invoice; Razorpay refuses (400) one that is not a draft.
    fn issue_invoice<'a>(&'a self, id: &'a str) -> PortFuture<'a, Result<Invoice, RazorpayError>>;
    /// Refunds a payment; the same `idempotency_key` with the same body is the same refund.
    fn create_refund<'a>(
        &'a self,
        payment_id: &'a str,
        idempotency_key: &'a str,
        request: &'a RefundRequest,
    ) -> PortFuture<'a, Result<Refund, RazorpayError>>;
    /// The refunds of one payment.
    fn list_payment_refunds<'a>(
        &'a self,
        payment_id: &'a str,
    ) -> PortFuture<'a, Result<Vec<Refund>, RazorpayError>>;
    /// One page of the refunds created in a window, newest first.
    fn list_refunds<'a>(
        &'a self,
        page: &'a PaymentsPage,
    ) -> PortFuture<'a, Result<Vec<Refund>, RazorpayError>>;
    /// One page of the disputes created in a window, newest first.
    fn list_disputes<'a>(
        &'a self,
        page: &'a PaymentsPage,
    ) -> PortFuture<'a, Result<Vec<Dispute>, RazorpayError>>;
}

/// What the services ask of Flexprice.
pub trait FlexpriceApi: Send + Sync {
    fn get_invoice<'a>(
        &'a self,
        id: &'a str,
    ) -> PortFuture<'a, Result<FlexpriceInvoice, FlexpriceError>>;
    fn get_customer<'a>(
        &'a self,
        id: &'a str,
    ) -> PortFuture<'a, Result<FlexpriceCustomer, FlexpriceError>>;
    /// Records a payment: inserts it, then processes it. The same `idempotency_key` never
    /// records twice: it answers the row already there, as it is (processed or not).
    fn record_payment<'a>(
        &'a self,
        request: &'a RecordPaymentRequest,
    ) -> PortFuture<'a, Result<FlexpricePayment, FlexpriceError>>;
    /// Processes a payment that was inserted but not processed.
    fn process_payment<'a>(
        &'a self,
        id: &'a str,
    ) -> PortFuture<'a, Result<FlexpricePayment, FlexpriceError>>;
    /// A credit note.
    fn get_credit_note<'a>(
        &'a self,
        id: &'a str,
    ) -> PortFuture<'a, Result<CreditNote, FlexpriceError>>;
    /// Moves a payment to a refund state (PARTIALLY_REFUNDED, REFUNDED) with its metadata.
    fn update_payment<'a>(
        &'a self,
        id: &'a str,
        request: &'a UpdatePaymentRequest,
    ) -> PortFuture<'a, Result<FlexpricePayment, FlexpriceError>>;
    /// Adds `keys` to the metadata of `customer`, as it was just read (keeping the rest).
    fn merge_customer_metadata<'a>(
        &'a self,
        customer: &'a FlexpriceCustomer,
        keys: &'a std::collections::BTreeMap<String, String>,
    ) -> PortFuture<'a, Result<FlexpriceCustomer, FlexpriceError>>;
    /// Adds `keys` to the invoice's metadata (keeping the rest).
    fn merge_invoice_metadata<'a>(
        &'a self,
        id: &'a str,
        keys: &'a std::collections::BTreeMap<String, String>,
    ) -> PortFuture<'a, Result<FlexpriceInvoice, FlexpriceError>>;
}

pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> u64;

    fn now_secs(&self) -> u64 {
        self.now_millis() / 1000
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    millis: AtomicU64,
}

impl ManualClock {
    pub fn at_millis(millis: u64) -> ManualClock {
        ManualClock {
            millis: AtomicU64::new(millis),
        }
    }

    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.millis.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> u64 {
        self.millis.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_when_told() {
        let clock = ManualClock::at_millis(1_000_500);
        assert_eq!(clock.now_secs(), 1000);
        clock.advance(Duration::from_millis(600));
        assert_eq!(clock.now_millis(), 1_001_100);
        assert_eq!(clock.now_secs(), 1001);
    }

    #[test]
    fn system_clock_is_after_2024() {
        assert!(SystemClock.now_secs() > 1_704_067_200);
    }
}
