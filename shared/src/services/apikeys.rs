//! API keys: the only way a caller addresses a tenant/environment (`docs/architecture.md` §3.3).
//!
//! A key is 256 random bits (from the OS generator), shown once, and stored only as its
//! SHA-256 hash. It is found by hash with one `GetItem` (no comparison of key material in our
//! code), and can be revoked. Missing, unknown and revoked keys fail identically.
//!
//! Items: `APIKEY#{hash}` (global: found before the tenant is known) holds the scope and
//! status; `T#{tenant}#E#{env}#APIKEY#{key_id}` points back to the hash so a key can be listed
//! and revoked by its id. Both are written in one transaction.

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::adapters::aws::records::{self, ApiKey, ApiKeyRef, Record};
use crate::adapters::aws::store::{StoreError, Write};
use crate::domain::error::Refusal;
use crate::domain::keys::{ScopeError, TenantScope};
use crate::domain::secret::Secret;
use crate::ports::Clock;
use crate::ports::Table;

const PREFIX: &str = "fxr_";

#[derive(Debug, Error)]
pub enum ApiKeyError {
    /// Missing, unknown or revoked: deliberately one error, so a caller learns nothing.
    #[error("a valid API key is required")]
    Unauthorized,
    #[error("no API key {key_id} for this tenant and environment")]
    NotFound { key_id: String },
    #[error(transparent)]
    Scope(#[from] ScopeError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ApiKeyError {
    /// The refusal every unauthenticated request gets, whatever the reason.
    pub fn unauthorized() -> Refusal {
        Refusal::Unauthorized("Send a valid API key in the x-api-key header.".to_owned())
    }
}

/// A newly created key: the plaintext (shown once) and its public id.
#[derive(Debug)]
pub struct NewApiKey {
    pub key: Secret<String>,
    pub key_id: String,
}

/// The hash under which a key is stored.
pub fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The public id of a key: the first 16 hex digits of its hash (safe to show and log).
pub fn key_id(hash: &str) -> String {
    hash[..16].to_owned()
}

fn generate() -> String {
    let a = uuid::Uuid::new_v4().simple().to_string();
    let b = uuid::Uuid::new_v4().simple().to_string();
    format!("{PREFIX}{a}{b}")
}

/// Creates a key for `scope`; `key` lets a caller (the local stack) choose it.
pub async fn create(
    store: &dyn Table,
    clock: &dyn Clock,
    scope: &TenantScope,
    label: &str,
    key: Option<String>,
) -> Result<NewApiKey, ApiKeyError> {
    let key = key.unwrap_or_else(generate);
    let hash = hash(&key);
    let key_id = key_id(&hash);
    let created_at = clock.now_secs();
    let record = ApiKey {
        tenant_id: scope.tenant_id().to_owned(),
        environment_id: scope.environment_id().to_owned(),
        active: true,
        key_id: key_id.clone(),
        label: label.to_owned(),
        created_at,
    };
    let reference = ApiKeyRef {
        hash: hash.clone(),
        active: true,
        label: label.to_owned(),
        created_at,
    };
    store
        .transact(vec![
            Write::Create {
                key: records::api_key_key(&hash),
                attrs: record.to_item(),
            },
            Write::Create {
                key: records::api_key_ref_key(scope, &key_id),
                attrs: reference.to_item(),
            },
        ])
        .await?;
    Ok(NewApiKey {
        key: Secret::new(key),
        key_id,
    })
}

/// The scope an `x-api-key` header value addresses.
pub async fn authenticate(
    store: &dyn Table,
    header: Option<&str>,
) -> Result<TenantScope, ApiKeyError> {
    let key = header
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or(ApiKeyError::Unauthorized)?;
    let record = match records::read::<ApiKey>(store, &records::api_key_key(&hash(key))).await {
        Ok(Some(record)) if record.active => record,
        Ok(_) | Err(StoreError::Malformed { .. }) => return Err(ApiKeyError::Unauthorized),
        Err(e) => return Err(e.into()),
    };
    TenantScope::new(&record.tenant_id, &record.environment_id)
        .map_err(|_| ApiKeyError::Unauthorized)
}

/// Revokes the key `key_id` of `scope`; from then on it authenticates nothing.
pub async fn revoke(
    store: &dyn Table,
    scope: &TenantScope,
    key_id: &str,
) -> Result<(), ApiKeyError> {
    let reference_key = records::api_key_ref_key(scope, key_id);
    let reference = records::read::<ApiKeyRef>(store, &reference_key)
        .await?
        .ok_or_else(|| ApiKeyError::NotFound {
            key_id: key_id.to_owned(),
        })?;
    store
        .transact(vec![
            Write::Update {
                key: records::api_key_key(&reference.hash),
                update: records::api_key_revoked(),
            },
            Write::Update {
                key: reference_key,
                update: records::api_key_revoked(),
            },
        ])
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_and_only_their_hash_is_kept() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        assert!(a.starts_with("fxr_") && a.len() == 68, "{a}");
        assert_eq!(hash(&a).len(), 64);
        assert_ne!(hash(&a), hash(&b));
        assert_eq!(key_id(&hash(&a)).len(), 16);
        let shown = format!(
            "{:?}",
            NewApiKey {
                key: Secret::new(a.clone()),
                key_id: key_id(&hash(&a))
            }
        );
        assert!(!shown.contains(&a));
    }
}
