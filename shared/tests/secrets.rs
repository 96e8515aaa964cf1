//! The Secrets Manager cache against the moto emulator, and the secret store's contract on
//! both it and the in-memory fake.

use std::sync::Arc;
use std::time::Duration;

use shared::adapters::aws::secrets::{
    MAX_ENTRIES, MISSING_TTL, REFRESH_INTERVAL, SecretsCache, SecretsError,
};
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

/// A cache on a clock that moves only when told, over a fresh emulator, with `value` stored as
/// the tenant's secret (none: the secret does not exist).
struct Timed {
    env: TestEnv,
    name: String,
    counter: CallCounter,
    clock: Arc<ManualClock>,
    cache: Arc<SecretsCache>,
}

async fn timed(tenant: &str, value: Option<&str>) -> Timed {
    let env = TestEnv::new().await;
    let name = format!("{}/{tenant}/live", env.secret_prefix);
    if let Some(value) = value {
        put_secret(&env, &name, value).await;
    }
    let counter = CallCounter::new();
    let clock = Arc::new(ManualClock::at_millis(SystemClock.now_millis()));
    let cache = cache(&env, &counter, clock.clone());
    Timed {
        env,
        name,
        counter,
        clock,
        cache,
    }
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
    let Timed {
        env,
        name,
        counter,
        clock,
        cache,
    } = timed("tenant_1", Some("v1")).await;
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
    let Timed {
        env,
        name,
        counter,
        clock,
        cache,
    } = timed("tenant_1", Some("old")).await;
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
async fn a_missing_secret_is_answered_missing_for_a_while_without_asking_again() {
    let Timed {
        env,
        name,
        counter,
        clock,
        cache,
    } = timed("nobody", None).await;
    for _ in 0..100 {
        let err = cache.get(&name).await.unwrap_err();
        assert!(
            matches!(&err, SecretsError::NotFound { id } if *id == name),
            "{err:?}"
        );
    }
    clock.advance(Duration::from_millis(5));
    assert!(cache.refresh(&name).await.is_err());
    assert_eq!(counter.count("GetSecretValue"), 2, "one read, one forced");
    put_secret(&env, &name, "now-here").await;
    clock.advance(MISSING_TTL.max(REFRESH_INTERVAL));
    assert_eq!(cache.get(&name).await.unwrap().expose(), "now-here");
    assert_eq!(counter.count("GetSecretValue"), 3);
}

#[tokio::test]
async fn forced_refreshes_read_a_secret_at_most_once_per_interval() {
    let Timed {
        env,
        name,
        counter,
        clock,
        cache,
    } = timed("tenant_1", Some("v1")).await;
    cache.get(&name).await.unwrap();
    // A stream of bad signatures: the first forces a read, the rest within the interval do not.
    for _ in 0..1000 {
        clock.advance(Duration::from_millis(10));
        assert_eq!(cache.refresh(&name).await.unwrap().expose(), "v1");
    }
    assert_eq!(counter.count("GetSecretValue"), 2);
    rotate(&env, &name, "v2").await;
    clock.advance(REFRESH_INTERVAL);
    assert_eq!(cache.refresh(&name).await.unwrap().expose(), "v2");
    assert_eq!(counter.count("GetSecretValue"), 3);
}

#[tokio::test]
async fn the_cache_stays_bounded_whatever_ids_are_asked_and_keeps_real_secrets_first() {
    let env = TestEnv::new().await;
    let known = format!("{}/tenant_1/live", env.secret_prefix);
    put_secret(&env, &known, "kept").await;
    let counter = CallCounter::new();
    let cache = cache(&env, &counter, Arc::new(SystemClock));
    cache.get(&known).await.unwrap();
    for n in 0..MAX_ENTRIES + 50 {
        let unknown = format!("{}/nobody_{n}/live", env.secret_prefix);
        assert!(cache.get(&unknown).await.is_err());
        assert!(cache.len() <= MAX_ENTRIES, "{} entries", cache.len());
    }
    let calls = counter.count("GetSecretValue");
    assert_eq!(cache.get(&known).await.unwrap().expose(), "kept");
    assert_eq!(
        counter.count("GetSecretValue"),
        calls,
        "the real secret was kept"
    );
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
