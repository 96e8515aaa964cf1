//! In-memory fakes of the ports, for service tests that run in milliseconds. Built only with
//! the `fakes` feature (the test support crate turns it on), so no Lambda binary carries them.
//! `shared/tests/contract.rs` holds them to the real adapters: the same cases, the same
//! answers, against moto and against these.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

mod claims;
mod event_log;
mod providers;
mod queue;
mod secrets;

pub use claims::MemoryClaims;
pub use event_log::MemoryEventLog;
pub use providers::{FakeFlexprice, FakeRazorpay, Fault};
pub use queue::MemoryQueue;
pub use secrets::MemorySecrets;

use crate::adapters::aws::store::{
    CancelReason, Expect, Item, ItemExt, PK, SK, STATUS, StoreError, Update, VERSION, Write, n,
    or_exists, s,
};
use crate::domain::keys::Key;
use crate::ports::{PortFuture, Table};

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
