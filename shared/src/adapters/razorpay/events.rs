//! Razorpay's webhook events, as Razorpay sends them: the envelope, and the payment, payment
//! link and invoice entities of its payload (only the fields flexrzp reads; statuses are the
//! same types as the API's answers).

use serde::Deserialize;

use super::wire::{InvoiceStatus, Notes, PaymentStatus, non_empty};

#[derive(Deserialize)]
pub struct Event {
    pub event: String,
    pub payload: Payload,
}

#[derive(Deserialize)]
pub struct Payload {
    #[serde(default)]
    pub payment: Option<Wrapped<EventPayment>>,
    #[serde(default)]
    pub payment_link: Option<Wrapped<EventLink>>,
    #[serde(default)]
    pub invoice: Option<Wrapped<EventInvoice>>,
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
}

#[derive(Deserialize)]
pub struct EventPayment {
    pub id: String,
    pub amount: u64,
    pub currency: String,
    pub status: PaymentStatus,
    #[serde(default)]
    pub notes: Notes,
    #[serde(default, deserialize_with = "non_empty")]
    pub order_id: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    pub invoice_id: Option<String>,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub error_description: Option<String>,
    #[serde(default)]
    pub error_reason: Option<String>,
}
