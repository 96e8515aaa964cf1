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

use crate::adapters::aws::store::{Expect, Item, ItemExt, STATUS, StoreError, Update, Write, n, s};
use crate::api::problem::Problem;
use crate::domain::keys::{Key, ScopeError, TenantScope};
use crate::domain::secret::Secret;
use crate::ports::Clock;
use crate::ports::Table;

const PREFIX: &str = "fxr_";
const ACTIVE: &str = "ACTIVE";
const REVOKED: &str = "REVOKED";
const KIND: &str = "APIKEY";

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
    /// The 401 every unauthenticated request gets, whatever the reason.
    pub fn unauthorized_problem() -> Problem {
        Problem::new(
            401,
            "unauthorized",
            "Unauthorized",
            "Send a valid API key in the x-api-key header.",
        )
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

fn global_key(hash: &str) -> Key {
    Key {
        pk: format!("{KIND}#{hash}"),
        sk: KIND.to_owned(),
    }
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
    let created = n(clock.now_secs());
    let record = Item::from([
        ("tenant_id".to_owned(), s(scope.tenant_id())),
        ("environment_id".to_owned(), s(scope.environment_id())),
        (STATUS.to_owned(), s(ACTIVE)),
        ("key_id".to_owned(), s(&key_id)),
        ("label".to_owned(), s(label)),
        ("created_at".to_owned(), created.clone()),
    ]);
    let reference = Item::from([
        ("hash".to_owned(), s(&hash)),
        (STATUS.to_owned(), s(ACTIVE)),
        ("label".to_owned(), s(label)),
        ("created_at".to_owned(), created),
    ]);
    store
        .transact(vec![
            Write::Create {
                key: global_key(&hash),
                attrs: record,
            },
            Write::Create {
                key: scope.key(KIND, &key_id),
                attrs: reference,
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
    let record = store
        .get(&global_key(&hash(key)))
        .await?
        .ok_or(ApiKeyError::Unauthorized)?;
    if record.str_attr(STATUS) != Some(ACTIVE) {
        return Err(ApiKeyError::Unauthorized);
    }
    match (
        record.str_attr("tenant_id"),
        record.str_attr("environment_id"),
    ) {
        (Some(tenant), Some(environment)) => {
            TenantScope::new(tenant, environment).map_err(|_| ApiKeyError::Unauthorized)
        }
        _ => Err(ApiKeyError::Unauthorized),
    }
}

/// Revokes the key `key_id` of `scope`; from then on it authenticates nothing.
pub async fn revoke(
    store: &dyn Table,
    scope: &TenantScope,
    key_id: &str,
) -> Result<(), ApiKeyError> {
    let reference_key = scope.key(KIND, key_id);
    let reference = store
        .get(&reference_key)
        .await?
        .ok_or_else(|| ApiKeyError::NotFound {
            key_id: key_id.to_owned(),
        })?;
    let hash = reference
        .str_attr("hash")
        .ok_or_else(|| ApiKeyError::NotFound {
            key_id: key_id.to_owned(),
        })?
        .to_owned();
    let revoke = || Update {
        expect: vec![Expect::Exists],
        set: Item::from([(STATUS.to_owned(), s(REVOKED))]),
        ..Update::default()
    };
    store
        .transact(vec![
            Write::Update {
                key: global_key(&hash),
                update: revoke(),
            },
            Write::Update {
                key: reference_key,
                update: revoke(),
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
