//! Secrets Manager reads with an in-process TTL cache: one fetch per secret per TTL however
//! many requests ask at once, and a forced refresh for the signature-rotation path.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_secretsmanager::Client;
use thiserror::Error;

use super::AwsError;
use crate::clock::Clock;
use crate::problem::{Classify, ErrorClass};
use crate::secret::Secret;

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
