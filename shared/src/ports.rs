//! The ports: what the services need from outside, as small traits, so that a service can be
//! run over an in-memory fake (`adapters::memory`, behind the `fakes` feature) as well as over
//! AWS. `shared/tests/contract.rs` runs the same cases against both, so a fake cannot promise
//! what DynamoDB does not keep.
//!
//! - [`Table`]: the one DynamoDB table: reads, conditional writes, transactions. (It speaks in
//!   items; typed records will take their place.)
//! - [`Claims`]: claims on work that must happen once (a webhook event), with a lock that
//!   runs out when a worker dies and a stored result for duplicates.
//! - [`Clock`]: time, so expiry and signature tolerance can be tested without sleeping.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::adapters::aws::idempotency::{Claim, ClaimToken, IdempotencyError, Lifetimes};
use crate::adapters::aws::store::{Expect, Item, StoreError, Update, Write};
use crate::domain::keys::Key;

/// A future a port returns (boxed, so the ports can be used as `dyn` traits).
pub type PortFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The table: every item under a [`Key`]; writes happen only when their conditions hold, and a
/// transaction's writes all happen or none does (with one reason per write when it does not).
pub trait Table: Send + Sync {
    /// Reads an item (strongly consistent).
    fn get<'a>(&'a self, key: &'a Key) -> PortFuture<'a, Result<Option<Item>, StoreError>>;
    /// Puts an item, replacing whatever was there.
    fn put<'a>(&'a self, key: &'a Key, attrs: Item) -> PortFuture<'a, Result<(), StoreError>>;
    /// Puts an item only if its key is free ([`StoreError::AlreadyExists`] with the stored item
    /// otherwise).
    fn create<'a>(&'a self, key: &'a Key, attrs: Item) -> PortFuture<'a, Result<(), StoreError>>;
    /// Updates an existing item under the update's conditions; returns the new item.
    fn update<'a>(
        &'a self,
        key: &'a Key,
        update: &'a Update,
    ) -> PortFuture<'a, Result<Item, StoreError>>;
    /// Deletes an item; with conditions, only if it meets them.
    fn delete<'a>(
        &'a self,
        key: &'a Key,
        expect: &'a [Expect],
    ) -> PortFuture<'a, Result<(), StoreError>>;
    /// Writes all of `writes` or none of them.
    fn transact(&self, writes: Vec<Write>) -> PortFuture<'_, Result<(), StoreError>>;
}

/// Claims on work that must be done once: the first claim of a key acquires it (with a lock
/// for `lifetimes.lock`); a claim while the lock holds is refused as in progress; a claim of
/// completed work returns its stored result; another payload under the same key is refused.
/// An expired lock or record can be claimed again; only the holder's token completes or
/// releases a claim.
pub trait Claims: Send + Sync {
    fn claim<'a>(
        &'a self,
        key: &'a Key,
        payload_hash: &'a str,
        lifetimes: Lifetimes,
    ) -> PortFuture<'a, Result<Claim, IdempotencyError>>;
    /// Marks the claim completed with an optional result, kept for `keep` from now.
    fn complete<'a>(
        &'a self,
        token: &'a ClaimToken,
        result: Option<&'a str>,
        keep: Duration,
    ) -> PortFuture<'a, Result<(), IdempotencyError>>;
    /// Gives the claim up so that a retry does the work again.
    fn release<'a>(&'a self, token: &'a ClaimToken)
    -> PortFuture<'a, Result<(), IdempotencyError>>;
}

pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> u64;

    fn now_secs(&self) -> u64 {
        self.now_millis() / 1000
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    millis: AtomicU64,
}

impl ManualClock {
    pub fn at_millis(millis: u64) -> ManualClock {
        ManualClock {
            millis: AtomicU64::new(millis),
        }
    }

    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.millis.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> u64 {
        self.millis.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_when_told() {
        let clock = ManualClock::at_millis(1_000_500);
        assert_eq!(clock.now_secs(), 1000);
        clock.advance(Duration::from_millis(600));
        assert_eq!(clock.now_millis(), 1_001_100);
        assert_eq!(clock.now_secs(), 1001);
    }

    #[test]
    fn system_clock_is_after_2024() {
        assert!(SystemClock.now_secs() > 1_704_067_200);
    }
}
