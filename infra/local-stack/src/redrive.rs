//! Moving parked jobs from the DLQ back to the job queue: on AWS this is
//! `aws sqs start-message-move-task`; the emulator has no move task, so the local stack does
//! what it does — each message sent again to the source queue with its body and attributes,
//! then deleted from the DLQ — behind `POST /_local/dlq/redrive` (and `local-stack redrive`).

use aws_sdk_sqs::Client;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Moves every message of `dlq_url` to `queue_url`; answers how many moved.
pub async fn redrive(sqs: &Client, dlq_url: &str, queue_url: &str) -> Result<usize, String> {
    let describe = |e: &dyn std::fmt::Debug| format!("{e:?}");
    let mut moved = 0;
    loop {
        let received = sqs
            .receive_message()
            .queue_url(dlq_url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .visibility_timeout(30)
            .send()
            .await
            .map_err(|e| describe(&e))?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(moved);
        }
        for message in messages {
            sqs.send_message()
                .queue_url(queue_url)
                .message_body(message.body.clone().unwrap_or_default())
                .set_message_attributes(message.message_attributes.clone())
                .send()
                .await
                .map_err(|e| describe(&e))?;
            if let Some(handle) = &message.receipt_handle {
                sqs.delete_message()
                    .queue_url(dlq_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .map_err(|e| describe(&e))?;
            }
            moved += 1;
        }
    }
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
