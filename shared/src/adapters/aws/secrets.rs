//! Secrets Manager reads with an in-process TTL cache: one fetch per secret per TTL however
//! many requests ask at once, and a forced refresh for the signature-rotation path.
//!
//! Cheap requests must stay cheap: a secret that does not exist (a request for an unknown
//! tenant) is remembered as missing for [`MISSING_TTL`]; a forced refresh (a bad signature)
//! reads Secrets Manager at most once per secret per [`REFRESH_INTERVAL`]; and the cache holds
//! at most [`MAX_ENTRIES`] secrets (missing ones go first, then the oldest), so requests for
//! ever new tenant ids cannot grow it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_secretsmanager::Client;
use thiserror::Error;

use super::AwsError;
use crate::domain::error::{Classify, ErrorClass};
use crate::domain::secret::Secret;
use crate::ports::{Clock, PortFuture};

#[derive(Debug, Error)]
pub enum SecretsError {
    #[error("secret {id} does not exist")]
    NotFound { id: String },
    #[error("secret {id} has no string value")]
    NoValue { id: String },
    #[error("Secrets Manager {source} (secret {id})")]
    Aws { id: String, source: AwsError },
}

impl Classify for SecretsError {
    fn class(&self) -> ErrorClass {
        match self {
            SecretsError::Aws { source, .. } => source.class,
            _ => ErrorClass::Permanent,
        }
    }
}

/// How long a secret found missing is answered as missing without asking again.
pub const MISSING_TTL: Duration = Duration::from_secs(30);
/// A forced refresh reads a secret again at most this often.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// The most secrets the cache holds.
pub const MAX_ENTRIES: usize = 1024;

#[derive(Clone)]
struct Cached {
    /// `None`: Secrets Manager said it does not exist.
    value: Option<Arc<Secret<String>>>,
    fetched_at_ms: u64,
    /// When a forced refresh last read it.
    refreshed_at_ms: Option<u64>,
}

impl Cached {
    fn answer(&self, id: &str) -> Result<Arc<Secret<String>>, SecretsError> {
        self.value
            .clone()
            .ok_or_else(|| SecretsError::NotFound { id: id.to_owned() })
    }

    /// Whether it may still be answered at `now`.
    fn fresh(&self, now: u64, ttl: Duration) -> bool {
        let ttl = if self.value.is_some() {
            ttl
        } else {
            MISSING_TTL
        };
        now.saturating_sub(self.fetched_at_ms) < millis(ttl)
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

type Slot = Arc<tokio::sync::Mutex<Option<Cached>>>;

/// Reads secret strings through a per-secret cache.
pub struct SecretsCache {
    client: Client,
    ttl: Duration,
    clock: Arc<dyn Clock>,
    slots: Mutex<HashMap<String, Slot>>,
}

impl SecretsCache {
    pub fn new(client: Client, ttl: Duration, clock: Arc<dyn Clock>) -> SecretsCache {
        SecretsCache {
            client,
            ttl,
            clock,
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn slot(&self, id: &str) -> Slot {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !slots.contains_key(id) && slots.len() >= MAX_ENTRIES {
            evict(&mut slots);
        }
        slots.entry(id.to_owned()).or_default().clone()
    }

    /// How many secrets the cache holds (missing ones included).
    pub fn len(&self) -> usize {
        self.slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The secret's current string value, from the cache while it is younger than the TTL (a
    /// missing one: [`MISSING_TTL`]).
    pub async fn get(&self, id: &str) -> Result<Arc<Secret<String>>, SecretsError> {
        let slot = self.slot(id);
        let mut cached = slot.lock().await;
        if let Some(entry) = cached.as_ref()
            && entry.fresh(self.clock.now_millis(), self.ttl)
        {
            return entry.answer(id);
        }
        self.fetch_into(id, &mut cached, None).await
    }

    /// Fetches the secret again, bypassing the cache (e.g. after a signature failure that a
    /// rotation may explain): callers waiting at the same time share one fetch, and within
    /// [`REFRESH_INTERVAL`] of the last forced read the cached answer stands.
    pub async fn refresh(&self, id: &str) -> Result<Arc<Secret<String>>, SecretsError> {
        let asked_at = self.clock.now_millis();
        let slot = self.slot(id);
        let mut cached = slot.lock().await;
        if let Some(entry) = cached.as_ref() {
            let recently = entry
                .refreshed_at_ms
                .is_some_and(|at| asked_at.saturating_sub(at) < millis(REFRESH_INTERVAL));
            if entry.fetched_at_ms >= asked_at || recently {
                return entry.answer(id);
            }
        }
        self.fetch_into(id, &mut cached, Some(asked_at)).await
    }

    /// Stores `value` as the secret's current value (creating the secret if needed) and
    /// caches it.
    pub async fn put(&self, id: &str, value: Secret<String>) -> Result<(), SecretsError> {
        let aws = |source: AwsError| SecretsError::Aws {
            id: id.to_owned(),
            source,
        };
        let updated = self
            .client
            .put_secret_value()
            .secret_id(id)
            .secret_string(value.expose())
            .send()
            .await;
        match updated {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_not_found_exception()) =>
            {
                self.client
                    .create_secret()
                    .name(id)
                    .secret_string(value.expose())
                    .send()
                    .await
                    .map_err(|e| aws(AwsError::from_sdk("CreateSecret", &e)))?;
            }
            Err(e) => return Err(aws(AwsError::from_sdk("PutSecretValue", &e))),
        }
        let slot = self.slot(id);
        *slot.lock().await = Some(Cached {
            value: Some(Arc::new(value)),
            fetched_at_ms: self.clock.now_millis(),
            refreshed_at_ms: None,
        });
        Ok(())
    }

    /// Deletes the secret at once (no recovery window) and forgets it.
    pub async fn delete(&self, id: &str) -> Result<(), SecretsError> {
        let deleted = self
            .client
            .delete_secret()
            .secret_id(id)
            .force_delete_without_recovery(true)
            .send()
            .await;
        match deleted {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_not_found_exception()) => {}
            Err(e) => {
                return Err(SecretsError::Aws {
                    id: id.to_owned(),
                    source: AwsError::from_sdk("DeleteSecret", &e),
                });
            }
        }
        *self.slot(id).lock().await = None;
        Ok(())
    }

    /// Reads the secret into `cached`: its value, or that it is missing.
    async fn fetch_into(
        &self,
        id: &str,
        cached: &mut Option<Cached>,
        refreshed_at_ms: Option<u64>,
    ) -> Result<Arc<Secret<String>>, SecretsError> {
        let value = match self.client.get_secret_value().secret_id(id).send().await {
            Ok(output) => Some(
                output
                    .secret_string
                    .ok_or_else(|| SecretsError::NoValue { id: id.to_owned() })?,
            ),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_not_found_exception()) =>
            {
                None
            }
            Err(e) => {
                return Err(SecretsError::Aws {
                    id: id.to_owned(),
                    source: AwsError::from_sdk("GetSecretValue", &e),
                });
            }
        };
        let entry = Cached {
            value: value.map(|v| Arc::new(Secret::new(v))),
            fetched_at_ms: self.clock.now_millis(),
            refreshed_at_ms,
        };
        let answer = entry.answer(id);
        *cached = Some(entry);
        answer
    }
}

/// Makes room for one more secret: drops the missing ones, then the oldest, among those no
/// request is reading right now.
fn evict(slots: &mut HashMap<String, Slot>) {
    let mut idle: Vec<(String, bool, u64)> = slots
        .iter()
        .filter_map(|(id, slot)| {
            let cached = slot.try_lock().ok()?;
            let (missing, at) = cached
                .as_ref()
                .map_or((true, 0), |c| (c.value.is_none(), c.fetched_at_ms));
            Some((id.clone(), missing, at))
        })
        .collect();
    // Missing first, then oldest first: every missing one goes, or else the oldest.
    idle.sort_by_key(|(_, missing, at)| (!*missing, *at));
    let missing = idle.iter().take_while(|(_, missing, _)| *missing).count();
    for (id, _, _) in idle.into_iter().take(missing.max(1)) {
        slots.remove(&id);
    }
}

impl crate::ports::SecretStore for SecretsCache {
    fn get<'a>(&'a self, id: &'a str) -> PortFuture<'a, Result<Arc<Secret<String>>, SecretsError>> {
        Box::pin(SecretsCache::get(self, id))
    }

    fn refresh<'a>(
        &'a self,
        id: &'a str,
    ) -> PortFuture<'a, Result<Arc<Secret<String>>, SecretsError>> {
        Box::pin(SecretsCache::refresh(self, id))
    }

    fn put<'a>(
        &'a self,
        id: &'a str,
        value: Secret<String>,
    ) -> PortFuture<'a, Result<(), SecretsError>> {
        Box::pin(SecretsCache::put(self, id, value))
    }

    fn delete<'a>(&'a self, id: &'a str) -> PortFuture<'a, Result<(), SecretsError>> {
        Box::pin(SecretsCache::delete(self, id))
    }
}
