//! The SQS job queue and its dead-letter queue against the moto emulator.

use std::time::{Duration, Instant};

use aws_sdk_sqs::types::MessageSystemAttributeName;
use shared::adapters::aws::provision::QueueSettings;
use shared::adapters::aws::queue::{KIND_ATTRIBUTE, QueueError, TRACE_ID_ATTRIBUTE};
use shared::domain::jobs::{Job, Retry, Task};
use shared::domain::keys::TenantScope;
use testkit::TestEnv;

fn job(task: Task) -> Job {
    Job::new(&TenantScope::new("tenant_1", "live").unwrap(), task)
}

#[tokio::test]
async fn a_sent_job_arrives_with_its_kind_and_trace_id() {
    let env = TestEnv::new().await;
    let sent = job(Task::SyncInvoice {
        invoice_id: "inv_123".into(),
    });
    let message_id = env
        .job_queue()
        .send(&sent, Some("Root=1-abc-def"))
        .await
        .unwrap();
    assert!(!message_id.is_empty());
    let received = env
        .sqs()
        .receive_message()
        .queue_url(&env.queues.url)
        .message_attribute_names("All")
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    let messages = received.messages();
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert_eq!(message.message_id(), Some(message_id.as_str()));
    let body: Job = serde_json::from_str(message.body().unwrap()).unwrap();
    assert_eq!(body, sent);
    let attributes = message.message_attributes().unwrap();
    assert_eq!(
        attributes[KIND_ATTRIBUTE].string_value(),
        Some("sync_invoice")
    );
    assert_eq!(
        attributes[TRACE_ID_ATTRIBUTE].string_value(),
        Some("Root=1-abc-def")
    );
}

#[tokio::test]
async fn a_job_is_in_its_tenants_group_and_a_retry_comes_back_only_after_its_wait() {
    let env = TestEnv::new().await;
    let sent = job(Task::SyncInvoice {
        invoice_id: "inv_7".into(),
    });
    env.job_queue().send(&sent, None).await.unwrap();
    let receive = || {
        env.sqs()
            .receive_message()
            .queue_url(&env.queues.url)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .wait_time_seconds(1)
            .send()
    };
    let first = receive().await.unwrap();
    let message = &first.messages()[0];
    let group = message
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId));
    assert_eq!(group.map(String::as_str), Some("tenant_1"));
    let retry = |wait_secs| Retry {
        receipt_handle: message.receipt_handle().unwrap().to_owned(),
        wait_secs,
    };
    env.job_queue().retry_later(&[retry(60)]).await.unwrap();
    assert!(receive().await.unwrap().messages().is_empty(), "waiting");
    env.job_queue().retry_later(&[retry(0)]).await.unwrap();
    assert_eq!(receive().await.unwrap().messages().len(), 1, "back");
}

#[tokio::test]
async fn a_job_over_the_message_limit_is_refused_before_sending() {
    let env = TestEnv::new().await;
    let huge = job(Task::ApplyRazorpayEvent {
        event_id: "evt_1".into(),
        body: "x".repeat(300 * 1024),
    });
    let err = env.job_queue().send(&huge, None).await.unwrap_err();
    assert!(matches!(err, QueueError::TooLarge { .. }), "{err:?}");
}

/// A message received `maxReceiveCount` times without being deleted moves to the DLQ.
#[tokio::test]
async fn an_undeleted_message_lands_in_the_dlq_after_max_receive_count() {
    let env = TestEnv::with_queue_settings(QueueSettings {
        max_receive_count: 2,
        visibility_timeout_secs: 1,
        ..QueueSettings::default()
    })
    .await;
    let poison = job(Task::CancelInvoice {
        invoice_id: "inv_poison".into(),
    });
    let message_id = env.job_queue().send(&poison, None).await.unwrap();
    let sqs = env.sqs();
    let mut receives = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(
            Instant::now() < deadline,
            "the message never reached the DLQ"
        );
        let got = sqs
            .receive_message()
            .queue_url(&env.queues.url)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        if !got.messages().is_empty() {
            receives += 1;
            // Not deleted: the worker failed it. It becomes visible again after 1 s.
            continue;
        }
        let dead = sqs
            .receive_message()
            .queue_url(&env.queues.dlq_url)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .unwrap();
        if let Some(message) = dead.messages().first() {
            assert_eq!(message.message_id(), Some(message_id.as_str()));
            let body: Job = serde_json::from_str(message.body().unwrap()).unwrap();
            assert_eq!(body, poison);
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(receives, 2, "received exactly maxReceiveCount times");
}
