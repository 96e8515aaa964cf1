//! Secrets Manager reads with an in-process TTL cache: one fetch per secret per TTL however
//! many requests ask at once, and a forced refresh for the signature-rotation path.

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

#[derive(Clone)]
struct Cached {
    value: Arc<Secret<String>>,
    fetched_at_ms: u64,
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
        slots.entry(id.to_owned()).or_default().clone()
    }

    /// The secret's current string value, from the cache while it is younger than the TTL.
    pub async fn get(&self, id: &str) -> Result<Arc<Secret<String>>, SecretsError> {
        let slot = self.slot(id);
        let mut cached = slot.lock().await;
        let now = self.clock.now_millis();
        let ttl = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
        if let Some(entry) = cached.as_ref()
            && now.saturating_sub(entry.fetched_at_ms) < ttl
        {
            return Ok(entry.value.clone());
        }
        self.fetch_into(id, &mut cached).await
    }

    /// Fetches the secret again, bypassing the cache (e.g. after a signature failure that a
    /// rotation may explain). Callers waiting at the same time share one fetch.
    pub async fn refresh(&self, id: &str) -> Result<Arc<Secret<String>>, SecretsError> {
        let asked_at = self.clock.now_millis();
        let slot = self.slot(id);
        let mut cached = slot.lock().await;
        if let Some(entry) = cached.as_ref()
            && entry.fetched_at_ms >= asked_at
        {
            return Ok(entry.value.clone());
        }
        self.fetch_into(id, &mut cached).await
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
            value: Arc::new(value),
            fetched_at_ms: self.clock.now_millis(),
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

    async fn fetch_into(
        &self,
        id: &str,
        cached: &mut Option<Cached>,
    ) -> Result<Arc<Secret<String>>, SecretsError> {
        let output = self
            .client
            .get_secret_value()
            .secret_id(id)
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_not_found_exception())
                {
                    SecretsError::NotFound { id: id.to_owned() }
                } else {
                    SecretsError::Aws {
                        id: id.to_owned(),
                        source: AwsError::from_sdk("GetSecretValue", &e),
                    }
                }
            })?;
        let value = output
            .secret_string
            .ok_or_else(|| SecretsError::NoValue { id: id.to_owned() })?;
        let value = Arc::new(Secret::new(value));
        *cached = Some(Cached {
            value: value.clone(),
            fetched_at_ms: self.clock.now_millis(),
        });
        Ok(value)
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
