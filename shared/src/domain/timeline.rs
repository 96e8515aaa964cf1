//! An invoice's timeline: what flexrzp made for one Flexprice invoice and what it heard about
//! it, in time order. Every instrument (a link, the synced Razorpay invoice and its re-issues),
//! the sync record, each of our payments with its failed attempts, captures, refunds and
//! disputes, the sweep's corrections and every webhook event about it, each one entry with its
//! status and (where money moved) its exact amount.
//!
//! The timeline is built from the records as they are (nothing is written for it), merged by
//! time here, and paged by position: time, then kind, then id, so a page boundary never splits
//! or repeats an entry.

use crate::domain::dispute::Dispute;
use crate::domain::events::{Source, Step, WebhookEvent};
use crate::domain::instruments::{Collection, Instrument, InstrumentKind, InstrumentState};
use crate::domain::money::{Currency, Money};
use crate::domain::payment::{Attempt, Payment};
use crate::domain::refund::Refund;
use crate::domain::sync::InvoiceSync;

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EntryKind {
    /// The invoice's Razorpay sync record (its state, the Razorpay invoice it made).
    InvoiceSync,
    /// A link or Razorpay invoice the customer could pay through.
    Instrument,
    /// One of our payments for the invoice.
    Payment,
    /// A failed try to pay (`payment.failed`).
    Attempt,
    /// Money counted on a payment (the Flexprice payment recorded with it).
    Capture,
    Refund,
    Dispute,
    /// Something the sweep found that no webhook brought, and applied.
    SweepCorrection,
    /// A webhook event about the invoice, with what became of it.
    RazorpayEvent,
    FlexpriceEvent,
}

impl EntryKind {
    pub const ALL: [EntryKind; 10] = [
        EntryKind::InvoiceSync,
        EntryKind::Instrument,
        EntryKind::Payment,
        EntryKind::Attempt,
        EntryKind::Capture,
        EntryKind::Refund,
        EntryKind::Dispute,
        EntryKind::SweepCorrection,
        EntryKind::RazorpayEvent,
        EntryKind::FlexpriceEvent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::InvoiceSync => "invoice_sync",
            EntryKind::Instrument => "instrument",
            EntryKind::Payment => "payment",
            EntryKind::Attempt => "attempt",
            EntryKind::Capture => "capture",
            EntryKind::Refund => "refund",
            EntryKind::Dispute => "dispute",
            EntryKind::SweepCorrection => "sweep_correction",
            EntryKind::RazorpayEvent => "razorpay_event",
            EntryKind::FlexpriceEvent => "flexprice_event",
        }
    }

    pub fn parse(text: &str) -> Option<EntryKind> {
        EntryKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// One thing on the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// When it happened (epoch ms): made, received, counted.
    pub at_ms: u64,
    pub kind: EntryKind,
    /// Its id: Razorpay's (`plink_…`, `pay_…`, `rfnd_…`, `disp_…`, `evt_…`) or ours (`pay_…`
    /// of a payment, the Flexprice invoice's for its sync record).
    pub id: String,
    /// Where it stands now (an instrument's state, a payment's status, an event's outcome).
    pub status: String,
    /// What kind of it: `link` or `razorpay_invoice`, an event's type, a refund's source, a
    /// dispute's phase.
    pub detail: Option<String>,
    /// The money it asks, moved or holds.
    pub amount: Option<Money>,
    /// Why it stands where it does (a closed link, a failed attempt, an event's outcome).
    pub reason: Option<String>,
    /// Our payment it belongs to, for attempts, captures, refunds and disputes.
    pub payment_id: Option<String>,
    /// An event's settlings, oldest first (a retry, a redelivery, a replay).
    pub history: Vec<Step>,
}

impl Entry {
    fn new(at_ms: u64, kind: EntryKind, id: &str, status: &str) -> Entry {
        Entry {
            at_ms,
            kind,
            id: id.to_owned(),
            status: status.to_owned(),
            detail: None,
            amount: None,
            reason: None,
            payment_id: None,
            history: Vec::new(),
        }
    }

    /// Its position: the time zero-padded (so the text sorts as the number), the kind, the id.
    pub fn position(&self) -> String {
        format!("{:015}#{}#{}", self.at_ms, self.kind.as_str(), self.id)
    }
}

/// The parts of an entry's position (`None` if it is not one).
pub fn parse_position(text: &str) -> Option<(u64, EntryKind, &str)> {
    let mut parts = text.splitn(3, '#');
    let at = parts.next().filter(|t| t.len() == 15)?.parse().ok()?;
    let kind = EntryKind::parse(parts.next()?)?;
    let id = parts.next().filter(|id| !id.is_empty())?;
    Some((at, kind, id))
}

/// What the timeline of one invoice is made of, as read.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub collection: Option<Collection>,
    pub sync: Option<InvoiceSync>,
    pub payments: Vec<Payment>,
    pub events: Vec<WebhookEvent>,
    pub corrections: Vec<Correction>,
}

/// What was heard about one invoice, oldest first: its webhook events and the sweep's
/// corrections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Heard {
    pub events: Vec<WebhookEvent>,
    pub corrections: Vec<Correction>,
}

/// One thing the sweep applied that no webhook had brought.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Correction {
    pub at_ms: u64,
    /// The Razorpay object it was about (`pay_…`, `plink_…`, `rfnd_…`).
    pub razorpay_id: String,
    /// The event the sweep applied in its place (`payment.captured`, `refund.processed`).
    pub event_type: String,
    /// What applying it came to.
    pub outcome: String,
}

impl Sources {
    /// Whether there is nothing at all about the invoice.
    pub fn is_empty(&self) -> bool {
        self.collection.is_none()
            && self.sync.is_none()
            && self.payments.is_empty()
            && self.events.is_empty()
            && self.corrections.is_empty()
    }
}

/// Every entry, oldest first.
pub fn merge(sources: &Sources) -> Vec<Entry> {
    let mut entries = Vec::new();
    if let Some(sync) = &sources.sync {
        entries.push(sync_entry(sync));
    }
    if let Some(collection) = &sources.collection {
        let currency = collection.currency;
        let instruments = collection.instruments.iter();
        entries.extend(instruments.map(|i| instrument_entry(i, currency)));
    }
    for payment in &sources.payments {
        entries.extend(payment_entries(payment));
    }
    entries.extend(sources.corrections.iter().map(correction_entry));
    entries.extend(sources.events.iter().map(event_entry));
    entries.sort_by_key(Entry::position);
    entries
}

/// One page of `entries` (oldest first): those after `after`, at most `limit`, and the
/// position the next page starts after when more follow.
pub fn page(
    entries: Vec<Entry>,
    after: Option<&str>,
    limit: usize,
) -> (Vec<Entry>, Option<String>) {
    let mut rest = entries
        .into_iter()
        .filter(|e| after.is_none_or(|a| e.position().as_str() > a));
    let page: Vec<Entry> = rest.by_ref().take(limit).collect();
    let more = rest.next().is_some();
    let next = page.last().filter(|_| more).map(Entry::position);
    (page, next)
}

fn secs(at: u64) -> u64 {
    at.saturating_mul(1000)
}

fn sync_entry(sync: &InvoiceSync) -> Entry {
    let mut entry = Entry::new(
        secs(sync.created_at),
        EntryKind::InvoiceSync,
        &sync.invoice_id,
        sync.state.as_str(),
    );
    entry.detail = sync.razorpay_invoice_id.clone();
    entry.amount = sync.amount;
    entry.reason = [
        &sync.last_error,
        &sync.review,
        &sync.skip_reason,
        &sync.cancel_reason,
    ]
    .into_iter()
    .find_map(Clone::clone);
    entry
}

fn instrument_entry(instrument: &Instrument, currency: Currency) -> Entry {
    let id = instrument.razorpay_id.as_deref().unwrap_or(&instrument.key);
    let state = match instrument.state {
        InstrumentState::Reserved => "reserved",
        InstrumentState::Open => "open",
        InstrumentState::Paid => "paid",
        InstrumentState::Closed => "closed",
    };
    let mut entry = Entry::new(instrument.reserved_at_ms, EntryKind::Instrument, id, state);
    entry.detail = Some(
        match instrument.kind {
            InstrumentKind::Link => "link",
            InstrumentKind::RazorpayInvoice => "razorpay_invoice",
        }
        .to_owned(),
    );
    entry.amount = Some(Money::from_minor(instrument.amount_minor, currency));
    entry.reason.clone_from(&instrument.reason);
    entry.payment_id.clone_from(&instrument.payment_id);
    entry
}

/// A payment, then what happened on it: its failed attempts, captures, refunds, disputes.
fn payment_entries(payment: &Payment) -> Vec<Entry> {
    let mut made = Entry::new(
        secs(payment.created_at),
        EntryKind::Payment,
        &payment.id,
        payment.status.as_str(),
    );
    made.detail = Some(payment.method.as_str().to_owned());
    made.reason = payment.review.clone().or(payment.failure_reason.clone());
    let mut entries = vec![on_payment(payment, made, Some(payment.amount.minor()))];
    entries.extend(
        payment
            .attempts
            .iter()
            .map(|a| on_payment(payment, attempt_entry(a), None)),
    );
    for capture in payment.counted_captures() {
        // A capture counted before capture times were kept: the payment's last change.
        let at_ms = match capture.at_ms {
            0 => secs(payment.updated_at),
            at_ms => at_ms,
        };
        let counted = Entry::new(
            at_ms,
            EntryKind::Capture,
            &capture.razorpay_payment_id,
            "counted",
        );
        entries.push(on_payment(payment, counted, Some(capture.amount_minor)));
    }
    for refund in &payment.refunds {
        entries.push(on_payment(
            payment,
            refund_entry(refund),
            Some(refund.amount_minor),
        ));
    }
    for dispute in &payment.disputes {
        entries.push(on_payment(
            payment,
            dispute_entry(dispute),
            Some(dispute.amount_minor),
        ));
    }
    entries
}

/// An entry of `payment`'s, with its amount (in the payment's currency) if it moved money.
fn on_payment(payment: &Payment, mut entry: Entry, minor: Option<u64>) -> Entry {
    entry.payment_id = Some(payment.id.clone());
    entry.amount = minor.map(|m| Money::from_minor(m, payment.amount.currency()));
    entry
}

fn attempt_entry(attempt: &Attempt) -> Entry {
    let mut tried = Entry::new(
        secs(attempt.at),
        EntryKind::Attempt,
        &attempt.razorpay_payment_id,
        &attempt.status,
    );
    tried.detail.clone_from(&attempt.error_code);
    tried.reason = attempt
        .error_description
        .clone()
        .or(attempt.error_reason.clone());
    tried
}

fn refund_entry(refund: &Refund) -> Entry {
    let id = refund.razorpay_refund_id.as_deref().unwrap_or(&refund.id);
    let mut returned = Entry::new(
        secs(refund.created_at),
        EntryKind::Refund,
        id,
        refund.status.as_str(),
    );
    returned.detail = Some(refund.source.as_str().to_owned());
    returned.reason = refund.failure.clone().or(refund.reason.clone());
    returned
}

fn dispute_entry(dispute: &Dispute) -> Entry {
    let mut disputed = Entry::new(
        secs(dispute.created_at),
        EntryKind::Dispute,
        &dispute.id,
        &dispute.status,
    );
    disputed.detail = Some(dispute.phase.clone());
    disputed.reason.clone_from(&dispute.reason_code);
    disputed
}

fn correction_entry(correction: &Correction) -> Entry {
    let mut entry = Entry::new(
        correction.at_ms,
        EntryKind::SweepCorrection,
        &correction.razorpay_id,
        &correction.outcome,
    );
    entry.detail = Some(correction.event_type.clone());
    entry.reason = Some("no webhook brought this; the sweep found it at Razorpay".to_owned());
    entry
}

fn event_entry(event: &WebhookEvent) -> Entry {
    let kind = match event.source {
        Source::Razorpay => EntryKind::RazorpayEvent,
        Source::Flexprice => EntryKind::FlexpriceEvent,
    };
    let mut entry = Entry::new(
        event.received_at_ms,
        kind,
        &event.event_id,
        event.outcome.as_str(),
    );
    entry.detail = Some(event.event_type.clone());
    entry.reason.clone_from(&event.reason);
    entry.history.clone_from(&event.history);
    entry
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::events::{Outcome, Step};

    fn event(id: &str, at: u64, outcome: Outcome) -> WebhookEvent {
        let mut e = WebhookEvent::received(Source::Razorpay, id, "payment.failed", at, "{}".into());
        let _ = e.settle(Step {
            at_ms: at + 5,
            outcome,
            reason: None,
            replay: false,
        });
        e
    }

    fn sources() -> Sources {
        let inr = Currency::from_code("INR").unwrap();
        let mut collection = Collection::new("inv_1", inr);
        collection.instruments.push(Instrument::reserve(
            InstrumentKind::Link,
            "pay_1",
            Money::from_minor(150_050, inr),
            2_000,
        ));
        Sources {
            collection: Some(collection),
            events: vec![
                event("evt_b", 3_000, Outcome::Applied),
                event("evt_a", 3_000, Outcome::Parked),
            ],
            corrections: vec![Correction {
                at_ms: 1_000,
                razorpay_id: "pay_rzp".into(),
                event_type: "payment.captured".into(),
                outcome: "counted".into(),
            }],
            ..Sources::default()
        }
    }

    #[test]
    fn entries_are_in_time_order_with_exact_amounts() {
        let entries = merge(&sources());
        let order: Vec<(&str, &str)> = entries
            .iter()
            .map(|e| (e.kind.as_str(), e.id.as_str()))
            .collect();
        assert_eq!(
            order,
            [
                ("sweep_correction", "pay_rzp"),
                ("instrument", "pay_1"),
                ("razorpay_event", "evt_a"),
                ("razorpay_event", "evt_b"),
            ]
        );
        let link = &entries[1];
        assert_eq!(
            link.amount.map(Money::to_decimal_string).as_deref(),
            Some("1500.50")
        );
        assert_eq!(
            (link.status.as_str(), link.detail.as_deref()),
            ("reserved", Some("link"))
        );
        assert_eq!(entries[2].status, "parked");
        assert_eq!(entries[3].history.len(), 1);
    }

    #[test]
    fn pages_neither_split_nor_repeat_entries() {
        let all = merge(&sources());
        let (first, next) = page(all.clone(), None, 3);
        assert_eq!(first.len(), 3);
        let next = next.expect("a next page");
        assert!(parse_position(&next).is_some());
        let (second, last) = page(all.clone(), Some(&next), 3);
        assert_eq!((second.len(), last), (1, None));
        assert_eq!([first, second].concat(), all);
        assert_eq!(parse_position("12#instrument#x"), None);
        assert_eq!(parse_position("000000000000012#nope#x"), None);
        assert_eq!(parse_position("000000000000012#payment#"), None);
    }
}
