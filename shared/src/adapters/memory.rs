//! In-memory fakes of the ports, for service tests that run in milliseconds. Built only with
//! the `fakes` feature (the test support crate turns it on), so no Lambda binary carries them.
//! `shared/tests/contract.rs` holds them to the real adapters: the same cases, the same
//! answers, against moto and against these.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::adapters::aws::idempotency::{Claim, ClaimToken, IdempotencyError, Lifetimes};
use crate::adapters::aws::store::{
    CancelReason, Expect, Item, ItemExt, PK, SK, STATUS, StoreError, Update, VERSION, Write, n,
    or_exists, s,
};
use crate::domain::keys::Key;
use crate::ports::{Claims, Clock, PortFuture, Table};

/// The table, in a map: one lock around every operation, so each is atomic and they are
/// serializable, as DynamoDB's are per item and per transaction.
#[derive(Debug, Default)]
pub struct MemoryTable {
    items: Mutex<HashMap<(String, String), Item>>,
}

type Items = HashMap<(String, String), Item>;

fn id(key: &Key) -> (String, String) {
    (key.pk.clone(), key.sk.clone())
}

fn with_key(key: &Key, mut attrs: Item) -> Item {
    attrs.insert(PK.to_owned(), s(&key.pk));
    attrs.insert(SK.to_owned(), s(&key.sk));
    attrs
}

/// Whether `current` meets `expect` (non-empty: the item exists and matches each).
fn meets(current: Option<&Item>, expect: &[Expect]) -> bool {
    if expect.is_empty() {
        return true;
    }
    let Some(item) = current else {
        return false;
    };
    expect.iter().all(|e| match e {
        Expect::Exists => true,
        Expect::Status(status) => item.str_attr(STATUS) == Some(status.as_str()),
        Expect::Version(version) => item.u64_attr(VERSION) == Some(*version),
    })
}

fn apply_update(mut item: Item, update: &Update) -> Item {
    for (name, value) in &update.set {
        item.insert(name.clone(), value.clone());
    }
    if update.bump_version {
        let version = item.u64_attr(VERSION).unwrap_or(0);
        item.insert(VERSION.to_owned(), n(version + 1));
    }
    for name in &update.remove {
        item.remove(name);
    }
    item
}

impl MemoryTable {
    pub fn new() -> MemoryTable {
        MemoryTable::default()
    }

    fn items(&self) -> MutexGuard<'_, Items> {
        self.items
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How many items the table holds.
    pub fn len(&self) -> usize {
        self.items().len()
    }

    pub fn is_empty(&self) -> bool {
        self.items().is_empty()
    }

    fn update_now(&self, key: &Key, update: &Update) -> Result<Item, StoreError> {
        let mut items = self.items();
        let current = items.get(&id(key));
        if !meets(current, &or_exists(update.expect.clone())) {
            return Err(StoreError::ConditionFailed {
                current: current.cloned().map(Box::new),
            });
        }
        let updated = apply_update(current.cloned().unwrap_or_default(), update);
        items.insert(id(key), updated.clone());
        Ok(updated)
    }

    fn delete_now(&self, key: &Key, expect: &[Expect]) -> Result<(), StoreError> {
        let mut items = self.items();
        if !meets(items.get(&id(key)), expect) {
            // DynamoDB returns the stored item only when asked; the store does not ask.
            return Err(StoreError::ConditionFailed { current: None });
        }
        items.remove(&id(key));
        Ok(())
    }

    fn transact_now(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let mut items = self.items();
        let reasons: Vec<CancelReason> = writes
            .iter()
            .map(|write| {
                let (key, ok) = match write {
                    Write::Create { key, .. } => (key, !items.contains_key(&id(key))),
                    Write::Put { key, .. } => (key, true),
                    Write::Update { key, update } => (
                        key,
                        meets(items.get(&id(key)), &or_exists(update.expect.clone())),
                    ),
                    Write::Check { key, expect } => {
                        (key, meets(items.get(&id(key)), &or_exists(expect.clone())))
                    }
                    Write::Delete { key, expect } => (key, meets(items.get(&id(key)), expect)),
                };
                if ok {
                    CancelReason::None
                } else {
                    CancelReason::ConditionFailed {
                        item: items.get(&id(key)).cloned(),
                    }
                }
            })
            .collect();
        if reasons.iter().any(|r| *r != CancelReason::None) {
            return Err(StoreError::TransactionCancelled { reasons });
        }
        for write in writes {
            match write {
                Write::Create { key, attrs } | Write::Put { key, attrs } => {
                    items.insert(id(&key), with_key(&key, attrs));
                }
                Write::Update { key, update } => {
                    let current = items.get(&id(&key)).cloned().unwrap_or_default();
                    items.insert(id(&key), apply_update(current, &update));
                }
                Write::Check { .. } => {}
                Write::Delete { key, .. } => {
                    items.remove(&id(&key));
                }
            }
        }
        Ok(())
    }
}

impl Table for MemoryTable {
    fn get<'a>(&'a self, key: &'a Key) -> PortFuture<'a, Result<Option<Item>, StoreError>> {
        let item = self.items().get(&id(key)).cloned();
        Box::pin(async move { Ok(item) })
    }

    fn put<'a>(&'a self, key: &'a Key, attrs: Item) -> PortFuture<'a, Result<(), StoreError>> {
        self.items().insert(id(key), with_key(key, attrs));
        Box::pin(async { Ok(()) })
    }

    fn create<'a>(&'a self, key: &'a Key, attrs: Item) -> PortFuture<'a, Result<(), StoreError>> {
        let result = {
            let mut items = self.items();
            match items.get(&id(key)) {
                Some(existing) => Err(StoreError::AlreadyExists {
                    existing: Some(Box::new(existing.clone())),
                }),
                None => {
                    items.insert(id(key), with_key(key, attrs));
                    Ok(())
                }
            }
        };
        Box::pin(async move { result })
    }

    fn update<'a>(
        &'a self,
        key: &'a Key,
        update: &'a Update,
    ) -> PortFuture<'a, Result<Item, StoreError>> {
        let result = self.update_now(key, update);
        Box::pin(async move { result })
    }

    fn delete<'a>(
        &'a self,
        key: &'a Key,
        expect: &'a [Expect],
    ) -> PortFuture<'a, Result<(), StoreError>> {
        let result = self.delete_now(key, expect);
        Box::pin(async move { result })
    }

    fn transact(&self, writes: Vec<Write>) -> PortFuture<'_, Result<(), StoreError>> {
        let result = self.transact_now(writes);
        Box::pin(async move { result })
    }
}

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
