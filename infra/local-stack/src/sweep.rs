//! The local stand-in for the template's EventBridge schedule: every [`EVERY`] (its 15 minutes,
//! at the local stack's 60-times speed) a sweep of every connected scope is queued, as the
//! schedule's `{"kind": "sweep_all"}` message makes the worker do; and `POST /_local/sweep`
//! (`local-stack sweep`) queues one now.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use serde_json::json;
use shared::adapters::aws::Adapters;

/// The schedule's period, scaled like the retry schedule.
pub const EVERY: Duration = Duration::from_secs(15 * 60 / crate::LOCAL_RETRY_SCALE as u64);

/// Queues a sweep for every connected scope every [`EVERY`], until aborted.
pub fn schedule(adapters: Arc<Adapters>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(EVERY);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            if let Err(e) = shared::services::sweep::sweep_all(&adapters).await {
                tracing::warn!(error = %e, "the scheduled sweep could not be queued");
            }
        }
    })
}

/// `POST /_local/sweep`.
pub fn router(adapters: Arc<Adapters>) -> axum::Router {
    axum::Router::new()
        .route("/_local/sweep", axum::routing::post(sweep_now))
        .with_state(adapters)
}

async fn sweep_now(State(adapters): State<Arc<Adapters>>) -> Response {
    match shared::services::sweep::sweep_all(&adapters).await {
        Ok(queued) => Json(json!({"queued": queued})).into_response(),
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            Json(json!({"error": format!("the sweep could not be queued: {e}")})),
        )
            .into_response(),
    }
}
