//! What both simulators share: fault injection, the request log, the `/_sim/faults` and
//! `/_sim/requests` control routes, and webhook delivery with bounded retries.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// A Razorpay-style id: the prefix and 14 case-sensitive alphanumerics.
pub fn new_id(prefix: &str) -> String {
    const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let tail: String = (0..14)
        .map(|_| ALPHANUMERIC[fastrand::usize(..ALPHANUMERIC.len())] as char)
        .collect();
    format!("{prefix}{tail}")
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A fault to inject into the next API calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Answer with this status (500, 502, 503, 429...) without doing anything.
    Status { status: u16 },
    /// Hang this long without doing anything, then answer 504.
    Hang { ms: u64 },
    /// Do the work, then hang this long before answering (the caller times out not knowing
    /// the work was done).
    HangAfter { ms: u64 },
}

#[derive(Debug, Clone, Deserialize)]
struct FaultRequest {
    #[serde(flatten)]
    fault: Fault,
    #[serde(default = "one")]
    count: u32,
}

fn one() -> u32 {
    1
}

/// One API request as the simulator saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    /// The status answered; 0 while no answer was sent (or the caller gave up first).
    pub status: u16,
}

/// One webhook delivery (an event, or a duplicate of one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub event_id: String,
    pub event: String,
    pub attempts: u32,
    /// The last HTTP status the target answered, if it answered.
    pub status: Option<u16>,
    pub delivered: bool,
}

/// Faults to inject, and the log of requests and webhook deliveries.
#[derive(Debug, Default)]
pub struct Recorder {
    faults: Mutex<VecDeque<Fault>>,
    requests: Mutex<Vec<LoggedRequest>>,
    deliveries: Mutex<Vec<Delivery>>,
}

impl Recorder {
    pub fn add_fault(&self, fault: Fault, count: u32) {
        lock(&self.faults).extend(std::iter::repeat_n(fault, count as usize));
    }

    pub fn requests(&self) -> Vec<LoggedRequest> {
        lock(&self.requests).clone()
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        lock(&self.deliveries).clone()
    }

    /// Runs one API request: logs it on arrival, applies the next fault, checks auth, and
    /// records the status answered. `error` renders the simulated service's error body for a
    /// status; `authorized` says whether the credentials were right.
    pub async fn gate(
        &self,
        request: Request,
        next: Next,
        authorized: bool,
        error: impl Fn(u16) -> Response,
    ) -> Response {
        let index = {
            let mut log = lock(&self.requests);
            log.push(LoggedRequest {
                method: request.method().to_string(),
                path: request.uri().path().to_owned(),
                query: request.uri().query().unwrap_or_default().to_owned(),
                status: 0,
            });
            log.len() - 1
        };
        let fault = lock(&self.faults).pop_front();
        let response = match fault {
            Some(Fault::Status { status }) => error(status),
            Some(Fault::Hang { ms }) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                StatusCode::GATEWAY_TIMEOUT.into_response()
            }
            other => {
                let response = if authorized {
                    next.run(request).await
                } else {
                    error(401)
                };
                if let Some(Fault::HangAfter { ms }) = other {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                response
            }
        };
        if let Some(entry) = lock(&self.requests).get_mut(index) {
            entry.status = response.status().as_u16();
        }
        response
    }

    /// POSTs a webhook until the target answers 2xx or `attempts` run out (100 ms backoff,
    /// doubling), and records the delivery.
    pub async fn deliver(
        &self,
        http: &reqwest::Client,
        url: &str,
        headers: &[(&str, String)],
        event: (String, String),
        body: Vec<u8>,
        attempts: u32,
    ) {
        let (event_id, event) = event;
        let mut delivery = Delivery {
            event_id,
            event,
            attempts: 0,
            status: None,
            delivered: false,
        };
        for attempt in 1..=attempts.max(1) {
            delivery.attempts = attempt;
            let mut request = http
                .post(url)
                .header("content-type", "application/json")
                .body(body.clone());
            for (name, value) in headers {
                request = request.header(*name, value);
            }
            let result = request.send().await;
            delivery.status = result.as_ref().ok().map(|r| r.status().as_u16());
            if result.is_ok_and(|r| r.status().is_success()) {
                delivery.delivered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100 << (attempt - 1).min(6))).await;
        }
        lock(&self.deliveries).push(delivery);
    }
}

/// State types that own a [`Recorder`]: fault injection and the logs, for tests and tools.
pub trait HasRecorder: Clone + Send + Sync + 'static {
    fn recorder(&self) -> &Recorder;

    /// Makes the next `count` API calls fail this way.
    fn add_fault(&self, fault: Fault, count: u32) {
        self.recorder().add_fault(fault, count);
    }

    /// Drops the faults not yet used.
    fn clear_faults(&self) {
        lock(&self.recorder().faults).clear();
    }

    /// Every API request so far.
    fn requests(&self) -> Vec<LoggedRequest> {
        self.recorder().requests()
    }

    /// Every webhook delivery so far (recorded when its last attempt is done).
    fn deliveries(&self) -> Vec<Delivery> {
        self.recorder().deliveries()
    }
}

/// A simulator serving on a loopback port.
pub struct Running<S> {
    pub url: String,
    pub sim: S,
    pub task: tokio::task::JoinHandle<()>,
}

/// A command-line flag's value (`--flag value`), else the environment variable.
pub fn cli_arg(args: &[String], flag: &str, env: &str) -> Option<String> {
    args.windows(2)
        .find(|pair| pair[0] == flag)
        .map(|pair| pair[1].clone())
        .or_else(|| std::env::var(env).ok())
}

/// `/_sim/faults` (POST adds `{"kind":"status","status":500,"count":1}`, DELETE clears),
/// `/_sim/requests` (GET the log, DELETE clears it) and `/_sim/webhooks` (GET deliveries).
pub fn control_routes<S: HasRecorder>() -> Router<S> {
    Router::new()
        .route(
            "/_sim/faults",
            post(add_fault::<S>).delete(clear_faults::<S>),
        )
        .route(
            "/_sim/requests",
            axum::routing::get(requests::<S>).delete(clear_requests::<S>),
        )
        .route("/_sim/webhooks", axum::routing::get(deliveries::<S>))
}

async fn add_fault<S: HasRecorder>(
    State(state): State<S>,
    Json(request): Json<FaultRequest>,
) -> Response {
    state.recorder().add_fault(request.fault, request.count);
    Json(json!({"queued": lock(&state.recorder().faults).len()})).into_response()
}

async fn clear_faults<S: HasRecorder>(State(state): State<S>) -> Response {
    state.clear_faults();
    Json(json!({"queued": 0})).into_response()
}

async fn requests<S: HasRecorder>(State(state): State<S>) -> Response {
    Json(state.recorder().requests()).into_response()
}

async fn clear_requests<S: HasRecorder>(State(state): State<S>) -> Response {
    lock(&state.recorder().requests).clear();
    Json(json!([])).into_response()
}

async fn deliveries<S: HasRecorder>(State(state): State<S>) -> Response {
    Json(state.recorder().deliveries()).into_response()
}

/// Binds `addr` (port 0 picks a free one) and serves `router` in the background.
pub async fn serve(
    router: Router,
    addr: std::net::SocketAddr,
) -> std::io::Result<(String, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let url = format!("http://{}", listener.local_addr()?);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "simulator stopped");
        }
    });
    Ok((url, task))
}
