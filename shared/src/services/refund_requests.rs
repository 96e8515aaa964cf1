//! Refunds asked of flexrzp's API (`docs/architecture.md` §3.7, "refunds through the API"):
//! `POST /api/v1/payments/{id}/refunds`, as its steps:
//!
//! 1. the payment and the captured Razorpay payment to refund (the only one, or the one named);
//! 2. the refund reserved on the payment, `REQUESTED`, by a write conditioned on the version
//!    read: what is left of the capture counts every refund that holds money, in flight ones
//!    included, so two concurrent asks that together exceed it cannot both be reserved (the
//!    loser reads again and is told how much is left); the same idempotency key with the same
//!    body is the same refund, with another body a refusal;
//! 3. Razorpay asked under `X-Refund-Idempotency` = our refund id, with the same body every
//!    time (Razorpay answers a retry with the refund it made), our id in its notes;
//! 4. its answer applied through the very path of a `refund.*` webhook, so whichever comes
//!    first (the answer, the webhook, the sweep) fills it in and the others change nothing.
//!
//! Razorpay refusing it fails the refund (its amount is free again) and names the field; no
//! answer leaves it REQUESTED, holding its amount, and the caller sends the same request again.

use crate::adapters::aws::Adapters;
use crate::adapters::aws::records::{self, ChangeError};
use crate::adapters::razorpay::RazorpayError;
use crate::adapters::razorpay::wire::{Notes, RefundRequest as RazorpayRefundRequest};
use crate::domain::error::{Failure, Refusal};
use crate::domain::keys::{Key, TenantScope};
use crate::domain::payment::{Capture, Payment, PaymentUpdate};
use crate::domain::refund::RefundStatus;
use crate::domain::refund::{
    self, Merged, Refund, RefundAsk, RefundSource, ReserveError, Reserved,
};
use crate::domain::requests::RefundRequest;
use crate::services::connection::Clients;
use crate::services::payments::{self, connected_clients, digest, store_refusal};
use crate::services::refunds::{self, REFUND_NOTE};

/// Lost races on one payment's refunds before the request is answered retryable.
const WRITE_TRIES: u32 = 4;

/// What the create answered: new (201) or the same refund again (200), and its payment.
#[derive(Debug)]
pub struct Requested {
    pub new: bool,
    pub refund: Refund,
    pub payment: Payment,
}

/// `POST /api/v1/payments/{payment_id}/refunds`.
pub async fn create(
    adapters: &Adapters,
    scope: &TenantScope,
    payment_id: &str,
    request: RefundRequest,
) -> Result<Requested, Refusal> {
    let payment = payments::get(adapters, scope, payment_id).await?;
    let ask = ask_for(scope, &payment, &request)?;
    let clients = connected_clients(adapters, scope).await?;
    let key = records::payment_key(scope, &payment.id);
    let (refund, new) = reserve(adapters, &key, &ask).await?;
    if refund.status == RefundStatus::Requested {
        submit(adapters, scope, &clients, &key, &payment, &refund).await?;
    }
    answer(adapters, scope, &payment.id, &refund.id, new).await
}

/// A refund flexrzp makes itself: `amount_minor` of `capture`, once per key.
pub(crate) struct PolicyRefund<'a> {
    pub capture: &'a Capture,
    pub amount_minor: u64,
    pub idempotency_key: &'a str,
    pub reason: &'a str,
    pub source: RefundSource,
}

/// A refund flexrzp makes itself (the over-collection policy): `amount_minor` of `capture`,
/// once per `idempotency_key`, through the same reservation and Razorpay call as the API's.
pub(crate) async fn policy_refund(
    adapters: &Adapters,
    scope: &TenantScope,
    clients: &Clients,
    payment: &Payment,
    policy: PolicyRefund<'_>,
) -> Result<Refund, Refusal> {
    let capture = policy.capture;
    let ask = RefundAsk {
        id: refund_id_for(scope, &payment.id, policy.idempotency_key),
        idempotency_key: policy.idempotency_key.to_owned(),
        payload_hash: digest(&[
            &capture.razorpay_payment_id,
            &policy.amount_minor.to_string(),
        ]),
        razorpay_payment_id: capture.razorpay_payment_id.clone(),
        captured_minor: capture.amount_minor,
        amount_minor: Some(policy.amount_minor),
        speed: "normal".to_owned(),
        reason: Some(policy.reason.to_owned()),
        source: policy.source,
    };
    let key = records::payment_key(scope, &payment.id);
    let (refund, new) = reserve(adapters, &key, &ask).await?;
    if refund.status == RefundStatus::Requested {
        submit(adapters, scope, clients, &key, payment, &refund).await?;
    }
    answer(adapters, scope, &payment.id, &refund.id, new)
        .await
        .map(|r| r.refund)
}

/// A payment's refunds (`GET /api/v1/payments/{payment_id}/refunds`).
pub async fn list(
    adapters: &Adapters,
    scope: &TenantScope,
    payment_id: &str,
) -> Result<Payment, Refusal> {
    payments::get(adapters, scope, payment_id).await
}

/// Step 1: the refund asked, checked against the payment.
fn ask_for(
    scope: &TenantScope,
    payment: &Payment,
    request: &RefundRequest,
) -> Result<RefundAsk, Refusal> {
    let capture = capture_of(payment, request.razorpay_payment_id.as_deref())?;
    let amount_minor = match &request.amount {
        None => None,
        Some(text) => {
            let money = text
                .to_money(payment.amount.currency())
                .map_err(|e| Refusal::money("amount", &e))?;
            if money.is_zero() {
                return Err(Refusal::unprocessable(
                    "amount",
                    "positive",
                    "a refund must return more than nothing",
                ));
            }
            Some(money.minor())
        }
    };
    let shown_amount = amount_minor.map_or_else(|| "rest".to_owned(), |a| a.to_string());
    let payload_hash = digest(&[
        &capture.razorpay_payment_id,
        &shown_amount,
        &request.speed,
        request.reason.as_deref().unwrap_or_default(),
    ]);
    Ok(RefundAsk {
        id: refund_id_for(scope, &payment.id, &request.idempotency_key),
        idempotency_key: request.idempotency_key.clone(),
        payload_hash,
        razorpay_payment_id: capture.razorpay_payment_id,
        captured_minor: capture.amount_minor,
        amount_minor,
        speed: request.speed.clone(),
        reason: request.reason.clone(),
        source: RefundSource::Api,
    })
}

/// Our refund id: derived from the scope, the payment and the caller's key, so a retry names
/// the same refund (and Razorpay's idempotency key with it).
pub fn refund_id_for(scope: &TenantScope, payment_id: &str, idempotency_key: &str) -> String {
    let parts = [
        scope.tenant_id(),
        scope.environment_id(),
        payment_id,
        idempotency_key,
    ];
    format!("rfd_{}", &digest(&parts)[..24])
}

/// The captured Razorpay payment to refund: the one named, or the only one.
fn capture_of(payment: &Payment, named: Option<&str>) -> Result<Capture, Refusal> {
    let captures = payment.counted_captures();
    match (named, captures.as_slice()) {
        (_, []) => Err(Refusal::unprocessable(
            "payment_id",
            "captured",
            format!("payment {} has no captured money to refund", payment.id),
        )),
        (None, [only]) => Ok(only.clone()),
        (None, _) => Err(Refusal::unprocessable(
            "razorpay_payment_id",
            "required",
            "the payment counted several Razorpay payments: name the one to refund",
        )),
        (Some(id), _) => captures
            .iter()
            .find(|c| c.razorpay_payment_id == id)
            .cloned()
            .ok_or_else(|| {
                Refusal::unprocessable(
                    "razorpay_payment_id",
                    "captured_on_payment",
                    format!("{id} is not a Razorpay payment counted on {}", payment.id),
                )
            }),
    }
}

/// Step 2: the refund reserved (or the one the key made); whether it is new.
async fn reserve(
    adapters: &Adapters,
    key: &Key,
    ask: &RefundAsk,
) -> Result<(Refund, bool), Refusal> {
    let changed = records::change_payment(adapters.store.as_ref(), key, WRITE_TRIES, |payment| {
        let now = adapters.clock.now_secs();
        match refund::reserve(&payment.refunds, ask, now)? {
            Reserved::Existing(_) => Ok(None),
            Reserved::New(refunds) => Ok(Some(PaymentUpdate::RefundsChanged { refunds, at: now })),
        }
    })
    .await;
    let (payment, new) = changed.map_err(|e| change_refusal(e, reserve_refusal))?;
    find(&payment, &ask.id).map(|refund| (refund, new))
}

/// A payment change that did not happen, as the request's refusal.
fn change_refusal<E>(error: ChangeError<E>, refused: impl Fn(&E) -> Refusal) -> Refusal {
    match error {
        ChangeError::Missing => Refusal::NotFound("No such payment.".to_owned()),
        ChangeError::Refused(e) => refused(&e),
        ChangeError::Busy => busy(),
        ChangeError::Store(e) => store_refusal(&e),
    }
}

fn reserve_refusal(e: &ReserveError) -> Refusal {
    match e {
        ReserveError::Exceeds { .. } => {
            Refusal::unprocessable("amount", "refundable", e.to_string())
        }
        ReserveError::KeyReused(_) => {
            Refusal::conflict("idempotency_key", "same_request", e.to_string())
        }
    }
}

/// Step 3: Razorpay asked, and its answer applied (step 4).
async fn submit(
    adapters: &Adapters,
    scope: &TenantScope,
    clients: &Clients,
    key: &Key,
    payment: &Payment,
    refund: &Refund,
) -> Result<(), Refusal> {
    let request = razorpay_request(payment, refund);
    let answered = clients
        .razorpay
        .create_refund(&refund.razorpay_payment_id, &refund.id, &request)
        .await;
    match answered {
        Ok(made) => refunds::apply(adapters, scope, &made, None)
            .await
            .map(|_| ())
            .map_err(|failure| applied_refusal(&failure)),
        Err(e) if is_refusal(&e) => {
            let field = refused(adapters, key, &refund.id, &e).await?;
            Err(Refusal::unprocessable(
                &field,
                "razorpay_refused",
                e.to_string(),
            ))
        }
        Err(e) => {
            tracing::warn!(error = %e, refund_id = %refund.id, "Razorpay did not answer a refund");
            Err(Refusal::Unavailable(
                "Razorpay did not answer; send the same request again (same idempotency_key): it never refunds twice."
                    .to_owned(),
            ))
        }
    }
}

/// What Razorpay is asked: the same body on every retry (its idempotency rule).
fn razorpay_request(payment: &Payment, refund: &Refund) -> RazorpayRefundRequest {
    let mut notes = Notes::from([
        (REFUND_NOTE, refund.id.as_str()),
        ("flexprice_payment_id", payment.id.as_str()),
    ]);
    if let Some(reason) = &refund.reason {
        notes.insert("reason", reason.as_str());
    }
    RazorpayRefundRequest {
        amount: refund.amount_minor,
        speed: refund.speed.clone().unwrap_or_else(|| "normal".to_owned()),
        receipt: Some(refund.id.clone()),
        notes,
    }
}

/// A refusal a retry would not change (a 409 is Razorpay still working on the first call).
fn is_refusal(e: &RazorpayError) -> bool {
    matches!(e, RazorpayError::Api { status, .. } if (400..500).contains(status) && *status != 409 && *status != 429)
}

/// Razorpay refused the refund: it failed, its amount is free again. The field to name.
async fn refused(
    adapters: &Adapters,
    key: &Key,
    id: &str,
    e: &RazorpayError,
) -> Result<String, Refusal> {
    let reason = e.to_string();
    let changed = records::change_payment(adapters.store.as_ref(), key, WRITE_TRIES, |payment| {
        let now = adapters.clock.now_secs();
        Ok::<_, std::convert::Infallible>(
            match refund::refused(&payment.refunds, id, &reason, now) {
                Merged::Changed(refunds) => {
                    Some(PaymentUpdate::RefundsChanged { refunds, at: now })
                }
                Merged::Unchanged => None,
            },
        )
    })
    .await;
    match changed {
        // Still racing after every try: the refusal is answered all the same.
        Ok(_) | Err(ChangeError::Busy) => {}
        Err(e) => return Err(change_refusal(e, |never| match *never {})),
    }
    let field = match e {
        RazorpayError::Api {
            field: Some(field), ..
        } if field == "speed" => "speed",
        _ => "amount",
    };
    Ok(field.to_owned())
}

fn applied_refusal(failure: &Failure) -> Refusal {
    tracing::warn!(%failure, "a refund Razorpay made could not be applied yet");
    Refusal::Unavailable(
        "Razorpay made the refund; it is not recorded yet. Send the same request again (same idempotency_key)."
            .to_owned(),
    )
}

/// The refund as it stands now, with its payment.
async fn answer(
    adapters: &Adapters,
    scope: &TenantScope,
    payment_id: &str,
    id: &str,
    new: bool,
) -> Result<Requested, Refusal> {
    let payment = payments::get(adapters, scope, payment_id).await?;
    let refund = find(&payment, id)?;
    Ok(Requested {
        new,
        refund,
        payment,
    })
}

fn find(payment: &Payment, id: &str) -> Result<Refund, Refusal> {
    payment
        .refunds
        .iter()
        .find(|r| r.id == id)
        .cloned()
        .ok_or(Refusal::Internal)
}

fn busy() -> Refusal {
    Refusal::Unavailable(
        "the payment's refunds kept changing; send the same request again (same idempotency_key)."
            .to_owned(),
    )
}
