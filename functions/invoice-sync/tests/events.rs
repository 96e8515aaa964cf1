//! The worker, driven by the sample SQS event in `events/`.

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use testkit::TestEnv;

#[tokio::test]
async fn the_sample_batch_parses_and_its_unimplemented_job_is_failed_not_dropped() {
    let env = TestEnv::new().await;
    let event: SqsEvent =
        serde_json::from_str(include_str!("../../../events/sqs-sync-invoice.json")).unwrap();
    let id = event.records[0].message_id.clone().unwrap();
    let response = invoice_sync::handle(Arc::new(env.adapters()), event)
        .await
        .unwrap();
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(failed, [id]);
}
