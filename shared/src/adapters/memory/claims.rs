//! The claims port in memory, with the DynamoDB adapter's rules.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::adapters::aws::idempotency::{Claim, ClaimToken, IdempotencyError, Lifetimes};
use crate::domain::keys::Key;
use crate::ports::{Claims, Clock, PortFuture};

/// One claim as [`MemoryClaims`] keeps it.
#[derive(Debug, Clone)]
struct ClaimRecord {
    completed: bool,
    payload_hash: String,
    token: String,
    /// Epoch ms; only while in progress.
    lock_expires_at: u64,
    /// Epoch seconds.
    expires_at: u64,
    result: Option<String>,
}

/// The claims of the idempotency port, in a map, with the DynamoDB adapter's rules: a claim
/// takes a free, expired or abandoned key; otherwise the stored claim decides.
pub struct MemoryClaims {
    claims: Mutex<HashMap<Key, ClaimRecord>>,
    clock: Arc<dyn Clock>,
}

impl MemoryClaims {
    pub fn new(clock: Arc<dyn Clock>) -> MemoryClaims {
        MemoryClaims {
            claims: Mutex::default(),
            clock,
        }
    }

    fn claims(&self) -> MutexGuard<'_, HashMap<Key, ClaimRecord>> {
        self.claims.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn claim_now(
        &self,
        key: &Key,
        payload_hash: &str,
        lifetimes: Lifetimes,
    ) -> Result<Claim, IdempotencyError> {
        let now_ms = self.clock.now_millis();
        let mut claims = self.claims();
        let claimable = claims.get(key).is_none_or(|c| {
            c.expires_at < now_ms / 1000 || (!c.completed && c.lock_expires_at < now_ms)
        });
        if claimable {
            let token = uuid::Uuid::new_v4().to_string();
            let record = ClaimRecord {
                completed: false,
                payload_hash: payload_hash.to_owned(),
                token: token.clone(),
                lock_expires_at: now_ms.saturating_add(millis(lifetimes.lock)),
                expires_at: now_ms.saturating_add(millis(lifetimes.keep)) / 1000,
                result: None,
            };
            claims.insert(key.clone(), record);
            return Ok(Claim::Acquired(ClaimToken::new(key.clone(), token)));
        }
        let stored = claims.get(key).ok_or(IdempotencyError::Inconsistent)?;
        if stored.payload_hash != payload_hash {
            Err(IdempotencyError::PayloadMismatch)
        } else if stored.completed {
            Ok(Claim::Completed {
                result: stored.result.clone(),
            })
        } else {
            Err(IdempotencyError::InProgress)
        }
    }

    /// Marks the claim of `key` completed whoever holds it (the event log's worker settles an
    /// event it did not claim); `false` if there is none.
    pub(crate) fn settle(&self, key: &Key) -> bool {
        match self.claims().get_mut(key) {
            Some(claim) => {
                claim.completed = true;
                true
            }
            None => false,
        }
    }

    /// The claim `token` holds, if it still holds it.
    fn held<'a>(
        claims: &'a mut HashMap<Key, ClaimRecord>,
        token: &ClaimToken,
    ) -> Result<&'a mut ClaimRecord, IdempotencyError> {
        claims
            .get_mut(token.key())
            .filter(|c| !c.completed && c.token == token.token())
            .ok_or(IdempotencyError::LockLost)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Claims for MemoryClaims {
    fn claim<'a>(
        &'a self,
        key: &'a Key,
        payload_hash: &'a str,
        lifetimes: Lifetimes,
    ) -> PortFuture<'a, Result<Claim, IdempotencyError>> {
        let result = self.claim_now(key, payload_hash, lifetimes);
        Box::pin(async move { result })
    }

    fn complete<'a>(
        &'a self,
        token: &'a ClaimToken,
        result: Option<&'a str>,
        keep: Duration,
    ) -> PortFuture<'a, Result<(), IdempotencyError>> {
        let now_ms = self.clock.now_millis();
        let mut claims = self.claims();
        let done = MemoryClaims::held(&mut claims, token).map(|claim| {
            claim.completed = true;
            claim.expires_at = now_ms.saturating_add(millis(keep)) / 1000;
            if let Some(result) = result {
                claim.result = Some(result.to_owned());
            }
        });
        Box::pin(async move { done })
    }

    fn release<'a>(
        &'a self,
        token: &'a ClaimToken,
    ) -> PortFuture<'a, Result<(), IdempotencyError>> {
        let mut claims = self.claims();
        let done = MemoryClaims::held(&mut claims, token).map(|_| ());
        if done.is_ok() {
            claims.remove(token.key());
        }
        Box::pin(async move { done })
    }
}
