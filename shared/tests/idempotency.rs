//! The contract of the `Claims` port (claims on webhook events, with Powertools' record
//! lifecycle), run against the DynamoDB adapter on moto and against the in-memory fake: the
//! same cases, the same answers.

use std::sync::Arc;
use std::time::Duration;

use shared::adapters::aws::idempotency::{
    Claim, Idempotency, IdempotencyError, Lifetimes, payload_hash,
};
use shared::adapters::aws::store::Store;
use shared::adapters::memory::MemoryClaims;
use shared::domain::keys::{Key, TenantScope};
use shared::ports::{Claims, Clock, ManualClock, SystemClock};
use testkit::{CallCounter, TestEnv};

/// Builds the claims under test over a clock.
type Make = Box<dyn Fn(Arc<dyn Clock>) -> Arc<dyn Claims> + Send + Sync>;

const LIFETIMES: Lifetimes = Lifetimes {
    lock: Duration::from_secs(30),
    keep: Duration::from_secs(3600),
};

fn key(id: &str) -> Key {
    TenantScope::new("tenant_1", "live")
        .unwrap()
        .key("EVENT", id)
}

fn manual_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::at_millis(SystemClock.now_millis()))
}

fn acquired(claim: Claim) -> shared::adapters::aws::idempotency::ClaimToken {
    match claim {
        Claim::Acquired(token) => token,
        other => panic!("expected Acquired, got {other:?}"),
    }
}

async fn claim_complete_then_duplicate_returns_the_stored_result(make: Make) {
    let idem = make(Arc::new(SystemClock));
    let hash = payload_hash(b"{\"event\":\"payment.captured\"}");
    let token = acquired(idem.claim(&key("evt_1"), &hash, LIFETIMES).await.unwrap());
    idem.complete(&token, Some("job-42"), LIFETIMES.keep)
        .await
        .unwrap();
    let again = idem.claim(&key("evt_1"), &hash, LIFETIMES).await.unwrap();
    assert_eq!(
        again,
        Claim::Completed {
            result: Some("job-42".into())
        }
    );
}

async fn a_claim_in_progress_blocks_a_second_claim(make: Make) {
    let idem = make(Arc::new(SystemClock));
    let hash = payload_hash(b"a");
    acquired(idem.claim(&key("evt_2"), &hash, LIFETIMES).await.unwrap());
    let err = idem
        .claim(&key("evt_2"), &hash, LIFETIMES)
        .await
        .unwrap_err();
    assert!(matches!(err, IdempotencyError::InProgress), "{err:?}");
}

async fn a_payload_mismatch_is_refused(make: Make) {
    let idem = make(Arc::new(SystemClock));
    let token = acquired(
        idem.claim(&key("evt_3"), &payload_hash(b"original"), LIFETIMES)
            .await
            .unwrap(),
    );
    // While in progress...
    let err = idem
        .claim(&key("evt_3"), &payload_hash(b"tampered"), LIFETIMES)
        .await
        .unwrap_err();
    assert!(matches!(err, IdempotencyError::PayloadMismatch), "{err:?}");
    // ...and once completed.
    idem.complete(&token, None, LIFETIMES.keep).await.unwrap();
    let err = idem
        .claim(&key("evt_3"), &payload_hash(b"tampered"), LIFETIMES)
        .await
        .unwrap_err();
    assert!(matches!(err, IdempotencyError::PayloadMismatch), "{err:?}");
}

async fn an_expired_lock_is_reclaimable_and_the_old_owner_loses_it(make: Make) {
    let clock = manual_clock();
    let idem = make(clock.clone());
    let hash = payload_hash(b"p");
    let lifetimes = Lifetimes {
        lock: Duration::from_secs(5),
        keep: Duration::from_secs(3600),
    };
    let first = acquired(idem.claim(&key("evt_4"), &hash, lifetimes).await.unwrap());
    clock.advance(Duration::from_secs(4));
    let err = idem
        .claim(&key("evt_4"), &hash, lifetimes)
        .await
        .unwrap_err();
    assert!(matches!(err, IdempotencyError::InProgress), "{err:?}");
    clock.advance(Duration::from_secs(2));
    let second = acquired(idem.claim(&key("evt_4"), &hash, lifetimes).await.unwrap());
    // The worker whose lock expired can neither complete nor release the new claim.
    let lost = idem.complete(&first, Some("stale"), lifetimes.keep).await;
    assert!(matches!(lost, Err(IdempotencyError::LockLost)), "{lost:?}");
    let lost = idem.release(&first).await;
    assert!(matches!(lost, Err(IdempotencyError::LockLost)), "{lost:?}");
    idem.complete(&second, Some("fresh"), lifetimes.keep)
        .await
        .unwrap();
    assert_eq!(
        idem.claim(&key("evt_4"), &hash, lifetimes).await.unwrap(),
        Claim::Completed {
            result: Some("fresh".into())
        }
    );
}

async fn an_expired_record_is_claimable_again_even_with_another_payload(make: Make) {
    let clock = manual_clock();
    let idem = make(clock.clone());
    let lifetimes = Lifetimes {
        lock: Duration::from_secs(5),
        keep: Duration::from_secs(60),
    };
    let token = acquired(
        idem.claim(&key("evt_5"), &payload_hash(b"one"), lifetimes)
            .await
            .unwrap(),
    );
    idem.complete(&token, None, lifetimes.keep).await.unwrap();
    // moto never deletes expired items (nor does DynamoDB promptly): expiry is checked in code.
    clock.advance(Duration::from_secs(61));
    acquired(
        idem.claim(&key("evt_5"), &payload_hash(b"two"), lifetimes)
            .await
            .unwrap(),
    );
}

async fn release_lets_a_retry_do_the_work_again(make: Make) {
    let idem = make(Arc::new(SystemClock));
    let hash = payload_hash(b"r");
    let token = acquired(idem.claim(&key("evt_6"), &hash, LIFETIMES).await.unwrap());
    idem.release(&token).await.unwrap();
    acquired(idem.claim(&key("evt_6"), &hash, LIFETIMES).await.unwrap());
}

async fn twenty_concurrent_claims_have_exactly_one_winner(make: Make) {
    let idem = make(Arc::new(SystemClock));
    let hash = payload_hash(b"race");
    let claims = (0..20).map(|_| {
        let idem = idem.clone();
        let hash = hash.clone();
        tokio::spawn(async move { idem.claim(&key("evt_race"), &hash, LIFETIMES).await })
    });
    let results = futures::future::join_all(claims).await;
    let mut winners = 0;
    for result in results {
        match result.unwrap() {
            Ok(Claim::Acquired(_)) => winners += 1,
            Err(IdempotencyError::InProgress) => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(winners, 1);
}

/// Each case twice: on the DynamoDB adapter (moto) and on the fake.
macro_rules! contract {
    ($($case:ident),+ $(,)?) => {
        mod on_dynamodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let env = testkit::TestEnv::new().await;
                    let store = env.store();
                    super::$case(Box::new(move |clock| {
                        std::sync::Arc::new(super::Idempotency::new(store.clone(), clock))
                    }))
                    .await;
                }
            )+
        }
        mod on_memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(Box::new(|clock| {
                        std::sync::Arc::new(super::MemoryClaims::new(clock))
                    }))
                    .await;
                }
            )+
        }
    };
}

contract!(
    claim_complete_then_duplicate_returns_the_stored_result,
    a_claim_in_progress_blocks_a_second_claim,
    a_payload_mismatch_is_refused,
    an_expired_lock_is_reclaimable_and_the_old_owner_loses_it,
    an_expired_record_is_claimable_again_even_with_another_payload,
    release_lets_a_retry_do_the_work_again,
    twenty_concurrent_claims_have_exactly_one_winner,
);

#[tokio::test]
async fn a_duplicate_costs_one_call() {
    let env = TestEnv::new().await;
    let counter = CallCounter::new();
    let store = Store::new(env.counted_dynamodb(&counter), &env.table);
    let idem = Idempotency::new(store, Arc::new(SystemClock));
    let hash = payload_hash(b"d");
    let token = acquired(idem.claim(&key("evt_7"), &hash, LIFETIMES).await.unwrap());
    idem.complete(&token, None, LIFETIMES.keep).await.unwrap();
    counter.reset();
    idem.claim(&key("evt_7"), &hash, LIFETIMES).await.unwrap();
    // ALL_OLD returns the stored record with the failed put: no GetItem needed.
    assert_eq!(counter.calls(), ["DynamoDB.PutItem"]);
}
