//! The Flexprice API simulator: customers, invoices with line items, taxes, discounts and
//! prepaid credits, finalize and void (with Svix-signed `invoice.update.finalized` and
//! `invoice.update.voided` webhooks, and `invoice.update.payment` after each payment), payments
//! recorded under idempotency keys with the invoice recomputed, and metadata updates. Auth: the `x-api-key` header.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use shared::domain::money::{Currency, Money};
use shared::domain::secret::Secret;
use shared::domain::signature::SvixSecret;

use crate::common::{self, HasRecorder, Recorder, lock, new_id, now};

/// A Flexprice error: status and `{"code","message","http_status_code"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    fn validation(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "validation_error", message)
    }

    fn not_found(what: &str, id: &str) -> ApiError {
        ApiError::new(404, "not_found", format!("{what} {id} not found"))
    }

    fn response(&self) -> Response {
        (
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST),
            Json(json!({"code": self.code, "message": self.message, "http_status_code": self.status})),
        )
            .into_response()
    }
}

#[derive(Debug, Clone)]
struct LineItem {
    id: String,
    display_name: String,
    entity_type: String,
    amount: Precise,
    quantity: u64,
}

/// Digits a line amount may have after the point: Flexprice keeps decimals finer than the
/// currency's subunit on lines (usage priced per unit); only the invoice's totals are rounded to
/// the subunit (half up). Which digits Flexprice keeps is not documented: six, and an unrounded
/// `subtotal`, is the harsher case for a client that must send exact amounts.
const LINE_DIGITS: u32 = 6;

/// A non-negative decimal in millionths of the major unit.
#[derive(Debug, Clone, Copy, Default)]
struct Precise(u64);

impl Precise {
    fn parse(text: &str) -> Option<Precise> {
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || (!fraction.is_empty() && !digits(fraction)) {
            return None;
        }
        if fraction.len() > LINE_DIGITS as usize {
            return None;
        }
        let scale = 10u64.pow(LINE_DIGITS);
        let fraction = format!("{fraction:0<6}").parse::<u64>().ok()?;
        whole
            .parse::<u64>()
            .ok()?
            .checked_mul(scale)?
            .checked_add(fraction)
            .map(Precise)
    }

    /// Rounded half up to the currency's subunit.
    fn rounded(self, currency: Currency) -> Money {
        let scale = 10u64.pow(LINE_DIGITS - u32::from(currency.exponent()));
        Money::from_minor((self.0 + scale / 2) / scale, currency)
    }

    /// As Flexprice shows it: the currency's digits when exact, every digit kept otherwise.
    fn text(self, currency: Currency) -> String {
        let rounded = self.rounded(currency);
        let scale = 10u64.pow(LINE_DIGITS - u32::from(currency.exponent()));
        if rounded.minor() * scale == self.0 {
            return rounded.to_decimal_string();
        }
        let unit = 10u64.pow(LINE_DIGITS);
        let fraction = format!("{:06}", self.0 % unit);
        format!("{}.{}", self.0 / unit, fraction.trim_end_matches('0'))
    }
}

#[derive(Debug, Clone)]
struct Invoice {
    id: String,
    customer_id: String,
    currency: Currency,
    status: String,
    invoice_number: String,
    due_date: Option<String>,
    line_items: Vec<LineItem>,
    taxes: Vec<(String, Money)>,
    discount: Money,
    credits: Money,
    paid: Money,
    metadata: BTreeMap<String, String>,
    version: u64,
}

impl Invoice {
    fn subtotal_precise(&self) -> Precise {
        Precise(self.line_items.iter().map(|li| li.amount.0).sum())
    }

    fn subtotal(&self) -> Money {
        self.subtotal_precise().rounded(self.currency)
    }

    fn tax(&self) -> Money {
        Money::from_minor(
            self.taxes.iter().map(|(_, m)| m.minor()).sum(),
            self.currency,
        )
    }

    fn total(&self) -> Money {
        let minor =
            (self.subtotal().minor() + self.tax().minor()).saturating_sub(self.discount.minor());
        Money::from_minor(minor, self.currency)
    }

    fn due(&self) -> Money {
        Money::from_minor(
            self.total().minor().saturating_sub(self.credits.minor()),
            self.currency,
        )
    }

    fn remaining(&self) -> Money {
        Money::from_minor(
            self.due().minor().saturating_sub(self.paid.minor()),
            self.currency,
        )
    }

    fn payment_status(&self) -> &'static str {
        match self.paid.minor().cmp(&self.due().minor()) {
            std::cmp::Ordering::Less => "PENDING",
            std::cmp::Ordering::Equal => "SUCCEEDED",
            std::cmp::Ordering::Greater => "OVERPAID",
        }
    }

    fn json(&self) -> Value {
        let currency = self.currency.code().to_ascii_lowercase();
        let items: Vec<Value> = self
            .line_items
            .iter()
            .map(|li| json!({"id": li.id, "invoice_id": self.id, "customer_id": self.customer_id,
                "display_name": li.display_name, "plan_display_name": li.display_name,
                "entity_type": li.entity_type, "amount": li.amount.text(self.currency),
                "quantity": li.quantity.to_string(), "currency": currency, "metadata": {},
                "prepaid_credits_applied": "0", "line_item_discount": "0", "invoice_level_discount": "0"}))
            .collect();
        let taxes: Vec<Value> = self
            .taxes
            .iter()
            .map(|(name, amount)| json!({"name": name, "amount": amount.to_decimal_string()}))
            .collect();
        json!({"id": self.id, "customer_id": self.customer_id, "invoice_type": "SUBSCRIPTION",
            "invoice_status": self.status, "payment_status": self.payment_status(),
            "currency": currency, "amount_due": self.due().to_decimal_string(),
            "amount_paid": self.paid.to_decimal_string(),
            "amount_remaining": self.remaining().to_decimal_string(),
            "subtotal": self.subtotal_precise().text(self.currency), "total": self.total().to_decimal_string(),
            "total_discount": self.discount.to_decimal_string(),
            "total_tax": self.tax().to_decimal_string(),
            "total_prepaid_credits_applied": self.credits.to_decimal_string(),
            "invoice_number": self.invoice_number, "due_date": self.due_date,
            "metadata": self.metadata, "line_items": items, "taxes": taxes, "version": self.version})
    }
}

#[derive(Debug, Clone)]
struct Payment {
    id: String,
    idempotency_key: String,
    invoice_id: String,
    amount: Money,
    metadata: BTreeMap<String, String>,
    /// INITIATED when inserted, SUCCEEDED once processed.
    status: &'static str,
    /// Between insert and process: another request with its key meets a 409.
    in_flight: bool,
    /// RFC 3339, once a refund state was set.
    refunded_at: Option<String>,
}

impl Payment {
    fn json(&self) -> Value {
        json!({"id": self.id, "idempotency_key": self.idempotency_key, "destination_type": "INVOICE",
            "destination_id": self.invoice_id, "payment_method_type": "OFFLINE",
            "amount": self.amount.to_decimal_string(),
            "currency": self.amount.currency().code().to_ascii_lowercase(),
            "payment_status": self.status, "metadata": self.metadata,
            "refunded_at": self.refunded_at})
    }
}

/// How the next payment records go (`/_sim/payment-processing`): the next `fail` inserts
/// stop after the insert (INITIATED, answered 500); every insert waits `delay_ms` before it is
/// processed (a same-key request meanwhile meets Flexprice's 409).
#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub struct Processing {
    #[serde(default)]
    pub fail: u32,
    #[serde(default)]
    pub delay_ms: u64,
}

#[derive(Debug, Default)]
struct Data {
    customers: BTreeMap<String, Value>,
    invoices: BTreeMap<String, Invoice>,
    payments: BTreeMap<String, Payment>,
    credit_notes: BTreeMap<String, Value>,
    processing: Processing,
    next_number: u64,
}

/// Where the simulator sends its webhooks, and the `whsec_` secret it signs them with.
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    pub url: String,
    pub secret: Secret<String>,
}

struct Inner {
    api_key: Secret<String>,
    webhook: Mutex<Option<WebhookTarget>>,
    data: Mutex<Data>,
    recorder: Recorder,
    http: reqwest::Client,
}

/// The simulator; cheap to clone (shared state).
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

impl HasRecorder for Simulator {
    fn recorder(&self) -> &Recorder {
        &self.inner.recorder
    }
}

pub type RunningSim = common::Running<Simulator>;

fn decimal(body: &Value, field: &str, currency: Currency) -> Result<Money, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(Money::from_minor(0, currency)),
        Some(Value::String(text)) => {
            Money::parse(text, currency).map_err(|e| ApiError::validation(format!("{field}: {e}")))
        }
        Some(_) => Err(ApiError::validation(format!(
            "{field} must be a decimal string"
        ))),
    }
}

/// A line's amount: a non-negative decimal string of up to six digits after the point.
fn line_amount(item: &Value) -> Result<Precise, ApiError> {
    match item.get("amount") {
        None | Some(Value::Null) => Ok(Precise::default()),
        Some(Value::String(text)) => Precise::parse(text).ok_or_else(|| {
            ApiError::validation(format!(
                "amount: {text:?} is not a non-negative decimal of at most {LINE_DIGITS} digits after the point"
            ))
        }),
        Some(_) => Err(ApiError::validation("amount must be a decimal string")),
    }
}

fn string_map(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

impl Simulator {
    pub fn new(api_key: &str, webhook: Option<WebhookTarget>) -> Result<Simulator, String> {
        let http = shared::adapters::http::client(shared::adapters::http::Timeouts {
            connect: Duration::from_secs(2),
            total: Duration::from_secs(15),
        })
        .map_err(|e| e.to_string())?;
        Ok(Simulator {
            inner: Arc::new(Inner {
                api_key: Secret::new(api_key.to_owned()),
                webhook: Mutex::new(webhook),
                data: Mutex::new(Data::default()),
                recorder: Recorder::default(),
                http,
            }),
        })
    }

    pub async fn serve(self, addr: SocketAddr) -> std::io::Result<RunningSim> {
        let (url, task) = common::serve(self.router(), addr).await?;
        Ok(RunningSim {
            url,
            sim: self,
            task,
        })
    }

    pub fn router(&self) -> Router {
        let api = Router::new()
            .route("/v1/customers", post(create_customer))
            .route("/v1/customers/{id}", get(get_customer).put(update_customer))
            .route("/v1/invoices", post(create_invoice))
            .route("/v1/invoices/{id}", get(get_invoice).put(update_invoice))
            .route("/v1/invoices/{id}/finalize", post(finalize_invoice))
            .route("/v1/invoices/{id}/void", post(void_invoice))
            .route("/v1/payments", post(record_payment))
            .route("/v1/payments/{id}", get(get_payment).put(update_payment))
            .route("/v1/payments/{id}/process", post(process_payment))
            .route("/v1/creditnotes", post(create_credit_note))
            .route("/v1/creditnotes/{id}", get(get_credit_note))
            .route("/v1/creditnotes/{id}/finalize", post(finalize_credit_note))
            .layer(middleware::from_fn_with_state(self.clone(), gate));
        let control = common::control_routes::<Simulator>()
            .route("/_sim/webhook-target", post(set_webhook_target))
            .route("/_sim/payment-processing", post(set_processing));
        api.merge(control).with_state(self.clone())
    }

    pub fn set_webhook_target(&self, target: Option<WebhookTarget>) {
        *lock(&self.inner.webhook) = target;
    }

    /// Sends `{"event_type": event, "invoice": ...}`, signed the Svix way, in the background.
    fn send_invoice_event(&self, event: &str, invoice: Value) -> Option<String> {
        self.send_event(event, "invoice", invoice)
    }

    /// Sends `{"event_type": event, entity: value}`, Svix-signed, in the background.
    fn send_event(&self, event: &str, entity: &str, value: Value) -> Option<String> {
        let target = lock(&self.inner.webhook).clone()?;
        let secret = SvixSecret::parse(&target.secret).ok()?;
        let body = serde_json::to_vec(&json!({"event_type": event, entity: value})).ok()?;
        let id = new_id("msg_");
        let timestamp = now();
        let headers = [
            ("svix-id", id.clone()),
            ("svix-timestamp", timestamp.to_string()),
            ("svix-signature", secret.sign(&id, timestamp, &body)),
        ];
        let sim = self.clone();
        let event = (id.clone(), event.to_owned());
        tokio::spawn(async move {
            sim.inner
                .recorder
                .deliver(&sim.inner.http, &target.url, &headers, event, body, 5)
                .await;
        });
        Some(id)
    }
}

async fn gate(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    let authorized = headers
        .get("x-api-key")
        .is_some_and(|k| k.as_bytes() == sim.inner.api_key.expose().as_bytes());
    sim.inner
        .recorder
        .gate(request, next, authorized, |status| {
            let (code, message) = match status {
                401 => ("unauthorized", "invalid or missing API key"),
                429 => ("rate_limited", "too many requests"),
                _ => ("internal_error", "internal server error"),
            };
            ApiError::new(status, code, message).response()
        })
        .await
}

fn reply(status: StatusCode, result: Result<Value, ApiError>) -> Response {
    match result {
        Ok(value) => (status, Json(value)).into_response(),
        Err(error) => error.response(),
    }
}

fn body_json(bytes: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|_| ApiError::validation("the request body is not valid JSON"))
}

async fn create_customer(State(sim): State<Simulator>, body: Bytes) -> Response {
    let result = body_json(&body).and_then(|body| {
        let name = body
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::validation("name is required"))?;
        let external_id = body
            .get("external_id")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::validation("external_id is required"))?;
        let customer = json!({"id": new_id("cust_"), "external_id": external_id, "name": name,
            "email": body.get("email"), "contact": body.get("contact"),
            "metadata": string_map(body.get("metadata"))});
        let id = customer["id"].as_str().unwrap_or_default().to_owned();
        lock(&sim.inner.data).customers.insert(id, customer.clone());
        Ok(customer)
    });
    reply(StatusCode::CREATED, result)
}

async fn get_customer(State(sim): State<Simulator>, Path(id): Path<String>) -> Response {
    let data = lock(&sim.inner.data);
    reply(
        StatusCode::OK,
        data.customers
            .get(&id)
            .cloned()
            .ok_or_else(|| ApiError::not_found("customer", &id)),
    )
}

/// `PUT /v1/customers/{id}`: Flexprice replaces the metadata with what is sent.
async fn update_customer(
    State(sim): State<Simulator>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let result = body_json(&body).and_then(|body| {
        let mut data = lock(&sim.inner.data);
        let customer = data
            .customers
            .get_mut(&id)
            .ok_or_else(|| ApiError::not_found("customer", &id))?;
        if let Some(metadata) = body.get("metadata") {
            customer["metadata"] = serde_json::to_value(string_map(Some(metadata)))
                .unwrap_or_else(|_| Value::Object(Default::default()));
        }
        Ok(customer.clone())
    });
    reply(StatusCode::OK, result)
}

/// An invoice's `line_items`, each a decimal amount of up to six digits after the point.
fn invoice_lines(body: &Value) -> Result<Vec<LineItem>, ApiError> {
    let items = body.get("line_items").and_then(Value::as_array);
    items
        .into_iter()
        .flatten()
        .map(|item| {
            let text = |name: &str, default: &str| {
                item.get(name)
                    .and_then(Value::as_str)
                    .unwrap_or(default)
                    .to_owned()
            };
            Ok(LineItem {
                id: new_id("li_"),
                display_name: text("display_name", "Charge"),
                entity_type: text("entity_type", "plan"),
                amount: line_amount(item)?,
                quantity: item.get("quantity").and_then(Value::as_u64).unwrap_or(1),
            })
        })
        .collect()
}

/// An invoice's `taxes`: (name, exact amount).
fn invoice_taxes(body: &Value, currency: Currency) -> Result<Vec<(String, Money)>, ApiError> {
    let taxes = body.get("taxes").and_then(Value::as_array);
    taxes
        .into_iter()
        .flatten()
        .map(|tax| {
            let name = tax.get("name").and_then(Value::as_str).unwrap_or("Tax");
            Ok((name.to_owned(), decimal(tax, "amount", currency)?))
        })
        .collect()
}

async fn create_invoice(State(sim): State<Simulator>, body: Bytes) -> Response {
    let result = body_json(&body).and_then(|body| {
        let mut data = lock(&sim.inner.data);
        let customer_id = body
            .get("customer_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if !data.customers.contains_key(&customer_id) {
            return Err(ApiError::not_found("customer", &customer_id));
        }
        let currency = Currency::from_code(
            body.get("currency")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        )
        .map_err(|e| ApiError::validation(format!("currency: {e}")))?;
        let line_items = invoice_lines(&body)?;
        let taxes = invoice_taxes(&body, currency)?;
        // A caller may choose the id (the local stack seeds invoices with known ids).
        let id = match body.get("id").and_then(Value::as_str) {
            Some(id) if data.invoices.contains_key(id) => {
                return Err(ApiError::validation(format!("invoice {id} already exists")));
            }
            Some(id) => id.to_owned(),
            None => new_id("inv_"),
        };
        data.next_number += 1;
        let invoice = Invoice {
            id,
            customer_id,
            currency,
            status: "DRAFT".to_owned(),
            invoice_number: format!("INV-{:04}", data.next_number),
            due_date: body
                .get("due_date")
                .and_then(Value::as_str)
                .map(str::to_owned),
            line_items,
            taxes,
            discount: decimal(&body, "total_discount", currency)?,
            credits: decimal(&body, "prepaid_credits_applied", currency)?,
            paid: Money::from_minor(0, currency),
            metadata: string_map(body.get("metadata")),
            version: 1,
        };
        let json = invoice.json();
        data.invoices.insert(invoice.id.clone(), invoice);
        Ok(json)
    });
    reply(StatusCode::CREATED, result)
}

async fn get_invoice(State(sim): State<Simulator>, Path(id): Path<String>) -> Response {
    let data = lock(&sim.inner.data);
    reply(
        StatusCode::OK,
        data.invoices
            .get(&id)
            .map(Invoice::json)
            .ok_or_else(|| ApiError::not_found("invoice", &id)),
    )
}

async fn update_invoice(
    State(sim): State<Simulator>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let result = body_json(&body).and_then(|body| {
        let mut data = lock(&sim.inner.data);
        let invoice = data
            .invoices
            .get_mut(&id)
            .ok_or_else(|| ApiError::not_found("invoice", &id))?;
        if let Some(metadata) = body.get("metadata") {
            // Flexprice replaces the metadata with what is sent.
            invoice.metadata = string_map(Some(metadata));
            invoice.version += 1;
        }
        Ok(invoice.json())
    });
    reply(StatusCode::OK, result)
}

/// Moves an invoice from `from` to `to` and sends `event`.
fn transition(
    sim: &Simulator,
    id: &str,
    from: &[&str],
    to: &str,
    event: &str,
) -> Result<Value, ApiError> {
    let json = {
        let mut data = lock(&sim.inner.data);
        let invoice = data
            .invoices
            .get_mut(id)
            .ok_or_else(|| ApiError::not_found("invoice", id))?;
        if !from.contains(&invoice.status.as_str()) || (to == "VOIDED" && invoice.paid.minor() > 0)
        {
            return Err(ApiError::new(
                400,
                "invalid_operation",
                format!("invoice {id} is {} and cannot become {to}", invoice.status),
            ));
        }
        invoice.status = to.to_owned();
        invoice.version += 1;
        invoice.json()
    };
    sim.send_invoice_event(event, json.clone());
    Ok(json)
}

async fn finalize_invoice(State(sim): State<Simulator>, Path(id): Path<String>) -> Response {
    reply(
        StatusCode::OK,
        transition(
            &sim,
            &id,
            &["DRAFT"],
            "FINALIZED",
            "invoice.update.finalized",
        ),
    )
}

async fn void_invoice(State(sim): State<Simulator>, Path(id): Path<String>) -> Response {
    reply(
        StatusCode::OK,
        transition(
            &sim,
            &id,
            &["DRAFT", "FINALIZED"],
            "VOIDED",
            "invoice.update.voided",
        ),
    )
}

/// A string field of a body, or empty.
fn field(body: &Value, name: &str) -> String {
    body.get(name)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// What the simulator records: OFFLINE payments into an invoice, processed at once, under an
/// idempotency key. Returns the key.
fn payment_request_key(body: &Value) -> Result<String, ApiError> {
    if field(body, "destination_type") != "INVOICE" {
        return Err(ApiError::validation("destination_type must be INVOICE"));
    }
    if field(body, "payment_method_type") != "OFFLINE"
        || body.get("process_payment") != Some(&Value::Bool(true))
    {
        return Err(ApiError::validation(
            "the simulator records OFFLINE payments with process_payment true only",
        ));
    }
    let key = field(body, "idempotency_key");
    if key.is_empty() {
        return Err(ApiError::validation("idempotency_key is required"));
    }
    Ok(key)
}

impl Data {
    /// The second phase: an inserted payment is processed (SUCCEEDED) and its invoice
    /// recomputed; returns the payment and the invoice as they are now.
    fn process(&mut self, id: &str) -> Result<(Value, Value), ApiError> {
        let payment = self
            .payments
            .get_mut(id)
            .ok_or_else(|| ApiError::not_found("payment", id))?;
        payment.in_flight = false;
        if payment.status != "INITIATED" {
            return Err(ApiError::new(
                400,
                "invalid_operation",
                format!("payment is {} and cannot be processed", payment.status),
            ));
        }
        payment.status = "SUCCEEDED";
        let (amount, invoice_id, json) =
            (payment.amount, payment.invoice_id.clone(), payment.json());
        let invoice = self
            .invoices
            .get_mut(&invoice_id)
            .ok_or_else(|| ApiError::not_found("invoice", &invoice_id))?;
        invoice.paid = invoice.paid.checked_add(amount).unwrap_or(invoice.paid);
        invoice.version += 1;
        Ok((json, invoice.json()))
    }

    /// The first phase: the row under the request's key, inserted INITIATED. A key already
    /// used answers its row as it is, unprocessed or not, whatever the body says (Flexprice's
    /// documented replay); a key whose first request is still running meets a 409.
    fn insert(&mut self, body: &Value) -> Result<Recorded, ApiError> {
        let key = payment_request_key(body)?;
        let field = |name: &str| field(body, name);
        let invoice_id = field("destination_id");
        let invoice = self
            .invoices
            .get(&invoice_id)
            .ok_or_else(|| ApiError::not_found("invoice", &invoice_id))?;
        let currency = Currency::from_code(&field("currency"))
            .map_err(|e| ApiError::validation(format!("currency: {e}")))?;
        if currency != invoice.currency {
            return Err(ApiError::validation("currency does not match the invoice"));
        }
        let amount = decimal(body, "amount", currency)?;
        if amount.is_zero() {
            return Err(ApiError::validation("amount must be greater than 0"));
        }
        if let Some(existing) = self.payments.values().find(|p| p.idempotency_key == key) {
            if existing.in_flight {
                return Err(ApiError::new(
                    409,
                    "already_exists",
                    "a payment with this idempotency_key is being created",
                ));
            }
            return Ok(Recorded::Existing(existing.json()));
        }
        if invoice.status != "FINALIZED" {
            return Err(ApiError::new(
                400,
                "invalid_operation",
                format!("invoice is {}", invoice.status),
            ));
        }
        let fail = self.processing.fail > 0;
        self.processing.fail = self.processing.fail.saturating_sub(1);
        let payment = Payment {
            id: new_id("pay_"),
            idempotency_key: key,
            invoice_id,
            amount,
            metadata: string_map(body.get("metadata")),
            status: "INITIATED",
            in_flight: !fail,
            refunded_at: None,
        };
        let id = payment.id.clone();
        self.payments.insert(id.clone(), payment);
        Ok(Recorded::Inserted {
            id,
            fail,
            delay: Duration::from_millis(self.processing.delay_ms),
        })
    }
}

/// What the first phase of a payment record did.
enum Recorded {
    /// The key was used before: its row, as it is.
    Existing(Value),
    /// Inserted; to be processed after `delay`, unless this insert is scripted to `fail`.
    Inserted {
        id: String,
        fail: bool,
        delay: Duration,
    },
}

async fn record_payment(State(sim): State<Simulator>, body: Bytes) -> Response {
    let inserted = body_json(&body).and_then(|body| lock(&sim.inner.data).insert(&body));
    let (id, delay) = match inserted {
        Ok(Recorded::Existing(row)) => return (StatusCode::OK, Json(row)).into_response(),
        Ok(Recorded::Inserted { fail: true, .. }) => {
            return ApiError::new(500, "internal_error", "internal server error").response();
        }
        Ok(Recorded::Inserted { id, delay, .. }) => (id, delay),
        Err(error) => return error.response(),
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    processed(&sim, &id, StatusCode::CREATED)
}

/// Runs the second phase and answers the payment; Flexprice publishes `invoice.update.payment`
/// after every reconciliation.
fn processed(sim: &Simulator, id: &str, status: StatusCode) -> Response {
    let result = lock(&sim.inner.data).process(id);
    match result {
        Ok((payment, invoice)) => {
            sim.send_invoice_event("invoice.update.payment", invoice);
            (status, Json(payment)).into_response()
        }
        Err(error) => error.response(),
    }
}

/// `POST /v1/payments/{id}/process`: processes an inserted payment; refused (400) once
/// processed, 409 while its first request is still running.
async fn process_payment(State(sim): State<Simulator>, Path(id): Path<String>) -> Response {
    let busy = lock(&sim.inner.data)
        .payments
        .get(&id)
        .is_some_and(|p| p.in_flight);
    if busy {
        return ApiError::new(409, "already_exists", "the payment is being processed").response();
    }
    processed(&sim, &id, StatusCode::OK)
}

async fn set_processing(
    State(sim): State<Simulator>,
    Json(processing): Json<Processing>,
) -> Response {
    lock(&sim.inner.data).processing = processing;
    Json(json!({"ok": true})).into_response()
}

/// `POST /v1/creditnotes`: `invoice_id`, `credit_note_type` (`REFUND` or `ADJUSTMENT`),
/// `reason` (required), and, a simplification of Flexprice's line items, `total_amount` (a
/// decimal string; a REFUND one at most what the invoice was paid). FINALIZED at once unless
/// `process_credit_note` is false (DRAFT until finalized); `credit_note.created` is sent.
async fn create_credit_note(State(sim): State<Simulator>, body: Bytes) -> Response {
    let made = body_json(&body).and_then(|body| lock(&sim.inner.data).credit_note(&body));
    if let Ok(note) = &made {
        sim.send_event("credit_note.created", "credit_note", note.clone());
    }
    reply(StatusCode::CREATED, made)
}

async fn get_credit_note(State(sim): State<Simulator>, Path(id): Path<String>) -> Response {
    let data = lock(&sim.inner.data);
    reply(
        StatusCode::OK,
        data.credit_notes
            .get(&id)
            .cloned()
            .ok_or_else(|| ApiError::not_found("credit note", &id)),
    )
}

/// A DRAFT credit note FINALIZED; `credit_note.updated` is sent.
async fn finalize_credit_note(State(sim): State<Simulator>, Path(id): Path<String>) -> Response {
    let result = {
        let mut data = lock(&sim.inner.data);
        match data.credit_notes.get_mut(&id) {
            None => Err(ApiError::not_found("credit note", &id)),
            Some(note) if note["credit_note_status"] != "DRAFT" => Err(ApiError::validation(
                format!("credit note is {}", note["credit_note_status"]),
            )),
            Some(note) => {
                note["credit_note_status"] = json!("FINALIZED");
                Ok(note.clone())
            }
        }
    };
    if let Ok(note) = &result {
        sim.send_event("credit_note.updated", "credit_note", note.clone());
    }
    reply(StatusCode::OK, result)
}

impl Data {
    fn credit_note(&mut self, body: &Value) -> Result<Value, ApiError> {
        let invoice_id = field(body, "invoice_id");
        let invoice = self
            .invoices
            .get(&invoice_id)
            .ok_or_else(|| ApiError::not_found("invoice", &invoice_id))?;
        let kind = field(body, "credit_note_type");
        if kind != "REFUND" && kind != "ADJUSTMENT" {
            return Err(ApiError::validation(
                "credit_note_type is REFUND or ADJUSTMENT",
            ));
        }
        if field(body, "reason").is_empty() {
            return Err(ApiError::validation("reason is required"));
        }
        let amount = decimal(body, "total_amount", invoice.currency)?;
        let bound = if kind == "REFUND" {
            invoice.paid
        } else {
            invoice.total()
        };
        if amount.is_zero() || amount.minor() > bound.minor() {
            return Err(ApiError::validation(format!(
                "total_amount must be more than 0 and at most {}",
                bound.to_decimal_string()
            )));
        }
        let draft = body.get("process_credit_note") == Some(&json!(false));
        let note = json!({"id": new_id("cn_"), "invoice_id": invoice_id,
            "customer_id": invoice.customer_id, "credit_note_type": kind,
            "credit_note_status": if draft { "DRAFT" } else { "FINALIZED" },
            "total_amount": amount.to_decimal_string(),
            "currency": invoice.currency.code().to_ascii_lowercase(),
            "reason": field(body, "reason")});
        self.credit_notes.insert(
            note["id"].as_str().unwrap_or_default().to_owned(),
            note.clone(),
        );
        Ok(note)
    }
}

async fn get_payment(State(sim): State<Simulator>, Path(id): Path<String>) -> Response {
    let data = lock(&sim.inner.data);
    reply(
        StatusCode::OK,
        data.payments
            .get(&id)
            .map(Payment::json)
            .ok_or_else(|| ApiError::not_found("payment", &id)),
    )
}

/// Flexprice's payment statuses, and where the update API lets each go (every update is
/// checked against this table, as Flexprice does since it enforced transitions).
const PAYMENT_MOVES: &[(&str, &[&str])] = &[
    (
        "INITIATED",
        &[
            "INITIATED",
            "PENDING",
            "PROCESSING",
            "SUCCEEDED",
            "OVERPAID",
            "FAILED",
        ],
    ),
    (
        "PENDING",
        &["PENDING", "PROCESSING", "SUCCEEDED", "OVERPAID", "FAILED"],
    ),
    (
        "PROCESSING",
        &["PROCESSING", "SUCCEEDED", "OVERPAID", "FAILED"],
    ),
    (
        "SUCCEEDED",
        &[
            "SUCCEEDED",
            "OVERPAID",
            "REFUNDED",
            "PARTIALLY_REFUNDED",
            "VOIDED",
        ],
    ),
    ("OVERPAID", &["OVERPAID", "REFUNDED", "PARTIALLY_REFUNDED"]),
    ("PARTIALLY_REFUNDED", &["PARTIALLY_REFUNDED", "REFUNDED"]),
    ("FAILED", &["FAILED"]),
    ("REFUNDED", &["REFUNDED"]),
    ("VOIDED", &["VOIDED"]),
];

/// `PUT /v1/payments/{id}`: `payment_status` (checked against [`PAYMENT_MOVES`]),
/// `refunded_at`, and `metadata` (replacing the payment's). Updating a payment does not
/// recompute its invoice.
async fn update_payment(
    State(sim): State<Simulator>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let result = body_json(&body).and_then(|body| {
        let mut data = lock(&sim.inner.data);
        let payment = data
            .payments
            .get_mut(&id)
            .ok_or_else(|| ApiError::not_found("payment", &id))?;
        if let Some(asked) = body.get("payment_status").and_then(Value::as_str) {
            let allowed = PAYMENT_MOVES
                .iter()
                .find(|(from, _)| *from == payment.status)
                .and_then(|(_, to)| to.iter().find(|s| **s == asked));
            let Some(to) = allowed else {
                return Err(ApiError::validation(format!(
                    "invalid payment status transition from {} to {asked}",
                    payment.status
                )));
            };
            payment.status = to;
        }
        if let Some(at) = body.get("refunded_at").and_then(Value::as_str) {
            payment.refunded_at = Some(at.to_owned());
        }
        if let Some(metadata) = body.get("metadata") {
            payment.metadata = string_map(Some(metadata));
        }
        Ok(payment.json())
    });
    reply(StatusCode::OK, result)
}

#[derive(Deserialize)]
struct TargetRequest {
    url: String,
    secret: String,
}

async fn set_webhook_target(
    State(sim): State<Simulator>,
    Json(target): Json<TargetRequest>,
) -> Response {
    sim.set_webhook_target(Some(WebhookTarget {
        url: target.url,
        secret: Secret::new(target.secret),
    }));
    Json(json!({"ok": true})).into_response()
}
