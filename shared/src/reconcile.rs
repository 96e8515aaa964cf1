//! Applying Razorpay events to payment-link payments (DESIGN §3.2, "apply Razorpay event"):
//! `payment.captured`, `payment_link.paid` and `payment_link.partially_paid` count the money;
//! `payment.failed` records an attempt and leaves the payment open (the customer may retry);
//! `payment_link.expired` and `payment_link.cancelled` fail it unless it SUCCEEDED; a late
//! failure never undoes SUCCEEDED. `payment.authorized` changes nothing. Invoice events are
//! refused as not applied yet, so their jobs are parked in the DLQ rather than dropped.
//!
//! Exactly once: the Razorpay payment is recorded into Flexprice with
//! `idempotency_key = "razorpay:{pay_id}"` (Flexprice dedupes), then counted on our payment in
//! one transaction with a `RZP_PAYMENT#{pay_id}` item that can be created only once.

use serde::Deserialize;

use crate::aws::Adapters;
use crate::aws::store::{
    CancelReason, Expect, Item, ItemExt, STATUS, StoreError, Update, VERSION, Write, n, s,
};
use crate::connection::{self, Clients};
use crate::flexprice::wire::RecordPaymentRequest;
use crate::jobs::Failure;
use crate::keys::TenantScope;
use crate::money::{Currency, Money};
use crate::problem::Classify;

#[derive(Deserialize)]
struct Event {
    event: String,
    payload: Payload,
}

#[derive(Deserialize)]
struct Payload {
    #[serde(default)]
    payment: Option<Wrapped<RazorpayPayment>>,
    #[serde(default)]
    payment_link: Option<Wrapped<RazorpayLink>>,
}

#[derive(Deserialize)]
struct Wrapped<T> {
    entity: T,
}

#[derive(Deserialize)]
struct RazorpayLink {
    id: String,
    #[serde(default)]
    reference_id: Option<String>,
    #[serde(default)]
    notes: crate::razorpay::wire::Notes,
}

#[derive(Deserialize)]
struct RazorpayPayment {
    id: String,
    amount: u64,
    currency: String,
    status: String,
    #[serde(default)]
    notes: crate::razorpay::wire::Notes,
    #[serde(default)]
    error_code: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
    #[serde(default)]
    error_reason: Option<String>,
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
    /// A failed attempt was recorded; the payment stays open.
    AttemptRecorded,
    /// The link ended unpaid; the payment FAILED.
    Failed,
}

/// Applies one Razorpay event (its raw body) for `scope`.
pub async fn apply(
    adapters: &Adapters,
    scope: &TenantScope,
    body: &str,
) -> Result<Applied, Failure> {
    let event: Event = serde_json::from_str(body)
        .map_err(|e| Failure::Permanent(format!("not a Razorpay event: {e}")))?;
    match event.event.as_str() {
        "payment.authorized" => return Ok(Applied::NoChange),
        "payment.captured" | "payment_link.paid" | "payment_link.partially_paid" => {}
        "payment.failed" => return record_attempt(adapters, scope, event.payload).await,
        "payment_link.expired" | "payment_link.cancelled" => {
            return link_ended(adapters, scope, event.payload, &event.event).await;
        }
        other => {
            return Err(Failure::Permanent(format!(
                "{other} events are not applied yet"
            )));
        }
    }
    let razorpay = event
        .payload
        .payment
        .ok_or_else(|| Failure::Permanent("the event carries no payment".into()))?
        .entity;
    if razorpay.status != "captured" {
        return Err(Failure::Permanent(format!(
            "payment {} is {}, not captured",
            razorpay.id, razorpay.status
        )));
    }
    let payment_id = razorpay
        .notes
        .get("flexprice_payment_id")
        .ok_or_else(|| {
            Failure::Permanent(format!(
                "payment {} names no flexprice_payment_id (invoice payments are not applied yet)",
                razorpay.id
            ))
        })?
        .to_owned();
    if razorpay.notes.get("tenant_id") != Some(scope.tenant_id())
        || razorpay.notes.get("environment_id") != Some(scope.environment_id())
    {
        return Err(Failure::Permanent(format!(
            "payment {} belongs to another tenant or environment",
            razorpay.id
        )));
    }
    let key = scope.key("PAYMENT", &payment_id);
    let payment = adapters
        .store
        .get(&key)
        .await
        .map_err(Failure::retryable)?
        .ok_or_else(|| Failure::Permanent(format!("no payment {payment_id}")))?;
    let counted_key = scope.key("RZP_PAYMENT", &razorpay.id);
    if adapters
        .store
        .get(&counted_key)
        .await
        .map_err(Failure::retryable)?
        .is_some()
    {
        return Ok(Applied::AlreadyCounted);
    }
    let currency =
        Currency::from_code(&razorpay.currency).map_err(|e| Failure::Permanent(e.to_string()))?;
    if payment.str_attr("currency") != Some(currency.code()) {
        return Err(Failure::Permanent(format!(
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
        .map_err(|p| Failure::retryable(p.detail))?
        .ok_or_else(|| Failure::Permanent("the tenant is no longer connected".into()))?;
    let Clients { flexprice, .. } =
        Clients::new(&adapters.config, &credentials).map_err(Failure::retryable)?;
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
            Failure::retryable(e)
        } else {
            Failure::Permanent(format!("Flexprice refused the payment: {e}"))
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
        Err(e) => Err(Failure::retryable(format!(
            "the payment changed meanwhile: {e}"
        ))),
    }
}

/// Our payment named by a link or payment's notes (or the link's `reference_id`), checked to
/// belong to `scope`.
async fn our_payment(
    adapters: &Adapters,
    scope: &TenantScope,
    notes: &crate::razorpay::wire::Notes,
    reference_id: Option<&str>,
) -> Result<(crate::keys::Key, Item), Failure> {
    if notes
        .get("tenant_id")
        .is_some_and(|t| t != scope.tenant_id())
        || notes
            .get("environment_id")
            .is_some_and(|e| e != scope.environment_id())
    {
        return Err(Failure::Permanent(
            "the event belongs to another tenant or environment".into(),
        ));
    }
    let payment_id = notes
        .get("flexprice_payment_id")
        .or(reference_id)
        .ok_or_else(|| Failure::Permanent("the event names no payment of ours".into()))?;
    let key = scope.key("PAYMENT", payment_id);
    let item = adapters
        .store
        .get(&key)
        .await
        .map_err(Failure::retryable)?
        .ok_or_else(|| Failure::Permanent(format!("no payment {payment_id}")))?;
    Ok((key, item))
}

/// `payment.failed`: one attempt per Razorpay payment id; the status is left as it is.
async fn record_attempt(
    adapters: &Adapters,
    scope: &TenantScope,
    payload: Payload,
) -> Result<Applied, Failure> {
    let failed = payload
        .payment
        .ok_or_else(|| Failure::Permanent("the event carries no payment".into()))?
        .entity;
    let (key, item) = our_payment(adapters, scope, &failed.notes, None).await?;
    let mut attempts: Vec<serde_json::Value> = item
        .str_attr("attempts")
        .and_then(|a| serde_json::from_str(a).ok())
        .unwrap_or_default();
    if attempts
        .iter()
        .any(|a| a["razorpay_payment_id"] == failed.id.as_str())
    {
        return Ok(Applied::NoChange);
    }
    attempts.push(serde_json::json!({
        "razorpay_payment_id": failed.id,
        "status": "FAILED",
        "error_code": failed.error_code,
        "error_description": failed.error_description,
        "error_reason": failed.error_reason,
        "at": adapters.clock.now_secs(),
    }));
    let update = Update {
        expect: vec![Expect::Version(item.u64_attr(VERSION).unwrap_or(0))],
        set: Item::from([(
            "attempts".to_owned(),
            s(serde_json::Value::from(attempts).to_string()),
        )]),
        bump_version: true,
        ..Update::default()
    };
    adapters
        .store
        .update(&key, &update)
        .await
        .map_err(|e| Failure::retryable(format!("the payment changed meanwhile: {e}")))?;
    Ok(Applied::AttemptRecorded)
}

/// `payment_link.expired` / `payment_link.cancelled`: FAILED, unless the money came in.
async fn link_ended(
    adapters: &Adapters,
    scope: &TenantScope,
    payload: Payload,
    event: &str,
) -> Result<Applied, Failure> {
    let link = payload
        .payment_link
        .ok_or_else(|| Failure::Permanent("the event carries no payment link".into()))?
        .entity;
    let (key, item) =
        our_payment(adapters, scope, &link.notes, link.reference_id.as_deref()).await?;
    let status = item.str_attr(STATUS).unwrap_or_default().to_owned();
    if !matches!(status.as_str(), "INITIATED" | "PENDING") {
        return Ok(Applied::NoChange);
    }
    let update = Update {
        expect: vec![
            Expect::Status(status),
            Expect::Version(item.u64_attr(VERSION).unwrap_or(0)),
        ],
        set: Item::from([
            (STATUS.to_owned(), s("FAILED")),
            (
                "failure_reason".to_owned(),
                s(format!("{event} ({})", link.id)),
            ),
            ("updated_at".to_owned(), n(adapters.clock.now_secs())),
        ]),
        bump_version: true,
        ..Update::default()
    };
    adapters
        .store
        .update(&key, &update)
        .await
        .map_err(|e| Failure::retryable(format!("the payment changed meanwhile: {e}")))?;
    Ok(Applied::Failed)
}
