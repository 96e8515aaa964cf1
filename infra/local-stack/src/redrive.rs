//! Moving parked jobs from the DLQ back to the job queue, all of them, behind
//! `POST /_local/dlq/redrive` (and `local-stack redrive`): each message sent again to the job
//! queue with its body and attributes, then deleted from the DLQ, the way `flexrzp-admin jobs
//! redrive` does it on AWS (which also takes a tenant or a kind).

use aws_sdk_sqs::Client;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use shared::adapters::aws::dlq::DeadLetters;
use shared::domain::jobs::ParkedFilter;

/// Moves every message of `dlq_url` to `queue_url`; answers how many moved.
pub async fn redrive(sqs: &Client, dlq_url: &str, queue_url: &str) -> Result<usize, String> {
    let dead_letters = DeadLetters::new(sqs.clone(), dlq_url, queue_url);
    let moved = dead_letters.redrive(&ParkedFilter::default()).await;
    moved.map(|jobs| jobs.len()).map_err(|e| e.to_string())
}

/// What the control route needs.
#[derive(Clone)]
pub struct Queues {
    pub sqs: Client,
    pub queue_url: String,
    pub dlq_url: String,
}

/// `POST /_local/dlq/redrive`.
pub fn router(queues: Queues) -> axum::Router {
    axum::Router::new()
        .route("/_local/dlq/redrive", axum::routing::post(redrive_route))
        .with_state(queues)
}

async fn redrive_route(State(queues): State<Queues>) -> Response {
    match redrive(&queues.sqs, &queues.dlq_url, &queues.queue_url).await {
        Ok(moved) => Json(json!({"moved": moved})).into_response(),
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            Json(json!({"error": format!("the redrive failed: {e}")})),
        )
            .into_response(),
    }
}
