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

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::adapters::aws::Adapters;
use crate::adapters::aws::store::{
    Expect, Item, ItemExt, STATUS, StoreError, Update, VERSION, n, s,
};
use crate::adapters::flexprice::FlexpriceError;
use crate::adapters::flexprice::wire::Invoice;
use crate::adapters::razorpay::wire::{Notes, PaymentLink, PaymentLinkRequest};
use crate::adapters::razorpay::{RazorpayClient, RazorpayError};
use crate::api::problem::Problem;
use crate::api::requests::PaymentRequest;
use crate::domain::error::Classify;
use crate::domain::ids::FlexpriceId;
use crate::domain::invoice::payable;
use crate::domain::keys::{Key, TenantScope};
use crate::domain::money::Money;
use crate::domain::payment::PaymentStatus;
use crate::services::connection::{self, Clients};
use crate::services::customers;

const KIND: &str = "PAYMENT";
const INITIATED: &str = PaymentStatus::Initiated.as_str();
const PENDING: &str = PaymentStatus::Pending.as_str();
/// How long a request may hold an INITIATED payment before another may take it over.
const LOCK_MS: u64 = 20_000;
/// How long a concurrent duplicate waits for the first request to finish.
const WAIT: Duration = Duration::from_secs(8);

fn invalid(status: u16, field: &str, rule: &str, detail: impl Into<String>) -> Problem {
    Problem::invalid_field(status, field, rule, detail)
}

fn unavailable(what: &str) -> Problem {
    Problem::unavailable(format!(
        "{what} is unavailable; retry the request with the same idempotency key."
    ))
}

/// Step 3 and 4: the invoice can be paid, in this currency, this much.
fn validate_against(request: &PaymentRequest, invoice: &Invoice) -> Result<Money, Problem> {
    payable(&invoice.invoice_status, &invoice.payment_status).map_err(|e| {
        invalid(
            422,
            "destination_id",
            e.rule(),
            format!("invoice {}: {e}", invoice.id),
        )
    })?;
    let currency = invoice
        .currency()
        .map_err(|e| invalid(422, "destination_id", "invoice_currency", e.to_string()))?;
    if !request.currency.eq_ignore_ascii_case(currency.code()) {
        return Err(invalid(
            422,
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
        .amounts()
        .map_err(|e| invalid(422, "destination_id", "invoice_amounts", e.to_string()))?
        .remaining;
    let amount = request
        .amount
        .to_money(currency)
        .map_err(|e| Problem::from_money("amount", &e))?;
    check_amount(amount, remaining)?;
    Ok(amount)
}

/// Above zero, at most what the invoice still owes, and at least the currency's minimum.
fn check_amount(amount: Money, remaining: Money) -> Result<(), Problem> {
    if amount.is_zero() {
        return Err(invalid(
            422,
            "amount",
            "positive",
            "amount must be greater than 0",
        ));
    }
    if amount.minor() > remaining.minor() {
        return Err(invalid(
            422,
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
        .map_err(|e| Problem::from_money("amount", &e))
}

fn digest(parts: &[&str]) -> String {
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

pub(crate) fn payment_key(scope: &TenantScope, id: &str) -> Key {
    scope.key(KIND, id)
}

/// The payment as the API shows it.
fn view(item: &Item) -> Value {
    let attr = |name: &str| item.str_attr(name);
    let metadata: Value = attr("metadata")
        .and_then(|m| serde_json::from_str(m).ok())
        .unwrap_or_else(|| json!({}));
    // An invoice synced to a Razorpay invoice can be paid there too; the link is a second
    // way to pay the same invoice, and the caller is told so.
    let notice = attr("razorpay_invoice_id").map(|rzp| {
        format!(
            "invoice {} is also synced to Razorpay invoice {rzp}; this payment link is a separate way to pay it",
            attr("invoice_id").unwrap_or_default()
        )
    });
    json!({
        "id": attr("payment_id"),
        "idempotency_key": attr("idempotency_key"),
        "destination_type": "INVOICE",
        "destination_id": attr("invoice_id"),
        "payment_method_type": attr("method").unwrap_or("PAYMENT_LINK"),
        "payment_gateway": "razorpay",
        "amount": attr("amount"),
        "amount_minor": item.u64_attr("amount_minor"),
        "amount_paid_minor": item.u64_attr("amount_paid").unwrap_or(0),
        "currency": attr("currency"),
        "payment_status": attr(STATUS),
        "gateway_tracking_id": attr("gateway_tracking_id"),
        "payment_url": attr("payment_url"),
        "razorpay_customer_id": attr("razorpay_customer_id"),
        "razorpay_invoice_id": attr("razorpay_invoice_id"),
        "metadata": metadata,
        "attempts": attr("attempts").and_then(|a| serde_json::from_str::<Value>(a).ok()).unwrap_or_else(|| json!([])),
        "failure_reason": attr("failure_reason"),
        "last_error": attr("last_error"),
        "review": attr("review"),
        "notice": notice,
        "created_at": item.u64_attr("created_at"),
        "updated_at": item.u64_attr("updated_at"),
    })
}

/// What the create answered: new (201) or the same payment again (200).
pub struct Created {
    pub new: bool,
    pub payment: Value,
}

fn store_problem(e: &StoreError) -> Problem {
    tracing::error!(error = %e, "payment storage failed");
    if e.is_retryable() {
        unavailable("Storage")
    } else {
        Problem::internal()
    }
}

/// `POST /api/v1/payments`, as its steps: the connection's clients, the invoice, the amount
/// against it, the payment record (or the one this key made before), the link, PENDING.
pub async fn create(
    adapters: &Adapters,
    scope: &TenantScope,
    request: PaymentRequest,
) -> Result<Created, Problem> {
    let clients = connected_clients(adapters, scope).await?;
    let invoice = read_invoice(&clients, &request.invoice_id).await?;
    let amount = validate_against(&request, &invoice)?;
    let record = PaymentRecord::new(adapters, scope, &request, &invoice, amount);
    let (version, fresh) = match take(adapters, &record).await? {
        Taken::Fresh => (0, true),
        Taken::Held { version } => (version, false),
        Taken::Done(item) => {
            return Ok(Created {
                new: false,
                payment: view(&item),
            });
        }
    };
    let order = LinkFor {
        invoice: &invoice,
        request: &request,
        amount,
        payment_id: &record.payment_id,
        fresh,
    };
    let link_made = link(adapters, scope, &clients, &order).await;
    match link_made {
        Ok(updates) => {
            let stored = mark_pending(adapters, &record.key, version, updates).await?;
            Ok(Created {
                new: fresh,
                payment: view(&stored),
            })
        }
        Err(problem) => {
            release_lock(adapters, &record.key, version).await;
            Err(problem)
        }
    }
}

/// The Razorpay and Flexprice clients of the scope's connection.
async fn connected_clients(
    adapters: &Adapters,
    scope: &TenantScope,
) -> Result<std::sync::Arc<Clients>, Problem> {
    let credentials = connection::credentials(adapters, scope)
        .await?
        .ok_or_else(|| {
            invalid(
                422,
                "payment_gateway",
                "connected",
                "this tenant and environment have no Razorpay connection",
            )
        })?;
    adapters
        .clients
        .get(&adapters.config, &credentials)
        .map_err(|_| Problem::internal())
}

/// The Flexprice invoice the payment is for.
async fn read_invoice(clients: &Clients, invoice_id: &FlexpriceId) -> Result<Invoice, Problem> {
    match clients.flexprice.get_invoice(invoice_id.as_str()).await {
        Ok(invoice) => Ok(invoice),
        Err(FlexpriceError::Api { status: 404, .. }) => Err(invalid(
            422,
            "destination_id",
            "invoice_exists",
            format!("invoice {invoice_id} was not found"),
        )),
        Err(e) if e.is_retryable() => Err(unavailable("Flexprice")),
        Err(e) => {
            tracing::error!(error = %e, "Flexprice refused the invoice read");
            Err(Problem::new(
                502,
                "upstream",
                "Bad gateway",
                "Flexprice refused to return the invoice.",
            ))
        }
    }
}

/// The payment record a request makes: its id (from the idempotency key), the hash of what it
/// asks, and the item created INITIATED with a short lock.
struct PaymentRecord {
    payment_id: String,
    key: Key,
    payload_hash: String,
    item: Item,
}

impl PaymentRecord {
    fn new(
        adapters: &Adapters,
        scope: &TenantScope,
        request: &PaymentRequest,
        invoice: &Invoice,
        amount: Money,
    ) -> PaymentRecord {
        let currency = amount.currency();
        let minor = amount.minor().to_string();
        let idempotency_key = request.idempotency_key.clone().unwrap_or_else(|| {
            format!(
                "auto-{}",
                &digest(&[&invoice.id, &minor, currency.code()])[..32]
            )
        });
        let payment_id = payment_id_for(scope, &idempotency_key);
        let success_url = request.success_url.as_ref().map_or("", |u| u.as_str());
        let payload_hash = digest(&[&invoice.id, &minor, currency.code(), success_url]);
        let now_ms = adapters.clock.now_millis();
        let metadata = serde_json::to_string(&request.metadata).unwrap_or_default();
        let item = Item::from([
            ("payment_id".to_owned(), s(&payment_id)),
            ("idempotency_key".to_owned(), s(&idempotency_key)),
            ("payload_hash".to_owned(), s(&payload_hash)),
            ("invoice_id".to_owned(), s(&invoice.id)),
            ("amount".to_owned(), s(amount.to_decimal_string())),
            ("amount_minor".to_owned(), n(amount.minor())),
            ("currency".to_owned(), s(currency.code())),
            ("metadata".to_owned(), s(metadata)),
            (STATUS.to_owned(), s(INITIATED)),
            (VERSION.to_owned(), n(0)),
            ("lock_expires_at".to_owned(), n(now_ms + LOCK_MS)),
            ("created_at".to_owned(), n(now_ms / 1000)),
            ("updated_at".to_owned(), n(now_ms / 1000)),
        ]);
        PaymentRecord {
            key: payment_key(scope, &payment_id),
            payment_id,
            payload_hash,
            item,
        }
    }
}

/// Who holds the payment after [`take`].
enum Taken {
    /// This request created it.
    Fresh,
    /// This request took over one a failed attempt left INITIATED (at this version).
    Held { version: u64 },
    /// The same request was answered before: the payment as it is.
    Done(Item),
}

/// Creates the payment record, or finds the one this idempotency key made: the same body
/// (else 409), finished, held by another request (wait), or abandoned (take over).
async fn take(adapters: &Adapters, record: &PaymentRecord) -> Result<Taken, Problem> {
    let existing = match adapters
        .store
        .create(&record.key, record.item.clone())
        .await
    {
        Ok(()) => return Ok(Taken::Fresh),
        Err(StoreError::AlreadyExists {
            existing: Some(item),
        }) => *item,
        Err(StoreError::AlreadyExists { existing: None }) => adapters
            .store
            .get(&record.key)
            .await
            .map_err(|e| store_problem(&e))?
            .ok_or_else(Problem::internal)?,
        Err(e) => return Err(store_problem(&e)),
    };
    if existing.str_attr("payload_hash") != Some(record.payload_hash.as_str()) {
        return Err(invalid(
            409,
            "idempotency_key",
            "same_body",
            "this idempotency key was used with a different request",
        ));
    }
    Ok(
        match take_over_or_wait(adapters, &record.key, existing).await? {
            Ok(done) => Taken::Done(done),
            Err(version) => Taken::Held { version },
        },
    )
}

/// The link is made: PENDING, with what the link step found, under the lock this request holds.
async fn mark_pending(
    adapters: &Adapters,
    key: &Key,
    version: u64,
    updates: Item,
) -> Result<Item, Problem> {
    let update = Update {
        expect: vec![Expect::Status(INITIATED.into()), Expect::Version(version)],
        set: updates,
        remove: vec!["lock_expires_at".into()],
        bump_version: true,
    };
    adapters
        .store
        .update(key, &update)
        .await
        .map_err(|e| store_problem(&e))
}

/// Frees the lock so that the caller's retry proceeds at once.
async fn release_lock(adapters: &Adapters, key: &Key, version: u64) {
    let release = Update {
        expect: vec![Expect::Status(INITIATED.into()), Expect::Version(version)],
        set: Item::from([("lock_expires_at".to_owned(), n(0))]),
        ..Update::default()
    };
    let _ = adapters.store.update(key, &release).await;
}

/// An existing payment with the same body: finished → return it; held by a live request →
/// wait for it; left INITIATED by a failed one → take it over (returns the version held).
async fn take_over_or_wait(
    adapters: &Adapters,
    key: &Key,
    mut item: Item,
) -> Result<Result<Item, u64>, Problem> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if item.str_attr(STATUS) != Some(INITIATED) {
            return Ok(Ok(item));
        }
        let version = item.u64_attr(VERSION).unwrap_or(0);
        if item.u64_attr("lock_expires_at").unwrap_or(0) <= adapters.clock.now_millis() {
            let take = Update {
                expect: vec![Expect::Status(INITIATED.into()), Expect::Version(version)],
                set: Item::from([(
                    "lock_expires_at".to_owned(),
                    n(adapters.clock.now_millis() + LOCK_MS),
                )]),
                bump_version: true,
                ..Update::default()
            };
            match adapters.store.update(key, &take).await {
                Ok(_) => return Ok(Err(version + 1)),
                Err(StoreError::ConditionFailed { .. }) => {}
                Err(e) => return Err(store_problem(&e)),
            }
        }
        if tokio::time::Instant::now() >= deadline {
            let mut problem = Problem::new(
                409,
                "in-progress",
                "In progress",
                "The same payment is being created by another request; retry shortly.",
            );
            problem.retryable = true;
            return Err(problem);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        item = adapters
            .store
            .get(key)
            .await
            .map_err(|e| store_problem(&e))?
            .ok_or_else(Problem::internal)?;
    }
}

/// What a payment link is made for.
struct LinkFor<'a> {
    invoice: &'a Invoice,
    request: &'a PaymentRequest,
    amount: Money,
    payment_id: &'a str,
    /// This request created the payment (else it took over one: a link may exist already).
    fresh: bool,
}

/// The customer, the Razorpay link (made, or adopted), its mapping; returns the attributes
/// that make the payment PENDING.
async fn link(
    adapters: &Adapters,
    scope: &TenantScope,
    clients: &Clients,
    order: &LinkFor<'_>,
) -> Result<Item, Problem> {
    let customer = customers::ensure(
        adapters.store.as_ref(),
        &clients.razorpay,
        &clients.flexprice,
        scope,
        &order.invoice.customer_id,
    )
    .await
    .map_err(|e| e.to_problem())?;
    let link = create_or_adopt(&clients.razorpay, scope, order).await?;
    let mapping = Item::from([("payment_id".to_owned(), s(order.payment_id))]);
    match adapters
        .store
        .create(&scope.key("PAYMENT_LINK", &link.id), mapping)
        .await
    {
        Ok(()) | Err(StoreError::AlreadyExists { .. }) => {}
        Err(e) => return Err(store_problem(&e)),
    }
    let mut updates = Item::from([
        (STATUS.to_owned(), s(PENDING)),
        ("gateway_tracking_id".to_owned(), s(&link.id)),
        ("payment_url".to_owned(), s(&link.short_url)),
        ("razorpay_customer_id".to_owned(), s(customer.razorpay_id())),
        ("updated_at".to_owned(), n(adapters.clock.now_secs())),
    ]);
    if let Some(rzp_invoice) = order.invoice.metadata.get("razorpay_invoice_id") {
        updates.insert("razorpay_invoice_id".to_owned(), s(rzp_invoice));
    }
    Ok(updates)
}

/// A Razorpay failure on the link, as the caller's answer.
fn link_problem(e: RazorpayError) -> Problem {
    tracing::warn!(error = %e, "Razorpay payment link failed");
    if e.is_retryable() {
        unavailable("Razorpay")
    } else {
        Problem::new(
            502,
            "upstream",
            "Bad gateway",
            format!("Razorpay refused the payment link: {e}"),
        )
    }
}

/// The payment's link: adopted when a taken-over payment has one already (found by its
/// `reference_id`, our payment id), created otherwise.
async fn create_or_adopt(
    razorpay: &RazorpayClient,
    scope: &TenantScope,
    order: &LinkFor<'_>,
) -> Result<PaymentLink, Problem> {
    if !order.fresh
        && let Some(link) = razorpay
            .find_payment_links_by_reference(order.payment_id)
            .await
            .map_err(link_problem)?
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
            ..PaymentLinkRequest::default()
        })
        .await
        .map_err(link_problem)
}

/// `GET /api/v1/payments/{id}`: only the caller's own payments.
pub async fn get(adapters: &Adapters, scope: &TenantScope, id: &str) -> Result<Value, Problem> {
    let item = adapters
        .store
        .get(&payment_key(scope, id))
        .await
        .map_err(|e| store_problem(&e))?;
    item.map(|i| view(&i))
        .ok_or_else(|| Problem::new(404, "not-found", "Not found", format!("No payment {id}.")))
}
