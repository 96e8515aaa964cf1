//! The event log in memory, with the DynamoDB adapter's rules: receiving is a claim (the
//! memory claims' rules) that stores the event with it; listings are newest first.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::claims::MemoryClaims;
use crate::adapters::aws::idempotency::{Claim, ClaimToken, IdempotencyError, Lifetimes};
use crate::adapters::aws::records::{
    correction_key, event_key, event_log_partition, invoice_partition,
};
use crate::adapters::aws::store::StoreError;
use crate::domain::events::{
    EventFilter, EventPage, Refused, Source, Step, WebhookEvent, log_position,
};
use crate::domain::keys::{Key, TenantScope};
use crate::domain::timeline::{Correction, Heard};
use crate::ports::{Claims, Clock, EventLog, MAX_HEARD, PortFuture};

/// The events and refusal counts, in maps.
pub struct MemoryEventLog {
    claims: MemoryClaims,
    /// By key: the event and the log it is listed in.
    events: Mutex<HashMap<Key, (String, WebhookEvent)>>,
    refusals: Mutex<HashMap<(String, String, Refused), u64>>,
    /// By key: the invoice's partition and the correction.
    corrections: Mutex<HashMap<Key, (String, Correction)>>,
}

impl MemoryEventLog {
    pub fn new(clock: Arc<dyn Clock>) -> MemoryEventLog {
        MemoryEventLog {
            claims: MemoryClaims::new(clock),
            events: Mutex::default(),
            refusals: Mutex::default(),
            corrections: Mutex::default(),
        }
    }

    fn events(&self) -> MutexGuard<'_, HashMap<Key, (String, WebhookEvent)>> {
        self.events.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn refusal_counts(&self) -> MutexGuard<'_, HashMap<(String, String, Refused), u64>> {
        self.refusals.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn receive(
        &self,
        scope: &TenantScope,
        event: &WebhookEvent,
        payload_hash: &str,
        lifetimes: Lifetimes,
    ) -> Result<Claim, IdempotencyError> {
        let key = event_key(scope, event.source, &event.event_id);
        let claim = self.claims.claim(&key, payload_hash, lifetimes).await?;
        if let Claim::Acquired(_) = &claim {
            if event.outcome.is_final() {
                self.claims.settle(&key);
            }
            let listed = (event_log_partition(scope), event.clone());
            self.events().insert(key, listed);
        }
        Ok(claim)
    }

    async fn release(&self, token: &ClaimToken) -> Result<(), IdempotencyError> {
        self.claims.release(token).await?;
        self.events().remove(token.key());
        Ok(())
    }

    /// Settles the stored event (what a stale `read` comes to once read again).
    fn settle_now(
        &self,
        scope: &TenantScope,
        read: &WebhookEvent,
        step: Step,
        invoice_id: Option<&str>,
    ) -> Option<WebhookEvent> {
        let key = event_key(scope, read.source, &read.event_id);
        let mut events = self.events();
        let (_, event) = events.get_mut(&key)?;
        if !event.settle_about(step, invoice_id) {
            return Some(event.clone());
        }
        event.version += 1;
        self.claims.settle(&key);
        Some(event.clone())
    }

    fn about_now(&self, scope: &TenantScope, invoice_id: &str) -> Heard {
        let log = event_log_partition(scope);
        let mut events: Vec<WebhookEvent> = self
            .events()
            .values()
            .filter(|(l, e)| *l == log && e.invoice_id.as_deref() == Some(invoice_id))
            .map(|(_, e)| e.clone())
            .collect();
        events.sort_by_key(log_position);
        let partition = invoice_partition(scope, invoice_id);
        let corrections = self.corrections.lock().unwrap_or_else(|e| e.into_inner());
        let mut corrections: Vec<Correction> = corrections
            .values()
            .filter(|(p, _)| *p == partition)
            .map(|(_, c)| c.clone())
            .collect();
        corrections.sort_by_key(|c| (c.at_ms, c.razorpay_id.clone()));
        events.truncate(MAX_HEARD);
        corrections.truncate(MAX_HEARD - events.len());
        Heard {
            events,
            corrections,
        }
    }

    fn list_now(
        &self,
        scope: &TenantScope,
        filter: &EventFilter,
        after: Option<&str>,
    ) -> EventPage {
        let log = event_log_partition(scope);
        let mut listed: Vec<(String, WebhookEvent)> = self
            .events()
            .values()
            .filter(|(l, _)| *l == log)
            .map(|(_, e)| (log_position(e), e.clone()))
            .filter(|(position, _)| after.is_none_or(|a| position.as_str() < a))
            .collect();
        listed.sort_by(|a, b| b.0.cmp(&a.0));
        let mut matching = listed.into_iter().filter(|(_, e)| filter.matches(e));
        let events: Vec<(String, WebhookEvent)> = matching.by_ref().take(filter.limit).collect();
        let more = matching.next().is_some();
        EventPage {
            next: events.last().filter(|_| more).map(|(p, _)| p.clone()),
            events: events.into_iter().map(|(_, e)| e).collect(),
        }
    }

    fn refusals_since(&self, scope: &TenantScope, since_day: &str) -> Vec<(Refused, u64)> {
        let counts = self.refusal_counts();
        Refused::ALL
            .into_iter()
            .filter_map(|reason| {
                let total: u64 = counts
                    .iter()
                    .filter(|((prefix, day, r), _)| {
                        *prefix == scope.prefix() && day.as_str() >= since_day && *r == reason
                    })
                    .map(|(_, count)| count)
                    .sum();
                (total > 0).then_some((reason, total))
            })
            .collect()
    }
}

impl EventLog for MemoryEventLog {
    fn receive<'a>(
        &'a self,
        scope: &'a TenantScope,
        event: &'a WebhookEvent,
        payload_hash: &'a str,
        lifetimes: Lifetimes,
    ) -> PortFuture<'a, Result<Claim, IdempotencyError>> {
        Box::pin(MemoryEventLog::receive(
            self,
            scope,
            event,
            payload_hash,
            lifetimes,
        ))
    }

    fn release<'a>(
        &'a self,
        token: &'a ClaimToken,
    ) -> PortFuture<'a, Result<(), IdempotencyError>> {
        Box::pin(MemoryEventLog::release(self, token))
    }

    fn get<'a>(
        &'a self,
        scope: &'a TenantScope,
        source: Source,
        event_id: &'a str,
    ) -> PortFuture<'a, Result<Option<WebhookEvent>, StoreError>> {
        let key = event_key(scope, source, event_id);
        let found = self.events().get(&key).map(|(_, e)| e.clone());
        Box::pin(async move { Ok(found) })
    }

    fn settle<'a>(
        &'a self,
        scope: &'a TenantScope,
        read: WebhookEvent,
        step: Step,
        invoice_id: Option<&'a str>,
    ) -> PortFuture<'a, Result<Option<WebhookEvent>, StoreError>> {
        let settled = self.settle_now(scope, &read, step, invoice_id);
        Box::pin(async move { Ok(settled) })
    }

    fn about<'a>(
        &'a self,
        scope: &'a TenantScope,
        invoice_id: &'a str,
    ) -> PortFuture<'a, Result<Heard, StoreError>> {
        let heard = self.about_now(scope, invoice_id);
        Box::pin(async move { Ok(heard) })
    }

    fn corrected<'a>(
        &'a self,
        scope: &'a TenantScope,
        invoice_id: &'a str,
        correction: &'a Correction,
    ) -> PortFuture<'a, Result<(), StoreError>> {
        let kept = (invoice_partition(scope, invoice_id), correction.clone());
        let mut corrections = self.corrections.lock().unwrap_or_else(|e| e.into_inner());
        corrections.insert(correction_key(scope, correction), kept);
        Box::pin(async move { Ok(()) })
    }

    fn list<'a>(
        &'a self,
        scope: &'a TenantScope,
        filter: &'a EventFilter,
        after: Option<&'a str>,
    ) -> PortFuture<'a, Result<EventPage, StoreError>> {
        let page = self.list_now(scope, filter, after);
        Box::pin(async move { Ok(page) })
    }

    fn refuse<'a>(
        &'a self,
        scope: &'a TenantScope,
        refused: Refused,
        day: &'a str,
    ) -> PortFuture<'a, Result<(), StoreError>> {
        *self
            .refusal_counts()
            .entry((scope.prefix(), day.to_owned(), refused))
            .or_default() += 1;
        Box::pin(async move { Ok(()) })
    }

    fn refusals<'a>(
        &'a self,
        scope: &'a TenantScope,
        since_day: &'a str,
    ) -> PortFuture<'a, Result<Vec<(Refused, u64)>, StoreError>> {
        let counts = self.refusals_since(scope, since_day);
        Box::pin(async move { Ok(counts) })
    }
}
