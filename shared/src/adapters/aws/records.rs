//! The table's items as typed records. Each kind is a Rust type (the domain's [`Payment`], or a
//! small mapping defined here), converted to and from its item here and only here: an attribute
//! name is written once, in this file, and a typo does not compile into a silent miss. Typed
//! changes ([`PaymentUpdate`]) become conditional updates here too, each under the condition
//! its rule needs. The services never see an attribute name.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::store::{
    EXPIRES_AT, Expect, INVOICE_PK, INVOICE_SK, Item, ItemExt, LOG_PK, LOG_SK, SK, STATUS,
    StoreError, Update, VERSION, n, s,
};
use crate::domain::events::{Outcome, Refused, Source, WebhookEvent, log_position};
use crate::domain::instruments::Collection;
use crate::domain::jobs::JobFailure;
use crate::domain::keys::{Key, TenantScope};
use crate::domain::money::{Currency, Money};
use crate::domain::payment::{Payment, PaymentMethod, PaymentStatus, PaymentUpdate};
use crate::domain::sweep::SweepState;
use crate::domain::sync::{InvoiceSync, SyncState};
use crate::domain::timeline::Correction;
use crate::ports::Table;

// The attribute names of every record.
const ACTIVE: &str = "ACTIVE";
const AMOUNT: &str = "amount";
const AMOUNT_MINOR: &str = "amount_minor";
const AMOUNT_PAID: &str = "amount_paid";
const ATTEMPTS: &str = "attempts";
const CAPTURES: &str = "captures";
const DISPUTES: &str = "disputes";
const CANCEL_REASON: &str = "cancel_reason";
const CUSTOMER_ID: &str = "customer_id";
const ENVIRONMENT_ID: &str = "environment_id";
const FORM: &str = "form";
const FORM_REASON: &str = "form_reason";
const LEASE_UNTIL: &str = "lease_until";
const METADATA_WRITTEN: &str = "metadata_written";
const RAZORPAY_STATUS: &str = "razorpay_status";
const SKIP_REASON: &str = "skip_reason";
const TENANT_ID: &str = "tenant_id";
const CREATED_AT: &str = "created_at";
const CURRENCY: &str = "currency";
const FAILURE_REASON: &str = "failure_reason";
const FLEXPRICE_CUSTOMER_ID: &str = "flexprice_customer_id";
const GATEWAY_TRACKING_ID: &str = "gateway_tracking_id";
const IDEMPOTENCY_KEY: &str = "idempotency_key";
const INVOICE_ID: &str = "invoice_id";
const INSTRUMENTS: &str = "instruments";
const ISSUE: &str = "issue";
const INVOICE_OUTBOUND_SYNC: &str = "invoice_outbound_sync";
const HASH: &str = "hash";
const KEY_ID: &str = "key_id";
const LABEL: &str = "label";
const LAST_ERROR: &str = "last_error";
const LOCK_EXPIRES_AT: &str = "lock_expires_at";
const METADATA: &str = "metadata";
const METHOD: &str = "method";
const PAYLOAD_HASH: &str = "payload_hash";
const PAYMENT_ID: &str = "payment_id";
const PAYMENT_URL: &str = "payment_url";
const RAZORPAY_ACCOUNT_ID: &str = "razorpay_account_id";
const RAZORPAY_CUSTOMER_ID: &str = "razorpay_customer_id";
const RAZORPAY_INVOICE_ID: &str = "razorpay_invoice_id";
const RAZORPAY_PAYMENT_ID: &str = "razorpay_payment_id";
const REFUNDS: &str = "refunds";
const REVIEW: &str = "review";
const UNRECORDED: &str = "unrecorded";
const UPDATED_AT: &str = "updated_at";
const WATERMARK: &str = "watermark";
const WATCHING: &str = "watching";
const REFUNDS_WATCHING: &str = "refunds_watching";
const MISSED: &str = "missed";
const LAST_MISSED_AT: &str = "last_missed_at";
const LAST_RUN_AT: &str = "last_run_at";
const SCOPES: &str = "scopes";

/// The attributes of an event claim (the claims adapter builds its own condition expressions
/// from them: a claim's conditions are richer than the table port's).
pub(super) mod claim {
    pub const LOCK_EXPIRES_AT: &str = super::LOCK_EXPIRES_AT;
    pub const LOCK_TOKEN: &str = "lock_token";
    pub const PAYLOAD_HASH: &str = super::PAYLOAD_HASH;
    pub const RESULT: &str = "result";
    pub const COMPLETED: &str = "COMPLETED";
}

/// The attributes the event log's adapter builds its own expressions from (its filters,
/// counters and claims are richer than the table port's).
pub(super) mod event {
    pub const EVENT_TYPE: &str = "event_type";
    pub const OUTCOME: &str = "outcome";
    pub const RECEIVED_AT: &str = "received_at";
}

/// A kind of item the table holds, as a Rust type.
pub trait Record: Sized {
    /// What the kind is called in errors.
    const NAME: &'static str;
    fn to_item(&self) -> Item;
    /// The record of a stored item; [`StoreError::Malformed`] names a missing attribute.
    fn from_item(item: &Item) -> Result<Self, StoreError>;
}

// The keys of each kind (`docs/architecture.md` §6).

pub fn payment_key(scope: &TenantScope, payment_id: &str) -> Key {
    scope.key("PAYMENT", payment_id)
}

/// A Razorpay payment link → our payment.
pub fn link_key(scope: &TenantScope, link_id: &str) -> Key {
    scope.key("PAYMENT_LINK", link_id)
}

/// A payment link's Razorpay order → our payment.
pub fn order_key(scope: &TenantScope, order_id: &str) -> Key {
    scope.key("ORDER", order_id)
}

/// A Razorpay payment counted on one of ours (created once).
pub fn counted_key(scope: &TenantScope, razorpay_payment_id: &str) -> Key {
    scope.key("RZP_PAYMENT", razorpay_payment_id)
}

/// A Flexprice customer → its Razorpay customer in one Razorpay account and mode (`account`:
/// the connection's key id), so a connection moved to another account, or from test to live,
/// never reuses a customer id of the old one.
pub fn customer_key(scope: &TenantScope, account: &str, flexprice_customer_id: &str) -> Key {
    scope.key("CUSTOMER", &format!("{account}#{flexprice_customer_id}"))
}

/// A Razorpay customer → its Flexprice customer.
pub fn razorpay_customer_key(scope: &TenantScope, razorpay_customer_id: &str) -> Key {
    scope.key("RZP_CUSTOMER", razorpay_customer_id)
}

/// A Flexprice invoice's sync record.
pub fn sync_key(scope: &TenantScope, invoice_id: &str) -> Key {
    scope.key("INVOICE", invoice_id)
}

/// A Flexprice invoice's collection state: its instruments.
pub fn collection_key(scope: &TenantScope, invoice_id: &str) -> Key {
    scope.key("COLLECTION", invoice_id)
}

/// A Razorpay invoice → the Flexprice invoice it was synced from.
pub fn razorpay_invoice_key(scope: &TenantScope, razorpay_invoice_id: &str) -> Key {
    scope.key("RZP_INVOICE", razorpay_invoice_id)
}

/// A scope's reconciliation sweep: its watermark, the failed payments it watches, what it found
/// the webhooks missed.
pub fn sweep_key(scope: &TenantScope) -> Key {
    scope.key("SWEEP", "razorpay")
}

/// Every connected scope, for the scheduled sweep to visit (global, outside every scope).
pub fn registry_key() -> Key {
    Key {
        pk: "REGISTRY#razorpay".to_owned(),
        sk: "REGISTRY".to_owned(),
    }
}

/// An API key, found by its hash before the tenant is known (global, outside every scope).
pub fn api_key_key(hash: &str) -> Key {
    Key {
        pk: format!("APIKEY#{hash}"),
        sk: "APIKEY".to_owned(),
    }
}

/// A scope's API key by its public id → its hash (to list and revoke it).
pub fn api_key_ref_key(scope: &TenantScope, key_id: &str) -> Key {
    scope.key("APIKEY", key_id)
}

/// One webhook event of the log.
pub fn event_key(scope: &TenantScope, source: Source, event_id: &str) -> Key {
    scope.key(source.kind(), event_id)
}

/// The partition of a scope's event log in the `log` index.
pub fn event_log_partition(scope: &TenantScope) -> String {
    format!("{}#EVENTS", scope.prefix())
}

/// The partition of one invoice's events and sweep corrections in the `invoice` index.
pub fn invoice_partition(scope: &TenantScope, invoice_id: &str) -> String {
    format!("{}#INVOICE#{invoice_id}", scope.prefix())
}

const CORRECTION: &str = "CORRECTION";

/// A sweep correction: one per Razorpay object and the event the sweep applied for it.
pub fn correction_key(scope: &TenantScope, correction: &Correction) -> Key {
    let id = format!("{}#{}", correction.razorpay_id, correction.event_type);
    scope.key(CORRECTION, &id)
}

/// Why a job's message last failed, by the message's id, under the job's scope.
pub fn job_failure_key(scope: &TenantScope, message_id: &str) -> Key {
    scope.key("JOBFAIL", message_id)
}

/// A scope's refusals of one day (`YYYY-MM-DD`), all under one partition.
pub fn refusals_key(scope: &TenantScope, day: &str) -> Key {
    Key {
        pk: format!("{}#REFUSALS", scope.prefix()),
        sk: day.to_owned(),
    }
}

/// Reads the attributes of one stored item, naming what is missing.
struct Fields<'a> {
    item: &'a Item,
    kind: &'static str,
}

impl<'a> Fields<'a> {
    fn of<R: Record>(item: &'a Item) -> Fields<'a> {
        Fields {
            item,
            kind: R::NAME,
        }
    }

    fn malformed(&self, attribute: &'static str) -> StoreError {
        StoreError::Malformed {
            kind: self.kind,
            attribute,
        }
    }

    fn text(&self, name: &'static str) -> Result<String, StoreError> {
        self.opt_text(name).ok_or_else(|| self.malformed(name))
    }

    fn opt_text(&self, name: &'static str) -> Option<String> {
        self.item.str_attr(name).map(str::to_owned)
    }

    fn number(&self, name: &'static str) -> Result<u64, StoreError> {
        self.item.u64_attr(name).ok_or_else(|| self.malformed(name))
    }

    fn flag(&self, name: &'static str) -> bool {
        matches!(self.item.get(name), Some(AttributeValue::Bool(true)))
    }

    /// A JSON-encoded attribute; absent reads as the default.
    fn json<T: serde::de::DeserializeOwned + Default>(
        &self,
        name: &'static str,
    ) -> Result<T, StoreError> {
        match self.item.str_attr(name) {
            None => Ok(T::default()),
            Some(text) => serde_json::from_str(text).map_err(|_| self.malformed(name)),
        }
    }

    fn currency(&self) -> Result<Currency, StoreError> {
        Currency::from_code(&self.text(CURRENCY)?).map_err(|_| self.malformed(CURRENCY))
    }
}

/// Builds an item attribute by attribute; absent optional values are left out.
#[derive(Default)]
struct Attrs(Item);

impl Attrs {
    fn text(mut self, name: &str, value: impl Into<String>) -> Attrs {
        self.0.insert(name.to_owned(), s(value));
        self
    }

    fn opt_text(self, name: &str, value: Option<&String>) -> Attrs {
        match value {
            Some(value) => self.text(name, value.as_str()),
            None => self,
        }
    }

    fn number(mut self, name: &str, value: u64) -> Attrs {
        self.0.insert(name.to_owned(), n(value));
        self
    }

    fn opt_number(self, name: &str, value: Option<u64>) -> Attrs {
        match value {
            Some(value) => self.number(name, value),
            None => self,
        }
    }

    fn flag(mut self, name: &str, value: bool) -> Attrs {
        self.0.insert(name.to_owned(), AttributeValue::Bool(value));
        self
    }

    fn json(self, name: &str, value: &impl serde::Serialize) -> Attrs {
        let text = serde_json::to_string(value).unwrap_or_default();
        self.text(name, text)
    }

    fn done(self) -> Item {
        self.0
    }
}

/// The record under `key`, if there is one.
pub async fn read<R: Record>(table: &dyn Table, key: &Key) -> Result<Option<R>, StoreError> {
    table.get(key).await?.map(|i| R::from_item(&i)).transpose()
}

/// Creates `record` under `key` if the key is free.
pub async fn create<R: Record>(table: &dyn Table, key: &Key, record: &R) -> Result<(), StoreError> {
    table.create(key, record.to_item()).await
}

/// Puts `record` under `key`, replacing what was there.
pub async fn put<R: Record>(table: &dyn Table, key: &Key, record: &R) -> Result<(), StoreError> {
    table.put(key, record.to_item()).await
}

/// Creates a record once, remembering a mapping that may exist already (either way it exists
/// afterwards; the first one stays).
pub async fn create_once<R: Record>(
    table: &dyn Table,
    key: &Key,
    record: &R,
) -> Result<(), StoreError> {
    match create(table, key, record).await {
        Ok(()) | Err(StoreError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// What [`create_or_read`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Made<R> {
    /// This call created it.
    New(R),
    /// It existed: the stored record (which may differ from the one offered).
    Existing(R),
}

/// Creates `record` under `key`, or returns the record stored there.
pub async fn create_or_read<R: Record + Clone>(
    table: &dyn Table,
    key: &Key,
    record: &R,
) -> Result<Made<R>, StoreError> {
    match table.create(key, record.to_item()).await {
        Ok(()) => Ok(Made::New(record.clone())),
        Err(StoreError::AlreadyExists {
            existing: Some(item),
        }) => R::from_item(&item).map(Made::Existing),
        Err(StoreError::AlreadyExists { existing: None }) => read::<R>(table, key)
            .await?
            .map(Made::Existing)
            .ok_or(StoreError::ConditionFailed { current: None }),
        Err(e) => Err(e),
    }
}

impl Record for Payment {
    const NAME: &'static str = "payment";

    fn to_item(&self) -> Item {
        Attrs::default()
            .text(PAYMENT_ID, &self.id)
            .text(IDEMPOTENCY_KEY, &self.idempotency_key)
            .opt_text(PAYLOAD_HASH, self.payload_hash.as_ref())
            .text(INVOICE_ID, &self.invoice_id)
            .text(METHOD, self.method.as_str())
            .text(AMOUNT, self.amount.to_decimal_string())
            .number(AMOUNT_MINOR, self.amount.minor())
            .text(CURRENCY, self.amount.currency().code())
            .number(AMOUNT_PAID, self.amount_paid)
            .json(METADATA, &self.metadata)
            .text(STATUS, self.status.as_str())
            .number(VERSION, self.version)
            .opt_number(LOCK_EXPIRES_AT, self.lock_expires_at)
            .opt_text(GATEWAY_TRACKING_ID, self.gateway_tracking_id.as_ref())
            .opt_text(PAYMENT_URL, self.payment_url.as_ref())
            .opt_text(RAZORPAY_CUSTOMER_ID, self.razorpay_customer_id.as_ref())
            .opt_text(RAZORPAY_INVOICE_ID, self.razorpay_invoice_id.as_ref())
            .opt_text(RAZORPAY_PAYMENT_ID, self.razorpay_payment_id.as_ref())
            .json(ATTEMPTS, &self.attempts)
            .json(CAPTURES, &self.captures)
            .json(REFUNDS, &self.refunds)
            .json(DISPUTES, &self.disputes)
            .opt_text(FAILURE_REASON, self.failure_reason.as_ref())
            .opt_text(LAST_ERROR, self.last_error.as_ref())
            .opt_text(REVIEW, self.review.as_ref())
            .number(CREATED_AT, self.created_at)
            .number(UPDATED_AT, self.updated_at)
            .done()
    }

    fn from_item(item: &Item) -> Result<Payment, StoreError> {
        let f = Fields::of::<Payment>(item);
        let currency = f.currency()?;
        Ok(Payment {
            id: f.text(PAYMENT_ID)?,
            idempotency_key: f.text(IDEMPOTENCY_KEY)?,
            payload_hash: f.opt_text(PAYLOAD_HASH),
            invoice_id: f.text(INVOICE_ID)?,
            method: f
                .opt_text(METHOD)
                .map_or(Some(PaymentMethod::PaymentLink), |m| {
                    PaymentMethod::parse(&m)
                })
                .ok_or_else(|| f.malformed(METHOD))?,
            amount: Money::from_minor(f.number(AMOUNT_MINOR)?, currency),
            amount_paid: item.u64_attr(AMOUNT_PAID).unwrap_or(0),
            metadata: f.json::<BTreeMap<String, String>>(METADATA)?,
            status: PaymentStatus::parse(&f.text(STATUS)?).ok_or_else(|| f.malformed(STATUS))?,
            version: item.u64_attr(VERSION).unwrap_or(0),
            lock_expires_at: item.u64_attr(LOCK_EXPIRES_AT),
            gateway_tracking_id: f.opt_text(GATEWAY_TRACKING_ID),
            payment_url: f.opt_text(PAYMENT_URL),
            razorpay_customer_id: f.opt_text(RAZORPAY_CUSTOMER_ID),
            razorpay_invoice_id: f.opt_text(RAZORPAY_INVOICE_ID),
            razorpay_payment_id: f.opt_text(RAZORPAY_PAYMENT_ID),
            attempts: f.json(ATTEMPTS)?,
            captures: f.json(CAPTURES)?,
            refunds: f.json(REFUNDS)?,
            disputes: f.json(DISPUTES)?,
            failure_reason: f.opt_text(FAILURE_REASON),
            last_error: f.opt_text(LAST_ERROR),
            review: f.opt_text(REVIEW),
            created_at: item.u64_attr(CREATED_AT).unwrap_or(0),
            updated_at: item.u64_attr(UPDATED_AT).unwrap_or(0),
        })
    }
}

/// The conditional update a payment change is, against the payment as it was read.
pub fn payment_update(read: &Payment, change: &PaymentUpdate) -> Update {
    let (set, remove) = payment_attrs(change);
    Update {
        expect: payment_condition(read, change),
        set: set.done(),
        remove,
        bump_version: !matches!(
            change,
            PaymentUpdate::LockReleased
                | PaymentUpdate::Noted { .. }
                | PaymentUpdate::Flagged { .. }
        ),
    }
}

/// Held (INITIATED) changes expect INITIATED and the version read; state changes expect the
/// version (and a link's end, the status read too); a note only that the payment exists.
fn payment_condition(read: &Payment, change: &PaymentUpdate) -> Vec<Expect> {
    let status = match change {
        PaymentUpdate::LockTaken { .. }
        | PaymentUpdate::LockReleased
        | PaymentUpdate::LinkMade { .. }
        | PaymentUpdate::InvoiceAttached { .. } => Some(PaymentStatus::Initiated),
        PaymentUpdate::Failed { .. } => Some(read.status),
        PaymentUpdate::Counted { .. }
        | PaymentUpdate::AttemptRecorded { .. }
        | PaymentUpdate::RefundsChanged { .. }
        | PaymentUpdate::DisputesChanged { .. } => None,
        PaymentUpdate::Noted { .. } | PaymentUpdate::Flagged { .. } => {
            return vec![Expect::Exists];
        }
    };
    let mut expect: Vec<Expect> = status
        .map(|s| Expect::Status(s.as_str().to_owned()))
        .into_iter()
        .collect();
    expect.push(Expect::Version(read.version));
    expect
}

/// What a payment change sets, and what it removes (counting money removes `last_error`:
/// whatever stopped the money before is over).
fn payment_attrs(change: &PaymentUpdate) -> (Attrs, Vec<String>) {
    let attrs = Attrs::default();
    match change {
        PaymentUpdate::LockTaken { until_ms } => (attrs.number(LOCK_EXPIRES_AT, *until_ms), vec![]),
        PaymentUpdate::LockReleased => (attrs.number(LOCK_EXPIRES_AT, 0), vec![]),
        PaymentUpdate::LinkMade { .. } | PaymentUpdate::InvoiceAttached { .. } => (
            payable_attrs(attrs, change),
            vec![LOCK_EXPIRES_AT.to_owned()],
        ),
        PaymentUpdate::Counted {
            status,
            amount_paid,
            captures,
            review,
            at,
        } => (
            attrs
                .text(STATUS, status.as_str())
                .number(AMOUNT_PAID, *amount_paid)
                .json(CAPTURES, captures)
                .opt_text(REVIEW, review.as_ref())
                .number(UPDATED_AT, *at),
            vec![LAST_ERROR.to_owned()],
        ),
        PaymentUpdate::AttemptRecorded { attempts } => (attrs.json(ATTEMPTS, attempts), vec![]),
        PaymentUpdate::RefundsChanged { refunds, at } => {
            (attrs.json(REFUNDS, refunds).number(UPDATED_AT, *at), vec![])
        }
        PaymentUpdate::DisputesChanged {
            disputes,
            refunds,
            at,
        } => (
            attrs
                .json(DISPUTES, disputes)
                .json(REFUNDS, refunds)
                .number(UPDATED_AT, *at),
            vec![],
        ),
        PaymentUpdate::Failed { reason, at } => (
            attrs
                .text(STATUS, PaymentStatus::Failed.as_str())
                .text(FAILURE_REASON, reason)
                .number(UPDATED_AT, *at),
            vec![],
        ),
        PaymentUpdate::Noted { last_error } => (attrs.text(LAST_ERROR, last_error), vec![]),
        PaymentUpdate::Flagged { review } => (attrs.text(REVIEW, review), vec![]),
    }
}

/// A held payment made payable: PENDING, with its link or its synced Razorpay invoice.
fn payable_attrs(attrs: Attrs, change: &PaymentUpdate) -> Attrs {
    let attrs = attrs.text(STATUS, PaymentStatus::Pending.as_str());
    match change {
        PaymentUpdate::LinkMade {
            link_id,
            payment_url,
            razorpay_customer_id,
            razorpay_invoice_id,
            at,
        } => attrs
            .text(GATEWAY_TRACKING_ID, link_id)
            .text(PAYMENT_URL, payment_url)
            .text(RAZORPAY_CUSTOMER_ID, razorpay_customer_id)
            .opt_text(RAZORPAY_INVOICE_ID, razorpay_invoice_id.as_ref())
            .number(UPDATED_AT, *at),
        PaymentUpdate::InvoiceAttached {
            razorpay_invoice_id,
            payment_url,
            at,
        } => attrs
            .text(METHOD, PaymentMethod::RazorpayInvoice.as_str())
            .text(GATEWAY_TRACKING_ID, razorpay_invoice_id)
            .text(PAYMENT_URL, payment_url)
            .text(RAZORPAY_INVOICE_ID, razorpay_invoice_id)
            .number(UPDATED_AT, *at),
        _ => attrs,
    }
}

/// Writes a payment change (see [`payment_update`]); returns the payment as it is now.
pub async fn update_payment(
    table: &dyn Table,
    key: &Key,
    read: &Payment,
    change: &PaymentUpdate,
) -> Result<Payment, StoreError> {
    let item = table.update(key, &payment_update(read, change)).await?;
    Payment::from_item(&item)
}

/// Why a payment change read afresh on each try did not happen.
#[derive(Debug)]
pub enum ChangeError<E> {
    /// No payment at the key.
    Missing,
    /// The rule refused the change.
    Refused(E),
    /// Every try lost the race to a concurrent change.
    Busy,
    /// The store failed.
    Store(StoreError),
}

/// Reads the payment, asks `change` what to write (`None`: nothing), and writes it under the
/// condition of its rule; a lost race reads again, at most `tries` times. The payment as it is
/// now, and whether a change was written.
pub async fn change_payment<E>(
    table: &dyn Table,
    key: &Key,
    tries: u32,
    mut change: impl FnMut(&Payment) -> Result<Option<PaymentUpdate>, E>,
) -> Result<(Payment, bool), ChangeError<E>> {
    for _ in 0..tries {
        let payment = read::<Payment>(table, key)
            .await
            .map_err(ChangeError::Store)?
            .ok_or(ChangeError::Missing)?;
        let Some(update) = change(&payment).map_err(ChangeError::Refused)? else {
            return Ok((payment, false));
        };
        match update_payment(table, key, &payment, &update).await {
            Ok(after) => return Ok((after, true)),
            Err(StoreError::ConditionFailed { .. }) => continue,
            Err(e) => return Err(ChangeError::Store(e)),
        }
    }
    Err(ChangeError::Busy)
}

impl Record for InvoiceSync {
    const NAME: &'static str = "invoice sync";

    fn to_item(&self) -> Item {
        Attrs::default()
            .text(INVOICE_ID, &self.invoice_id)
            .text(STATUS, self.state.as_str())
            .number(VERSION, self.version)
            .opt_number(LEASE_UNTIL, self.lease_until)
            .number(ATTEMPTS, self.attempts)
            .number(ISSUE, self.issue)
            .opt_text(CUSTOMER_ID, self.customer_id.as_ref())
            .opt_text(RAZORPAY_INVOICE_ID, self.razorpay_invoice_id.as_ref())
            .opt_text(RAZORPAY_STATUS, self.razorpay_status.as_ref())
            .opt_text(PAYMENT_URL, self.payment_url.as_ref())
            .opt_text(FORM, self.form.as_ref())
            .opt_text(FORM_REASON, self.form_reason.as_ref())
            .opt_number(AMOUNT_MINOR, self.amount.map(Money::minor))
            .opt_text(
                CURRENCY,
                self.amount.map(|a| a.currency().code().to_owned()).as_ref(),
            )
            .opt_text(LAST_ERROR, self.last_error.as_ref())
            .opt_text(SKIP_REASON, self.skip_reason.as_ref())
            .opt_text(REVIEW, self.review.as_ref())
            .opt_text(CANCEL_REASON, self.cancel_reason.as_ref())
            .flag(METADATA_WRITTEN, self.metadata_written)
            .number(CREATED_AT, self.created_at)
            .number(UPDATED_AT, self.updated_at)
            .done()
    }

    /// A state this code does not know reads as FAILED: the next job looks the Razorpay
    /// invoice up before it creates one.
    fn from_item(item: &Item) -> Result<InvoiceSync, StoreError> {
        let f = Fields::of::<InvoiceSync>(item);
        let amount = match item.u64_attr(AMOUNT_MINOR) {
            Some(minor) => Some(Money::from_minor(minor, f.currency()?)),
            None => None,
        };
        Ok(InvoiceSync {
            invoice_id: f.text(INVOICE_ID)?,
            state: f
                .opt_text(STATUS)
                .and_then(|s| SyncState::parse(&s))
                .unwrap_or(SyncState::Failed),
            version: item.u64_attr(VERSION).unwrap_or(0),
            lease_until: item.u64_attr(LEASE_UNTIL),
            attempts: item.u64_attr(ATTEMPTS).unwrap_or(0),
            issue: item.u64_attr(ISSUE).unwrap_or(0),
            customer_id: f.opt_text(CUSTOMER_ID),
            razorpay_invoice_id: f.opt_text(RAZORPAY_INVOICE_ID),
            razorpay_status: f.opt_text(RAZORPAY_STATUS),
            payment_url: f.opt_text(PAYMENT_URL),
            form: f.opt_text(FORM),
            form_reason: f.opt_text(FORM_REASON),
            amount,
            last_error: f.opt_text(LAST_ERROR),
            skip_reason: f.opt_text(SKIP_REASON),
            review: f.opt_text(REVIEW),
            cancel_reason: f.opt_text(CANCEL_REASON),
            metadata_written: f.flag(METADATA_WRITTEN),
            created_at: item.u64_attr(CREATED_AT).unwrap_or(0),
            updated_at: item.u64_attr(UPDATED_AT).unwrap_or(0),
        })
    }
}

/// The update that turns the sync record `read` into `next`, only if it is still at the
/// version read: what `next` has is set, what it dropped is removed.
pub fn sync_update(read: &InvoiceSync, next: &InvoiceSync) -> Update {
    let mut set = next.to_item();
    set.remove(VERSION);
    let remove = read
        .to_item()
        .into_keys()
        .filter(|name| !set.contains_key(name) && name != VERSION)
        .collect();
    Update {
        expect: vec![Expect::Version(read.version)],
        set,
        remove,
        bump_version: true,
    }
}

/// Writes a sync change: creates the record when there was none (`read` is `None`), else
/// updates it if it has not changed since it was read. Returns the record as stored.
pub async fn save_sync(
    table: &dyn Table,
    key: &Key,
    read: Option<&InvoiceSync>,
    next: &InvoiceSync,
) -> Result<InvoiceSync, StoreError> {
    match read {
        None => create(table, key, next).await.map(|()| next.clone()),
        Some(read) => InvoiceSync::from_item(&table.update(key, &sync_update(read, next)).await?),
    }
}

impl Record for Collection {
    const NAME: &'static str = "collection";

    fn to_item(&self) -> Item {
        Attrs::default()
            .text(INVOICE_ID, &self.invoice_id)
            .text(CURRENCY, self.currency.code())
            .json(INSTRUMENTS, &self.instruments)
            .number(VERSION, self.version)
            .number(UPDATED_AT, self.updated_at)
            .done()
    }

    fn from_item(item: &Item) -> Result<Collection, StoreError> {
        let f = Fields::of::<Collection>(item);
        Ok(Collection {
            invoice_id: f.text(INVOICE_ID)?,
            currency: f.currency()?,
            instruments: f.json(INSTRUMENTS)?,
            version: item.u64_attr(VERSION).unwrap_or(0),
            updated_at: item.u64_attr(UPDATED_AT).unwrap_or(0),
        })
    }
}

impl Record for SweepState {
    const NAME: &'static str = "sweep state";

    fn to_item(&self) -> Item {
        Attrs::default()
            .opt_number(WATERMARK, self.watermark)
            .json(WATCHING, &self.watching)
            .json(REFUNDS_WATCHING, &self.refunds_watching)
            .number(MISSED, self.missed)
            .opt_number(LAST_MISSED_AT, self.last_missed_at)
            .opt_number(LAST_RUN_AT, self.last_run_at)
            .number(VERSION, self.version)
            .done()
    }

    fn from_item(item: &Item) -> Result<SweepState, StoreError> {
        let f = Fields::of::<SweepState>(item);
        Ok(SweepState {
            watermark: item.u64_attr(WATERMARK),
            watching: f.json(WATCHING)?,
            refunds_watching: f.json(REFUNDS_WATCHING)?,
            missed: item.u64_attr(MISSED).unwrap_or(0),
            last_missed_at: item.u64_attr(LAST_MISSED_AT),
            last_run_at: item.u64_attr(LAST_RUN_AT),
            version: item.u64_attr(VERSION).unwrap_or(0),
        })
    }
}

/// The connected scopes, as `tenant/environment`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registry {
    pub scopes: Vec<String>,
    pub version: u64,
}

impl Record for Registry {
    const NAME: &'static str = "registry";

    fn to_item(&self) -> Item {
        Attrs::default()
            .json(SCOPES, &self.scopes)
            .number(VERSION, self.version)
            .done()
    }

    fn from_item(item: &Item) -> Result<Registry, StoreError> {
        let f = Fields::of::<Registry>(item);
        Ok(Registry {
            scopes: f.json(SCOPES)?,
            version: item.u64_attr(VERSION).unwrap_or(0),
        })
    }
}

const SOURCE: &str = "source";
const EVENT_ID: &str = "event_id";
const BODY: &str = "body";
const REASON: &str = "reason";
const HISTORY: &str = "history";

impl Record for WebhookEvent {
    const NAME: &'static str = "webhook event";

    fn to_item(&self) -> Item {
        Attrs::default()
            .text(SOURCE, self.source.as_str())
            .text(EVENT_ID, &self.event_id)
            .text(event::EVENT_TYPE, &self.event_type)
            .number(event::RECEIVED_AT, self.received_at_ms)
            .text(BODY, &self.body)
            .text(event::OUTCOME, self.outcome.as_str())
            .opt_text(REASON, self.reason.as_ref())
            .opt_text(INVOICE_ID, self.invoice_id.as_ref())
            .json(HISTORY, &self.history)
            .number(VERSION, self.version)
            .done()
    }

    fn from_item(item: &Item) -> Result<WebhookEvent, StoreError> {
        let f = Fields::of::<WebhookEvent>(item);
        Ok(WebhookEvent {
            source: Source::parse(&f.text(SOURCE)?).ok_or_else(|| f.malformed(SOURCE))?,
            event_id: f.text(EVENT_ID)?,
            event_type: f.text(event::EVENT_TYPE)?,
            received_at_ms: f.number(event::RECEIVED_AT)?,
            body: f.text(BODY)?,
            outcome: Outcome::parse(&f.text(event::OUTCOME)?)
                .ok_or_else(|| f.malformed(event::OUTCOME))?,
            reason: f.opt_text(REASON),
            invoice_id: f.opt_text(INVOICE_ID),
            history: f.json(HISTORY)?,
            version: item.u64_attr(VERSION).unwrap_or(0),
        })
    }
}

/// The event as the log stores it: its record, its place in the scope's `log` index and,
/// once it knows its invoice, in the `invoice` index.
pub fn event_item(scope: &TenantScope, event: &WebhookEvent) -> Item {
    let mut item = event.to_item();
    item.insert(LOG_PK.to_owned(), s(event_log_partition(scope)));
    item.insert(LOG_SK.to_owned(), s(log_position(event)));
    item.extend(invoice_place(scope, event));
    item
}

/// An event's place in the `invoice` index (nothing while its invoice is not known).
fn invoice_place(scope: &TenantScope, event: &WebhookEvent) -> Item {
    let Some(invoice_id) = &event.invoice_id else {
        return Item::new();
    };
    Item::from([
        (
            INVOICE_PK.to_owned(),
            s(invoice_partition(scope, invoice_id)),
        ),
        (INVOICE_SK.to_owned(), s(log_position(event))),
    ])
}

/// The settled event written over the one read (at the version read, bumped).
pub fn event_settled(scope: &TenantScope, settled: &WebhookEvent) -> Update {
    let item = settled.to_item();
    let keep = [event::OUTCOME, REASON, INVOICE_ID, HISTORY];
    let mut set: Item = item
        .into_iter()
        .filter(|(name, _)| keep.contains(&name.as_str()))
        .collect();
    set.extend(invoice_place(scope, settled));
    set.insert(STATUS.to_owned(), s(claim::COMPLETED));
    let mut remove = vec![claim::LOCK_EXPIRES_AT.to_owned()];
    if settled.reason.is_none() {
        remove.push(REASON.to_owned());
    }
    Update {
        expect: vec![Expect::Version(settled.version)],
        set,
        remove,
        bump_version: true,
    }
}

const RAZORPAY_ID: &str = "razorpay_id";
const AT: &str = "at";

impl Record for Correction {
    const NAME: &'static str = "sweep correction";

    fn to_item(&self) -> Item {
        Attrs::default()
            .text(RAZORPAY_ID, &self.razorpay_id)
            .text(event::EVENT_TYPE, &self.event_type)
            .text(event::OUTCOME, &self.outcome)
            .number(AT, self.at_ms)
            .done()
    }

    fn from_item(item: &Item) -> Result<Correction, StoreError> {
        let f = Fields::of::<Correction>(item);
        Ok(Correction {
            razorpay_id: f.text(RAZORPAY_ID)?,
            event_type: f.text(event::EVENT_TYPE)?,
            outcome: f.text(event::OUTCOME)?,
            at_ms: f.number(AT)?,
        })
    }
}

/// A sweep correction as stored: its record, in its invoice's place of the `invoice` index,
/// kept until `expires_at` (epoch seconds).
pub fn correction_item(
    scope: &TenantScope,
    invoice_id: &str,
    correction: &Correction,
    expires_at: u64,
) -> Item {
    let mut item = correction.to_item();
    let place = format!(
        "{:015}#{CORRECTION}#{}",
        correction.at_ms, correction.razorpay_id
    );
    item.insert(
        INVOICE_PK.to_owned(),
        s(invoice_partition(scope, invoice_id)),
    );
    item.insert(INVOICE_SK.to_owned(), s(place));
    item.insert(EXPIRES_AT.to_owned(), n(expires_at));
    item
}

/// What an item of the `invoice` index is: an event or a sweep correction.
pub enum AboutInvoice {
    Event(WebhookEvent),
    Correction(Correction),
}

/// An item the `invoice` index returned, by the kind its key names.
pub fn about_invoice(item: &Item) -> Result<AboutInvoice, StoreError> {
    if item.str_attr(SK) == Some(CORRECTION) {
        return Correction::from_item(item).map(AboutInvoice::Correction);
    }
    WebhookEvent::from_item(item).map(AboutInvoice::Event)
}

const MESSAGE_ID: &str = "message_id";
const KIND: &str = "kind";
const RECEIVES: &str = "receives";

impl Record for JobFailure {
    const NAME: &'static str = "job failure";

    fn to_item(&self) -> Item {
        Attrs::default()
            .text(MESSAGE_ID, &self.message_id)
            .text(KIND, &self.kind)
            .text(REASON, &self.reason)
            .number(RECEIVES, u64::from(self.receives))
            .number(AT, self.at_ms)
            .done()
    }

    fn from_item(item: &Item) -> Result<JobFailure, StoreError> {
        let f = Fields::of::<JobFailure>(item);
        Ok(JobFailure {
            message_id: f.text(MESSAGE_ID)?,
            kind: f.text(KIND)?,
            reason: f.text(REASON)?,
            receives: u32::try_from(f.number(RECEIVES)?).unwrap_or(u32::MAX),
            at_ms: f.number(AT)?,
        })
    }
}

/// A job failure as stored: kept until `expires_at` (epoch seconds; the DLQ's retention).
pub fn job_failure_item(failure: &JobFailure, expires_at: u64) -> Item {
    let mut item = failure.to_item();
    item.insert(EXPIRES_AT.to_owned(), n(expires_at));
    item
}

/// The refusal counts of one stored day.
pub fn refusal_counts(item: &Item) -> Vec<(Refused, u64)> {
    Refused::ALL
        .into_iter()
        .filter_map(|r| item.u64_attr(r.as_str()).map(|count| (r, count)))
        .collect()
}

/// Writes `next` where `read` was: creates it at version 1 when there was none, else replaces
/// it if it is still at the version read (bumped). Returns it as stored.
pub async fn save_versioned<R: Record + Clone>(
    table: &dyn Table,
    key: &Key,
    read_version: Option<u64>,
    next: &R,
) -> Result<R, StoreError> {
    let Some(version) = read_version else {
        let mut first = next.to_item();
        first.insert(VERSION.to_owned(), n(1));
        table.create(key, first.clone()).await?;
        return R::from_item(&first);
    };
    let mut set = next.to_item();
    set.remove(VERSION);
    let update = Update {
        expect: vec![Expect::Version(version)],
        set,
        remove: vec![],
        bump_version: true,
    };
    R::from_item(&table.update(key, &update).await?)
}

/// Writes the collection `next`: creates it when there was none (`read` is `None`), else
/// replaces its instruments if it is still at the version read. Returns it as stored.
pub async fn save_collection(
    table: &dyn Table,
    key: &Key,
    read: Option<&Collection>,
    next: &Collection,
) -> Result<Collection, StoreError> {
    save_versioned(table, key, read.map(|r| r.version), next).await
}

/// A Razorpay invoice's Flexprice invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceRef {
    pub invoice_id: String,
}

impl Record for InvoiceRef {
    const NAME: &'static str = "Razorpay invoice mapping";

    fn to_item(&self) -> Item {
        Attrs::default().text(INVOICE_ID, &self.invoice_id).done()
    }

    fn from_item(item: &Item) -> Result<InvoiceRef, StoreError> {
        Ok(InvoiceRef {
            invoice_id: Fields::of::<InvoiceRef>(item).text(INVOICE_ID)?,
        })
    }
}

/// A mapping to one of our payments (from a Razorpay link or order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRef {
    pub payment_id: String,
}

impl Record for PaymentRef {
    const NAME: &'static str = "payment mapping";

    fn to_item(&self) -> Item {
        Attrs::default().text(PAYMENT_ID, &self.payment_id).done()
    }

    fn from_item(item: &Item) -> Result<PaymentRef, StoreError> {
        Ok(PaymentRef {
            payment_id: Fields::of::<PaymentRef>(item).text(PAYMENT_ID)?,
        })
    }
}

/// A Razorpay payment counted on our payment, in subunits: its existence is the proof that
/// it was counted, so it is created once, in the same transaction as the count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountedPayment {
    pub payment_id: String,
    pub amount_minor: u64,
    /// Counted without a Flexprice record: Flexprice refused it (its invoice was voided).
    pub unrecorded: bool,
}

impl Record for CountedPayment {
    const NAME: &'static str = "counted Razorpay payment";

    fn to_item(&self) -> Item {
        Attrs::default()
            .text(PAYMENT_ID, &self.payment_id)
            .number(AMOUNT_MINOR, self.amount_minor)
            .flag(UNRECORDED, self.unrecorded)
            .done()
    }

    fn from_item(item: &Item) -> Result<CountedPayment, StoreError> {
        let f = Fields::of::<CountedPayment>(item);
        Ok(CountedPayment {
            payment_id: f.text(PAYMENT_ID)?,
            amount_minor: f.number(AMOUNT_MINOR)?,
            unrecorded: f.flag(UNRECORDED),
        })
    }
}

/// A Flexprice customer's Razorpay customer (stored under the Flexprice id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerMapping {
    pub razorpay_customer_id: String,
}

impl Record for CustomerMapping {
    const NAME: &'static str = "customer mapping";

    fn to_item(&self) -> Item {
        Attrs::default()
            .text(RAZORPAY_CUSTOMER_ID, &self.razorpay_customer_id)
            .done()
    }

    fn from_item(item: &Item) -> Result<CustomerMapping, StoreError> {
        Ok(CustomerMapping {
            razorpay_customer_id: Fields::of::<CustomerMapping>(item).text(RAZORPAY_CUSTOMER_ID)?,
        })
    }
}

/// A Razorpay customer's Flexprice customer (stored under the Razorpay id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RazorpayCustomerMapping {
    pub flexprice_customer_id: String,
}

impl Record for RazorpayCustomerMapping {
    const NAME: &'static str = "Razorpay customer mapping";

    fn to_item(&self) -> Item {
        Attrs::default()
            .text(FLEXPRICE_CUSTOMER_ID, &self.flexprice_customer_id)
            .done()
    }

    fn from_item(item: &Item) -> Result<RazorpayCustomerMapping, StoreError> {
        Ok(RazorpayCustomerMapping {
            flexprice_customer_id: Fields::of::<RazorpayCustomerMapping>(item)
                .text(FLEXPRICE_CUSTOMER_ID)?,
        })
    }
}

/// A tenant/environment's Razorpay connection settings (its secrets live in Secrets Manager).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSettings {
    pub active: bool,
    pub key_id: String,
    pub invoice_outbound_sync: bool,
    /// When set, webhooks must carry this `account_id`.
    pub razorpay_account_id: Option<String>,
    /// Epoch seconds.
    pub updated_at: u64,
}

impl ConnectionSettings {
    /// One per scope: `CONNECTION#razorpay`.
    pub fn key(scope: &TenantScope) -> Key {
        scope.key("CONNECTION", "razorpay")
    }
}

impl Record for ConnectionSettings {
    const NAME: &'static str = "connection";

    fn to_item(&self) -> Item {
        Attrs::default()
            .text(STATUS, if self.active { ACTIVE } else { "INACTIVE" })
            .text(KEY_ID, &self.key_id)
            .flag(INVOICE_OUTBOUND_SYNC, self.invoice_outbound_sync)
            .number(UPDATED_AT, self.updated_at)
            .opt_text(RAZORPAY_ACCOUNT_ID, self.razorpay_account_id.as_ref())
            .done()
    }

    /// Absent attributes read as off / empty.
    fn from_item(item: &Item) -> Result<ConnectionSettings, StoreError> {
        let f = Fields::of::<ConnectionSettings>(item);
        Ok(ConnectionSettings {
            active: item.str_attr(STATUS) == Some(ACTIVE),
            key_id: f.opt_text(KEY_ID).unwrap_or_default(),
            invoice_outbound_sync: f.flag(INVOICE_OUTBOUND_SYNC),
            razorpay_account_id: f.opt_text(RAZORPAY_ACCOUNT_ID),
            updated_at: item.u64_attr(UPDATED_AT).unwrap_or(0),
        })
    }
}

/// An API key (stored under its hash): the scope it addresses and whether it still does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub tenant_id: String,
    pub environment_id: String,
    pub active: bool,
    pub key_id: String,
    pub label: String,
    pub created_at: u64,
}

impl Record for ApiKey {
    const NAME: &'static str = "API key";

    fn to_item(&self) -> Item {
        Attrs::default()
            .text(TENANT_ID, &self.tenant_id)
            .text(ENVIRONMENT_ID, &self.environment_id)
            .text(STATUS, active_text(self.active))
            .text(KEY_ID, &self.key_id)
            .text(LABEL, &self.label)
            .number(CREATED_AT, self.created_at)
            .done()
    }

    fn from_item(item: &Item) -> Result<ApiKey, StoreError> {
        let f = Fields::of::<ApiKey>(item);
        Ok(ApiKey {
            tenant_id: f.text(TENANT_ID)?,
            environment_id: f.text(ENVIRONMENT_ID)?,
            active: item.str_attr(STATUS) == Some(ACTIVE),
            key_id: f.opt_text(KEY_ID).unwrap_or_default(),
            label: f.opt_text(LABEL).unwrap_or_default(),
            created_at: item.u64_attr(CREATED_AT).unwrap_or(0),
        })
    }
}

/// A scope's reference to one of its API keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRef {
    pub hash: String,
    pub active: bool,
    pub label: String,
    pub created_at: u64,
}

impl Record for ApiKeyRef {
    const NAME: &'static str = "API key reference";

    fn to_item(&self) -> Item {
        Attrs::default()
            .text(HASH, &self.hash)
            .text(STATUS, active_text(self.active))
            .text(LABEL, &self.label)
            .number(CREATED_AT, self.created_at)
            .done()
    }

    fn from_item(item: &Item) -> Result<ApiKeyRef, StoreError> {
        let f = Fields::of::<ApiKeyRef>(item);
        Ok(ApiKeyRef {
            hash: f.text(HASH)?,
            active: item.str_attr(STATUS) == Some(ACTIVE),
            label: f.opt_text(LABEL).unwrap_or_default(),
            created_at: item.u64_attr(CREATED_AT).unwrap_or(0),
        })
    }
}

fn active_text(active: bool) -> &'static str {
    if active { ACTIVE } else { "REVOKED" }
}

/// Revokes an API key or its reference (either must exist).
pub fn api_key_revoked() -> Update {
    Update {
        expect: vec![Expect::Exists],
        set: Attrs::default().text(STATUS, active_text(false)).done(),
        ..Update::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::payment::Attempt;

    #[test]
    fn connection_settings_round_trip_through_their_item() {
        let settings = ConnectionSettings {
            active: true,
            key_id: "rzp_test_abc".into(),
            invoice_outbound_sync: true,
            razorpay_account_id: Some("acc_1".into()),
            updated_at: 1_764_000_000,
        };
        let item = settings.to_item();
        assert_eq!(item.str_attr("status"), Some("ACTIVE"));
        assert_eq!(ConnectionSettings::from_item(&item).unwrap(), settings);
        let bare = ConnectionSettings {
            razorpay_account_id: None,
            invoice_outbound_sync: false,
            ..settings
        };
        assert_eq!(
            ConnectionSettings::from_item(&bare.to_item()).unwrap(),
            bare
        );
        assert!(!bare.to_item().contains_key("razorpay_account_id"));
    }

    fn payment() -> Payment {
        let inr = Currency::from_code("INR").unwrap();
        let mut payment = Payment::new(
            "fxp_1".into(),
            "key-1".into(),
            "inv_1".into(),
            Money::from_minor(100_050, inr),
            1_764_000_000,
        );
        payment.metadata.insert("order".into(), "42".into());
        payment.attempts.push(Attempt {
            razorpay_payment_id: "pay_1".into(),
            status: "FAILED".into(),
            error_code: Some("BAD_REQUEST_ERROR".into()),
            error_description: None,
            error_reason: Some("payment_failed".into()),
            at: 1_764_000_100,
        });
        payment.lock_expires_at = Some(1_764_000_020_000);
        payment
    }

    #[test]
    fn a_payment_round_trips_through_its_item_with_exact_money() {
        let payment = payment();
        let item = payment.to_item();
        assert_eq!(item.str_attr("amount"), Some("1000.50"));
        assert_eq!(item.u64_attr("amount_minor"), Some(100_050));
        assert_eq!(Payment::from_item(&item).unwrap(), payment);
    }

    #[test]
    fn a_payment_missing_what_it_needs_is_malformed_naming_the_attribute() {
        let mut item = payment().to_item();
        item.remove("currency");
        let err = Payment::from_item(&item).unwrap_err();
        assert_eq!(err.to_string(), "a stored payment has no valid currency");
        let mut item = payment().to_item();
        item.insert("status".into(), s("PAID"));
        assert!(matches!(
            Payment::from_item(&item),
            Err(StoreError::Malformed {
                attribute: "status",
                ..
            })
        ));
    }

    #[test]
    fn each_payment_change_carries_the_condition_of_its_rule() {
        let read = Payment {
            version: 3,
            status: PaymentStatus::Pending,
            ..payment()
        };
        let held = [Expect::Status("INITIATED".into()), Expect::Version(3)];
        let taken = payment_update(&read, &PaymentUpdate::LockTaken { until_ms: 9 });
        assert_eq!(taken.expect, held);
        assert!(taken.bump_version);
        let made = payment_update(
            &read,
            &PaymentUpdate::LinkMade {
                link_id: "plink_1".into(),
                payment_url: "https://rzp.io/i/x".into(),
                razorpay_customer_id: "cust_1".into(),
                razorpay_invoice_id: None,
                at: 5,
            },
        );
        assert_eq!(made.expect, held);
        assert_eq!(made.remove, ["lock_expires_at"]);
        assert_eq!(made.set.str_attr("status"), Some("PENDING"));
        let failed = payment_update(
            &read,
            &PaymentUpdate::Failed {
                reason: "expired".into(),
                at: 5,
            },
        );
        assert_eq!(
            failed.expect,
            [Expect::Status("PENDING".into()), Expect::Version(3)]
        );
        let noted = payment_update(
            &read,
            &PaymentUpdate::Noted {
                last_error: "refused".into(),
            },
        );
        assert_eq!(noted.expect, [Expect::Exists]);
        assert!(!noted.bump_version);
    }
}
