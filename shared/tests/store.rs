//! The DynamoDB store against the moto emulator.

use shared::adapters::aws::AwsError;
use shared::adapters::aws::store::{
    CancelReason, Expect, Item, ItemExt, STATUS, Store, StoreError, Update, VERSION, Write, n, s,
};
use shared::domain::error::{Classify, ErrorClass};
use shared::domain::keys::TenantScope;
use testkit::{CallCounter, TestEnv};

fn scope() -> TenantScope {
    TenantScope::new("tenant_1", "live").unwrap()
}

fn payment(status: &str) -> Item {
    Item::from([
        (STATUS.to_owned(), s(status)),
        (VERSION.to_owned(), n(0)),
        ("amount_minor".to_owned(), n(112050)),
    ])
}

#[tokio::test]
async fn second_conditional_create_fails_with_the_typed_error() {
    let env = TestEnv::new().await;
    let store = env.store();
    let key = scope().key("PAYMENT", "pay_1");
    store.create(&key, payment("INITIATED")).await.unwrap();
    let err = store.create(&key, payment("SUCCEEDED")).await.unwrap_err();
    let StoreError::AlreadyExists { existing } = err else {
        panic!("expected AlreadyExists, got {err:?}");
    };
    let existing = existing.expect("ALL_OLD returns the stored item");
    assert_eq!(existing.str_attr(STATUS), Some("INITIATED"));
    // The first write is what is stored.
    let stored = store.get(&key).await.unwrap().unwrap();
    assert_eq!(stored.str_attr(STATUS), Some("INITIATED"));
    assert_eq!(stored.str_attr("pk"), Some(key.pk.as_str()));
}

#[tokio::test]
async fn get_of_a_missing_item_is_none() {
    let env = TestEnv::new().await;
    let key = scope().key("PAYMENT", "nope");
    assert!(env.store().get(&key).await.unwrap().is_none());
}

#[tokio::test]
async fn conditional_update_on_expected_status_and_version() {
    let env = TestEnv::new().await;
    let store = env.store();
    let key = scope().key("PAYMENT", "pay_2");
    store.create(&key, payment("INITIATED")).await.unwrap();

    let to_succeeded = |version| Update {
        expect: vec![Expect::Status("INITIATED".into()), Expect::Version(version)],
        set: Item::from([(STATUS.to_owned(), s("SUCCEEDED"))]),
        bump_version: true,
        ..Update::default()
    };
    // Wrong version: refused, nothing changes, the current item comes back.
    let err = store.update(&key, &to_succeeded(7)).await.unwrap_err();
    let StoreError::ConditionFailed { current } = err else {
        panic!("expected ConditionFailed, got {err:?}");
    };
    assert_eq!(current.unwrap().u64_attr(VERSION), Some(0));

    let updated = store.update(&key, &to_succeeded(0)).await.unwrap();
    assert_eq!(updated.str_attr(STATUS), Some("SUCCEEDED"));
    assert_eq!(updated.u64_attr(VERSION), Some(1));
    assert_eq!(updated.u64_attr("amount_minor"), Some(112050));

    // The same transition again: the status no longer matches.
    let again = store.update(&key, &to_succeeded(1)).await.unwrap_err();
    assert!(
        matches!(again, StoreError::ConditionFailed { .. }),
        "{again:?}"
    );
    assert_eq!(
        store.get(&key).await.unwrap().unwrap().u64_attr(VERSION),
        Some(1)
    );
}

#[tokio::test]
async fn update_of_a_missing_item_fails_instead_of_creating_it() {
    let env = TestEnv::new().await;
    let store = env.store();
    let key = scope().key("PAYMENT", "ghost");
    let update = Update {
        set: Item::from([(STATUS.to_owned(), s("SUCCEEDED"))]),
        ..Update::default()
    };
    let err = store.update(&key, &update).await.unwrap_err();
    assert!(
        matches!(err, StoreError::ConditionFailed { current: None }),
        "{err:?}"
    );
    assert!(store.get(&key).await.unwrap().is_none());
}

#[tokio::test]
async fn a_transaction_with_one_failing_condition_writes_nothing() {
    let env = TestEnv::new().await;
    let store = env.store();
    let scope = scope();
    let taken = scope.key("CUSTOMER", "fp_cust_1");
    store
        .create(
            &taken,
            Item::from([("razorpay_id".to_owned(), s("cust_A"))]),
        )
        .await
        .unwrap();
    let fresh = scope.key("RZP_CUSTOMER", "cust_B");
    let err = store
        .transact(vec![
            Write::Create {
                key: fresh.clone(),
                attrs: Item::from([("flexprice_id".to_owned(), s("fp_cust_1"))]),
            },
            Write::Create {
                key: taken.clone(),
                attrs: Item::from([("razorpay_id".to_owned(), s("cust_B"))]),
            },
        ])
        .await
        .unwrap_err();
    let StoreError::TransactionCancelled { reasons } = &err else {
        panic!("expected TransactionCancelled, got {err:?}");
    };
    assert_eq!(reasons.len(), 2);
    assert_eq!(reasons[0], CancelReason::None);
    assert!(matches!(reasons[1], CancelReason::ConditionFailed { .. }));
    assert_eq!(err.class(), ErrorClass::Permanent);
    // Atomic: the good half was not written, the existing item is unchanged.
    assert!(store.get(&fresh).await.unwrap().is_none());
    let kept = store.get(&taken).await.unwrap().unwrap();
    assert_eq!(kept.str_attr("razorpay_id"), Some("cust_A"));
}

#[tokio::test]
async fn a_transaction_writes_a_pair_and_checks_conditions() {
    let env = TestEnv::new().await;
    let store = env.store();
    let scope = scope();
    let forward = scope.key("CUSTOMER", "fp_cust_2");
    let backward = scope.key("RZP_CUSTOMER", "cust_C");
    let connection = scope.key("CONNECTION", "razorpay");
    store.create(&connection, payment("ACTIVE")).await.unwrap();
    store
        .transact(vec![
            Write::Check {
                key: connection.clone(),
                expect: vec![Expect::Status("ACTIVE".into())],
            },
            Write::Create {
                key: forward.clone(),
                attrs: Item::from([("razorpay_id".to_owned(), s("cust_C"))]),
            },
            Write::Create {
                key: backward.clone(),
                attrs: Item::from([("flexprice_id".to_owned(), s("fp_cust_2"))]),
            },
        ])
        .await
        .unwrap();
    assert!(store.get(&forward).await.unwrap().is_some());
    assert!(store.get(&backward).await.unwrap().is_some());

    // A failed check cancels the writes beside it.
    let other = scope.key("CUSTOMER", "fp_cust_3");
    let err = store
        .transact(vec![
            Write::Check {
                key: connection.clone(),
                expect: vec![Expect::Status("DISCONNECTED".into())],
            },
            Write::Create {
                key: other.clone(),
                attrs: Item::new(),
            },
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::TransactionCancelled { .. }),
        "{err:?}"
    );
    assert!(store.get(&other).await.unwrap().is_none());
}

#[tokio::test]
async fn conditional_delete() {
    let env = TestEnv::new().await;
    let store = env.store();
    let key = scope().key("PAYMENT", "pay_3");
    store.create(&key, payment("INITIATED")).await.unwrap();
    let err = store
        .delete(&key, &[Expect::Status("SUCCEEDED".into())])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ConditionFailed { .. }), "{err:?}");
    store
        .delete(&key, &[Expect::Status("INITIATED".into())])
        .await
        .unwrap();
    assert!(store.get(&key).await.unwrap().is_none());
}

#[tokio::test]
async fn a_missing_table_is_a_permanent_aws_error() {
    let env = TestEnv::new().await;
    let store = Store::from_sdk_config(&env.sdk, "no-such-table");
    let err = store.get(&scope().key("PAYMENT", "x")).await.unwrap_err();
    let StoreError::Aws(AwsError {
        operation,
        class,
        message,
    }) = &err
    else {
        panic!("expected Aws, got {err:?}");
    };
    assert_eq!(*operation, "GetItem");
    assert_eq!(*class, ErrorClass::Permanent);
    assert!(message.contains("ResourceNotFoundException"), "{message}");
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_retryable_aws_error() {
    // A loopback port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sdk = testkit::sdk_config(&format!("http://127.0.0.1:{port}")).await;
    let config = aws_sdk_dynamodb::config::Builder::from(&sdk)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build();
    let store = Store::new(aws_sdk_dynamodb::Client::from_conf(config), "t");
    let err = store.get(&scope().key("PAYMENT", "x")).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Retryable, "{err:?}");
}

#[tokio::test]
async fn a_failed_create_costs_one_call() {
    let env = TestEnv::new().await;
    let counter = CallCounter::new();
    let store = Store::new(env.counted_dynamodb(&counter), &env.table);
    let key = scope().key("PAYMENT", "pay_4");
    store.create(&key, payment("INITIATED")).await.unwrap();
    let _ = store.create(&key, payment("INITIATED")).await.unwrap_err();
    assert_eq!(counter.calls(), ["DynamoDB.PutItem", "DynamoDB.PutItem"]);
}
