//! The worker, driven by the sample SQS event in `events/`.

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use testkit::TestEnv;

#[tokio::test]
async fn the_sample_batch_parses_and_a_job_for_an_unconnected_tenant_is_recorded_as_failed() {
    let env = TestEnv::new().await;
    let event: SqsEvent =
        serde_json::from_str(include_str!("../../../events/sqs-sync-invoice.json")).unwrap();
    let id = event.records[0].message_id.clone().unwrap();
    let adapters = Arc::new(env.adapters());
    let deadline = invoice_sync::deadline_from_now(&adapters);
    let response = invoice_sync::handle(adapters, event, deadline)
        .await
        .unwrap();
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    // Retrying cannot connect the tenant: the job is acknowledged, and the invoice's sync
    // record says why it failed (a manual sync retries once the tenant connects).
    assert!(failed.is_empty(), "{failed:?} (message {id})");
    let scope = shared::domain::keys::TenantScope::new("demo", "sandbox").unwrap();
    let record = env
        .adapters()
        .store
        .get(&scope.key("INVOICE", "inv_local_usd_0001"))
        .await
        .unwrap()
        .expect("a sync record");
    use shared::adapters::aws::store::ItemExt;
    assert_eq!(record.str_attr("status"), Some("FAILED"));
    assert!(
        record
            .str_attr("last_error")
            .is_some_and(|e| e.contains("not connected")),
        "{record:?}"
    );
}

#[tokio::test]
async fn a_sweep_that_cannot_run_for_its_scope_is_said_not_parked() {
    use shared::domain::jobs::{Job, Task, Work};
    let stack = testkit::FakeStack::new().await;
    // Nobody is connected here: the sweep cannot read Razorpay, and retrying will not help.
    let scope = shared::domain::keys::TenantScope::new("gone", "live").unwrap();
    let work = Work::Job(Job::new(&scope, Task::Sweep));
    let done = invoice_sync::run_work(Arc::new(stack.adapters), work, 1).await;
    assert_eq!(done, Ok(()));
}
