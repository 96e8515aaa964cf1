//! What a caller asks, once the HTTP edge has parsed it (`api::requests` does the parsing):
//! only domain types, every field already checked, so a service never sees raw input.

use std::collections::BTreeMap;

use crate::domain::ids::{FlexpriceId, RazorpayAccountId, RazorpayKeyId};
use crate::domain::money::DecimalText;
use crate::domain::secret::Secret;
use crate::domain::url::HttpUrl;

/// `POST /api/v1/payments`, parsed.
#[derive(Debug, Clone)]
pub struct PaymentRequest {
    pub amount: DecimalText,
    /// Three ASCII letters, upper-cased (the invoice's currency decides whether it is right).
    pub currency: String,
    pub invoice_id: FlexpriceId,
    pub success_url: Option<HttpUrl>,
    pub idempotency_key: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

/// `POST /api/v1/payments/{payment_id}/refunds`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    /// `None`: all that is left of the captured payment.
    pub amount: Option<DecimalText>,
    pub reason: Option<String>,
    /// `normal` or `optimum`.
    pub speed: String,
    pub idempotency_key: String,
    /// Which captured Razorpay payment to refund, needed when the payment counted several.
    pub razorpay_payment_id: Option<String>,
}

/// `PUT /api/v1/connections/razorpay`, parsed. Every field is checked before anything is
/// sent to Razorpay or stored.
pub struct ConnectionRequest {
    pub key_id: RazorpayKeyId,
    pub key_secret: Secret<String>,
    pub webhook_secret: Secret<String>,
    pub flexprice_api_key: Secret<String>,
    pub flexprice_webhook_secret: Option<Secret<String>>,
    pub invoice_outbound_sync: bool,
    pub razorpay_account_id: Option<RazorpayAccountId>,
    /// How long a payment link stays payable, in days (absent: the default).
    pub link_expiry_days: Option<u32>,
    /// How long an invoice synced on or after its due date stays payable, in days.
    pub overdue_grace_days: Option<u32>,
    /// Whether Razorpay sends payment-link reminders.
    pub link_reminders: Option<bool>,
    /// What becomes of over-collected money (absent: review).
    pub overcollection: Option<crate::domain::collection::OverCollection>,
    /// Whether REFUND credit notes are refunded at Razorpay (absent: off).
    pub credit_note_refunds: Option<bool>,
}
