//! Applying Razorpay events to payments (DESIGN §3.2, "apply Razorpay event"), so far for
//! money captured on payment links: `payment.captured`, `payment_link.paid` and
//! `payment_link.partially_paid`. `payment.authorized` changes nothing. Every other event is
//! refused as not applied yet, so its job is parked in the DLQ rather than dropped.
//!
//! Exactly once: the Razorpay payment is recorded into Flexprice with
//! `idempotency_key = "razorpay:{pay_id}"` (Flexprice dedupes), then counted on our payment in
//! one transaction with a `RZP_PAYMENT#{pay_id}` item that can be created only once.

use serde::Deserialize;

use crate::aws::Adapters;
use crate::aws::store::{
    CancelReason, Expect, Item, ItemExt, STATUS, StoreError, Update, VERSION, Write, n, s,
};
use crate::connection;
use crate::flexprice::wire::RecordPaymentRequest;
use crate::flexprice::{FlexpriceClient, FlexpriceConfig};
use crate::keys::TenantScope;
use crate::money::{Currency, Money};
use crate::problem::Classify;

/// Why an event could not be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyError {
    /// May work later (a dependency was unavailable, a concurrent update won).
    Retryable(String),
    /// Will not work as it is (unknown payment, an event kind not applied yet).
    Permanent(String),
}

#[derive(Deserialize)]
struct Event {
    event: String,
    payload: Payload,
}

#[derive(Deserialize)]
struct Payload {
    #[serde(default)]
    payment: Option<Wrapped>,
}

#[derive(Deserialize)]
struct Wrapped {
    entity: RazorpayPayment,
}

#[derive(Deserialize)]
struct RazorpayPayment {
    id: String,
    amount: u64,
    currency: String,
    status: String,
    #[serde(default)]
    notes: crate::razorpay::wire::Notes,
}

fn retryable(e: impl std::fmt::Display) -> ApplyError {
    ApplyError::Retryable(e.to_string())
}

/// What applying an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Nothing to change (e.g. `payment.authorized`).
    NoChange,
    /// This Razorpay payment was counted before (a duplicate event).
    AlreadyCounted,
    /// Counted; the payment is now in this status.
    Counted { status: String },
}

/// Applies one Razorpay event (its raw body) for `scope`.
pub async fn apply(
    adapters: &Adapters,
    scope: &TenantScope,
    body: &str,
) -> Result<Applied, ApplyError> {
    let event: Event = serde_json::from_str(body)
        .map_err(|e| ApplyError::Permanent(format!("not a Razorpay event: {e}")))?;
    match event.event.as_str() {
        "payment.authorized" => return Ok(Applied::NoChange),
        "payment.captured" | "payment_link.paid" | "payment_link.partially_paid" => {}
        other => {
            return Err(ApplyError::Permanent(format!(
                "{other} events are not applied yet"
            )));
        }
    }
    let razorpay = event
        .payload
        .payment
        .ok_or_else(|| ApplyError::Permanent("the event carries no payment".into()))?
        .entity;
    if razorpay.status != "captured" {
        return Err(ApplyError::Permanent(format!(
            "payment {} is {}, not captured",
            razorpay.id, razorpay.status
        )));
    }
    let payment_id = razorpay
        .notes
        .get("flexprice_payment_id")
        .ok_or_else(|| {
            ApplyError::Permanent(format!(
                "payment {} names no flexprice_payment_id (invoice payments are not applied yet)",
                razorpay.id
            ))
        })?
        .to_owned();
    if razorpay.notes.get("tenant_id") != Some(scope.tenant_id())
        || razorpay.notes.get("environment_id") != Some(scope.environment_id())
    {
        return Err(ApplyError::Permanent(format!(
            "payment {} belongs to another tenant or environment",
            razorpay.id
        )));
    }
    let key = scope.key("PAYMENT", &payment_id);
    let payment = adapters
        .store
        .get(&key)
        .await
        .map_err(retryable)?
        .ok_or_else(|| ApplyError::Permanent(format!("no payment {payment_id}")))?;
    let counted_key = scope.key("RZP_PAYMENT", &razorpay.id);
    if adapters
        .store
        .get(&counted_key)
        .await
        .map_err(retryable)?
        .is_some()
    {
        return Ok(Applied::AlreadyCounted);
    }
    let currency = Currency::from_code(&razorpay.currency)
        .map_err(|e| ApplyError::Permanent(e.to_string()))?;
    if payment.str_attr("currency") != Some(currency.code()) {
        return Err(ApplyError::Permanent(format!(
            "payment {} is in {}, ours in {:?}",
            razorpay.id,
            currency.code(),
            payment.str_attr("currency")
        )));
    }
    let captured = Money::from_minor(razorpay.amount, currency);

    // 1. Flexprice, exactly once thanks to its idempotency key.
    let credentials = connection::credentials(adapters, scope)
        .await
        .map_err(|p| retryable(p.detail))?
        .ok_or_else(|| ApplyError::Permanent("the tenant is no longer connected".into()))?;
    let flexprice = FlexpriceClient::new(FlexpriceConfig::new(
        &adapters.config.flexprice_api_url,
        credentials.flexprice_api_key.clone(),
    ))
    .map_err(retryable)?;
    let invoice_id = payment
        .str_attr("invoice_id")
        .unwrap_or_default()
        .to_owned();
    let metadata = [
        ("razorpay_payment_id", razorpay.id.as_str()),
        ("flexprice_payment_id", payment_id.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let record = RecordPaymentRequest::offline(
        &invoice_id,
        captured,
        &format!("razorpay:{}", razorpay.id),
        metadata,
    );
    if let Err(e) = flexprice.record_payment(&record).await {
        return Err(if e.is_retryable() {
            retryable(e)
        } else {
            ApplyError::Permanent(format!("Flexprice refused the payment: {e}"))
        });
    }

    // 2. Count it on our payment, once.
    let version = payment.u64_attr(VERSION).unwrap_or(0);
    let paid = payment.u64_attr("amount_paid").unwrap_or(0) + razorpay.amount;
    let status = if paid >= payment.u64_attr("amount_minor").unwrap_or(u64::MAX) {
        "SUCCEEDED"
    } else {
        payment.str_attr(STATUS).unwrap_or("PENDING")
    };
    let now = adapters.clock.now_secs();
    let result = adapters
        .store
        .transact(vec![
            Write::Create {
                key: counted_key,
                attrs: Item::from([
                    ("payment_id".to_owned(), s(&payment_id)),
                    ("amount_minor".to_owned(), n(razorpay.amount)),
                ]),
            },
            Write::Update {
                key,
                update: Update {
                    expect: vec![Expect::Version(version)],
                    set: Item::from([
                        (STATUS.to_owned(), s(status)),
                        ("amount_paid".to_owned(), n(paid)),
                        ("updated_at".to_owned(), n(now)),
                    ]),
                    bump_version: true,
                    ..Update::default()
                },
            },
        ])
        .await;
    match result {
        Ok(()) => Ok(Applied::Counted {
            status: status.to_owned(),
        }),
        Err(StoreError::TransactionCancelled { reasons })
            if matches!(reasons.first(), Some(CancelReason::ConditionFailed { .. })) =>
        {
            Ok(Applied::AlreadyCounted)
        }
        Err(e) => Err(retryable(format!("the payment changed meanwhile: {e}"))),
    }
}
