//! The Secrets Manager cache against the moto emulator, and the secret store's contract on
//! both it and the in-memory fake.

use std::sync::Arc;
use std::time::Duration;

use shared::adapters::aws::secrets::{SecretsCache, SecretsError};
use shared::adapters::memory::MemorySecrets;
use shared::domain::secret::Secret;
use shared::ports::{Clock, ManualClock, SecretStore, SystemClock};
use testkit::{CallCounter, TestEnv};

const TTL: Duration = Duration::from_secs(300);

async fn put_secret(env: &TestEnv, name: &str, value: &str) {
    env.secrets_manager()
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .unwrap();
}

async fn rotate(env: &TestEnv, name: &str, value: &str) {
    env.secrets_manager()
        .put_secret_value()
        .secret_id(name)
        .secret_string(value)
        .send()
        .await
        .unwrap();
}

fn cache(env: &TestEnv, counter: &CallCounter, clock: Arc<dyn Clock>) -> Arc<SecretsCache> {
    Arc::new(SecretsCache::new(
        env.counted_secrets_manager(counter),
        TTL,
        clock,
    ))
}

#[tokio::test]
async fn twenty_concurrent_readers_make_one_call() {
    let env = TestEnv::new().await;
    let name = format!("{}/tenant_1/live", env.secret_prefix);
    put_secret(&env, &name, r#"{"webhook_secret":"whs_1"}"#).await;
    let counter = CallCounter::new();
    let cache = cache(&env, &counter, Arc::new(SystemClock));
    let readers = (0..20).map(|_| {
        let cache = cache.clone();
        let name = name.clone();
        tokio::spawn(async move { cache.get(&name).await })
    });
    for result in futures::future::join_all(readers).await {
        let secret = result.unwrap().unwrap();
        assert_eq!(secret.expose(), r#"{"webhook_secret":"whs_1"}"#);
    }
    assert_eq!(counter.count("GetSecretValue"), 1);
}

#[tokio::test]
async fn the_cache_serves_within_the_ttl_and_refetches_after_it() {
    let env = TestEnv::new().await;
    let name = format!("{}/tenant_1/live", env.secret_prefix);
    put_secret(&env, &name, "v1").await;
    let counter = CallCounter::new();
    let clock = Arc::new(ManualClock::at_millis(SystemClock.now_millis()));
    let cache = cache(&env, &counter, clock.clone());
    assert_eq!(cache.get(&name).await.unwrap().expose(), "v1");
    rotate(&env, &name, "v2").await;
    clock.advance(TTL - Duration::from_secs(1));
    assert_eq!(cache.get(&name).await.unwrap().expose(), "v1");
    assert_eq!(counter.count("GetSecretValue"), 1);
    clock.advance(Duration::from_secs(2));
    assert_eq!(cache.get(&name).await.unwrap().expose(), "v2");
    assert_eq!(counter.count("GetSecretValue"), 2);
}

#[tokio::test]
async fn a_forced_refresh_bypasses_the_cache_once_for_concurrent_callers() {
    let env = TestEnv::new().await;
    let name = format!("{}/tenant_1/live", env.secret_prefix);
    put_secret(&env, &name, "old").await;
    let counter = CallCounter::new();
    let clock = Arc::new(ManualClock::at_millis(SystemClock.now_millis()));
    let cache = cache(&env, &counter, clock.clone());
    assert_eq!(cache.get(&name).await.unwrap().expose(), "old");
    rotate(&env, &name, "new").await;
    clock.advance(Duration::from_millis(10));
    let refreshers = (0..10).map(|_| {
        let cache = cache.clone();
        let name = name.clone();
        tokio::spawn(async move { cache.refresh(&name).await })
    });
    for result in futures::future::join_all(refreshers).await {
        assert_eq!(result.unwrap().unwrap().expose(), "new");
    }
    assert_eq!(counter.count("GetSecretValue"), 2);
    // Later reads use the refreshed value.
    assert_eq!(cache.get(&name).await.unwrap().expose(), "new");
    assert_eq!(counter.count("GetSecretValue"), 2);
}

#[tokio::test]
async fn a_missing_secret_is_not_found_and_not_cached() {
    let env = TestEnv::new().await;
    let name = format!("{}/nobody/live", env.secret_prefix);
    let counter = CallCounter::new();
    let cache = cache(&env, &counter, Arc::new(SystemClock));
    let err = cache.get(&name).await.unwrap_err();
    assert!(
        matches!(&err, SecretsError::NotFound { id } if *id == name),
        "{err:?}"
    );
    put_secret(&env, &name, "now-here").await;
    assert_eq!(cache.get(&name).await.unwrap().expose(), "now-here");
}

#[tokio::test]
async fn cached_values_never_show_in_debug_output() {
    let env = TestEnv::new().await;
    let name = format!("{}/tenant_1/live", env.secret_prefix);
    put_secret(&env, &name, "rzp_live_hush").await;
    let counter = CallCounter::new();
    let cache = cache(&env, &counter, Arc::new(SystemClock));
    let secret = cache.get(&name).await.unwrap();
    let shown = format!("{secret:?} {secret}");
    assert!(!shown.contains("rzp_live_hush"), "{shown}");
}

/// The contract of the `SecretStore` port, on Secrets Manager (moto) and on the fake: a missing
/// secret is `NotFound`, a put is read back (and replaces), a refresh reads the current value,
/// a delete forgets it, and deleting a missing secret is fine.
async fn the_secret_store_contract(store: Arc<dyn SecretStore>, id: &str) {
    let missing = store.get(id).await;
    assert!(
        matches!(missing, Err(SecretsError::NotFound { .. })),
        "{missing:?}"
    );
    store.put(id, Secret::new("one".into())).await.unwrap();
    assert_eq!(store.get(id).await.unwrap().expose(), "one");
    store.put(id, Secret::new("two".into())).await.unwrap();
    assert_eq!(store.get(id).await.unwrap().expose(), "two");
    assert_eq!(store.refresh(id).await.unwrap().expose(), "two");
    store.delete(id).await.unwrap();
    let gone = store.refresh(id).await;
    assert!(
        matches!(gone, Err(SecretsError::NotFound { .. })),
        "{gone:?}"
    );
    store.delete(id).await.unwrap();
}

#[tokio::test]
async fn the_secret_store_contract_on_secrets_manager() {
    let env = TestEnv::new().await;
    let counter = CallCounter::new();
    let id = format!("{}/tenant_1/contract", env.secret_prefix);
    the_secret_store_contract(cache(&env, &counter, Arc::new(SystemClock)), &id).await;
}

#[tokio::test]
async fn the_secret_store_contract_on_the_fake() {
    the_secret_store_contract(Arc::new(MemorySecrets::new()), "fake/tenant_1/contract").await;
}
