//! The contract of the `Table` port, run against the DynamoDB store on moto and against the
//! in-memory fake: the same cases, the same answers. A service test over the fake proves
//! something only because of this file.

use std::sync::Arc;

use shared::adapters::aws::store::{
    CancelReason, Expect, Item, ItemExt, STATUS, StoreError, Update, VERSION, Write, n, s,
};
use shared::adapters::memory::MemoryTable;
use shared::domain::keys::{Key, TenantScope};
use shared::ports::Table;

fn key(id: &str) -> Key {
    TenantScope::new("tenant_1", "live")
        .unwrap()
        .key("CONTRACT", id)
}

fn record(status: &str) -> Item {
    Item::from([
        (STATUS.to_owned(), s(status)),
        (VERSION.to_owned(), n(0)),
        ("amount_minor".to_owned(), n(112050)),
    ])
}

async fn a_second_create_keeps_the_first_and_returns_it(table: Arc<dyn Table>) {
    table.create(&key("a"), record("INITIATED")).await.unwrap();
    let err = table
        .create(&key("a"), record("SUCCEEDED"))
        .await
        .unwrap_err();
    let StoreError::AlreadyExists {
        existing: Some(existing),
    } = err
    else {
        panic!("expected AlreadyExists with the stored item, got {err:?}");
    };
    assert_eq!(existing.str_attr(STATUS), Some("INITIATED"));
    let stored = table.get(&key("a")).await.unwrap().unwrap();
    assert_eq!(stored.str_attr(STATUS), Some("INITIATED"));
    assert_eq!(stored.str_attr("pk"), Some(key("a").pk.as_str()));
    assert_eq!(stored.str_attr("sk"), Some(key("a").sk.as_str()));
}

async fn a_missing_item_reads_as_none_and_put_replaces(table: Arc<dyn Table>) {
    assert!(table.get(&key("none")).await.unwrap().is_none());
    table.put(&key("p"), record("ONE")).await.unwrap();
    table
        .put(&key("p"), Item::from([(STATUS.to_owned(), s("TWO"))]))
        .await
        .unwrap();
    let stored = table.get(&key("p")).await.unwrap().unwrap();
    assert_eq!(stored.str_attr(STATUS), Some("TWO"));
    assert_eq!(
        stored.u64_attr("amount_minor"),
        None,
        "a put replaces the whole item"
    );
}

async fn an_update_happens_only_on_the_expected_status_and_version(table: Arc<dyn Table>) {
    table.create(&key("u"), record("INITIATED")).await.unwrap();
    let to_succeeded = |version| Update {
        expect: vec![Expect::Status("INITIATED".into()), Expect::Version(version)],
        set: Item::from([(STATUS.to_owned(), s("SUCCEEDED"))]),
        remove: vec!["amount_minor".into()],
        bump_version: true,
    };
    let err = table.update(&key("u"), &to_succeeded(7)).await.unwrap_err();
    let StoreError::ConditionFailed {
        current: Some(current),
    } = err
    else {
        panic!("expected ConditionFailed with the stored item, got {err:?}");
    };
    assert_eq!(current.u64_attr(VERSION), Some(0));
    let updated = table.update(&key("u"), &to_succeeded(0)).await.unwrap();
    assert_eq!(updated.str_attr(STATUS), Some("SUCCEEDED"));
    assert_eq!(updated.u64_attr(VERSION), Some(1));
    assert_eq!(updated.u64_attr("amount_minor"), None, "removed");
    assert_eq!(
        updated.str_attr("pk"),
        Some(key("u").pk.as_str()),
        "the whole new item"
    );
    let again = table.update(&key("u"), &to_succeeded(1)).await.unwrap_err();
    assert!(
        matches!(again, StoreError::ConditionFailed { current: Some(_) }),
        "{again:?}"
    );
    assert_eq!(
        table
            .get(&key("u"))
            .await
            .unwrap()
            .unwrap()
            .u64_attr(VERSION),
        Some(1)
    );
}

async fn an_update_of_a_missing_item_fails_and_creates_nothing(table: Arc<dyn Table>) {
    let update = Update {
        set: Item::from([(STATUS.to_owned(), s("SUCCEEDED"))]),
        bump_version: true,
        ..Update::default()
    };
    let err = table.update(&key("ghost"), &update).await.unwrap_err();
    assert!(
        matches!(err, StoreError::ConditionFailed { current: None }),
        "{err:?}"
    );
    assert!(table.get(&key("ghost")).await.unwrap().is_none());
}

async fn a_delete_happens_only_under_its_conditions(table: Arc<dyn Table>) {
    table.delete(&key("never"), &[]).await.unwrap();
    let err = table
        .delete(&key("never"), &[Expect::Exists])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::ConditionFailed { current: None }),
        "{err:?}"
    );
    table.create(&key("d"), record("ACTIVE")).await.unwrap();
    let wrong = table
        .delete(&key("d"), &[Expect::Status("REVOKED".into())])
        .await
        .unwrap_err();
    assert!(
        matches!(wrong, StoreError::ConditionFailed { current: None }),
        "{wrong:?}"
    );
    assert!(table.get(&key("d")).await.unwrap().is_some());
    table
        .delete(
            &key("d"),
            &[Expect::Status("ACTIVE".into()), Expect::Version(0)],
        )
        .await
        .unwrap();
    assert!(table.get(&key("d")).await.unwrap().is_none());
}

async fn a_transaction_with_a_failed_condition_writes_nothing_and_names_it(table: Arc<dyn Table>) {
    table
        .create(&key("taken"), record("PENDING"))
        .await
        .unwrap();
    table.create(&key("counter"), record("OPEN")).await.unwrap();
    let err = table
        .transact(vec![
            Write::Create {
                key: key("fresh"),
                attrs: Item::new(),
            },
            Write::Update {
                key: key("counter"),
                update: Update {
                    bump_version: true,
                    ..Update::default()
                },
            },
            Write::Create {
                key: key("taken"),
                attrs: record("SUCCEEDED"),
            },
        ])
        .await
        .unwrap_err();
    let StoreError::TransactionCancelled { reasons } = err else {
        panic!("expected a cancelled transaction, got {err:?}");
    };
    assert_eq!(reasons.len(), 3);
    assert_eq!(reasons[0], CancelReason::None);
    assert_eq!(reasons[1], CancelReason::None);
    let CancelReason::ConditionFailed { item: Some(item) } = &reasons[2] else {
        panic!("expected the stored item with the failed write: {reasons:?}");
    };
    assert_eq!(item.str_attr(STATUS), Some("PENDING"));
    assert!(table.get(&key("fresh")).await.unwrap().is_none());
    let counter = table.get(&key("counter")).await.unwrap().unwrap();
    assert_eq!(
        counter.u64_attr(VERSION),
        Some(0),
        "nothing of it was applied"
    );
}

async fn a_transaction_checks_creates_updates_and_deletes_together(table: Arc<dyn Table>) {
    table.create(&key("conn"), record("ACTIVE")).await.unwrap();
    table.create(&key("old"), record("STALE")).await.unwrap();
    table.create(&key("pay"), record("PENDING")).await.unwrap();
    table
        .transact(vec![
            Write::Check {
                key: key("conn"),
                expect: vec![Expect::Status("ACTIVE".into())],
            },
            Write::Create {
                key: key("new"),
                attrs: Item::from([("x".to_owned(), s("1"))]),
            },
            Write::Update {
                key: key("pay"),
                update: Update {
                    expect: vec![Expect::Version(0)],
                    set: Item::from([(STATUS.to_owned(), s("SUCCEEDED"))]),
                    bump_version: true,
                    ..Update::default()
                },
            },
            Write::Delete {
                key: key("old"),
                expect: vec![Expect::Exists],
            },
            Write::Put {
                key: key("put"),
                attrs: Item::new(),
            },
        ])
        .await
        .unwrap();
    assert!(table.get(&key("new")).await.unwrap().is_some());
    assert!(table.get(&key("put")).await.unwrap().is_some());
    assert!(table.get(&key("old")).await.unwrap().is_none());
    let pay = table.get(&key("pay")).await.unwrap().unwrap();
    assert_eq!(
        (pay.str_attr(STATUS), pay.u64_attr(VERSION)),
        (Some("SUCCEEDED"), Some(1))
    );
    // A check of a missing item fails the transaction.
    let err = table
        .transact(vec![
            Write::Check {
                key: key("nobody"),
                expect: vec![],
            },
            Write::Put {
                key: key("never"),
                attrs: Item::new(),
            },
        ])
        .await
        .unwrap_err();
    let StoreError::TransactionCancelled { reasons } = err else {
        panic!("{err:?}");
    };
    assert_eq!(reasons[0], CancelReason::ConditionFailed { item: None });
    assert!(table.get(&key("never")).await.unwrap().is_none());
}

async fn of_concurrent_creates_exactly_one_wins(table: Arc<dyn Table>) {
    let tries = (0..20).map(|i| {
        let table = table.clone();
        tokio::spawn(async move {
            table
                .create(&key("race"), Item::from([("winner".to_owned(), n(i))]))
                .await
        })
    });
    let results = futures::future::join_all(tries).await;
    let won: Vec<_> = results.iter().filter(|r| matches!(r, Ok(Ok(())))).collect();
    assert_eq!(won.len(), 1, "{results:?}");
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(Ok(())) | Ok(Err(StoreError::AlreadyExists { .. })))),
        "{results:?}"
    );
}

async fn concurrent_versioned_updates_lose_no_increment(table: Arc<dyn Table>) {
    table.create(&key("count"), record("OPEN")).await.unwrap();
    let workers = (0..4).map(|_| {
        let table = table.clone();
        tokio::spawn(async move {
            let mut done = 0;
            while done < 10 {
                let item = table.get(&key("count")).await.unwrap().unwrap();
                let update = Update {
                    expect: vec![Expect::Version(item.u64_attr(VERSION).unwrap())],
                    bump_version: true,
                    ..Update::default()
                };
                match table.update(&key("count"), &update).await {
                    Ok(_) => done += 1,
                    Err(StoreError::ConditionFailed { .. }) => {}
                    Err(e) => panic!("{e:?}"),
                }
            }
        })
    });
    for worker in futures::future::join_all(workers).await {
        worker.unwrap();
    }
    let count = table.get(&key("count")).await.unwrap().unwrap();
    assert_eq!(count.u64_attr(VERSION), Some(40));
}

/// Each case twice: on the DynamoDB store (moto) and on the fake.
macro_rules! contract {
    ($($case:ident),+ $(,)?) => {
        mod on_dynamodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let env = testkit::TestEnv::new().await;
                    super::$case(std::sync::Arc::new(env.store())).await;
                }
            )+
        }
        mod on_memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(std::sync::Arc::new(super::MemoryTable::new())).await;
                }
            )+
        }
    };
}

contract!(
    a_second_create_keeps_the_first_and_returns_it,
    a_missing_item_reads_as_none_and_put_replaces,
    an_update_happens_only_on_the_expected_status_and_version,
    an_update_of_a_missing_item_fails_and_creates_nothing,
    a_delete_happens_only_under_its_conditions,
    a_transaction_with_a_failed_condition_writes_nothing_and_names_it,
    a_transaction_checks_creates_updates_and_deletes_together,
    of_concurrent_creates_exactly_one_wins,
    concurrent_versioned_updates_lose_no_increment,
);
