//! The records as the API shows them: the JSON bodies of successful answers. Amounts are exact
//! decimal strings beside their subunits.

use serde_json::{Value, json};

use super::requests::cursor_of;
use crate::domain::events::{Refused, Step, WebhookEvent};
use crate::domain::instruments::InstrumentKind;
use crate::domain::money::Money;
use crate::domain::payment::{Payment, PaymentMethod};
use crate::domain::refund::{Refund, RefundState};
use crate::domain::sync::InvoiceSync;
use crate::domain::timeline::{Entry, EntryKind};
use crate::services::payment_url::PaymentUrl;
use crate::services::timeline::Timeline;
use crate::services::webhook_events::Listing;

/// A payment (`POST /api/v1/payments`, `GET /api/v1/payments/{id}`).
pub fn payment(payment: &Payment) -> Value {
    // One way to pay: a payment for what the synced Razorpay invoice asks is collected there,
    // and the caller is told why its URL is that invoice's page.
    let notice = match (payment.method, &payment.razorpay_invoice_id) {
        (PaymentMethod::RazorpayInvoice, Some(rzp)) if payment.payload_hash.is_some() => {
            Some(format!(
                "invoice {} is synced to Razorpay invoice {rzp}, which asks this amount; payment_url is that invoice's page, so the customer has one way to pay",
                payment.invoice_id
            ))
        }
        _ => None,
    };
    let money = |minor| Money::from_minor(minor, payment.amount.currency()).to_decimal_string();
    json!({
        "id": payment.id,
        "idempotency_key": payment.idempotency_key,
        "destination_type": "INVOICE",
        "destination_id": payment.invoice_id,
        "payment_method_type": payment.method.as_str(),
        "payment_gateway": "razorpay",
        "amount": payment.amount.to_decimal_string(),
        "amount_minor": payment.amount.minor(),
        "amount_paid_minor": payment.amount_paid,
        "amount_refunded": money(payment.amount_refunded()),
        "amount_refunded_minor": payment.amount_refunded(),
        "refund_status": RefundState::of(payment.amount_refunded(), payment.amount_paid),
        "refunds": refunds(payment),
        "disputes": disputes(payment),
        "currency": payment.amount.currency().code(),
        "payment_status": payment.status.as_str(),
        "gateway_tracking_id": payment.gateway_tracking_id,
        "payment_url": payment.payment_url,
        "razorpay_customer_id": payment.razorpay_customer_id,
        "razorpay_invoice_id": payment.razorpay_invoice_id,
        "metadata": payment.metadata,
        "attempts": payment.attempts,
        "failure_reason": payment.failure_reason,
        "last_error": payment.last_error,
        "review": payment.review,
        "notice": notice,
        "created_at": payment.created_at,
        "updated_at": payment.updated_at,
    })
}

/// A payment's refunds, amounts as exact decimal strings.
fn refunds(payment: &Payment) -> Vec<Value> {
    payment.refunds.iter().map(|r| refund(payment, r)).collect()
}

/// A payment's disputes, amounts as exact decimal strings.
fn disputes(payment: &Payment) -> Vec<Value> {
    let money = |minor| Money::from_minor(minor, payment.amount.currency()).to_decimal_string();
    payment
        .disputes
        .iter()
        .map(|d| {
            json!({
                "id": d.id,
                "razorpay_payment_id": d.razorpay_payment_id,
                "amount": money(d.amount_minor),
                "amount_deducted": money(d.amount_deducted_minor),
                "phase": d.phase,
                "status": d.status,
                "respond_by": d.respond_by,
                "reason_code": d.reason_code,
                "last_event": d.last_event,
                "created_at": d.created_at,
                "updated_at": d.updated_at,
            })
        })
        .collect()
}

/// One refund of `payment` (`POST /api/v1/payments/{id}/refunds`).
pub fn refund(payment: &Payment, refund: &Refund) -> Value {
    let money = Money::from_minor(refund.amount_minor, payment.amount.currency());
    json!({
        "id": refund.id,
        "payment_id": payment.id,
        "razorpay_refund_id": refund.razorpay_refund_id,
        "razorpay_payment_id": refund.razorpay_payment_id,
        "amount": money.to_decimal_string(),
        "amount_minor": refund.amount_minor,
        "currency": payment.amount.currency().code(),
        "status": refund.status.as_str(),
        "source": refund.source,
        "speed": refund.speed,
        "reason": refund.reason,
        "idempotency_key": refund.idempotency_key,
        "failure": refund.failure,
        "created_at": refund.created_at,
        "updated_at": refund.updated_at,
    })
}

/// A payment's refunds and what went back in all (`GET /api/v1/payments/{id}/refunds`).
pub fn payment_refunds(payment: &Payment) -> Value {
    let refunded = Money::from_minor(payment.amount_refunded(), payment.amount.currency());
    json!({
        "payment_id": payment.id,
        "amount_refunded": refunded.to_decimal_string(),
        "amount_refunded_minor": refunded.minor(),
        "refund_status": RefundState::of(refunded.minor(), payment.amount_paid),
        "refunds": refunds(payment),
    })
}

/// An invoice's sync record (`GET /api/v1/invoices/{invoice_id}/sync`).
pub fn invoice_sync(sync: &InvoiceSync) -> Value {
    json!({
        "invoice_id": sync.invoice_id,
        "state": sync.state.as_str(),
        "razorpay_invoice_id": sync.razorpay_invoice_id,
        "receipt": sync.receipt(),
        "issue": sync.issue,
        "razorpay_status": sync.razorpay_status,
        "payment_url": sync.payment_url,
        "form": sync.form,
        "form_reason": sync.form_reason,
        "amount_minor": sync.amount.map(|a| a.minor()),
        "currency": sync.amount.map(|a| a.currency().code()),
        "last_error": sync.last_error,
        "skip_reason": sync.skip_reason,
        "review": sync.review,
        "attempts": sync.attempts,
        "metadata_written": sync.metadata_written,
        "created_at": sync.created_at,
        "updated_at": sync.updated_at,
    })
}

/// An invoice's payment URL (`GET /api/v1/invoices/{invoice_id}/payment-url`).
pub fn payment_url(url: &PaymentUrl) -> Value {
    let instrument = &url.instrument;
    let kind = match instrument.kind {
        InstrumentKind::Link => "payment_link",
        InstrumentKind::RazorpayInvoice => "razorpay_invoice",
    };
    json!({
        "invoice_id": url.invoice_id,
        "payment_url": instrument.url,
        "instrument": kind,
        "razorpay_id": instrument.razorpay_id,
        "payment_id": instrument.payment_id,
        "amount": url.owed.to_decimal_string(),
        "amount_minor": url.owed.minor(),
        "currency": url.owed.currency().code(),
        "reissued": url.reissued,
    })
}

/// A time in milliseconds since the epoch, as RFC 3339 (UTC, milliseconds).
pub fn rfc3339_millis(millis: u64) -> String {
    use aws_smithy_types::date_time::{DateTime, Format};
    let seconds = DateTime::from_secs(i64::try_from(millis / 1000).unwrap_or(i64::MAX))
        .fmt(Format::DateTime)
        .unwrap_or_default();
    // Always three digits of milliseconds, so the texts sort as the times.
    let whole = seconds.trim_end_matches('Z');
    format!("{whole}.{:03}Z", millis % 1000)
}

/// One event of the log, without its body (a body may carry the payer's details; it is kept
/// for replays only).
pub fn webhook_event(event: &WebhookEvent) -> Value {
    let history = steps(&event.history);
    json!({
        "event_id": event.event_id,
        "source": event.source.as_str(),
        "type": event.event_type,
        "received_at": rfc3339_millis(event.received_at_ms),
        "outcome": event.outcome.as_str(),
        "reason": event.reason,
        "invoice_id": event.invoice_id,
        "body_bytes": event.body.len(),
        "history": history,
    })
}

/// An event's settlings, oldest first.
fn steps(history: &[Step]) -> Vec<Value> {
    history
        .iter()
        .map(|step| {
            json!({
                "at": rfc3339_millis(step.at_ms),
                "outcome": step.outcome.as_str(),
                "reason": step.reason,
                "replay": step.replay,
            })
        })
        .collect()
}

/// `GET /api/v1/invoices/{invoice_id}/timeline`: a page of the invoice's timeline, oldest
/// first; amounts are exact decimal strings with their currency.
pub fn invoice_timeline(timeline: &Timeline) -> Value {
    let entries: Vec<Value> = timeline.entries.iter().map(timeline_entry).collect();
    json!({
        "invoice_id": timeline.invoice_id,
        "entries": entries,
        "next_cursor": timeline.next.as_deref().map(cursor_of),
    })
}

fn timeline_entry(entry: &Entry) -> Value {
    let mut view = json!({
        "at": rfc3339_millis(entry.at_ms),
        "kind": entry.kind.as_str(),
        "id": entry.id,
        "status": entry.status,
        "detail": entry.detail,
        "amount": entry.amount.map(Money::to_decimal_string),
        "currency": entry.amount.map(|m| m.currency().code()),
        "reason": entry.reason,
        "payment_id": entry.payment_id,
    });
    if matches!(
        entry.kind,
        EntryKind::RazorpayEvent | EntryKind::FlexpriceEvent
    ) {
        view["history"] = json!(steps(&entry.history));
    }
    view
}

/// `GET /api/v1/webhook-events`: a page of the log and the refusals counted by reason.
pub fn webhook_events(listing: &Listing) -> Value {
    let refusals: serde_json::Map<String, Value> = Refused::ALL
        .into_iter()
        .map(|reason| {
            let count = listing
                .refusals
                .iter()
                .find(|(r, _)| *r == reason)
                .map_or(0, |(_, c)| *c);
            (reason.as_str().to_owned(), json!(count))
        })
        .collect();
    json!({
        "events": listing.page.events.iter().map(webhook_event).collect::<Vec<_>>(),
        "refusals": refusals,
        "next_cursor": listing.page.next.as_deref().map(cursor_of),
    })
}

/// `POST /api/v1/webhook-events/{event_id}/replay`: the event queued again.
pub fn replay_queued(event: &WebhookEvent) -> Value {
    json!({
        "status": "queued",
        "event_id": event.event_id,
        "source": event.source.as_str(),
        "type": event.event_type,
        "previous_outcome": event.outcome.as_str(),
    })
}
