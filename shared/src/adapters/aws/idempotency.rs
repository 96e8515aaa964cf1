//! Idempotency records with Powertools semantics (the record lifecycle of AWS Lambda Powertools' idempotency utility).
//!
//! A record is claimed with one conditional put that succeeds when the key is free, when the
//! record has expired (`expires_at` < now, seconds), or when it is in progress and its lock has
//! expired (`lock_expires_at` < now, milliseconds) — a worker that died mid-way does not block
//! retries for long. A failed put returns the stored record (`ALL_OLD`, with a `GetItem`
//! fallback), which decides the answer: completed → its stored result; in progress → retry
//! later; a different payload hash → refused. Expiry is checked in code; TTL only cleans up.
//!
//! Each claim carries a random lock token; completing or releasing checks it, so a worker
//! whose lock expired and was reclaimed cannot overwrite or delete the new owner's record.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use thiserror::Error;

use super::records::claim::{COMPLETED, LOCK_EXPIRES_AT, LOCK_TOKEN, PAYLOAD_HASH, RESULT};
use super::store::{EXPIRES_AT, Expr, Item, ItemExt, PK, STATUS, Store, StoreError, n, s};
use crate::domain::error::{Classify, ErrorClass};
use crate::domain::keys::Key;
use crate::ports::{Claims, Clock, PortFuture};

const IN_PROGRESS: &str = "INPROGRESS";

/// How often a claim is retried when the stored record changed under it (Powertools: 2).
const MAX_RETRIES: usize = 2;

/// Hex SHA-256 of a payload, the value stored to detect "same key, different payload".
pub fn payload_hash(payload: &[u8]) -> String {
    hex::encode(Sha256::digest(payload))
}

#[derive(Debug, Error)]
pub enum IdempotencyError {
    /// Someone else holds the claim and its lock has not expired: try again later.
    #[error("the request is already in progress")]
    InProgress,
    /// The key was used before with a different payload.
    #[error("the idempotency key was already used with a different payload")]
    PayloadMismatch,
    /// Our lock expired and someone else claimed the record; our work must not be recorded.
    #[error("the idempotency lock was lost to another claim")]
    LockLost,
    /// The record kept changing under us.
    #[error("the idempotency record kept changing; try again")]
    Inconsistent,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Classify for IdempotencyError {
    fn class(&self) -> ErrorClass {
        match self {
            IdempotencyError::InProgress | IdempotencyError::Inconsistent => ErrorClass::Retryable,
            IdempotencyError::PayloadMismatch | IdempotencyError::LockLost => ErrorClass::Permanent,
            IdempotencyError::Store(e) => e.class(),
        }
    }
}

/// Proof of a claim, needed to complete or release it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimToken {
    key: Key,
    token: String,
}

impl ClaimToken {
    #[cfg(feature = "fakes")]
    pub(crate) fn new(key: Key, token: String) -> ClaimToken {
        ClaimToken { key, token }
    }

    pub fn key(&self) -> &Key {
        &self.key
    }

    #[cfg(feature = "fakes")]
    pub(crate) fn token(&self) -> &str {
        &self.token
    }
}

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The work is ours to do; complete or release the token afterwards.
    Acquired(ClaimToken),
    /// The work was done before (same payload); here is what it returned.
    Completed { result: Option<String> },
}

/// How long a claim is held and how long its record is kept.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    /// How long an in-progress claim blocks others (set it to the work's own deadline).
    pub lock: Duration,
    /// How long the record (in progress or completed) is kept.
    pub keep: Duration,
}

/// The idempotency records of the one table.
#[derive(Clone)]
pub struct Idempotency {
    store: Store,
    clock: Arc<dyn Clock>,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Idempotency {
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Idempotency {
        Idempotency { store, clock }
    }

    /// Claims `key` for a payload with hash `payload_hash`.
    pub async fn claim(
        &self,
        key: &Key,
        payload_hash: &str,
        lifetimes: Lifetimes,
    ) -> Result<Claim, IdempotencyError> {
        self.claim_with(key, payload_hash, lifetimes, Item::new(), false)
            .await
    }

    /// Claims `key` as [`Idempotency::claim`] does, writing `record`'s attributes with the
    /// claim in the same put; `settled` writes it completed at once (work with nothing left to
    /// do), so a later claim finds it done.
    pub(crate) async fn claim_with(
        &self,
        key: &Key,
        payload_hash: &str,
        lifetimes: Lifetimes,
        record: Item,
        settled: bool,
    ) -> Result<Claim, IdempotencyError> {
        for _ in 0..=MAX_RETRIES {
            let now_ms = self.clock.now_millis();
            let token = uuid::Uuid::new_v4().to_string();
            let attrs = claim_attrs(&record, payload_hash, &token, lifetimes, now_ms, settled);
            let mut expr = Expr::default();
            let condition = format!(
                "attribute_not_exists({pk}) OR {exp} < {now_s} OR ({status} = {in_progress} AND {lock} < {now_ms})",
                pk = expr.name(PK),
                exp = expr.name(EXPIRES_AT),
                now_s = expr.value(n(now_ms / 1000)),
                status = expr.name(STATUS),
                in_progress = expr.value(s(IN_PROGRESS)),
                lock = expr.name(LOCK_EXPIRES_AT),
                now_ms = expr.value(n(now_ms)),
            );
            let current = match self.store.put_if(key, attrs, condition, expr).await {
                Ok(()) => {
                    return Ok(Claim::Acquired(ClaimToken {
                        key: key.clone(),
                        token,
                    }));
                }
                Err(StoreError::ConditionFailed {
                    current: Some(item),
                }) => Some(*item),
                Err(StoreError::ConditionFailed { current: None }) => self.store.get(key).await?,
                Err(other) => return Err(other.into()),
            };
            // The record vanished or changed between the put and the read: try again.
            let Some(record) = current else { continue };
            if let Some(decided) = self.decide(&record, payload_hash)? {
                return Ok(decided);
            }
        }
        Err(IdempotencyError::Inconsistent)
    }

    /// What a stored record means for a claim; `None` when it is claimable after all (it
    /// expired since the put was evaluated), so the claim is tried again.
    fn decide(&self, record: &Item, payload_hash: &str) -> Result<Option<Claim>, IdempotencyError> {
        let now_ms = self.clock.now_millis();
        let expired = record
            .u64_attr(EXPIRES_AT)
            .is_none_or(|e| e < now_ms / 1000);
        if expired {
            return Ok(None);
        }
        if record.str_attr(PAYLOAD_HASH) != Some(payload_hash) {
            return Err(IdempotencyError::PayloadMismatch);
        }
        match record.str_attr(STATUS) {
            Some(COMPLETED) => Ok(Some(Claim::Completed {
                result: record.str_attr(RESULT).map(str::to_owned),
            })),
            Some(IN_PROGRESS)
                if record
                    .u64_attr(LOCK_EXPIRES_AT)
                    .is_some_and(|lock| lock >= now_ms) =>
            {
                Err(IdempotencyError::InProgress)
            }
            _ => Ok(None),
        }
    }

    /// Marks the claim completed with an optional result, kept for `keep` from now.
    pub async fn complete(
        &self,
        token: &ClaimToken,
        result: Option<&str>,
        keep: Duration,
    ) -> Result<(), IdempotencyError> {
        let now_ms = self.clock.now_millis();
        let mut expr = Expr::default();
        let mut sets = vec![
            format!("{} = {}", expr.name(STATUS), expr.value(s(COMPLETED))),
            format!(
                "{} = {}",
                expr.name(EXPIRES_AT),
                expr.value(n((now_ms + millis(keep)) / 1000))
            ),
        ];
        if let Some(result) = result {
            sets.push(format!("{} = {}", expr.name(RESULT), expr.value(s(result))));
        }
        let update = format!(
            "SET {} REMOVE {}",
            sets.join(", "),
            expr.name(LOCK_EXPIRES_AT)
        );
        let condition = self.owned_condition(&mut expr, token);
        match self
            .store
            .update_with(&token.key, update, condition, expr)
            .await
        {
            Err(StoreError::ConditionFailed { .. }) => Err(IdempotencyError::LockLost),
            other => other.map(|_| ()).map_err(Into::into),
        }
    }

    /// Deletes the claim so that a retry does the work again (after a failure).
    pub async fn release(&self, token: &ClaimToken) -> Result<(), IdempotencyError> {
        let mut expr = Expr::default();
        let condition = self.owned_condition(&mut expr, token);
        match self
            .store
            .delete_with(&token.key, Some(condition), expr)
            .await
        {
            Err(StoreError::ConditionFailed { .. }) => Err(IdempotencyError::LockLost),
            other => other.map_err(Into::into),
        }
    }

    fn owned_condition(&self, expr: &mut Expr, token: &ClaimToken) -> String {
        format!(
            "{status} = {in_progress} AND {lock_token} = {token}",
            status = expr.name(STATUS),
            in_progress = expr.value(s(IN_PROGRESS)),
            lock_token = expr.name(LOCK_TOKEN),
            token = expr.value(s(&token.token)),
        )
    }
}

impl Claims for Idempotency {
    fn claim<'a>(
        &'a self,
        key: &'a Key,
        payload_hash: &'a str,
        lifetimes: Lifetimes,
    ) -> PortFuture<'a, Result<Claim, IdempotencyError>> {
        Box::pin(Idempotency::claim(self, key, payload_hash, lifetimes))
    }

    fn complete<'a>(
        &'a self,
        token: &'a ClaimToken,
        result: Option<&'a str>,
        keep: Duration,
    ) -> PortFuture<'a, Result<(), IdempotencyError>> {
        Box::pin(Idempotency::complete(self, token, result, keep))
    }

    fn release<'a>(
        &'a self,
        token: &'a ClaimToken,
    ) -> PortFuture<'a, Result<(), IdempotencyError>> {
        Box::pin(Idempotency::release(self, token))
    }
}

/// A claim's item: `record`'s attributes, the status (completed at once when `settled`, else
/// in progress under a lock), the payload hash, the token and the expiry.
fn claim_attrs(
    record: &Item,
    payload_hash: &str,
    token: &str,
    lifetimes: Lifetimes,
    now_ms: u64,
    settled: bool,
) -> Item {
    let mut attrs = record.clone();
    attrs.extend([
        (
            STATUS.to_owned(),
            s(if settled { COMPLETED } else { IN_PROGRESS }),
        ),
        (PAYLOAD_HASH.to_owned(), s(payload_hash)),
        (LOCK_TOKEN.to_owned(), s(token)),
        (
            EXPIRES_AT.to_owned(),
            n((now_ms + millis(lifetimes.keep)) / 1000),
        ),
    ]);
    if !settled {
        attrs.insert(
            LOCK_EXPIRES_AT.to_owned(),
            n(now_ms + millis(lifetimes.lock)),
        );
    }
    attrs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_hash_is_hex_sha256() {
        assert_eq!(
            payload_hash(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
