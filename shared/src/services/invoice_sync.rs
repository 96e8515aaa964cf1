//! Invoice outbound sync (`docs/architecture.md` §3.2, "sync an invoice"): exactly one
//! Razorpay invoice per Flexprice invoice, whose total is what the customer still owes.
//!
//! The mapping item `INVOICE#{flexprice id}` is the claim and the record. A sync creates it
//! SYNCING with a lease (a conditional write), so concurrent or repeated jobs cannot both
//! create; one that finds a live lease is retried later, one that finds an expired lease takes
//! the invoice over and first looks the Razorpay invoice up by `receipt` (the Flexprice id),
//! because the failed attempt may have created it. SYNCED is written together with the reverse
//! mapping `RZP_INVOICE#{razorpay id}` in one transaction.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use serde_json::{Value, json};

use crate::adapters::aws::Adapters;
use crate::adapters::aws::records::{self, InvoiceRef, Record};
use crate::adapters::aws::store::{StoreError, Write};
use crate::adapters::flexprice::FlexpriceError;
use crate::adapters::flexprice::wire::Invoice;
use crate::adapters::razorpay::RazorpayError;
use crate::adapters::razorpay::wire::{
    Invoice as RazorpayInvoice, InvoiceRequest, InvoiceStatus, LineItemRequest, Notes,
};
use crate::domain::error::Classify;
use crate::domain::error::{Failure, Refusal};
use crate::domain::ids::FlexpriceId;
use crate::domain::instruments::{Instrument, InstrumentChange, InstrumentKind, Which};
use crate::domain::invoice::payable;
use crate::domain::keys::{Key, TenantScope};
use crate::domain::money::{Currency, Money};
use crate::domain::sync::{
    Adoption, CancelStart, Found, InvoiceSync, MadeInvoice, SyncChange, SyncStart, adoption,
    on_cancel, on_sync, receipt, records_failure,
};
use crate::services::collection;
use crate::services::connection::{self, Clients};
use crate::services::customers;

/// How long one sync may hold an invoice before another may take it over.
const LEASE_MS: u64 = 60_000;
/// Razorpay's cap on line items.
pub const MAX_LINES: usize = 50;

/// How the Razorpay invoice expresses the amount owed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Form {
    /// The Flexprice lines (and tax) one for one.
    Itemized,
    /// One line "Balance of invoice <number>" for the exact amount remaining, and why.
    Balance { reason: String },
}

impl Form {
    fn name(&self) -> &'static str {
        match self {
            Form::Itemized => "itemized",
            Form::Balance { .. } => "balance",
        }
    }
}

/// The Razorpay line items for what `invoice` still owes. Their total always equals the amount
/// remaining to the subunit: itemized when the Flexprice lines and tax add up to it exactly
/// (no discount, credit or earlier payment, which Razorpay cannot express as negative lines),
/// every line is exact and collectable and there are at most [`MAX_LINES`]; otherwise one
/// balance line. Only the amount remaining has to be exact: a line or tax that is not (more
/// digits than the currency has, negative, unreadable) makes the balance form, never a failure.
pub fn razorpay_lines(
    invoice: &Invoice,
    currency: Currency,
    remaining: Money,
) -> (Vec<LineItemRequest>, Form) {
    let reason = match itemize(invoice, currency) {
        Ok(itemized) => match itemized.refusal(remaining) {
            None => return (itemized.lines, Form::Itemized),
            Some(reason) => reason,
        },
        Err(reason) => reason,
    };
    let number = invoice.invoice_number.as_deref().unwrap_or(&invoice.id);
    let balance = line_item(format!("Balance of invoice {number}"), None, remaining);
    (vec![balance], Form::Balance { reason })
}

fn line_item(name: String, description: Option<String>, amount: Money) -> LineItemRequest {
    LineItemRequest {
        name,
        description,
        amount: amount.minor(),
        currency: amount.currency().code().to_owned(),
        quantity: 1,
    }
}

/// The Flexprice lines and tax, one Razorpay line each.
struct Itemized {
    lines: Vec<LineItemRequest>,
    total: Money,
    /// The first line Razorpay would not take as a line, if any.
    uncollectable: Option<String>,
}

/// The lines and tax as Razorpay lines; `Err` says which one cannot be sent exactly.
fn itemize(invoice: &Invoice, currency: Currency) -> Result<Itemized, String> {
    let mut itemized = Itemized {
        lines: Vec::new(),
        total: Money::from_minor(0, currency),
        uncollectable: None,
    };
    for item in &invoice.line_items {
        let amount = item.amount(currency).map_err(|e| {
            let name = item.display_name.as_deref().unwrap_or("?");
            format!("line {name} cannot be sent exactly: {e}")
        })?;
        if amount.is_zero() {
            continue;
        }
        if itemized.uncollectable.is_none() && amount.check_collectable().is_err() {
            itemized.uncollectable = Some(format!(
                "line {} ({}) is below what Razorpay accepts as a line",
                item.display_name.as_deref().unwrap_or("?"),
                amount.to_decimal_string()
            ));
        }
        let name = item
            .display_name
            .clone()
            .or_else(|| item.plan_display_name.clone())
            .unwrap_or_else(|| "Subscription".to_owned());
        let description = match item.entity_type.as_deref() {
            Some("plan") => "Subscription plan",
            Some("addon") => "Add-on",
            _ => "Service",
        };
        itemized.add(
            line_item(name, Some(description.to_owned()), amount),
            amount,
        );
    }
    let tax = Money::parse(&invoice.total_tax, currency)
        .map_err(|e| format!("the tax cannot be sent exactly: {e}"))?;
    if !tax.is_zero() {
        itemized.add(line_item("Tax".to_owned(), None, tax), tax);
    }
    Ok(itemized)
}

impl Itemized {
    fn add(&mut self, line: LineItemRequest, amount: Money) {
        self.total = self.total.checked_add(amount).unwrap_or(self.total);
        self.lines.push(line);
    }

    /// Why these lines cannot stand for `remaining` (then one balance line does), if so.
    fn refusal(&self, remaining: Money) -> Option<String> {
        if let Some(reason) = &self.uncollectable {
            return Some(reason.clone());
        }
        if self.lines.len() > MAX_LINES {
            return Some(format!(
                "{} lines exceed Razorpay's {MAX_LINES}",
                self.lines.len()
            ));
        }
        (self.total != remaining).then(|| {
            format!(
                "the lines and tax add up to {}, the amount remaining is {} (discounts, credits or earlier payments)",
                self.total.to_decimal_string(),
                remaining.to_decimal_string()
            )
        })
    }
}

/// A due date (RFC 3339) as epoch seconds; unreadable reads as none.
fn due_secs(due_date: Option<&str>) -> Option<u64> {
    let due = aws_smithy_types::DateTime::from_str(
        due_date?,
        aws_smithy_types::date_time::Format::DateTime,
    )
    .ok()?
    .secs();
    u64::try_from(due).ok()
}

/// What a sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Synced {
    /// A Razorpay invoice was created (or found after an unknown outcome) and mapped.
    Created { razorpay_invoice_id: String },
    /// The invoice was synced before.
    AlreadySynced { razorpay_invoice_id: String },
    /// Nothing to do, and why (recorded on the mapping).
    Skipped { reason: String },
}

/// What a cancel did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancelled {
    Cancelled,
    NothingToCancel,
    /// Paid in Razorpay: flagged for review, not cancelled.
    FlaggedForReview,
}

fn found(current: Option<&InvoiceSync>, adapters: &Adapters) -> Option<Found> {
    current.map(|sync| sync.found(adapters.clock.now_millis()))
}

/// Records a skip, unless the mapping shows more than a skip or failure already.
async fn skip(
    adapters: &Adapters,
    at: &SyncAt<'_>,
    reason: String,
    invoice: Option<&Invoice>,
) -> Result<Synced, Failure> {
    tracing::info!(%reason, "invoice sync skipped");
    let change = SyncChange::Skipped {
        reason: reason.clone(),
        customer_id: invoice.map(|i| i.customer_id.clone()),
    };
    at.write(adapters, change).await?;
    Ok(Synced::Skipped { reason })
}

/// An invoice's sync record as a job read it: where it is and what it was.
struct SyncAt<'a> {
    key: &'a Key,
    invoice_id: &'a str,
    current: Option<&'a InvoiceSync>,
}

impl<'a> SyncAt<'a> {
    /// An existing record, under `key`.
    fn of(key: &'a Key, sync: &'a InvoiceSync) -> SyncAt<'a> {
        SyncAt {
            key,
            invoice_id: &sync.invoice_id,
            current: Some(sync),
        }
    }

    /// Writes `change` onto the record: creates it when there was none, otherwise updates it
    /// if it has not changed since it was read. A lost race is retryable: the redelivery
    /// decides again from what won.
    async fn write(&self, adapters: &Adapters, change: SyncChange) -> Result<InvoiceSync, Failure> {
        let now = adapters.clock.now_secs();
        let next = match self.current {
            None => InvoiceSync::first(self.invoice_id, change, now),
            Some(sync) => sync.clone().with(change, now),
        };
        records::save_sync(adapters.store.as_ref(), self.key, self.current, &next)
            .await
            .map_err(|e| match e {
                StoreError::AlreadyExists { .. } | StoreError::ConditionFailed { .. } => {
                    Failure::retryable("the invoice's sync record changed meanwhile")
                }
                other => Failure::retryable(other),
            })
    }
}

fn failure_from_razorpay(e: RazorpayError) -> Failure {
    if e.is_retryable() {
        Failure::retryable(format!("Razorpay: {e}"))
    } else {
        Failure::permanent(format!("Razorpay refused: {e}"))
    }
}

fn failure_from_flexprice(e: FlexpriceError) -> Failure {
    if e.is_retryable() {
        Failure::retryable(format!("Flexprice: {e}"))
    } else {
        Failure::permanent(format!("Flexprice refused: {e}"))
    }
}

/// The sync job: one Razorpay invoice for a finalized Flexprice invoice. A permanent failure
/// is recorded on the mapping (FAILED, `last_error`) so that it shows in the sync status.
pub async fn sync(
    adapters: &Adapters,
    scope: &TenantScope,
    invoice_id: &str,
) -> Result<Synced, Failure> {
    let key = records::sync_key(scope, invoice_id);
    let result = sync_once(adapters, scope, invoice_id, &key).await;
    if let Err(Failure::Permanent(reason)) = &result {
        let current = records::read::<InvoiceSync>(adapters.store.as_ref(), &key)
            .await
            .ok()
            .flatten();
        if records_failure(current.as_ref().map(|c| c.state)) {
            if let Some(sync) = &current {
                let why = format!("the sync failed: {reason}");
                free_reservation(adapters, scope, sync, &why).await;
            }
            let at = SyncAt {
                key: &key,
                invoice_id,
                current: current.as_ref(),
            };
            let change = SyncChange::Failed {
                reason: reason.clone(),
            };
            if let Err(e) = at.write(adapters, change).await {
                tracing::warn!(error = %e, "could not record the sync failure");
            }
        }
    }
    result
}

/// A sync that made no Razorpay invoice (or one that cannot be used): its reservation is
/// freed.
async fn free_reservation(
    adapters: &Adapters,
    scope: &TenantScope,
    sync: &InvoiceSync,
    reason: &str,
) {
    let receipt = sync.receipt();
    let which = Which::Key(InstrumentKind::RazorpayInvoice, &receipt);
    let closed = InstrumentChange::Closed {
        reason: reason.to_owned(),
    };
    let invoice_id = &sync.invoice_id;
    if let Err(e) = collection::change(adapters, scope, invoice_id, &which, &closed).await {
        tracing::warn!(error = %e, "could not free the sync's reservation");
    }
}

/// One sync attempt, as its steps: what the record allows, whether the invoice can be synced,
/// the claim, the Razorpay invoice, the record of it.
async fn sync_once(
    adapters: &Adapters,
    scope: &TenantScope,
    invoice_id: &str,
    key: &Key,
) -> Result<Synced, Failure> {
    let current = records::read::<InvoiceSync>(adapters.store.as_ref(), key)
        .await
        .map_err(Failure::retryable)?;
    let at = SyncAt {
        key,
        invoice_id,
        current: current.as_ref(),
    };
    let clients = connection::job_clients(adapters, scope).await?;
    let begin = match start(adapters, scope, &clients, &at).await? {
        ControlFlow::Continue(begin) => begin,
        ControlFlow::Break(done) => return Ok(done),
    };
    let issue = current.as_ref().map_or(0, |c| c.issue) + u64::from(begin == Begin::Reissue);
    let receipt = receipt(invoice_id, issue);
    let (invoice, remaining) = match eligible(adapters, scope, &clients, &at).await? {
        ControlFlow::Continue(found) => found,
        ControlFlow::Break(done) => return Ok(done),
    };
    let asked = match to_ask(adapters, scope, &at, &invoice, &receipt, remaining).await? {
        ControlFlow::Continue(asked) => asked,
        ControlFlow::Break(done) => return Ok(done),
    };
    let claimed = claim(adapters, &at, &invoice, begin).await?;
    reserve(adapters, scope, &claimed, remaining, asked).await?;
    let created = create(adapters, scope, &clients, &invoice, asked, &claimed, begin)
        .await
        .and_then(|done| {
            if crate::failpoint::hit(crate::failpoint::AFTER_RAZORPAY_INVOICE_CREATE) {
                Err(Failure::retryable(
                    "failure point after the Razorpay create",
                ))
            } else {
                Ok(done)
            }
        });
    match created {
        Ok((razorpay, form)) => {
            let made = made_invoice(&razorpay, &form, asked);
            let stored = record_synced(adapters, scope, key, &claimed, made).await?;
            open_synced(adapters, scope, &stored).await?;
            tracing::info!(razorpay_invoice_id = %razorpay.id, form = form.name(), "invoice synced to Razorpay");
            write_metadata(adapters, &clients, key, &stored).await?;
            Ok(Synced::Created {
                razorpay_invoice_id: razorpay.id,
            })
        }
        Err(Failure::Retryable(reason)) => {
            release_lease(adapters, key, &claimed, &reason).await;
            Err(Failure::Retryable(reason))
        }
        Err(permanent) => Err(permanent),
    }
}

/// How a sync goes on from what its record allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Begin {
    /// Nothing was made for this receipt yet.
    Fresh,
    /// An earlier attempt may have created the Razorpay invoice: look it up by receipt first.
    Resumed,
    /// The synced Razorpay invoice closed: the next receipt, for what is owed now.
    Reissue,
}

/// What the sync record allows: go on, or stop here with what is already true.
async fn start(
    adapters: &Adapters,
    scope: &TenantScope,
    clients: &Clients,
    at: &SyncAt<'_>,
) -> Result<ControlFlow<Synced, Begin>, Failure> {
    let found = found(at.current, adapters);
    match (on_sync(found), at.current) {
        (SyncStart::AlreadySynced, Some(sync)) => {
            open_synced(adapters, scope, sync).await?;
            write_metadata(adapters, clients, at.key, sync).await?;
            Ok(ControlFlow::Break(Synced::AlreadySynced {
                razorpay_invoice_id: sync.razorpay_invoice_id.clone().unwrap_or_default(),
            }))
        }
        (SyncStart::Closed, _) => Ok(ControlFlow::Break(Synced::Skipped {
            reason: format!(
                "the invoice's sync is {}",
                found.map_or("", |f| f.state.as_str())
            ),
        })),
        (SyncStart::Busy, _) => Err(Failure::retryable(
            "another sync of this invoice is in progress",
        )),
        (SyncStart::Begin { resumed: true }, _) => Ok(ControlFlow::Continue(Begin::Resumed)),
        (SyncStart::Reissue, _) => Ok(ControlFlow::Continue(Begin::Reissue)),
        (SyncStart::Begin { resumed: false } | SyncStart::AlreadySynced, _) => {
            Ok(ControlFlow::Continue(Begin::Fresh))
        }
    }
}

/// Why a Flexprice invoice cannot become a Razorpay invoice, if it cannot.
fn unsyncable(invoice: &Invoice, remaining: Money) -> Option<String> {
    if let Err(e) = payable(&invoice.invoice_status, &invoice.payment_status) {
        Some(e.to_string())
    } else if remaining.is_zero() {
        Some("the invoice has nothing remaining to pay".to_owned())
    } else if let Err(e) = remaining.check_collectable() {
        Some(format!("Razorpay cannot collect it: {e}"))
    } else {
        None
    }
}

/// Sync on, and the invoice syncable: the invoice and its amounts; otherwise it is recorded
/// SKIPPED with the reason.
async fn eligible(
    adapters: &Adapters,
    scope: &TenantScope,
    clients: &Clients,
    at: &SyncAt<'_>,
) -> Result<ControlFlow<Synced, (Invoice, Money)>, Failure> {
    let outbound = connection::outbound_sync(adapters, scope)
        .await
        .map_err(Failure::retryable)?
        .unwrap_or(false);
    if !outbound {
        let reason = "invoice outbound sync is off for this connection".to_owned();
        return skip(adapters, at, reason, None)
            .await
            .map(ControlFlow::Break);
    }
    let invoice = match clients.flexprice.get_invoice(at.invoice_id).await {
        Ok(invoice) => invoice,
        Err(FlexpriceError::Api { status: 404, .. }) => {
            let reason = format!("Flexprice has no invoice {}", at.invoice_id);
            return skip(adapters, at, reason, None)
                .await
                .map(ControlFlow::Break);
        }
        Err(e) => return Err(failure_from_flexprice(e)),
    };
    let remaining = invoice.remaining().map_err(Failure::permanent)?;
    if let Some(reason) = unsyncable(&invoice, remaining) {
        return skip(adapters, at, reason, Some(&invoice))
            .await
            .map(ControlFlow::Break);
    }
    Ok(ControlFlow::Continue((invoice, remaining)))
}

/// What the Razorpay invoice may ask: what the invoice owes beyond the open links (one way
/// to pay each part, never two). Nothing left, or too little for Razorpay: recorded SKIPPED.
async fn to_ask(
    adapters: &Adapters,
    scope: &TenantScope,
    at: &SyncAt<'_>,
    invoice: &Invoice,
    receipt: &str,
    remaining: Money,
) -> Result<ControlFlow<Synced, Money>, Failure> {
    let own = (InstrumentKind::RazorpayInvoice, receipt);
    let asked = collection::uncovered(adapters, scope, &invoice.id, remaining, own)
        .await
        .map_err(Failure::retryable)?;
    let reason = if asked.is_zero() {
        "open payment links already ask all the invoice owes".to_owned()
    } else if let Err(e) = asked.check_collectable() {
        format!(
            "what open payment links leave ({}) is too little for Razorpay: {e}",
            asked.to_decimal_string()
        )
    } else {
        return Ok(ControlFlow::Continue(asked));
    };
    skip(adapters, at, reason, Some(invoice))
        .await
        .map(ControlFlow::Break)
}

/// The Razorpay invoice's place among the invoice's instruments, taken under the claim before
/// Razorpay is asked (a resumed sync finds its own). Refused (a link took the share meanwhile):
/// the lease is freed and the redelivery decides again.
async fn reserve(
    adapters: &Adapters,
    scope: &TenantScope,
    claimed: &InvoiceSync,
    owed: Money,
    asked: Money,
) -> Result<(), Failure> {
    let offered = Instrument::reserve(
        InstrumentKind::RazorpayInvoice,
        &claimed.receipt(),
        asked,
        adapters.clock.now_millis(),
    );
    let invoice_id = &claimed.invoice_id;
    let Err(e) = collection::reserve(adapters, scope, invoice_id, owed, offered).await else {
        return Ok(());
    };
    let key = records::sync_key(scope, invoice_id);
    release_lease(adapters, &key, claimed, &e.to_string()).await;
    Err(Failure::retryable(e))
}

/// The synced Razorpay invoice is open among the invoice's instruments.
async fn open_synced(
    adapters: &Adapters,
    scope: &TenantScope,
    sync: &InvoiceSync,
) -> Result<(), Failure> {
    let (Some(razorpay_id), Some(url)) = (&sync.razorpay_invoice_id, &sync.payment_url) else {
        return Ok(());
    };
    let receipt = sync.receipt();
    let which = Which::Key(InstrumentKind::RazorpayInvoice, &receipt);
    let opened = InstrumentChange::Opened {
        razorpay_id: razorpay_id.clone(),
        url: url.clone(),
    };
    collection::change(adapters, scope, &sync.invoice_id, &which, &opened)
        .await
        .map(|_| ())
        .map_err(|e| Failure::classed(&e))
}

/// The claim: SYNCING with a lease, by a conditional write; from here on only this job may
/// create the Razorpay invoice.
async fn claim(
    adapters: &Adapters,
    at: &SyncAt<'_>,
    invoice: &Invoice,
    begin: Begin,
) -> Result<InvoiceSync, Failure> {
    let lease_until = adapters.clock.now_millis() + LEASE_MS;
    let customer_id = invoice.customer_id.clone();
    let change = match begin {
        Begin::Reissue => SyncChange::Reissued {
            lease_until,
            customer_id,
        },
        Begin::Fresh | Begin::Resumed => SyncChange::Claimed {
            lease_until,
            customer_id,
        },
    };
    at.write(adapters, change).await
}

/// What a successful create made.
fn made_invoice(razorpay: &RazorpayInvoice, form: &Form, remaining: Money) -> MadeInvoice {
    MadeInvoice {
        razorpay_invoice_id: razorpay.id.clone(),
        razorpay_status: razorpay.status.as_str().to_owned(),
        payment_url: razorpay.short_url.clone(),
        form: form.name().to_owned(),
        form_reason: match form {
            Form::Balance { reason } => Some(reason.clone()),
            Form::Itemized => None,
        },
        amount: remaining,
    }
}

/// SYNCED, with the reverse mapping, in one transaction under the claim; returns the record as
/// written (no read-back).
async fn record_synced(
    adapters: &Adapters,
    scope: &TenantScope,
    key: &Key,
    claimed: &InvoiceSync,
    made: MadeInvoice,
) -> Result<InvoiceSync, Failure> {
    let reverse = InvoiceRef {
        invoice_id: claimed.invoice_id.clone(),
    };
    let reverse_key = records::razorpay_invoice_key(scope, &made.razorpay_invoice_id);
    let mut synced = claimed
        .clone()
        .with(SyncChange::Synced(made), adapters.clock.now_secs());
    adapters
        .store
        .transact(vec![
            Write::Update {
                key: key.clone(),
                update: records::sync_update(claimed, &synced),
            },
            Write::Put {
                key: reverse_key,
                attrs: reverse.to_item(),
            },
        ])
        .await
        .map_err(|e| Failure::retryable(format!("could not record the sync: {e}")))?;
    synced.version += 1;
    Ok(synced)
}

/// Frees the lease so that the redelivery resumes at once (and looks the invoice up first:
/// this attempt may have created it).
async fn release_lease(adapters: &Adapters, key: &Key, claimed: &InvoiceSync, reason: &str) {
    let at = SyncAt::of(key, claimed);
    let change = SyncChange::LeaseReleased {
        reason: reason.to_owned(),
    };
    let _ = at.write(adapters, change).await;
}

/// The Razorpay invoice for a Flexprice invoice: `receipt` = its id (how a resumed sync finds
/// it), a handful of notes, `expire_by` (from the due date and the connection's grace period),
/// emailed by Razorpay.
fn invoice_request(
    expire_by: Option<u64>,
    scope: &TenantScope,
    receipt: &str,
    invoice: &Invoice,
    razorpay_customer_id: &str,
    line_items: Vec<LineItemRequest>,
    currency: Currency,
) -> InvoiceRequest {
    let number = invoice.invoice_number.as_deref().unwrap_or(&invoice.id);
    let mut notes = Notes::from([
        ("flexprice_invoice_id", invoice.id.as_str()),
        ("flexprice_customer_id", invoice.customer_id.as_str()),
        ("tenant_id", scope.tenant_id()),
        ("environment_id", scope.environment_id()),
    ]);
    if let Some(number) = &invoice.invoice_number {
        notes.insert("invoice_number", number);
    }
    InvoiceRequest {
        kind: "invoice".to_owned(),
        customer_id: razorpay_customer_id.to_owned(),
        currency: currency.code().to_owned(),
        line_items,
        receipt: receipt.to_owned(),
        description: Some(format!("Invoice {number}")),
        expire_by,
        partial_payment: false,
        sms_notify: false,
        email_notify: true,
        notes,
        draft: Some("1".to_owned()),
    }
}

/// Customer, lines, and the Razorpay invoice (found by receipt first when resuming, and
/// adopted only if it fits). It is made as a draft, mapped, and only then issued: no invoice a
/// customer can pay exists without the mapping that finds its payments.
async fn create(
    adapters: &Adapters,
    scope: &TenantScope,
    clients: &Clients,
    invoice: &Invoice,
    remaining: Money,
    claimed: &InvoiceSync,
    begin: Begin,
) -> Result<(crate::adapters::razorpay::wire::Invoice, Form), Failure> {
    let currency = remaining.currency();
    let (line_items, form) = razorpay_lines(invoice, currency, remaining);
    let receipt = claimed.receipt();
    if begin == Begin::Resumed
        && let Some(found) = clients
            .razorpay
            .find_invoices_by_receipt(&receipt)
            .await
            .map_err(failure_from_razorpay)?
            .into_iter()
            .next()
    {
        adopt(adapters, scope, clients, claimed, &found, remaining).await?;
        let issued = map_then_issue(adapters, scope, clients, claimed, found).await?;
        return Ok((issued, form));
    }
    let customer = customers::ensure(
        adapters.store.as_ref(),
        clients.razorpay_account(),
        clients.flexprice.as_ref(),
        scope,
        &invoice.customer_id,
    )
    .await
    .map_err(|e| Failure::classed(&e))?;
    let expire_by = clients.policy.invoice_expire_by(
        due_secs(invoice.due_date.as_deref()),
        adapters.clock.now_secs(),
    );
    let request = invoice_request(
        expire_by,
        scope,
        &receipt,
        invoice,
        customer.razorpay_id(),
        line_items,
        currency,
    );
    let draft = clients
        .razorpay
        .create_invoice(&request)
        .await
        .map_err(failure_from_razorpay)?;
    warn_unless_total(&draft, remaining);
    let issued = map_then_issue(adapters, scope, clients, claimed, draft).await?;
    Ok((issued, form))
}

/// Maps the Razorpay invoice to its Flexprice invoice, then issues it if it is a draft. A
/// failure point between the two leaves a draft nobody can pay, which the resumed sync finds
/// by receipt and issues.
async fn map_then_issue(
    adapters: &Adapters,
    scope: &TenantScope,
    clients: &Clients,
    claimed: &InvoiceSync,
    made: RazorpayInvoice,
) -> Result<RazorpayInvoice, Failure> {
    let reverse = InvoiceRef {
        invoice_id: claimed.invoice_id.clone(),
    };
    let reverse_key = records::razorpay_invoice_key(scope, &made.id);
    adapters
        .store
        .put(&reverse_key, reverse.to_item())
        .await
        .map_err(|e| Failure::retryable(format!("could not map the Razorpay invoice: {e}")))?;
    if crate::failpoint::hit(crate::failpoint::AFTER_RAZORPAY_INVOICE_DRAFT) {
        return Err(Failure::retryable(
            "failure point between the draft and its issue",
        ));
    }
    if made.status != InvoiceStatus::Draft {
        return Ok(made);
    }
    clients
        .razorpay
        .issue_invoice(&made.id)
        .await
        .map_err(failure_from_razorpay)
}

/// The invoice an earlier attempt made, adopted if it fits what is owed now; otherwise
/// cancelled (if it can still be paid), noted closed on the record and its reservation freed:
/// the redelivery issues the next one.
async fn adopt(
    adapters: &Adapters,
    scope: &TenantScope,
    clients: &Clients,
    claimed: &InvoiceSync,
    found: &RazorpayInvoice,
    asked: Money,
) -> Result<(), Failure> {
    let amount = found.amount.unwrap_or(0);
    let (cancel, reason) = match adoption(found.status.as_str(), amount, asked.minor()) {
        Adoption::Adopt => {
            tracing::info!(razorpay_invoice_id = %found.id, "adopting the invoice an earlier attempt created");
            return Ok(());
        }
        Adoption::Replace { cancel, reason } => (cancel, reason),
    };
    let status = if cancel {
        close_in_razorpay(clients, found).await?
    } else {
        found.status.clone()
    };
    let why = format!("Razorpay invoice {} cannot be adopted: {reason}", found.id);
    tracing::warn!(%why, "replacing the invoice an earlier attempt created");
    free_reservation(adapters, scope, claimed, &why).await;
    let key = records::sync_key(scope, &claimed.invoice_id);
    let noted = SyncAt::of(&key, claimed)
        .write(
            adapters,
            SyncChange::RazorpayStatus {
                status: status.as_str().to_owned(),
            },
        )
        .await?;
    release_lease(adapters, &key, &noted, &why).await;
    Err(Failure::Retryable(format!(
        "{why}; the next attempt issues a new one"
    )))
}

/// Never expected; if Razorpay ever totals an invoice differently, a person must know.
fn warn_unless_total(created: &RazorpayInvoice, remaining: Money) {
    let total = created.amount.unwrap_or(0);
    if total != remaining.minor() {
        tracing::error!(
            razorpay_invoice_id = %created.id,
            razorpay_total = total,
            expected = remaining.minor(),
            "RAZORPAY INVOICE TOTAL DIFFERS FROM THE AMOUNT REMAINING"
        );
    }
}

/// Writes `razorpay_invoice_id` and `razorpay_payment_url` into the Flexprice invoice's
/// metadata, once.
async fn write_metadata(
    adapters: &Adapters,
    clients: &Clients,
    key: &Key,
    sync: &InvoiceSync,
) -> Result<(), Failure> {
    if sync.metadata_written {
        return Ok(());
    }
    let mut keys = BTreeMap::new();
    if let Some(id) = &sync.razorpay_invoice_id {
        keys.insert("razorpay_invoice_id".to_owned(), id.clone());
    }
    if let Some(url) = &sync.payment_url {
        keys.insert("razorpay_payment_url".to_owned(), url.clone());
    }
    clients
        .flexprice
        .merge_invoice_metadata(&sync.invoice_id, &keys)
        .await
        .map_err(failure_from_flexprice)?;
    let at = SyncAt::of(key, sync);
    at.write(adapters, SyncChange::MetadataWritten).await?;
    Ok(())
}

/// The cancel job: a voided Flexprice invoice cancels its Razorpay invoice, unless it was paid
/// there (then it is flagged for review).
pub async fn cancel(
    adapters: &Adapters,
    scope: &TenantScope,
    invoice_id: &str,
) -> Result<Cancelled, Failure> {
    let key = records::sync_key(scope, invoice_id);
    let current = records::read::<InvoiceSync>(adapters.store.as_ref(), &key)
        .await
        .map_err(Failure::retryable)?;
    match on_cancel(found(current.as_ref(), adapters)) {
        CancelStart::Nothing => return Ok(Cancelled::NothingToCancel),
        CancelStart::Busy => {
            return Err(Failure::retryable(
                "a sync of this invoice is in progress; cancel after it",
            ));
        }
        CancelStart::Begin => {}
    }
    let clients = connection::job_clients(adapters, scope).await?;
    let at = SyncAt {
        key: &key,
        invoice_id,
        current: current.as_ref(),
    };
    let Some(razorpay) = razorpay_invoice_of(&clients, current.as_ref(), invoice_id).await? else {
        let change = SyncChange::Cancelled {
            razorpay_invoice_id: None,
            razorpay_status: None,
            reason: "voided in Flexprice before a Razorpay invoice existed".to_owned(),
        };
        at.write(adapters, change).await?;
        return Ok(Cancelled::NothingToCancel);
    };
    if razorpay.status.has_payments() {
        let reason = format!(
            "voided in Flexprice, but Razorpay invoice {} is {}",
            razorpay.id, razorpay.status
        );
        tracing::error!(%reason, "INVOICE NEEDS REVIEW");
        let change = SyncChange::Review {
            reason,
            razorpay_invoice_id: razorpay.id.clone(),
        };
        at.write(adapters, change).await?;
        return Ok(Cancelled::FlaggedForReview);
    }
    let final_status = close_in_razorpay(&clients, &razorpay).await?;
    let change = SyncChange::Cancelled {
        razorpay_invoice_id: Some(razorpay.id.clone()),
        razorpay_status: Some(final_status.as_str().to_owned()),
        reason: "voided in Flexprice".to_owned(),
    };
    at.write(adapters, change).await?;
    Ok(Cancelled::Cancelled)
}

/// The Razorpay invoice of a Flexprice invoice: the mapped one, or one an unfinished sync may
/// have created (found by `receipt`).
async fn razorpay_invoice_of(
    clients: &Clients,
    current: Option<&InvoiceSync>,
    invoice_id: &str,
) -> Result<Option<RazorpayInvoice>, Failure> {
    match current.and_then(|s| s.razorpay_invoice_id.as_deref()) {
        Some(id) => clients
            .razorpay
            .get_invoice(id)
            .await
            .map(Some)
            .map_err(failure_from_razorpay),
        None => Ok(clients
            .razorpay
            .find_invoices_by_receipt(invoice_id)
            .await
            .map_err(failure_from_razorpay)?
            .into_iter()
            .next()),
    }
}

/// Cancels the Razorpay invoice unless it is closed already; returns its closed status (a
/// refused cancel is read back: a redelivery may have cancelled it meanwhile).
async fn close_in_razorpay(
    clients: &Clients,
    razorpay: &RazorpayInvoice,
) -> Result<InvoiceStatus, Failure> {
    if razorpay.status.is_closed() {
        return Ok(razorpay.status.clone());
    }
    let status = match clients.razorpay.cancel_invoice(&razorpay.id).await {
        Ok(cancelled) => cancelled.status,
        Err(e) if e.is_client_error() => {
            clients
                .razorpay
                .get_invoice(&razorpay.id)
                .await
                .map_err(failure_from_razorpay)?
                .status
        }
        Err(e) => return Err(failure_from_razorpay(e)),
    };
    if !status.is_closed() {
        return Err(Failure::retryable(format!(
            "Razorpay invoice {} is {status} after the cancel",
            razorpay.id
        )));
    }
    Ok(status)
}

/// Closes a synced Razorpay invoice the invoice no longer owes (the settle job): cancelled
/// unless it is closed already or was paid first; its status is noted on the sync record.
pub async fn close_invoice(
    adapters: &Adapters,
    scope: &TenantScope,
    clients: &Clients,
    invoice_id: &str,
    razorpay_invoice_id: &str,
) -> Result<InvoiceStatus, Failure> {
    let razorpay = clients
        .razorpay
        .get_invoice(razorpay_invoice_id)
        .await
        .map_err(failure_from_razorpay)?;
    let status = if razorpay.status.has_payments() {
        razorpay.status
    } else {
        close_in_razorpay(clients, &razorpay).await?
    };
    note_status_of(
        adapters,
        scope,
        invoice_id,
        razorpay_invoice_id,
        status.as_str(),
    )
    .await?;
    Ok(status)
}

/// Notes a Razorpay invoice's status on the invoice's sync record, if the record is about
/// that Razorpay invoice (not an earlier issue) and the status is news.
pub async fn note_status_of(
    adapters: &Adapters,
    scope: &TenantScope,
    invoice_id: &str,
    razorpay_invoice_id: &str,
    status: &str,
) -> Result<(), Failure> {
    let key = records::sync_key(scope, invoice_id);
    let sync = records::read::<InvoiceSync>(adapters.store.as_ref(), &key)
        .await
        .map_err(Failure::retryable)?;
    match sync {
        Some(sync)
            if sync.razorpay_invoice_id.as_deref() == Some(razorpay_invoice_id)
                && sync.razorpay_status.as_deref() != Some(status) =>
        {
            note_razorpay_status(adapters, scope, &sync, status).await
        }
        _ => Ok(()),
    }
}

/// The sync record of the Flexprice invoice a Razorpay invoice was synced from.
pub async fn flexprice_invoice_of(
    adapters: &Adapters,
    scope: &TenantScope,
    razorpay_invoice_id: &str,
) -> Result<Option<InvoiceSync>, StoreError> {
    let table = adapters.store.as_ref();
    let reverse_key = records::razorpay_invoice_key(scope, razorpay_invoice_id);
    let Some(reverse) = records::read::<InvoiceRef>(table, &reverse_key).await? else {
        return Ok(None);
    };
    records::read::<InvoiceSync>(table, &records::sync_key(scope, &reverse.invoice_id)).await
}

/// Notes the Razorpay invoice's status (e.g. `expired`) on the sync record.
pub async fn note_razorpay_status(
    adapters: &Adapters,
    scope: &TenantScope,
    sync: &InvoiceSync,
    razorpay_status: &str,
) -> Result<(), Failure> {
    let key = records::sync_key(scope, &sync.invoice_id);
    let at = SyncAt::of(&key, sync);
    let change = SyncChange::RazorpayStatus {
        status: razorpay_status.to_owned(),
    };
    at.write(adapters, change).await.map(|_| ())
}

/// `GET /api/v1/invoices/{invoice_id}/sync`: the invoice's sync record.
pub async fn status(
    adapters: &Adapters,
    scope: &TenantScope,
    invoice_id: &FlexpriceId,
) -> Result<InvoiceSync, Refusal> {
    let invoice_id = invoice_id.as_str();
    records::read::<InvoiceSync>(
        adapters.store.as_ref(),
        &records::sync_key(scope, invoice_id),
    )
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "could not read the invoice sync");
        Refusal::Internal
    })?
    .ok_or_else(|| {
        Refusal::NotFound(format!(
            "Invoice {invoice_id} has no sync record; POST to this URL to sync it."
        ))
    })
}

/// `POST /api/v1/invoices/{invoice_id}/sync`: the manual retry. Enqueues a sync job;
/// the job's own claim makes any number of these create one Razorpay invoice.
pub async fn request_sync(
    adapters: &Adapters,
    scope: &TenantScope,
    invoice_id: &FlexpriceId,
    trace_id: Option<&str>,
) -> Result<Value, Refusal> {
    let invoice_id = invoice_id.as_str();
    if invoice_id.is_empty() || invoice_id.len() > 40 {
        return Err(Refusal::malformed(
            "invoice_id",
            "length",
            "invoice_id must be 1 to 40 characters (Razorpay's receipt limit)",
        ));
    }
    if connection::outbound_sync(adapters, scope).await?.is_none() {
        return Err(Refusal::unprocessable(
            "connection",
            "connected",
            "this tenant and environment have no Razorpay connection",
        ));
    }
    let job = crate::domain::jobs::Job::new(
        scope,
        crate::domain::jobs::Task::SyncInvoice {
            invoice_id: invoice_id.to_owned(),
        },
    );
    let message_id = adapters.queue.send(&job, trace_id).await.map_err(|e| {
        tracing::error!(error = %e, "could not enqueue the invoice sync");
        Refusal::Unavailable("The sync could not be queued; retry the request.".to_owned())
    })?;
    Ok(json!({"invoice_id": invoice_id, "status": "queued", "job_id": message_id}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::flexprice::wire::LineItem;

    fn invoice(lines: &[&str], tax: &str, remaining: &str, currency: &str) -> Invoice {
        serde_json::from_value(json!({
            "id": "inv_1", "customer_id": "cust_1", "invoice_status": "FINALIZED",
            "payment_status": "PENDING", "currency": currency, "amount_due": remaining,
            "amount_remaining": remaining, "total_tax": tax, "invoice_number": "INV-7",
            "line_items": lines.iter().enumerate().map(|(i, a)| LineItem {
                id: None, display_name: Some(format!("Line {i}")), plan_display_name: None,
                entity_type: None, amount: (*a).to_owned(), quantity: "1".to_owned(), currency: None,
            }).collect::<Vec<_>>(),
        }))
        .unwrap()
    }

    fn total(lines: &[LineItemRequest]) -> u64 {
        lines.iter().map(|l| l.amount * l.quantity).sum()
    }

    #[test]
    fn lines_and_tax_that_add_up_are_itemized_and_zero_lines_dropped() {
        let inv = invoice(&["999.00", "0.00", "120.50"], "201.69", "1321.19", "inr");
        let remaining = Money::parse("1321.19", Currency::INR).unwrap();
        let (lines, form) = razorpay_lines(&inv, Currency::INR, remaining);
        assert_eq!(form, Form::Itemized);
        assert_eq!(lines.len(), 3, "two lines and the tax");
        assert_eq!(total(&lines), 132119);
    }

    #[test]
    fn a_discount_or_earlier_payment_falls_back_to_one_exact_balance_line() {
        let inv = invoice(&["1000.00"], "0", "875.25", "inr");
        let remaining = Money::parse("875.25", Currency::INR).unwrap();
        let (lines, form) = razorpay_lines(&inv, Currency::INR, remaining);
        assert!(matches!(form, Form::Balance { .. }));
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].name, "Balance of invoice INV-7");
        assert_eq!(total(&lines), 87525);
    }

    #[test]
    fn sixty_lines_fall_back_and_stay_exact() {
        let amounts = vec!["1.01"; 60];
        let inv = invoice(&amounts, "0", "60.60", "usd");
        let remaining = Money::parse("60.60", Currency::USD).unwrap();
        let (lines, form) = razorpay_lines(&inv, Currency::USD, remaining);
        assert!(matches!(form, Form::Balance { ref reason } if reason.contains("60 lines")));
        assert_eq!(total(&lines), 6060);
    }

    #[test]
    fn zero_and_three_decimal_currencies_are_exact() {
        let jpy = Currency::from_code("jpy").unwrap();
        let inv = invoice(&["1500", "250"], "175", "1925", "jpy");
        let (lines, form) = razorpay_lines(&inv, jpy, Money::parse("1925", jpy).unwrap());
        assert_eq!((form, total(&lines)), (Form::Itemized, 1925));
        let kwd = Currency::from_code("kwd").unwrap();
        let inv = invoice(&["10.250", "1.120"], "0.000", "11.370", "kwd");
        let (lines, form) = razorpay_lines(&inv, kwd, Money::parse("11.370", kwd).unwrap());
        assert_eq!((form, total(&lines)), (Form::Itemized, 11370));
    }

    #[test]
    fn a_line_or_tax_that_cannot_be_sent_exactly_falls_back_to_the_balance_line() {
        let remaining = Money::parse("1000.00", Currency::INR).unwrap();
        for (lines, tax, what) in [
            (
                vec!["999.995", "0.005"],
                "0",
                "line Line 0 cannot be sent exactly",
            ),
            (
                vec!["1050.00", "-50.00"],
                "0",
                "line Line 1 cannot be sent exactly",
            ),
            (vec!["1000.00"], "0.001", "the tax cannot be sent exactly"),
            (vec!["1000.00"], "n/a", "the tax cannot be sent exactly"),
        ] {
            let inv = invoice(&lines, tax, "1000.00", "inr");
            let (items, form) = razorpay_lines(&inv, Currency::INR, remaining);
            let Form::Balance { reason } = form else {
                panic!("{lines:?} {tax}: expected the balance form");
            };
            assert!(reason.starts_with(what), "{reason}");
            assert_eq!((items.len(), total(&items)), (1, 100_000));
        }
    }

    #[test]
    fn only_the_amount_remaining_has_to_be_exact() {
        let mut inv = invoice(&["1000.00"], "0", "1000.00", "inr");
        inv.subtotal = "999.999999".into();
        inv.total = "garbage".into();
        assert_eq!(inv.remaining().unwrap().minor(), 100_000);
        assert!(inv.amounts().is_err(), "the full parse still refuses");
        inv.amount_remaining = "1000.001".into();
        assert!(inv.remaining().is_err());
    }

    #[test]
    fn due_dates_are_read_as_rfc_3339() {
        assert_eq!(due_secs(None), None);
        assert_eq!(due_secs(Some("2030-01-01T00:00:00Z")), Some(1_893_456_000));
        assert_eq!(due_secs(Some("tomorrow")), None);
    }
}
