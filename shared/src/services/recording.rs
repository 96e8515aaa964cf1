//! Recording captured money into Flexprice (`docs/architecture.md` §3.2, "record into
//! Flexprice"): once per idempotency key, and done only when Flexprice says the payment was
//! processed.
//!
//! Flexprice records in two phases: it inserts the payment row (INITIATED), then processes it
//! (SUCCEEDED, and the invoice recomputed). Asked again under the same key it answers the row it
//! has *without processing it*; two requests racing on one key meet a 409. So the answer is
//! read, not trusted: a row that is not for this invoice and amount is refused, an unprocessed
//! row is processed, and a 409 is looked up by asking again (the replay answers the row).

use std::time::Duration;

use crate::adapters::flexprice::FlexpriceError;
use crate::adapters::flexprice::wire::{Payment, RecordPaymentRequest, RecordedAs};
use crate::domain::error::Classify;
use crate::domain::money::{Currency, Money};
use crate::ports::FlexpriceApi;

/// How often a 409 on our own key is looked up (asked again) before the job is retried.
const CONFLICT_LOOKUPS: u32 = 3;
const CONFLICT_PAUSE: Duration = Duration::from_millis(200);

/// Why the money is not recorded yet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Flexprice could not answer, or has not processed it yet: try again later.
    #[error("{0}")]
    Retry(String),
    /// Flexprice refused it, or holds something else under the key: a person must look.
    #[error("{0}")]
    Refused(String),
}

/// What recording one captured Razorpay payment asks of Flexprice: an offline payment on the
/// invoice under `razorpay:{pay_id}`, so every replay (a redelivery, a refund that needs the
/// Flexprice payment) names the same row.
pub fn capture_request(
    invoice_id: &str,
    razorpay_payment_id: &str,
    payment_id: &str,
    captured: Money,
) -> RecordPaymentRequest {
    let metadata = [
        ("razorpay_payment_id", razorpay_payment_id),
        ("flexprice_payment_id", payment_id),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    RecordPaymentRequest::offline(
        invoice_id,
        captured,
        &format!("razorpay:{razorpay_payment_id}"),
        metadata,
    )
}

/// Records `request` and returns Flexprice's payment once it is processed.
pub async fn record(
    flexprice: &dyn FlexpriceApi,
    request: &RecordPaymentRequest,
) -> Result<Payment, RecordError> {
    let row = insert_or_replay(flexprice, request).await?;
    check_fits(&row, request)?;
    match row.recorded_as() {
        RecordedAs::Counted => Ok(row),
        RecordedAs::Unprocessed => process(flexprice, &row).await,
        RecordedAs::Other => Err(RecordError::Refused(format!(
            "Flexprice payment {} under key {} is {}",
            row.id, request.idempotency_key, row.payment_status
        ))),
    }
}

/// The row under the request's key: made now, or the one Flexprice already has. A 409 means
/// another request holds the key right now; asking again answers its row.
async fn insert_or_replay(
    flexprice: &dyn FlexpriceApi,
    request: &RecordPaymentRequest,
) -> Result<Payment, RecordError> {
    for lookup in 1..=CONFLICT_LOOKUPS {
        match flexprice.record_payment(request).await {
            Ok(row) => return Ok(row),
            Err(e) if e.is_conflict() => {
                tracing::info!(key = %request.idempotency_key, lookup, "Flexprice holds this key right now; asking again");
                tokio::time::sleep(CONFLICT_PAUSE * lookup).await;
            }
            Err(e) => return Err(classed(&e)),
        }
    }
    Err(RecordError::Retry(format!(
        "Flexprice is still busy with the payment under key {}",
        request.idempotency_key
    )))
}

/// A replayed row must be the payment asked for: same invoice, same amount.
fn check_fits(row: &Payment, request: &RecordPaymentRequest) -> Result<(), RecordError> {
    let same_invoice = row
        .destination_id
        .as_deref()
        .is_none_or(|id| id == request.destination_id);
    if same_invoice && same_amount(row, request) {
        return Ok(());
    }
    Err(RecordError::Refused(format!(
        "Flexprice holds payment {} ({} {} on {}) under key {}, not this one",
        row.id,
        row.amount,
        row.currency,
        row.destination_id
            .as_deref()
            .unwrap_or("an unnamed invoice"),
        request.idempotency_key
    )))
}

/// Equal as money in the request's currency ("100.5" and "100.50" are the same amount).
fn same_amount(row: &Payment, request: &RecordPaymentRequest) -> bool {
    let Ok(currency) = Currency::from_code(&request.currency) else {
        return false;
    };
    let parse = |text: &str| Money::parse(text, currency).ok();
    row.currency.eq_ignore_ascii_case(&request.currency)
        && parse(&row.amount).is_some()
        && parse(&row.amount) == parse(&request.amount)
}

/// The second phase, for a row Flexprice inserted and did not process.
async fn process(flexprice: &dyn FlexpriceApi, row: &Payment) -> Result<Payment, RecordError> {
    tracing::warn!(flexprice_payment_id = %row.id, status = %row.payment_status, "Flexprice answered an unprocessed payment; processing it");
    match flexprice.process_payment(&row.id).await {
        Ok(processed) if processed.recorded_as() == RecordedAs::Counted => Ok(processed),
        Ok(other) => Err(RecordError::Retry(format!(
            "Flexprice payment {} is {} after processing",
            other.id, other.payment_status
        ))),
        // Refused: most likely processed meanwhile by the request that inserted it; the next
        // attempt reads the row as it is then.
        Err(e) => Err(RecordError::Retry(format!(
            "Flexprice payment {} could not be processed yet: {e}",
            row.id
        ))),
    }
}

fn classed(e: &FlexpriceError) -> RecordError {
    if e.is_retryable() {
        RecordError::Retry(e.to_string())
    } else {
        RecordError::Refused(e.to_string())
    }
}
