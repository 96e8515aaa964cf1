use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use shared::adapters::aws::Adapters;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::adapters::telemetry::init();
    let adapters = Arc::new(Adapters::from_env().await?);
    run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let adapters = adapters.clone();
        let deadline_ms = event.context.deadline;
        async move {
            let answered = invoice_sync::handle(adapters, event.payload, deadline_ms).await?;
            Ok::<_, Error>(answered)
        }
    }))
    .await
}
