//! The contract of the `EventLog` port, run against the DynamoDB adapter on moto (the table
//! and its `log` and `invoice` indexes as the template makes them) and against the in-memory fake: the same
//! cases, the same answers.

use std::sync::Arc;
use std::time::Duration;

use shared::adapters::aws::idempotency::{Claim, IdempotencyError, Lifetimes};
use shared::domain::events::{EventFilter, Outcome, Refused, Source, Step, WebhookEvent, day_of};
use shared::domain::keys::TenantScope;
use shared::domain::timeline::{Correction, Heard};
use shared::ports::{EventLog, ManualClock};

const LIFETIMES: Lifetimes = Lifetimes {
    lock: Duration::from_secs(30),
    keep: Duration::from_secs(3600),
};

fn scope(tenant: &str) -> TenantScope {
    TenantScope::new(tenant, "live").unwrap()
}

fn event(id: &str, event_type: &str, at_ms: u64) -> WebhookEvent {
    let body = format!("{{\"id\":\"{id}\"}}");
    WebhookEvent::received(Source::Razorpay, id, event_type, at_ms, body)
}

fn step(outcome: Outcome, reason: Option<&str>) -> Step {
    Step {
        at_ms: 2_000_000,
        outcome,
        reason: reason.map(str::to_owned),
        replay: false,
    }
}

async fn an_event_is_received_once_and_a_settled_one_is_a_duplicate(log: Arc<dyn EventLog>) {
    let s = scope("tenant_1");
    let e = event("evt_1", "payment.captured", 1_000_000);
    let first = log.receive(&s, &e, "hash-1", LIFETIMES).await.unwrap();
    assert!(matches!(first, Claim::Acquired(_)));
    let held = log.receive(&s, &e, "hash-1", LIFETIMES).await;
    assert!(
        matches!(held, Err(IdempotencyError::InProgress)),
        "{held:?}"
    );
    let other = log.receive(&s, &e, "hash-2", LIFETIMES).await;
    assert!(
        matches!(other, Err(IdempotencyError::PayloadMismatch)),
        "{other:?}"
    );
    let settled = log
        .settle(&s, e.clone(), step(Outcome::Applied, None), Some("inv_1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (settled.outcome, settled.invoice_id.as_deref()),
        (Outcome::Applied, Some("inv_1"))
    );
    let again = log.receive(&s, &e, "hash-1", LIFETIMES).await.unwrap();
    assert!(matches!(again, Claim::Completed { .. }), "{again:?}");
    // A repeat of the newest step is not written again; a new one is.
    let same = step(Outcome::Applied, None);
    log.settle(&s, settled.clone(), same, None).await.unwrap();
    // A stale read (another settling wrote the event since) is read again, losing no step.
    let dup = step(Outcome::Duplicate, Some("the payment was counted before"));
    log.settle(&s, e.clone(), dup, None).await.unwrap();
    let stored = log
        .get(&s, Source::Razorpay, "evt_1")
        .await
        .unwrap()
        .unwrap();
    let outcomes: Vec<Outcome> = stored.history.iter().map(|h| h.outcome).collect();
    assert_eq!(outcomes, [Outcome::Applied, Outcome::Duplicate]);
    assert_eq!(stored.body, e.body);
    assert_eq!(stored.invoice_id.as_deref(), Some("inv_1"));
    // Nothing of it under another scope or source.
    assert!(
        log.get(&scope("tenant_2"), Source::Razorpay, "evt_1")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        log.get(&s, Source::Flexprice, "evt_1")
            .await
            .unwrap()
            .is_none()
    );
    let gone = event("evt_none", "payment.captured", 1_000_000);
    let none = log.settle(&s, gone, step(Outcome::Applied, None), None);
    assert!(none.await.unwrap().is_none());
}

async fn an_ignored_event_is_settled_when_received(log: Arc<dyn EventLog>) {
    let s = scope("tenant_1");
    let mut e = event("evt_ignored", "order.paid", 1_000_000);
    assert!(e.settle(step(Outcome::Ignored, Some("not applied"))));
    assert!(matches!(
        log.receive(&s, &e, "h", LIFETIMES).await.unwrap(),
        Claim::Acquired(_)
    ));
    let again = log.receive(&s, &e, "h", LIFETIMES).await.unwrap();
    assert!(matches!(again, Claim::Completed { .. }), "{again:?}");
}

async fn a_released_event_is_received_again(log: Arc<dyn EventLog>) {
    let s = scope("tenant_1");
    let e = event("evt_released", "payment.captured", 1_000_000);
    let Claim::Acquired(token) = log.receive(&s, &e, "h", LIFETIMES).await.unwrap() else {
        panic!("not acquired");
    };
    log.release(&token).await.unwrap();
    assert!(
        log.get(&s, Source::Razorpay, "evt_released")
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        log.receive(&s, &e, "h", LIFETIMES).await.unwrap(),
        Claim::Acquired(_)
    ));
}

async fn a_listing_pages_newest_first_filters_and_keeps_to_its_scope(log: Arc<dyn EventLog>) {
    let s = scope("tenant_1");
    for i in 0..5u64 {
        let kind = if i % 2 == 0 {
            "payment.captured"
        } else {
            "payment.failed"
        };
        let e = event(&format!("evt_{i}"), kind, 1_000_000 + i * 1000);
        log.receive(&s, &e, "h", LIFETIMES).await.unwrap();
    }
    let foreign = event("evt_foreign", "payment.captured", 1_002_500);
    log.receive(&scope("tenant_2"), &foreign, "h", LIFETIMES)
        .await
        .unwrap();
    let third = event("evt_3", "payment.failed", 1_003_000);
    log.settle(&s, third, step(Outcome::Parked, Some("no")), None)
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..10 {
        let filter = EventFilter {
            limit: 2,
            ..EventFilter::default()
        };
        let page = log.list(&s, &filter, after.as_deref()).await.unwrap();
        seen.extend(page.events.iter().map(|e| e.event_id.clone()));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ["evt_4", "evt_3", "evt_2", "evt_1", "evt_0"]);
    let typed = EventFilter {
        event_type: Some("payment.failed".into()),
        limit: 10,
        ..EventFilter::default()
    };
    let ids = listed_ids(log.as_ref(), &s, &typed).await;
    assert_eq!(ids, ["evt_3", "evt_1"]);
    let parked = EventFilter {
        outcome: Some(Outcome::Parked),
        limit: 10,
        ..EventFilter::default()
    };
    let ids = listed_ids(log.as_ref(), &s, &parked).await;
    assert_eq!(ids, ["evt_3"]);
    let since = EventFilter {
        since_ms: Some(1_003_000),
        limit: 10,
        ..EventFilter::default()
    };
    assert_eq!(log.list(&s, &since, None).await.unwrap().events.len(), 2);
}

async fn refusals_are_counted_per_scope_and_reason(log: Arc<dyn EventLog>) {
    let day = day_of(1_796_256_000_000);
    log.refuse(&scope("tenant_1"), Refused::BadSignature, &day)
        .await
        .unwrap();
    log.refuse(&scope("tenant_1"), Refused::WrongAccount, &day)
        .await
        .unwrap();
    log.refuse(&scope("tenant_2"), Refused::BadSignature, &day)
        .await
        .unwrap();
    let counted = log
        .refusals(&scope("tenant_1"), "2026-12-01")
        .await
        .unwrap();
    assert_eq!(
        counted,
        [(Refused::BadSignature, 1), (Refused::WrongAccount, 1)]
    );
    assert!(
        log.refusals(&scope("tenant_1"), "2026-12-04")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        log.refusals(&scope("tenant_3"), "2026-12-01")
            .await
            .unwrap()
            .is_empty()
    );
}

async fn what_was_heard_about_an_invoice_is_its_own_oldest_first(log: Arc<dyn EventLog>) {
    let s = scope("tenant_1");
    // Known at once (a Flexprice event naming its invoice), learned when settled, never.
    let mut known = event("evt_known", "invoice.update.finalized", 1_002_000);
    known.invoice_id = Some("inv_1".into());
    log.receive(&s, &known, "h", LIFETIMES).await.unwrap();
    let learned = event("evt_learned", "payment.captured", 1_001_000);
    log.receive(&s, &learned, "h", LIFETIMES).await.unwrap();
    log.settle(&s, learned, step(Outcome::Applied, None), Some("inv_1"))
        .await
        .unwrap();
    let unknown = event("evt_unknown", "payment.captured", 1_000_000);
    log.receive(&s, &unknown, "h", LIFETIMES).await.unwrap();
    let mut foreign = event("evt_foreign", "invoice.update.finalized", 1_000_500);
    foreign.invoice_id = Some("inv_1".into());
    log.receive(&scope("tenant_2"), &foreign, "h", LIFETIMES)
        .await
        .unwrap();
    let correction = Correction {
        at_ms: 1_003_000,
        razorpay_id: "pay_missed".into(),
        event_type: "payment.captured".into(),
        outcome: "counted".into(),
    };
    log.corrected(&s, "inv_1", &correction).await.unwrap();
    log.corrected(&s, "inv_1", &correction).await.unwrap();
    let heard = log.about(&s, "inv_1").await.unwrap();
    let ids: Vec<&str> = heard.events.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids, ["evt_learned", "evt_known"]);
    assert_eq!(heard.events[0].outcome, Outcome::Applied);
    assert_eq!(heard.corrections, [correction]);
    assert_eq!(log.about(&s, "inv_2").await.unwrap(), Heard::default());
    let theirs = log.about(&scope("tenant_2"), "inv_1").await.unwrap();
    assert_eq!((theirs.events.len(), theirs.corrections.len()), (1, 0));
}

async fn listed_ids(log: &dyn EventLog, s: &TenantScope, filter: &EventFilter) -> Vec<String> {
    let page = log.list(s, filter, None).await.unwrap();
    page.events.into_iter().map(|e| e.event_id).collect()
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::at_millis(1_796_256_000_000))
}

/// Each case twice: on the DynamoDB adapter (moto) and on the fake.
macro_rules! contract {
    ($($case:ident),+ $(,)?) => {
        mod on_dynamodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let env = testkit::TestEnv::new().await;
                    let log = shared::adapters::aws::event_log::DynamoEventLog::new(env.store(), super::clock());
                    super::$case(std::sync::Arc::new(log)).await;
                }
            )+
        }
        mod on_memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let log = shared::adapters::memory::MemoryEventLog::new(super::clock());
                    super::$case(std::sync::Arc::new(log)).await;
                }
            )+
        }
    };
}

contract!(
    an_event_is_received_once_and_a_settled_one_is_a_duplicate,
    an_ignored_event_is_settled_when_received,
    a_released_event_is_received_again,
    a_listing_pages_newest_first_filters_and_keeps_to_its_scope,
    refusals_are_counted_per_scope_and_reason,
    what_was_heard_about_an_invoice_is_its_own_oldest_first,
);
