//! The emulator the tests run on keeps DynamoDB's promises: serializable per item,
//! all-or-nothing per transaction, a failed condition answered with the stored item, TTL that
//! never deletes early. Plain moto breaks the first two under concurrency (a cancelled
//! transaction restores a copy of the whole table taken when it began); the project's launcher
//! (`infra/testkit/moto_server.py`) fixes that, and the race below fails without it
//! (`FLEXRZP_MOTO_SERVER=plain cargo test -p shared --test emulator`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use shared::adapters::aws::store::{
    CancelReason, EXPIRES_AT, Expect, Item, ItemExt, STATUS, Store, StoreError, Update, VERSION,
    Write, n, s,
};
use shared::domain::keys::{Key, TenantScope};
use testkit::TestEnv;

/// How many writes each task of the race makes, and the time after which it gives up early
/// (a bound for a stuck emulator, not the race's length: a slow machine still makes every write,
/// so the race always runs long enough to show something).
const RACE_WRITES: usize = 40;
const RACE_TIME: Duration = Duration::from_secs(60);
/// Items already in the table: plain moto copies all of them for every transaction, which
/// widens the window in which it loses other requests' writes.
const FILLER_ITEMS: usize = 200;

fn key(id: &str) -> Key {
    TenantScope::new("tenant_1", "live")
        .unwrap()
        .key("RACE", id)
}

fn bump_counter() -> Update {
    Update {
        expect: vec![Expect::Exists],
        bump_version: true,
        ..Update::default()
    }
}

/// A transaction creating `item` and incrementing the counter, with `more` beside them.
fn create_and_count(item: Key, attrs: Item, more: Option<Write>) -> Vec<Write> {
    let mut writes = vec![
        Write::Create { key: item, attrs },
        Write::Update {
            key: key("counter"),
            update: bump_counter(),
        },
    ];
    writes.extend(more);
    writes
}

/// What one task of the race did.
#[derive(Debug, Default)]
struct Outcome {
    /// Keys this task created, each acknowledged.
    created: Vec<Key>,
    /// Keys this task tried to create in transactions that were cancelled.
    refused: Vec<Key>,
    /// Acknowledged increments of the shared counter.
    increments: u64,
    /// Anything but success or the expected cancellation.
    errors: Vec<String>,
}

impl Outcome {
    fn add(&mut self, step: Outcome) {
        self.created.extend(step.created);
        self.refused.extend(step.refused);
        self.increments += step.increments;
        self.errors.extend(step.errors);
    }
}

/// Runs `step` until the time or the count runs out (or another task saw an error).
async fn race_task<F, Fut>(stop: Arc<AtomicBool>, mut step: F) -> Outcome
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Outcome>,
{
    let deadline = Instant::now() + RACE_TIME;
    let mut outcome = Outcome::default();
    for i in 0..RACE_WRITES {
        if Instant::now() > deadline || stop.load(Ordering::Relaxed) {
            break;
        }
        outcome.add(step(i).await);
    }
    if !outcome.errors.is_empty() {
        stop.store(true, Ordering::Relaxed);
    }
    outcome
}

/// Commits a two-write transaction in a loop: a new item, and one more on the counter.
async fn committer(store: Store, name: String, stop: Arc<AtomicBool>) -> Outcome {
    race_task(stop, |i| {
        let store = store.clone();
        let item = key(&format!("{name}-{i}"));
        let outcome_item = item.clone();
        let name = name.clone();
        async move {
            let mut outcome = Outcome::default();
            let result = store
                .transact(create_and_count(
                    item,
                    Item::from([("writer".to_owned(), s(&name))]),
                    None,
                ))
                .await;
            match result {
                Ok(()) => {
                    outcome.created.push(outcome_item);
                    outcome.increments += 1;
                }
                Err(e) => outcome.errors.push(format!("committer: {e:?}")),
            }
            outcome
        }
    })
    .await
}

/// Runs a transaction whose condition always fails, beside a create and an increment that
/// must therefore never happen.
async fn canceller(store: Store, name: String, stop: Arc<AtomicBool>) -> Outcome {
    race_task(stop, |i| {
        let store = store.clone();
        let item = key(&format!("{name}-{i}"));
        let refused = item.clone();
        async move {
            let mut outcome = Outcome::default();
            let result = store
                .transact(create_and_count(
                    item,
                    Item::new(),
                    Some(Write::Check {
                        key: key("filler-0"),
                        expect: vec![Expect::Status("NEVER".into())],
                    }),
                ))
                .await;
            match result {
                Err(StoreError::TransactionCancelled { reasons })
                    if matches!(reasons.get(2), Some(CancelReason::ConditionFailed { .. })) =>
                {
                    outcome.refused.push(refused);
                }
                other => outcome.errors.push(format!("canceller: {other:?}")),
            }
            outcome
        }
    })
    .await
}

/// Single writes beside the transactions: a conditional create and an increment.
async fn single_writer(store: Store, name: String, stop: Arc<AtomicBool>) -> Outcome {
    race_task(stop, |i| {
        let store = store.clone();
        let item = key(&format!("{name}-{i}"));
        async move {
            let mut outcome = Outcome::default();
            match store.create(&item, Item::new()).await {
                Ok(()) => outcome.created.push(item),
                Err(e) => outcome.errors.push(format!("single create: {e:?}")),
            }
            match store.update(&key("counter"), &bump_counter()).await {
                Ok(_) => outcome.increments += 1,
                Err(e) => outcome.errors.push(format!("single update: {e:?}")),
            }
            outcome
        }
    })
    .await
}

async fn seed(store: &Store) {
    store
        .create(&key("counter"), Item::from([(VERSION.to_owned(), n(0))]))
        .await
        .unwrap();
    let padding = "x".repeat(200);
    let fill = (0..FILLER_ITEMS).map(|i| {
        let item = Item::from([
            (STATUS.to_owned(), s("FILLER")),
            ("padding".to_owned(), s(&padding)),
        ]);
        let store = store.clone();
        async move { store.create(&key(&format!("filler-{i}")), item).await }
    });
    for result in futures::future::join_all(fill).await {
        result.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_transactions_and_single_writes_lose_no_acknowledged_write() {
    let env = TestEnv::new().await;
    let store = env.store();
    seed(&store).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for t in 0..3 {
        tasks.push(tokio::spawn(committer(
            store.clone(),
            format!("tx{t}"),
            stop.clone(),
        )));
        tasks.push(tokio::spawn(canceller(
            store.clone(),
            format!("cancelled{t}"),
            stop.clone(),
        )));
    }
    tasks.push(tokio::spawn(single_writer(
        store.clone(),
        "single".into(),
        stop.clone(),
    )));
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }

    let errors: Vec<&String> = outcomes.iter().flat_map(|o| &o.errors).collect();
    assert!(errors.is_empty(), "unexpected answers: {errors:#?}");
    let created: Vec<&Key> = outcomes.iter().flat_map(|o| &o.created).collect();
    let refused: Vec<&Key> = outcomes.iter().flat_map(|o| &o.refused).collect();
    assert!(
        created.len() >= 50 && refused.len() >= 50,
        "the race ran too little to show anything: {} created, {} refused",
        created.len(),
        refused.len()
    );
    let mut lost = Vec::new();
    for item in &created {
        if store.get(item).await.unwrap().is_none() {
            lost.push(item.pk.clone());
        }
    }
    let mut appeared = Vec::new();
    for item in &refused {
        if store.get(item).await.unwrap().is_some() {
            appeared.push(item.pk.clone());
        }
    }
    let increments: u64 = outcomes.iter().map(|o| o.increments).sum();
    let counter = store.get(&key("counter")).await.unwrap().unwrap();
    assert_eq!(
        (lost, appeared, counter.u64_attr(VERSION)),
        (vec![], vec![], Some(increments)),
        "acknowledged writes lost, cancelled writes applied, and the counter against {} \
         acknowledged increments ({} creates, {} cancelled transactions)",
        increments,
        created.len(),
        refused.len()
    );
}

#[tokio::test]
async fn a_cancelled_transaction_names_the_failed_write_and_returns_its_stored_item() {
    let env = TestEnv::new().await;
    let store = env.store();
    let held = key("held");
    store
        .create(&held, Item::from([(STATUS.to_owned(), s("PENDING"))]))
        .await
        .unwrap();
    let err = store
        .transact(vec![
            Write::Create {
                key: key("fresh"),
                attrs: Item::new(),
            },
            Write::Update {
                key: held.clone(),
                update: Update {
                    expect: vec![Expect::Status("SUCCEEDED".into())],
                    bump_version: true,
                    ..Update::default()
                },
            },
        ])
        .await
        .unwrap_err();
    let StoreError::TransactionCancelled { reasons } = err else {
        panic!("expected a cancelled transaction, got {err:?}");
    };
    assert_eq!(reasons[0], CancelReason::None);
    let CancelReason::ConditionFailed { item: Some(item) } = &reasons[1] else {
        panic!("expected the stored item with the failed condition: {reasons:?}");
    };
    assert_eq!(item.str_attr(STATUS), Some("PENDING"));
    assert_eq!(item.u64_attr(VERSION), None, "the update was not applied");
}

#[tokio::test]
async fn a_conditional_write_on_a_missing_item_fails_with_no_stored_item() {
    let env = TestEnv::new().await;
    let store = env.store();
    let ghost = key("ghost");
    let update = Update {
        expect: vec![Expect::Status("PENDING".into())],
        bump_version: true,
        ..Update::default()
    };
    let err = store.update(&ghost, &update).await.unwrap_err();
    assert!(
        matches!(err, StoreError::ConditionFailed { current: None }),
        "{err:?}"
    );
    let err = store.delete(&ghost, &[Expect::Exists]).await.unwrap_err();
    assert!(
        matches!(err, StoreError::ConditionFailed { current: None }),
        "{err:?}"
    );
    assert!(
        store.get(&ghost).await.unwrap().is_none(),
        "nothing created"
    );
}

#[tokio::test]
async fn ttl_never_deletes_an_item_early_and_an_expired_one_is_still_read() {
    let env = TestEnv::new().await;
    let ttl = aws_sdk_dynamodb::Client::new(&env.sdk)
        .describe_time_to_live()
        .table_name(&env.table)
        .send()
        .await
        .unwrap();
    let description = ttl.time_to_live_description().unwrap();
    assert_eq!(description.attribute_name(), Some(EXPIRES_AT));
    let store = env.store();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Not yet expired, and long expired: DynamoDB deletes an expired item only some time
    // (up to days) after its expiry, and moto never does; so code reads expiry itself.
    store
        .create(
            &key("live"),
            Item::from([(EXPIRES_AT.to_owned(), n(now + 3600))]),
        )
        .await
        .unwrap();
    store
        .create(
            &key("stale"),
            Item::from([(EXPIRES_AT.to_owned(), n(now - 3600))]),
        )
        .await
        .unwrap();
    assert!(store.get(&key("live")).await.unwrap().is_some());
    let stale = store.get(&key("stale")).await.unwrap().unwrap();
    assert_eq!(stale.u64_attr(EXPIRES_AT), Some(now - 3600));
}
