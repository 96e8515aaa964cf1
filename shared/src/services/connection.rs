//! A tenant/environment's Razorpay connection (`docs/architecture.md` §1): credentials in Secrets
//! Manager (one secret per tenant/environment), settings in the table.
//!
//! Changing the webhook secret keeps the previous one accepted for 25 hours: Razorpay retries
//! an event for 24 hours, signed with the secret it was first sent with.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::adapters::aws::Adapters;
use crate::adapters::aws::records::{self, ConnectionSettings};
use crate::adapters::aws::secrets::SecretsError;
use crate::adapters::aws::store::StoreError;
use crate::adapters::config::Config;
use crate::adapters::flexprice::{FlexpriceClient, FlexpriceConfig};
use crate::adapters::razorpay::{RazorpayClient, RazorpayConfig, RazorpayError};
use crate::domain::collection::{CollectionPolicy, OverCollection};
use crate::domain::error::{Classify, Refusal};
use crate::domain::keys::TenantScope;
use crate::domain::requests::ConnectionRequest;
use crate::domain::secret::Secret;
use crate::ports::{FlexpriceApi, RazorpayApi};

/// How long a replaced webhook secret is still accepted.
pub const PREVIOUS_SECRET_GRACE_SECS: u64 = 25 * 3600;
const REDACTED: &str = "********";

/// What the connection's secret holds. Kept private to this module: the only place that
/// serializes secret values, and only to write them to Secrets Manager.
#[derive(Clone, Serialize, Deserialize)]
struct StoredSecrets {
    key_id: String,
    key_secret: String,
    webhook_secret: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous_webhook_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous_webhook_secret_until: Option<u64>,
    flexprice_api_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    flexprice_webhook_secret: Option<String>,
    /// Also kept here (not only in the settings item) so that webhook intake reads it from
    /// the cached secret, without a table read per event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    razorpay_account_id: Option<String>,
    /// The collection policy, here too for the same reason (absent: the defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    link_expiry_days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    overdue_grace_days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    link_reminders: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    overcollection: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    credit_note_refunds: Option<bool>,
}

impl StoredSecrets {
    fn policy(&self) -> CollectionPolicy {
        let default = CollectionPolicy::default();
        CollectionPolicy {
            link_expiry_days: self.link_expiry_days.unwrap_or(default.link_expiry_days),
            overdue_grace_days: self
                .overdue_grace_days
                .unwrap_or(default.overdue_grace_days),
            link_reminders: self.link_reminders.unwrap_or(default.link_reminders),
            overcollection: self
                .overcollection
                .as_deref()
                .and_then(OverCollection::parse)
                .unwrap_or(default.overcollection),
            credit_note_refunds: self
                .credit_note_refunds
                .unwrap_or(default.credit_note_refunds),
        }
    }
}

/// The connection's credentials, as the services use them.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub key_id: String,
    pub key_secret: Secret<String>,
    /// Current first, then the previous one while its grace period lasts.
    pub webhook_secrets: Vec<Secret<String>>,
    pub flexprice_api_key: Secret<String>,
    pub flexprice_webhook_secret: Option<Secret<String>>,
    /// When set, webhooks must carry this `account_id`.
    pub razorpay_account_id: Option<String>,
    pub policy: CollectionPolicy,
}

/// A scope's Razorpay and Flexprice clients (kept in the [`ClientCache`]).
#[derive(Clone)]
pub struct Clients {
    /// The Razorpay key id the clients use: it names the account and its mode.
    pub key_id: String,
    pub razorpay: Arc<dyn RazorpayApi>,
    pub flexprice: Arc<dyn FlexpriceApi>,
    /// How long the ways to pay it makes stay open.
    pub policy: CollectionPolicy,
}

impl Clients {
    /// The Razorpay account these clients speak to, for a customer sync.
    pub fn razorpay_account(&self) -> crate::services::customers::RazorpayAccount<'_> {
        crate::services::customers::RazorpayAccount {
            key_id: &self.key_id,
            api: self.razorpay.as_ref(),
        }
    }
}

/// The HTTP clients could not be built (the TLS set-up failed).
#[derive(Debug, thiserror::Error)]
#[error("could not build the HTTP clients: {0}")]
pub struct ClientsError(String);

impl Clients {
    pub fn new(config: &Config, credentials: &Credentials) -> Result<Clients, ClientsError> {
        let razorpay = RazorpayClient::new(RazorpayConfig::new(
            &config.razorpay_api_url,
            &credentials.key_id,
            credentials.key_secret.clone(),
        ))
        .map_err(|e| ClientsError(e.to_string()))?;
        let flexprice = FlexpriceClient::new(FlexpriceConfig::new(
            &config.flexprice_api_url,
            credentials.flexprice_api_key.clone(),
        ))
        .map_err(|e| ClientsError(e.to_string()))?;
        Ok(Clients {
            policy: credentials.policy,
            key_id: credentials.key_id.clone(),
            razorpay: Arc::new(razorpay),
            flexprice: Arc::new(flexprice),
        })
    }
}

/// Clients kept for the life of a Lambda instance, one pair per set of credentials: a warm
/// instance reuses its TLS set-up and its keep-alive connections to Razorpay and Flexprice
/// instead of building both for every request. Keyed by a hash of the URLs and credentials, so
/// changed credentials get new clients; bounded, and emptied when full.
#[derive(Default)]
pub struct ClientCache {
    entries: std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<Clients>>>,
    /// Set: every scope gets these (the fakes of a service test).
    fixed: Option<Arc<Clients>>,
}

const CLIENT_CACHE_MAX: usize = 256;

impl ClientCache {
    /// A cache that hands out `clients` whatever the credentials but their policy (for
    /// service tests).
    pub fn fixed(clients: Clients) -> ClientCache {
        ClientCache {
            entries: std::sync::Mutex::default(),
            fixed: Some(Arc::new(clients)),
        }
    }

    pub fn get(
        &self,
        config: &Config,
        credentials: &Credentials,
    ) -> Result<std::sync::Arc<Clients>, ClientsError> {
        use sha2::{Digest, Sha256};
        if let Some(clients) = &self.fixed {
            if clients.policy == credentials.policy {
                return Ok(clients.clone());
            }
            return Ok(Arc::new(Clients {
                policy: credentials.policy,
                ..clients.as_ref().clone()
            }));
        }
        let mut hasher = Sha256::new();
        let policy = format!("{:?}", credentials.policy);
        for part in [
            config.razorpay_api_url.as_str(),
            config.flexprice_api_url.as_str(),
            credentials.key_id.as_str(),
            credentials.key_secret.expose().as_str(),
            credentials.flexprice_api_key.expose().as_str(),
            policy.as_str(),
        ] {
            hasher.update(part.as_bytes());
            hasher.update([0u8]);
        }
        let key = hex::encode(hasher.finalize());
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(clients) = entries.get(&key) {
            return Ok(clients.clone());
        }
        if entries.len() >= CLIENT_CACHE_MAX {
            entries.clear();
        }
        let clients = std::sync::Arc::new(Clients::new(config, credentials)?);
        entries.insert(key, clients.clone());
        Ok(clients)
    }
}

/// A connected scope's clients, for a worker job: not connected is permanent, a storage or
/// Secrets Manager hiccup is retryable.
pub async fn job_clients(
    adapters: &Adapters,
    scope: &TenantScope,
) -> Result<std::sync::Arc<Clients>, crate::domain::error::Failure> {
    use crate::domain::error::Failure;
    let credentials = credentials(adapters, scope)
        .await
        .map_err(Failure::retryable)?
        .ok_or_else(|| Failure::permanent("the tenant is not connected to Razorpay"))?;
    adapters
        .clients
        .get(&adapters.config, &credentials)
        .map_err(Failure::retryable)
}

/// The secret's name for a scope.
pub fn secret_id(prefix: &str, scope: &TenantScope) -> String {
    format!("{prefix}/{}/{}", scope.tenant_id(), scope.environment_id())
}

fn unavailable(what: &str) -> Refusal {
    Refusal::Unavailable(format!("{what} is unavailable; retry the request."))
}

fn store_refusal(e: &StoreError) -> Refusal {
    tracing::error!(error = %e, "connection storage failed");
    if e.is_retryable() {
        unavailable("Storage")
    } else {
        Refusal::Internal
    }
}

fn secrets_refusal(e: &SecretsError) -> Refusal {
    tracing::error!(error = %e, "connection secret storage failed");
    if e.is_retryable() {
        unavailable("Secret storage")
    } else {
        Refusal::Internal
    }
}

async fn read_secrets(
    adapters: &Adapters,
    scope: &TenantScope,
) -> Result<Option<StoredSecrets>, Refusal> {
    read_secrets_from(adapters, scope, false).await
}

async fn read_secrets_from(
    adapters: &Adapters,
    scope: &TenantScope,
    fresh: bool,
) -> Result<Option<StoredSecrets>, Refusal> {
    let id = secret_id(&adapters.config.secret_prefix, scope);
    let value = if fresh {
        adapters.secrets.refresh(&id).await
    } else {
        adapters.secrets.get(&id).await
    };
    match value {
        Ok(value) => serde_json::from_str(value.expose()).map(Some).map_err(|_| {
            tracing::error!(secret = %id, "the connection secret is not in the expected shape");
            Refusal::Internal
        }),
        Err(SecretsError::NotFound { .. }) => Ok(None),
        Err(e) => Err(secrets_refusal(&e)),
    }
}

/// The credentials of a connected scope, `None` when it is not connected. Expired previous
/// webhook secrets are left out.
pub async fn credentials(
    adapters: &Adapters,
    scope: &TenantScope,
) -> Result<Option<Credentials>, Refusal> {
    credentials_from(adapters, scope, false).await
}

/// Like [`credentials`], but read from Secrets Manager, not the cache (after a signature
/// mismatch that a rotation may explain).
pub async fn fresh_credentials(
    adapters: &Adapters,
    scope: &TenantScope,
) -> Result<Option<Credentials>, Refusal> {
    credentials_from(adapters, scope, true).await
}

async fn credentials_from(
    adapters: &Adapters,
    scope: &TenantScope,
    fresh: bool,
) -> Result<Option<Credentials>, Refusal> {
    let Some(stored) = read_secrets_from(adapters, scope, fresh).await? else {
        return Ok(None);
    };
    let now = adapters.clock.now_secs();
    let policy = stored.policy();
    let mut webhook_secrets = vec![Secret::new(stored.webhook_secret)];
    if let (Some(previous), Some(until)) = (
        stored.previous_webhook_secret,
        stored.previous_webhook_secret_until,
    ) && until > now
    {
        webhook_secrets.push(Secret::new(previous));
    }
    Ok(Some(Credentials {
        key_id: stored.key_id,
        key_secret: Secret::new(stored.key_secret),
        webhook_secrets,
        flexprice_api_key: Secret::new(stored.flexprice_api_key),
        flexprice_webhook_secret: stored.flexprice_webhook_secret.map(Secret::new),
        policy,
        razorpay_account_id: stored.razorpay_account_id,
    }))
}

/// `PUT /api/v1/connections/razorpay`: checks the credentials, then stores them. Answers the
/// redacted view and whether the connection is new.
pub async fn put(
    adapters: &Adapters,
    scope: &TenantScope,
    request: ConnectionRequest,
) -> Result<(bool, Value), Refusal> {
    check_credentials(adapters, &request).await?;
    let now = adapters.clock.now_secs();
    let existing = read_secrets(adapters, scope).await?;
    let stored = secrets_to_store(&request, existing.as_ref(), now);
    let serialized = serde_json::to_string(&stored).map_err(|_| Refusal::Internal)?;
    adapters
        .secrets
        .put(
            &secret_id(&adapters.config.secret_prefix, scope),
            Secret::new(serialized),
        )
        .await
        .map_err(|e| secrets_refusal(&e))?;
    let settings = settings_of(&request, now);
    records::put(
        adapters.store.as_ref(),
        &ConnectionSettings::key(scope),
        &settings,
    )
    .await
    .map_err(|e| store_refusal(&e))?;
    crate::services::sweep::register(adapters, scope, true)
        .await
        .map_err(|e| store_refusal(&e))?;
    // The view is built from what was just written: no read back.
    Ok((existing.is_none(), view(&settings, Some(&stored), now)))
}

/// One harmless authenticated call: a key pair Razorpay refuses is a 422, and nothing is saved.
async fn check_credentials(
    adapters: &Adapters,
    request: &ConnectionRequest,
) -> Result<(), Refusal> {
    let client = RazorpayClient::new(RazorpayConfig::new(
        &adapters.config.razorpay_api_url,
        request.key_id.as_str(),
        request.key_secret.clone(),
    ))
    .map_err(|_| Refusal::Internal)?;
    match client.check_credentials().await {
        Ok(()) => Ok(()),
        Err(RazorpayError::Api { status, .. }) if (400..500).contains(&status) && status != 429 => {
            Err(Refusal::unprocessable(
                "key_secret",
                "razorpay_credentials",
                format!(
                    "Razorpay refused the key pair (HTTP {status}); check key_id and key_secret"
                ),
            ))
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not check Razorpay credentials");
            Err(unavailable("Razorpay"))
        }
    }
}

/// The secret to store: the request's credentials, and the webhook secret it replaces (kept
/// valid for [`PREVIOUS_SECRET_GRACE_SECS`], while Razorpay may still retry events signed
/// with it).
fn secrets_to_store(
    request: &ConnectionRequest,
    existing: Option<&StoredSecrets>,
    now: u64,
) -> StoredSecrets {
    let (previous, until) = match existing {
        Some(old) if old.webhook_secret != *request.webhook_secret.expose() => (
            Some(old.webhook_secret.clone()),
            Some(now + PREVIOUS_SECRET_GRACE_SECS),
        ),
        Some(old) => (
            old.previous_webhook_secret.clone(),
            old.previous_webhook_secret_until,
        ),
        None => (None, None),
    };
    StoredSecrets {
        key_id: request.key_id.as_str().to_owned(),
        key_secret: request.key_secret.expose().clone(),
        webhook_secret: request.webhook_secret.expose().clone(),
        previous_webhook_secret: previous,
        previous_webhook_secret_until: until.filter(|u| *u > now),
        flexprice_api_key: request.flexprice_api_key.expose().clone(),
        razorpay_account_id: request
            .razorpay_account_id
            .as_ref()
            .map(|a| a.as_str().to_owned()),
        flexprice_webhook_secret: request
            .flexprice_webhook_secret
            .as_ref()
            .map(|s| s.expose().clone()),
        link_expiry_days: request.link_expiry_days,
        overdue_grace_days: request.overdue_grace_days,
        link_reminders: request.link_reminders,
        overcollection: request.overcollection.map(|p| p.as_str().to_owned()),
        credit_note_refunds: request.credit_note_refunds,
    }
}

/// The connection's settings (no secret in them).
fn settings_of(request: &ConnectionRequest, now: u64) -> ConnectionSettings {
    ConnectionSettings {
        active: true,
        key_id: request.key_id.as_str().to_owned(),
        invoice_outbound_sync: request.invoice_outbound_sync,
        razorpay_account_id: request
            .razorpay_account_id
            .as_ref()
            .map(|a| a.as_str().to_owned()),
        updated_at: now,
    }
}

async fn stored_settings(
    adapters: &Adapters,
    scope: &TenantScope,
) -> Result<Option<ConnectionSettings>, Refusal> {
    records::read::<ConnectionSettings>(adapters.store.as_ref(), &ConnectionSettings::key(scope))
        .await
        .map_err(|e| store_refusal(&e))
}

/// Whether invoice outbound sync is on; `None` when the scope is not connected.
pub async fn outbound_sync(
    adapters: &Adapters,
    scope: &TenantScope,
) -> Result<Option<bool>, Refusal> {
    Ok(stored_settings(adapters, scope)
        .await?
        .map(|settings| settings.invoice_outbound_sync))
}

/// The connection as the API shows it: every secret redacted.
fn view(settings: &ConnectionSettings, secrets: Option<&StoredSecrets>, now: u64) -> Value {
    let previous_until = secrets
        .and_then(|s| s.previous_webhook_secret_until)
        .filter(|u| *u > now);
    let policy = secrets.map(StoredSecrets::policy).unwrap_or_default();
    json!({
        "provider": "razorpay",
        "status": if settings.active { "ACTIVE" } else { "INACTIVE" },
        "key_id": settings.key_id,
        "key_secret": REDACTED,
        "webhook_secret": REDACTED,
        "flexprice_api_key": REDACTED,
        "flexprice_webhook_secret": secrets.and_then(|s| s.flexprice_webhook_secret.as_ref()).map(|_| REDACTED),
        "previous_webhook_secret_accepted_until": previous_until,
        "invoice_outbound_sync": settings.invoice_outbound_sync,
        "razorpay_account_id": settings.razorpay_account_id,
        "link_expiry_days": policy.link_expiry_days,
        "overdue_grace_days": policy.overdue_grace_days,
        "link_reminders": policy.link_reminders,
        "overcollection": policy.overcollection.as_str(),
        "credit_note_refunds": policy.credit_note_refunds,
        "updated_at": settings.updated_at,
    })
}

fn not_connected() -> Refusal {
    Refusal::NotConnected
}

/// `GET /api/v1/connections/razorpay`.
pub async fn get(adapters: &Adapters, scope: &TenantScope) -> Result<Value, Refusal> {
    let settings = stored_settings(adapters, scope)
        .await?
        .ok_or_else(not_connected)?;
    let secrets = read_secrets(adapters, scope).await?;
    let now = adapters.clock.now_secs();
    let mut shown = view(&settings, secrets.as_ref(), now);
    // What the reconciliation sweep says of the webhook: degraded when it applied what no
    // webhook brought in the last day.
    let sweep = crate::services::sweep::state(adapters, scope).await;
    shown["webhook"] = serde_json::to_value(sweep.unwrap_or_default().health(now))
        .map_err(|_| Refusal::Internal)?;
    Ok(shown)
}

/// `DELETE /api/v1/connections/razorpay`: removes the credentials and the settings.
pub async fn delete(adapters: &Adapters, scope: &TenantScope) -> Result<(), Refusal> {
    stored_settings(adapters, scope)
        .await?
        .ok_or_else(not_connected)?;
    adapters
        .secrets
        .delete(&secret_id(&adapters.config.secret_prefix, scope))
        .await
        .map_err(|e| secrets_refusal(&e))?;
    adapters
        .store
        .delete(&ConnectionSettings::key(scope), &[])
        .await
        .map_err(|e| store_refusal(&e))?;
    crate::services::sweep::register(adapters, scope, false)
        .await
        .map_err(|e| store_refusal(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials(key_secret: &str) -> Credentials {
        Credentials {
            key_id: "rzp_test_1".to_owned(),
            key_secret: Secret::new(key_secret.to_owned()),
            webhook_secrets: vec![Secret::new("w".to_owned())],
            flexprice_api_key: Secret::new("fp".to_owned()),
            flexprice_webhook_secret: None,
            razorpay_account_id: None,
            policy: CollectionPolicy::default(),
        }
    }

    fn config() -> Config {
        Config {
            table_name: "t".to_owned(),
            job_queue_url: "q".to_owned(),
            secret_prefix: "p".to_owned(),
            razorpay_api_url: "http://127.0.0.1:1".to_owned(),
            flexprice_api_url: "http://127.0.0.1:2".to_owned(),
            retry: crate::domain::jobs::RetrySchedule::PRODUCTION,
        }
    }

    #[test]
    fn the_same_credentials_reuse_their_clients_and_new_ones_get_new_clients() {
        let cache = ClientCache::default();
        let first = cache.get(&config(), &credentials("s1")).unwrap();
        let again = cache.get(&config(), &credentials("s1")).unwrap();
        assert!(std::sync::Arc::ptr_eq(&first, &again));
        let rotated = cache.get(&config(), &credentials("s2")).unwrap();
        assert!(!std::sync::Arc::ptr_eq(&first, &rotated));
    }
}
