//! Payment links for Flexprice invoices (`docs/architecture.md` §3.3).
//!
//! The payment's id is derived from the tenant and the idempotency key (the caller's, or one
//! derived from invoice, amount and currency), so the payment record is its own idempotency
//! record: created INITIATED with a short lock by one conditional put. A retry with the same
//! body gets the same payment; a different body under the same key is refused (409).
//! Concurrent duplicates wait for the first to finish. A record left INITIATED by a failed
//! attempt is taken over, and the Razorpay link is looked up by `reference_id` (our payment
//! id) before one is created, so a link made before a timeout is adopted, never duplicated.

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::adapters::aws::Adapters;
use crate::adapters::aws::records::{self, Made, PaymentRef};
use crate::adapters::aws::store::StoreError;
use crate::adapters::flexprice::FlexpriceError;
use crate::adapters::flexprice::wire::Invoice;
use crate::adapters::razorpay::RazorpayError;
use crate::adapters::razorpay::wire::{Notes, PaymentLink, PaymentLinkRequest};
use crate::domain::error::{Classify, Refusal};
use crate::domain::ids::FlexpriceId;
use crate::domain::instruments::{Collection, InstrumentChange, InstrumentKind, Which};
use crate::domain::invoice::payable;
use crate::domain::keys::{Key, TenantScope};
use crate::domain::money::Money;
use crate::domain::payment::{Payment, PaymentKey, PaymentStatus, PaymentUpdate};
use crate::domain::requests::PaymentRequest;
use crate::ports::RazorpayApi;
use crate::services::collection::{self, CollectionError, Placement};
use crate::services::connection::{self, Clients};
use crate::services::customers;

/// How long a request may hold an INITIATED payment before another may take it over.
const LOCK_MS: u64 = 20_000;
/// How long a concurrent duplicate waits for the first request to finish.
const WAIT: Duration = Duration::from_secs(8);

fn unavailable(what: &str) -> Refusal {
    Refusal::Unavailable(format!(
        "{what} is unavailable; retry the request with the same idempotency key."
    ))
}

/// Step 3 and 4: the invoice can be paid, in this currency, this much; with what it owes.
fn validate_against(
    request: &PaymentRequest,
    invoice: &Invoice,
) -> Result<(Money, Money), Refusal> {
    payable(&invoice.invoice_status, &invoice.payment_status).map_err(|e| {
        Refusal::unprocessable(
            "destination_id",
            e.rule(),
            format!("invoice {}: {e}", invoice.id),
        )
    })?;
    let currency = invoice
        .currency()
        .map_err(|e| Refusal::unprocessable("destination_id", "invoice_currency", e.to_string()))?;
    if !request.currency.eq_ignore_ascii_case(currency.code()) {
        return Err(Refusal::unprocessable(
            "currency",
            "invoice_currency",
            format!(
                "currency {} does not match the invoice's {}",
                request.currency.to_ascii_uppercase(),
                currency.code()
            ),
        ));
    }
    let remaining = invoice
        .remaining()
        .map_err(|e| Refusal::unprocessable("destination_id", "invoice_amounts", e.to_string()))?;
    let amount = request
        .amount
        .to_money(currency)
        .map_err(|e| Refusal::money("amount", &e))?;
    check_amount(amount, remaining)?;
    Ok((amount, remaining))
}

/// Above zero, at most what the invoice still owes, and at least the currency's minimum.
fn check_amount(amount: Money, remaining: Money) -> Result<(), Refusal> {
    if amount.is_zero() {
        return Err(Refusal::unprocessable(
            "amount",
            "positive",
            "amount must be greater than 0",
        ));
    }
    if amount.minor() > remaining.minor() {
        return Err(Refusal::unprocessable(
            "amount",
            "invoice_remaining",
            format!(
                "amount {} exceeds the invoice's remaining {}",
                amount.to_decimal_string(),
                remaining.to_decimal_string()
            ),
        ));
    }
    amount
        .check_collectable()
        .map_err(|e| Refusal::money("amount", &e))
}

pub(crate) fn digest(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    hex::encode(hasher.finalize())
}

/// Our payment id for an idempotency key: the same key always names the same payment.
pub fn payment_id_for(scope: &TenantScope, idempotency_key: &str) -> String {
    format!(
        "fxp_{}",
        &digest(&[scope.tenant_id(), scope.environment_id(), idempotency_key])[..24]
    )
}

/// What the create answered: new (201) or the same payment again (200).
#[derive(Debug)]
pub struct Created {
    pub new: bool,
    pub payment: Payment,
}

pub(crate) fn store_refusal(e: &StoreError) -> Refusal {
    tracing::error!(error = %e, "payment storage failed");
    if e.is_retryable() {
        unavailable("Storage")
    } else {
        Refusal::Internal
    }
}

/// `POST /api/v1/payments`, as its steps: the payment the caller's key made before (answered
/// as it is), else the connection's clients, the invoice, the amount against it, the payment
/// record, the link, PENDING.
pub async fn create(
    adapters: &Adapters,
    scope: &TenantScope,
    request: PaymentRequest,
) -> Result<Created, Refusal> {
    if let Some(payment) = answered_before(adapters, scope, &request).await? {
        return Ok(Created {
            new: false,
            payment,
        });
    }
    let clients = connected_clients(adapters, scope).await?;
    let invoice = read_invoice(&clients, &request.invoice_id).await?;
    let (amount, owed) = validate_against(&request, &invoice)?;
    let (key, taken) = take_for(adapters, scope, &request, &invoice, amount).await?;
    let (held, fresh) = match taken {
        Taken::Fresh(payment) => (payment, true),
        Taken::Held(payment) => (payment, false),
        Taken::Done(payment) => {
            return Ok(Created {
                new: false,
                payment,
            });
        }
    };
    let order = LinkFor {
        invoice: &invoice,
        request: &request,
        amount,
        owed,
        payment_id: &held.id,
        fresh,
        expire_by: clients.policy.link_expire_by(adapters.clock.now_secs()),
        reminders: clients.policy.link_reminders,
    };
    match collect(adapters, scope, &clients, &order, &key, &held).await {
        Ok(payment) => Ok(Created {
            new: fresh,
            payment,
        }),
        Err(refusal) => {
            let table = adapters.store.as_ref();
            let _ = records::update_payment(table, &key, &held, &PaymentUpdate::LockReleased).await;
            Err(refusal)
        }
    }
}

/// How the held payment is collected: through the invoice's live synced Razorpay invoice when
/// that asks exactly this amount (one way to pay, not two); otherwise through a link, reserved
/// against what the invoice owes before Razorpay is asked for it.
async fn collect(
    adapters: &Adapters,
    scope: &TenantScope,
    clients: &Clients,
    order: &LinkFor<'_>,
    key: &Key,
    held: &Payment,
) -> Result<Payment, Refusal> {
    let table = adapters.store.as_ref();
    let invoice_id = order.invoice.id.as_str();
    let placed = collection::place(
        adapters,
        scope,
        invoice_id,
        order.owed,
        order.amount,
        &held.id,
    )
    .await
    .map_err(|e| collection_refusal(&e))?;
    let reserved = match placed {
        Placement::Invoice(live) => {
            let attached = PaymentUpdate::InvoiceAttached {
                razorpay_invoice_id: live.razorpay_id.unwrap_or_default(),
                payment_url: live.url.unwrap_or_default(),
                at: adapters.clock.now_secs(),
            };
            return records::update_payment(table, key, held, &attached)
                .await
                .map_err(|e| store_refusal(&e));
        }
        Placement::Link(reserved) => reserved,
    };
    let which = Which::Key(InstrumentKind::Link, &held.id);
    let made = match link(adapters, scope, clients, order).await {
        Ok(made) => made,
        Err(refusal) => {
            release_reservation(adapters, scope, invoice_id, &which, &refusal).await;
            return Err(refusal);
        }
    };
    open_link(adapters, scope, &reserved, &which, &made).await;
    records::update_payment(table, key, held, &made)
        .await
        .map_err(|e| store_refusal(&e))
}

/// The made link is open among the invoice's instruments (if this fails it stays reserved,
/// so still counted as payable; the settle job opens it later).
async fn open_link(
    adapters: &Adapters,
    scope: &TenantScope,
    reserved: &Collection,
    which: &Which<'_>,
    made: &PaymentUpdate,
) {
    let PaymentUpdate::LinkMade {
        link_id,
        payment_url,
        ..
    } = made
    else {
        return;
    };
    let opened = InstrumentChange::Opened {
        razorpay_id: link_id.clone(),
        url: payment_url.clone(),
    };
    if let Err(e) = collection::change_stored(adapters, scope, reserved, which, &opened).await {
        tracing::warn!(error = %e, "could not mark the link open");
    }
}

/// A link that was certainly not made frees its reservation; after an unknown outcome
/// (unavailable) it stays reserved: the retry adopts the link, or the settle job finds none.
async fn release_reservation(
    adapters: &Adapters,
    scope: &TenantScope,
    invoice_id: &str,
    which: &Which<'_>,
    refusal: &Refusal,
) {
    if matches!(refusal, Refusal::Unavailable(_)) {
        return;
    }
    let closed = InstrumentChange::Closed {
        reason: "the link was not made".to_owned(),
    };
    if let Err(e) = collection::change(adapters, scope, invoice_id, which, &closed).await {
        tracing::warn!(error = %e, "could not free the link's reservation");
    }
}

/// A reservation the rule refused names the amount; anything else is storage.
fn collection_refusal(e: &CollectionError) -> Refusal {
    match e {
        CollectionError::Exceeds(exceeds) => {
            Refusal::unprocessable("amount", "payable_remaining", exceeds.to_string())
        }
        CollectionError::Busy => unavailable("Storage"),
        CollectionError::Store(e) => store_refusal(e),
    }
}

/// The Razorpay and Flexprice clients of the scope's connection.
pub(crate) async fn connected_clients(
    adapters: &Adapters,
    scope: &TenantScope,
) -> Result<std::sync::Arc<Clients>, Refusal> {
    let credentials = connection::credentials(adapters, scope)
        .await?
        .ok_or_else(|| {
            Refusal::unprocessable(
                "payment_gateway",
                "connected",
                "this tenant and environment have no Razorpay connection",
            )
        })?;
    adapters
        .clients
        .get(&adapters.config, &credentials)
        .map_err(|_| Refusal::Internal)
}

/// The Flexprice invoice the payment is for.
async fn read_invoice(clients: &Clients, invoice_id: &FlexpriceId) -> Result<Invoice, Refusal> {
    match clients.flexprice.get_invoice(invoice_id.as_str()).await {
        Ok(invoice) => Ok(invoice),
        Err(FlexpriceError::Api { status: 404, .. }) => Err(Refusal::unprocessable(
            "destination_id",
            "invoice_exists",
            format!("invoice {invoice_id} was not found"),
        )),
        Err(e) if e.is_retryable() => Err(unavailable("Flexprice")),
        Err(e) => {
            tracing::error!(error = %e, "Flexprice refused the invoice read");
            Err(Refusal::Upstream(
                "Flexprice refused to return the invoice.".to_owned(),
            ))
        }
    }
}

/// What a request asks, as one hash: the same request under the same key is the same payment,
/// another one is refused. Computed from the request alone (the amount as one canonical text),
/// so a retry is recognised before anything is read.
fn request_hash(request: &PaymentRequest) -> String {
    let success_url = request.success_url.as_ref().map_or("", |u| u.as_str());
    digest(&[
        request.invoice_id.as_str(),
        &request.amount.canonical(),
        &request.currency,
        success_url,
    ])
}

/// The payment a request makes under `key`: its id from the key in its namespace, the hash of
/// what it asks, INITIATED with a short lock.
fn new_payment(
    adapters: &Adapters,
    scope: &TenantScope,
    request: &PaymentRequest,
    key: &PaymentKey<'_>,
    amount: Money,
) -> Payment {
    let now_ms = adapters.clock.now_millis();
    let mut payment = Payment::new(
        payment_id_for(scope, &key.namespaced()),
        key.shown(),
        request.invoice_id.as_str().to_owned(),
        amount,
        now_ms / 1000,
    );
    payment.payload_hash = Some(request_hash(request));
    payment.metadata = request.metadata.clone();
    payment.lock_expires_at = Some(now_ms + LOCK_MS);
    payment
}

/// The payment the caller's key made before, if it is finished: answered as it is, before the
/// invoice is read again (a retry after the link was paid gets the paid payment, not a refusal
/// of the now-paid invoice). Another request under the same key is refused.
async fn answered_before(
    adapters: &Adapters,
    scope: &TenantScope,
    request: &PaymentRequest,
) -> Result<Option<Payment>, Refusal> {
    let Some(caller) = &request.idempotency_key else {
        return Ok(None);
    };
    let id = payment_id_for(scope, &PaymentKey::Caller(caller).namespaced());
    let stored =
        records::read::<Payment>(adapters.store.as_ref(), &records::payment_key(scope, &id))
            .await
            .map_err(|e| store_refusal(&e))?;
    let Some(payment) = stored else {
        return Ok(None);
    };
    same_request(&payment, &request_hash(request))?;
    Ok((payment.status != PaymentStatus::Initiated).then_some(payment))
}

fn same_request(stored: &Payment, request_hash: &str) -> Result<(), Refusal> {
    if stored.payload_hash.as_deref() == Some(request_hash) {
        return Ok(());
    }
    Err(Refusal::conflict(
        "idempotency_key",
        "same_body",
        "this idempotency key was used with a different request",
    ))
}

/// How many payments without a key one invoice, amount and currency may have whose links
/// ended unpaid, before the caller is asked for a key.
const MAX_GENERATIONS: u32 = 50;

/// Takes the payment record for the request: under the caller's key; or, without one, under
/// the derived key of the first generation whose payment did not end unpaid (so a request
/// after an expired link makes a new payment, and concurrent retries still meet on one).
async fn take_for(
    adapters: &Adapters,
    scope: &TenantScope,
    request: &PaymentRequest,
    invoice: &Invoice,
    amount: Money,
) -> Result<(Key, Taken), Refusal> {
    let currency = amount.currency().code();
    let derived = digest(&[&invoice.id, &amount.minor().to_string(), currency]);
    for generation in 0..MAX_GENERATIONS {
        let key = match &request.idempotency_key {
            Some(caller) => PaymentKey::Caller(caller),
            None => PaymentKey::Derived {
                digest: &derived[..32],
                generation,
            },
        };
        let offered = new_payment(adapters, scope, request, &key, amount);
        let record_key = records::payment_key(scope, &offered.id);
        let taken = take(adapters, &record_key, &offered).await?;
        let ended = matches!(&taken, Taken::Done(p) if p.status == PaymentStatus::Failed);
        if !ended || matches!(key, PaymentKey::Caller(_)) {
            return Ok((record_key, taken));
        }
    }
    Err(Refusal::unprocessable(
        "idempotency_key",
        "required",
        format!("{MAX_GENERATIONS} payments for this amount ended unpaid; send an idempotency_key"),
    ))
}

/// Who holds the payment after [`take`].
enum Taken {
    /// This request created it.
    Fresh(Payment),
    /// This request took over one a failed attempt left INITIATED.
    Held(Payment),
    /// The same request was answered before: the payment as it is.
    Done(Payment),
}

/// Creates the payment record, or finds the one this idempotency key made: the same body
/// (else 409), finished, held by another request (wait), or abandoned (take over).
async fn take(adapters: &Adapters, key: &Key, offered: &Payment) -> Result<Taken, Refusal> {
    let existing = match records::create_or_read(adapters.store.as_ref(), key, offered)
        .await
        .map_err(|e| store_refusal(&e))?
    {
        Made::New(payment) => return Ok(Taken::Fresh(payment)),
        Made::Existing(payment) => payment,
    };
    same_request(
        &existing,
        offered.payload_hash.as_deref().unwrap_or_default(),
    )?;
    take_over_or_wait(adapters, key, existing).await
}

/// An existing payment with the same body: finished → return it; held by a live request →
/// wait for it; left INITIATED by a failed one → take it over.
async fn take_over_or_wait(
    adapters: &Adapters,
    key: &Key,
    mut payment: Payment,
) -> Result<Taken, Refusal> {
    let table = adapters.store.as_ref();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if payment.status != PaymentStatus::Initiated {
            return Ok(Taken::Done(payment));
        }
        let now_ms = adapters.clock.now_millis();
        if !payment.is_held(now_ms) {
            let take = PaymentUpdate::LockTaken {
                until_ms: now_ms + LOCK_MS,
            };
            match records::update_payment(table, key, &payment, &take).await {
                Ok(held) => return Ok(Taken::Held(held)),
                Err(StoreError::ConditionFailed { .. }) => {}
                Err(e) => return Err(store_refusal(&e)),
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Refusal::InProgress(
                "The same payment is being created by another request; retry shortly.".to_owned(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        payment = records::read::<Payment>(table, key)
            .await
            .map_err(|e| store_refusal(&e))?
            .ok_or(Refusal::Internal)?;
    }
}

/// What a payment link is made for.
struct LinkFor<'a> {
    invoice: &'a Invoice,
    request: &'a PaymentRequest,
    amount: Money,
    /// What the invoice owes now.
    owed: Money,
    payment_id: &'a str,
    /// This request created the payment (else it took over one: a link may exist already).
    fresh: bool,
    /// When the link stops being payable (the connection's policy).
    expire_by: u64,
    reminders: bool,
}

/// The customer, the Razorpay link (made, or adopted), its mapping; returns the change that
/// makes the payment PENDING.
async fn link(
    adapters: &Adapters,
    scope: &TenantScope,
    clients: &Clients,
    order: &LinkFor<'_>,
) -> Result<PaymentUpdate, Refusal> {
    let customer = customers::ensure(
        adapters.store.as_ref(),
        clients.razorpay_account(),
        clients.flexprice.as_ref(),
        scope,
        &order.invoice.customer_id,
    )
    .await
    .map_err(|e| e.to_refusal())?;
    let link = create_or_adopt(clients.razorpay.as_ref(), scope, order).await?;
    let mapping = PaymentRef {
        payment_id: order.payment_id.to_owned(),
    };
    records::create_once(
        adapters.store.as_ref(),
        &records::link_key(scope, &link.id),
        &mapping,
    )
    .await
    .map_err(|e| store_refusal(&e))?;
    Ok(PaymentUpdate::LinkMade {
        link_id: link.id,
        payment_url: link.short_url,
        razorpay_customer_id: customer.razorpay_id().to_owned(),
        razorpay_invoice_id: order.invoice.metadata.get("razorpay_invoice_id").cloned(),
        at: adapters.clock.now_secs(),
    })
}

/// A Razorpay failure on the link, as the caller's answer.
fn link_refusal(e: RazorpayError) -> Refusal {
    tracing::warn!(error = %e, "Razorpay payment link failed");
    if e.is_retryable() {
        unavailable("Razorpay")
    } else {
        Refusal::Upstream(format!("Razorpay refused the payment link: {e}"))
    }
}

/// The payment's link: adopted when a taken-over payment has one already (found by its
/// `reference_id`, our payment id), created otherwise.
async fn create_or_adopt(
    razorpay: &dyn RazorpayApi,
    scope: &TenantScope,
    order: &LinkFor<'_>,
) -> Result<PaymentLink, Refusal> {
    if !order.fresh
        && let Some(link) = razorpay
            .find_payment_links_by_reference(order.payment_id)
            .await
            .map_err(link_refusal)?
            .into_iter()
            .next()
    {
        return Ok(link);
    }
    let invoice = order.invoice;
    let description = format!(
        "Invoice {}",
        invoice.invoice_number.as_deref().unwrap_or(&invoice.id)
    );
    let notes = Notes::from([
        ("flexprice_payment_id", order.payment_id),
        ("flexprice_invoice_id", invoice.id.as_str()),
        ("flexprice_customer_id", invoice.customer_id.as_str()),
        ("tenant_id", scope.tenant_id()),
        ("environment_id", scope.environment_id()),
    ]);
    let success_url = order.request.success_url.as_ref();
    razorpay
        .create_payment_link(&PaymentLinkRequest {
            amount: order.amount.minor(),
            currency: order.amount.currency().code().to_owned(),
            reference_id: order.payment_id.to_owned(),
            description: Some(description),
            notes,
            callback_url: success_url.map(|u| u.as_str().to_owned()),
            callback_method: success_url.map(|_| "get".to_owned()),
            expire_by: Some(order.expire_by),
            reminder_enable: order.reminders.then_some(true),
            ..PaymentLinkRequest::default()
        })
        .await
        .map_err(link_refusal)
}

/// `GET /api/v1/payments/{id}`: only the caller's own payments.
pub async fn get(adapters: &Adapters, scope: &TenantScope, id: &str) -> Result<Payment, Refusal> {
    records::read::<Payment>(adapters.store.as_ref(), &records::payment_key(scope, id))
        .await
        .map_err(|e| store_refusal(&e))?
        .ok_or_else(|| Refusal::NotFound(format!("No payment {id}.")))
}
