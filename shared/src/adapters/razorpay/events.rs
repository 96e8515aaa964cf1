//! Razorpay's webhook events, as Razorpay sends them: the envelope and its payload. A payment
//! in an event is the very [`Payment`] the API answers with; the payment link and invoice
//! entities hold only the fields flexrzp reads (with the API's status types).

use serde::Deserialize;

use super::wire::{Dispute, InvoiceStatus, Notes, Payment, Refund, non_empty};

#[derive(Deserialize)]
pub struct Event {
    pub event: String,
    pub payload: Payload,
}

#[derive(Deserialize)]
pub struct Payload {
    #[serde(default)]
    pub payment: Option<Wrapped<Payment>>,
    #[serde(default)]
    pub payment_link: Option<Wrapped<EventLink>>,
    #[serde(default)]
    pub invoice: Option<Wrapped<EventInvoice>>,
    #[serde(default)]
    pub refund: Option<Wrapped<Refund>>,
    #[serde(default)]
    pub dispute: Option<Wrapped<Dispute>>,
}

#[derive(Deserialize)]
pub struct Wrapped<T> {
    pub entity: T,
}

#[derive(Deserialize)]
pub struct EventLink {
    pub id: String,
    #[serde(default, deserialize_with = "non_empty")]
    pub reference_id: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    pub order_id: Option<String>,
    #[serde(default)]
    pub notes: Notes,
}

#[derive(Deserialize)]
pub struct EventInvoice {
    pub id: String,
    #[serde(default)]
    pub status: InvoiceStatus,
    #[serde(default)]
    pub notes: Notes,
}
