//! The Razorpay API simulator: stateful and in memory, with Razorpay's rules, error bodies and
//! signed webhooks, for the local stack and the tests (think stripe-mock).
//!
//! - `/v1/...`: customers, payment links, invoices, payments, refunds, behind HTTP Basic auth.
//! - `/_sim/...`: control, without auth: pay, fail, expire or cancel, refund as the dashboard
//!   does, process or fail a refund (delivering webhooks),
//!   fault injection, a customer refusal on demand, the request log, the webhook delivery log.

mod disputes;
mod events;
mod refunds;
mod state;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};
use shared::domain::secret::Secret;
use shared::domain::signature::razorpay_sign;

use crate::common::{self, HasRecorder, Recorder, lock};
pub use events::Event;
use state::Account;
pub use state::{ApiError, new_id};

/// Where the simulator sends webhooks, and the secret it signs them with.
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    pub url: String,
    pub secret: Secret<String>,
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub key_id: String,
    pub key_secret: Secret<String>,
    pub account_id: String,
    pub webhook: Option<WebhookTarget>,
    /// Delivery attempts per webhook (Razorpay retries for 24 h; the simulator is bounded).
    pub webhook_attempts: u32,
    /// The events the webhook is subscribed to (`None`: all); Razorpay sends only those.
    pub subscribed: Option<Vec<String>>,
    /// Send nothing at all (a webhook Razorpay disabled, or a delivery outage).
    pub drop_webhooks: bool,
}

impl SimConfig {
    pub fn new(key_id: &str, key_secret: &str) -> SimConfig {
        SimConfig {
            key_id: key_id.to_owned(),
            key_secret: Secret::new(key_secret.to_owned()),
            account_id: new_id("acc_"),
            webhook: None,
            webhook_attempts: 5,
            subscribed: None,
            drop_webhooks: false,
        }
    }
}

/// How to deliver the webhooks of one control action.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default)]
pub struct DeliveryOptions {
    /// Deliver every event twice (same id, same body), as at-least-once delivery does.
    pub duplicate: bool,
    /// Deliver the events in reverse order.
    pub reorder: bool,
    /// Wait this long before delivering.
    pub delay_ms: u64,
}

struct Inner {
    config: Mutex<SimConfig>,
    account: Mutex<Account>,
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

impl Simulator {
    pub fn new(config: SimConfig) -> Result<Simulator, String> {
        let http = shared::adapters::http::client(shared::adapters::http::Timeouts {
            connect: Duration::from_secs(2),
            // Razorpay gives a webhook endpoint 5 s.
            total: Duration::from_secs(5),
        })
        .map_err(|e| e.to_string())?;
        Ok(Simulator {
            inner: Arc::new(Inner {
                config: Mutex::new(config),
                account: Mutex::new(Account::default()),
                recorder: Recorder::default(),
                http,
            }),
        })
    }

    /// Serves on `addr` (port 0 picks a free one) until the task is aborted.
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
            .route("/v1/customers", post(create_customer).get(list_customers))
            .route("/v1/customers/{id}", get(get_customer))
            .route("/v1/payment_links", post(create_link).get(list_links))
            .route("/v1/payment_links/{id}", get(get_link))
            .route("/v1/payment_links/{id}/cancel", post(cancel_link))
            .route("/v1/invoices", post(create_invoice).get(list_invoices))
            .route("/v1/invoices/{id}", get(get_invoice))
            .route("/v1/invoices/{id}/cancel", post(cancel_invoice))
            .route("/v1/invoices/{id}/issue", post(issue_invoice))
            .route("/v1/payments", get(list_payments))
            .route("/v1/payments/{id}", get(get_payment))
            .route("/v1/payments/{id}/refund", post(create_refund))
            .route("/v1/payments/{id}/refunds", get(list_payment_refunds))
            .route("/v1/refunds", get(list_refunds))
            .route("/v1/refunds/{id}", get(get_refund))
            .route("/v1/disputes", get(list_disputes))
            .route("/v1/disputes/{id}", get(get_dispute))
            .layer(middleware::from_fn_with_state(self.clone(), gate));
        let control = common::control_routes::<Simulator>()
            .route("/_sim/webhook-target", post(set_webhook_target))
            .route("/_sim/webhook-subscription", post(set_subscription))
            .route("/_sim/refuse-customer", post(refuse_customer))
            .route("/_sim/payment_links/{id}/{action}", post(link_action))
            .route("/_sim/invoices/{id}/{action}", post(invoice_action))
            .route("/_sim/payments/{id}/capture", post(capture_late))
            .route("/_sim/payments/{id}/refund", post(dashboard_refund))
            .route("/_sim/payments/{id}/age", post(age_payment))
            .route("/_sim/refunds/{id}/{action}", post(refund_action))
            .route("/_sim/payments/{id}/dispute", post(open_dispute))
            .route("/_sim/disputes/{id}/{action}", post(dispute_action));
        api.merge(control).with_state(self.clone())
    }

    pub fn set_webhook_target(&self, target: Option<WebhookTarget>) {
        lock(&self.inner.config).webhook = target;
    }

    pub fn key_id(&self) -> String {
        lock(&self.inner.config).key_id.clone()
    }

    pub fn account_id(&self) -> String {
        lock(&self.inner.config).account_id.clone()
    }

    /// Serializes and signs the events, then delivers them in the background.
    fn deliver(&self, events: Vec<Event>, options: DeliveryOptions) -> Vec<Value> {
        let config = lock(&self.inner.config).clone();
        let mut prepared: Vec<(String, String, Vec<u8>)> = events
            .iter()
            .map(|event| {
                let body =
                    serde_json::to_vec(&event.envelope(&config.account_id)).unwrap_or_default();
                (new_id("evt_"), event.name.clone(), body)
            })
            .collect();
        let summary = prepared
            .iter()
            .map(|(id, name, _)| json!({"id": id, "event": name}))
            .collect();
        let Some(target) = config.webhook.filter(|_| !config.drop_webhooks) else {
            return summary;
        };
        if let Some(subscribed) = &config.subscribed {
            prepared.retain(|(_, name, _)| subscribed.contains(name));
        }
        if options.reorder {
            prepared.reverse();
        }
        if options.duplicate {
            prepared = prepared.into_iter().flat_map(|p| [p.clone(), p]).collect();
        }
        let sim = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(options.delay_ms)).await;
            for (event_id, name, body) in prepared {
                sim.deliver_one(&target, config.webhook_attempts, event_id, name, body)
                    .await;
            }
        });
        summary
    }

    async fn deliver_one(
        &self,
        target: &WebhookTarget,
        attempts: u32,
        event_id: String,
        event: String,
        body: Vec<u8>,
    ) {
        let headers = [
            ("x-razorpay-signature", razorpay_sign(&target.secret, &body)),
            ("x-razorpay-event-id", event_id.clone()),
        ];
        self.inner
            .recorder
            .deliver(
                &self.inner.http,
                &target.url,
                &headers,
                (event_id, event),
                body,
                attempts,
            )
            .await;
    }
}

fn reply(result: Result<Value, ApiError>) -> Response {
    match result {
        Ok(value) => (StatusCode::OK, Json(value)).into_response(),
        Err(error) => (
            StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_REQUEST),
            Json(error.body),
        )
            .into_response(),
    }
}

fn json_body(bytes: &Bytes) -> Result<Value, ApiError> {
    if bytes.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(bytes)
        .map_err(|_| ApiError::bad_request("The request body is not valid JSON", None))
}

/// Every `/v1` call: logged, then faults, then HTTP Basic auth.
async fn gate(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    let authorized = authorized(&sim, &headers);
    sim.inner
        .recorder
        .gate(request, next, authorized, error_response)
        .await
}

/// Razorpay's body for a status the simulator was told to answer (a fault, or 401).
fn error_response(status: u16) -> Response {
    let (code, description) = match status {
        401 => ("BAD_REQUEST_ERROR", "Authentication failed"),
        429 => ("BAD_REQUEST_ERROR", "Too many requests"),
        _ => (
            "SERVER_ERROR",
            "The server encountered an error. The incident has been reported to admins.",
        ),
    };
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        Json(json!({"error": {"code": code, "description": description}})),
    )
        .into_response()
}

fn authorized(sim: &Simulator, headers: &HeaderMap) -> bool {
    let config = lock(&sim.inner.config);
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            config.key_id,
            config.key_secret.expose()
        ))
    );
    headers
        .get("authorization")
        .is_some_and(|given| given.as_bytes() == expected.as_bytes())
}

// ---------- /v1 ----------

async fn create_customer(State(sim): State<Simulator>, body: Bytes) -> Response {
    reply(json_body(&body).and_then(|b| lock(&sim.inner.account).create_customer(&b)))
}

async fn list_customers(State(sim): State<Simulator>) -> Response {
    let account = lock(&sim.inner.account);
    let items: Vec<Value> = account.customers.values().map(|c| c.json()).collect();
    reply(Ok(
        json!({"entity": "collection", "count": items.len(), "items": items}),
    ))
}

async fn get_customer(State(sim): State<Simulator>, Path(id): Path<String>) -> Response {
    let account = lock(&sim.inner.account);
    reply(
        account
            .customers
            .get(&id)
            .map(|c| c.json())
            .ok_or_else(|| ApiError::not_found(&id)),
    )
}

async fn create_link(State(sim): State<Simulator>, body: Bytes) -> Response {
    reply(json_body(&body).and_then(|b| lock(&sim.inner.account).create_link(&b)))
}

#[derive(Deserialize)]
struct LinkQuery {
    reference_id: Option<String>,
    payment_id: Option<String>,
}

async fn list_links(State(sim): State<Simulator>, Query(query): Query<LinkQuery>) -> Response {
    let account = lock(&sim.inner.account);
    let links: Vec<Value> = account
        .links
        .values()
        .filter(|l| {
            query
                .reference_id
                .as_ref()
                .is_none_or(|r| *r == l.reference_id)
        })
        .filter(|l| {
            query
                .payment_id
                .as_ref()
                .is_none_or(|p| l.payments.contains(p))
        })
        .map(|l| account.link_json(l))
        .collect();
    reply(Ok(json!({ "payment_links": links })))
}

async fn get_link(State(sim): State<Simulator>, Path(id): Path<String>) -> Response {
    let account = lock(&sim.inner.account);
    reply(account.link(&id).map(|l| account.link_json(l)))
}

/// Cancels the link and delivers `payment_link.cancelled`, as the dashboard's cancel does
/// (whether an API cancel sends the event is not documented: sending it is the harsher case,
/// an event about an instrument the caller closed itself).
async fn cancel_link(State(sim): State<Simulator>, Path(id): Path<String>) -> Response {
    let result = lock(&sim.inner.account).cancel_link_with_event(&id);
    reply(result.map(|events| {
        let link = events
            .iter()
            .flat_map(|e| e.payload.iter())
            .find(|(k, _)| *k == "payment_link")
            .map(|(_, link)| link.clone())
            .unwrap_or_default();
        sim.deliver(events, DeliveryOptions::default());
        link
    }))
}

async fn create_invoice(State(sim): State<Simulator>, body: Bytes) -> Response {
    reply(json_body(&body).and_then(|b| lock(&sim.inner.account).create_invoice(&b)))
}

#[derive(Deserialize)]
struct InvoiceQuery {
    receipt: Option<String>,
    customer_id: Option<String>,
    count: Option<usize>,
    skip: Option<usize>,
}

/// `GET /v1/invoices`: newest first, `count` (default 10, at most 100) after `skip`.
async fn list_invoices(
    State(sim): State<Simulator>,
    Query(query): Query<InvoiceQuery>,
) -> Response {
    let account = lock(&sim.inner.account);
    let mut invoices: Vec<&state::Invoice> = account
        .invoices
        .values()
        .filter(|i| query.receipt.as_ref().is_none_or(|r| *r == i.receipt))
        .filter(|i| {
            query
                .customer_id
                .as_ref()
                .is_none_or(|c| *c == i.customer_id)
        })
        .collect();
    invoices.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    let items = invoices.into_iter().map(|i| account.invoice_json(i));
    reply(page(items, query.count, query.skip))
}

/// One page of a collection, newest first: `count` (default 10, at most 100) after `skip`.
fn page(
    items: impl Iterator<Item = Value>,
    count: Option<usize>,
    skip: Option<usize>,
) -> Result<Value, ApiError> {
    let count = count.unwrap_or(10);
    if count > 100 {
        return Err(ApiError::bad_request(
            "The count may not be greater than 100.",
            Some("count"),
        ));
    }
    let items: Vec<Value> = items.skip(skip.unwrap_or(0)).take(count).collect();
    Ok(json!({"entity": "collection", "count": items.len(), "items": items}))
}

async fn get_invoice(State(sim): State<Simulator>, Path(id): Path<String>) -> Response {
    let account = lock(&sim.inner.account);
    reply(account.invoice(&id).map(|i| account.invoice_json(i)))
}

async fn cancel_invoice(State(sim): State<Simulator>, Path(id): Path<String>) -> Response {
    reply(lock(&sim.inner.account).cancel_invoice(&id))
}

#[derive(Deserialize)]
struct PaymentsQuery {
    from: Option<u64>,
    to: Option<u64>,
    count: Option<usize>,
    skip: Option<usize>,
}

/// `GET /v1/payments?from=&to=&count=&skip=`: created in `[from, to]` (Razorpay's bounds are
/// inclusive; the harsher reading for a client that pages), newest first, at most 100 a page.
async fn list_payments(
    State(sim): State<Simulator>,
    Query(query): Query<PaymentsQuery>,
) -> Response {
    let account = lock(&sim.inner.account);
    let mut payments: Vec<&state::Payment> = account
        .payments
        .values()
        .filter(|p| query.from.is_none_or(|from| p.created_at >= from))
        .filter(|p| query.to.is_none_or(|to| p.created_at <= to))
        .collect();
    payments.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    let items = payments.into_iter().map(state::Payment::json);
    reply(page(items, query.count, query.skip))
}

/// `/_sim/payments/{id}/capture`: a failed payment captured late; its events are delivered.
async fn capture_late(State(sim): State<Simulator>, Path(id): Path<String>) -> Response {
    let result = lock(&sim.inner.account).capture_late(&id);
    action_reply(&sim, result, DeliveryOptions::default())
}

async fn issue_invoice(State(sim): State<Simulator>, Path(id): Path<String>) -> Response {
    reply(lock(&sim.inner.account).issue_invoice(&id))
}

async fn get_payment(State(sim): State<Simulator>, Path(id): Path<String>) -> Response {
    let account = lock(&sim.inner.account);
    reply(
        account
            .payments
            .get(&id)
            .map(|p| p.json())
            .ok_or_else(|| ApiError::not_found(&id)),
    )
}

/// `POST /v1/payments/{id}/refund`: the refund, its `refund.created` delivered (a replay
/// under the same idempotency key answers the first refund and sends nothing).
async fn create_refund(
    State(sim): State<Simulator>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let key = headers
        .get("x-refund-idempotency")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    let result = json_body(&body)
        .and_then(|b| lock(&sim.inner.account).refund_payment(&id, key.as_deref(), &b));
    reply(result.map(|(refund, events)| {
        sim.deliver(events, DeliveryOptions::default());
        refund
    }))
}

#[derive(Deserialize)]
struct RefundsQuery {
    from: Option<u64>,
    to: Option<u64>,
    count: Option<usize>,
    skip: Option<usize>,
}

async fn list_payment_refunds(
    State(sim): State<Simulator>,
    Path(id): Path<String>,
    Query(query): Query<RefundsQuery>,
) -> Response {
    let account = lock(&sim.inner.account);
    if !account.payments.contains_key(&id) {
        return reply(Err(ApiError::not_found(&id)));
    }
    let refunds = account.list_refunds(Some(&id), query.from, query.to);
    reply(page(refunds.into_iter(), query.count, query.skip))
}

/// `GET /v1/refunds?from=&to=&count=&skip=`: created in `[from, to]`, newest first.
async fn list_refunds(State(sim): State<Simulator>, Query(query): Query<RefundsQuery>) -> Response {
    let refunds = lock(&sim.inner.account).list_refunds(None, query.from, query.to);
    reply(page(refunds.into_iter(), query.count, query.skip))
}

async fn get_refund(State(sim): State<Simulator>, Path(id): Path<String>) -> Response {
    reply(lock(&sim.inner.account).refund(&id))
}

/// `GET /v1/disputes?from=&to=&count=&skip=`: created in `[from, to]`, newest first.
async fn list_disputes(
    State(sim): State<Simulator>,
    Query(query): Query<RefundsQuery>,
) -> Response {
    let disputes = lock(&sim.inner.account).list_disputes(query.from, query.to);
    reply(page(disputes.into_iter(), query.count, query.skip))
}

async fn get_dispute(State(sim): State<Simulator>, Path(id): Path<String>) -> Response {
    reply(lock(&sim.inner.account).dispute(&id))
}

// ---------- /_sim ----------

/// `/_sim/payments/{id}/dispute {amount, phase, respond_in_secs}`: the bank disputes it.
async fn open_dispute(
    State(sim): State<Simulator>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let request = json_body(&body).unwrap_or_default();
    let delivery: DeliveryOptions = serde_json::from_value(request.clone()).unwrap_or_default();
    let result = lock(&sim.inner.account).open_dispute(&id, &request);
    dispute_reply(&sim, result, delivery)
}

/// `/_sim/disputes/{id}/action_required|under_review|win|lose|close`.
async fn dispute_action(
    State(sim): State<Simulator>,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let delivery: DeliveryOptions = serde_json::from_slice(&body).unwrap_or_default();
    let result = lock(&sim.inner.account).dispute_action(&id, &action);
    dispute_reply(&sim, result, delivery)
}

/// The dispute the events are about, and the events delivered.
fn dispute_reply(
    sim: &Simulator,
    result: Result<Vec<Event>, ApiError>,
    delivery: DeliveryOptions,
) -> Response {
    reply(result.map(|events| {
        let dispute = events
            .iter()
            .flat_map(|e| e.payload.iter())
            .find(|(k, _)| *k == "dispute")
            .map(|(_, d)| d.clone())
            .unwrap_or_default();
        json!({"dispute": dispute, "events": sim.deliver(events, delivery)})
    }))
}

/// `/_sim/payments/{id}/refund`: a refund made in Razorpay's dashboard (`amount`, `speed`,
/// delivery options), with no call of ours; answers the refund and its events.
async fn dashboard_refund(
    State(sim): State<Simulator>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let request = json_body(&body).unwrap_or_default();
    let delivery: DeliveryOptions = serde_json::from_value(request.clone()).unwrap_or_default();
    let mut asked = json!({});
    for field in ["amount", "speed"] {
        if let Some(value) = request.get(field) {
            asked[field] = value.clone();
        }
    }
    let result = lock(&sim.inner.account).refund_payment(&id, None, &asked);
    reply(
        result.map(
            |(refund, events)| json!({"refund": refund, "events": sim.deliver(events, delivery)}),
        ),
    )
}

#[derive(Deserialize)]
struct Age {
    days: u64,
}

/// `/_sim/payments/{id}/age {days}`: the payment was made `days` earlier (for the six-month
/// rule of normal refunds).
async fn age_payment(
    State(sim): State<Simulator>,
    Path(id): Path<String>,
    Json(age): Json<Age>,
) -> Response {
    let mut account = lock(&sim.inner.account);
    reply(match account.payments.get_mut(&id) {
        Some(payment) => {
            payment.created_at = payment.created_at.saturating_sub(age.days * 24 * 3600);
            Ok(payment.json())
        }
        None => Err(ApiError::not_found(&id)),
    })
}

/// `/_sim/refunds/{id}/process` and `/fail`: the refund settles; its event is delivered.
async fn refund_action(
    State(sim): State<Simulator>,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let delivery: DeliveryOptions = serde_json::from_slice(&body).unwrap_or_default();
    let result = lock(&sim.inner.account).settle_refund(&id, &action);
    action_reply(&sim, result, delivery)
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
    reply(Ok(json!({"ok": true})))
}

/// The body of a control action: what the customer pays, and how to deliver the webhooks.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ActionRequest {
    amount: Option<u64>,
    method: Option<String>,
    /// For `open`: the order to give the link (a fixture's); a new one otherwise.
    order_id: Option<String>,
    #[serde(flatten)]
    delivery: DeliveryOptions,
}

fn action_reply(
    sim: &Simulator,
    result: Result<Vec<Event>, ApiError>,
    delivery: DeliveryOptions,
) -> Response {
    reply(result.map(|events| {
        let payments: Vec<Value> = events
            .iter()
            .filter(|e| e.name.starts_with("payment."))
            .filter_map(|e| e.payload.iter().find(|(k, _)| *k == "payment"))
            .map(|(_, p)| p["id"].clone())
            .collect();
        let mut payments_unique = payments;
        payments_unique.dedup();
        json!({"payments": payments_unique, "events": sim.deliver(events, delivery)})
    }))
}

#[derive(Deserialize)]
struct Subscription {
    /// The events to send (`null`: all).
    events: Option<Vec<String>>,
    /// Send nothing.
    #[serde(default)]
    drop: bool,
}

/// Which events the webhook gets (the dashboard's event checkboxes), or none at all.
async fn set_subscription(
    State(sim): State<Simulator>,
    Json(subscription): Json<Subscription>,
) -> Response {
    let mut config = lock(&sim.inner.config);
    config.subscribed = subscription.events;
    config.drop_webhooks = subscription.drop;
    Json(json!({"ok": true})).into_response()
}

#[derive(Deserialize)]
struct CustomerRefusal {
    field: String,
    description: String,
}

/// The next customer create is refused naming `field`, as Razorpay refuses data it finds
/// wrong that no documented rule names (its validation has more rules than its docs).
async fn refuse_customer(
    State(sim): State<Simulator>,
    Json(refusal): Json<CustomerRefusal>,
) -> Response {
    lock(&sim.inner.account)
        .customer_refusals
        .push((refusal.field, refusal.description));
    Json(json!({"ok": true})).into_response()
}

async fn link_action(
    State(sim): State<Simulator>,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let request: ActionRequest = serde_json::from_slice(&body).unwrap_or_default();
    if action == "open" {
        let opened = lock(&sim.inner.account).open_link(&id, request.order_id);
        return reply(opened);
    }
    let method = request.method.as_deref().unwrap_or("upi");
    let result = {
        let mut account = lock(&sim.inner.account);
        match action.as_str() {
            "pay" => account.pay_link(&id, request.amount, method),
            "fail" => account.fail_link_payment(&id, method),
            "expire" => account.expire_link(&id),
            "cancel" => account.cancel_link_with_event(&id),
            other => Err(ApiError::bad_request(
                &format!("unknown action {other}"),
                None,
            )),
        }
    };
    action_reply(&sim, result, request.delivery)
}

async fn invoice_action(
    State(sim): State<Simulator>,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let request: ActionRequest = serde_json::from_slice(&body).unwrap_or_default();
    let method = request.method.as_deref().unwrap_or("card");
    let result = {
        let mut account = lock(&sim.inner.account);
        match action.as_str() {
            "pay" => account.pay_invoice(&id, request.amount, method),
            "expire" => account.expire_invoice(&id),
            other => Err(ApiError::bad_request(
                &format!("unknown action {other}"),
                None,
            )),
        }
    };
    action_reply(&sim, result, request.delivery)
}
