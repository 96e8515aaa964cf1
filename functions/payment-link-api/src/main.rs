use std::sync::Arc;

use lambda_http::{Error, run, service_fn};
use shared::adapters::aws::Adapters;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::adapters::telemetry::init();
    let adapters = Arc::new(Adapters::from_env().await?);
    run(service_fn(move |request| {
        let adapters = adapters.clone();
        async move { Ok::<_, Error>(payment_link_api::handle(&adapters, request).await) }
    }))
    .await
}
