//! The webhook event log on the one table. An event's item is its claim (the claims adapter's
//! conditional put, the record's attributes with it: one write receives an event) and its
//! record; the `log` index (`log_pk` = the scope's log, `log_sk` = received time, source, id)
//! lists a scope's events newest first without a scan. The index is eventually consistent: a
//! listing may miss an event received a moment ago, never another scope's.
//!
//! Refusals are counters, one item per scope and day, a number per reason (`ADD`): nothing of
//! an unverified body is kept.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::idempotency::{Claim, ClaimToken, Idempotency, IdempotencyError, Lifetimes};
use super::records::{
    self, AboutInvoice, Record, about_invoice, correction_item, correction_key, event::EVENT_TYPE,
    event::OUTCOME, event_item, event_key, event_log_partition, event_settled, invoice_partition,
    refusal_counts, refusals_key,
};
use super::store::{
    EXPIRES_AT, Expr, INVOICE_INDEX, INVOICE_PK, Item, ItemExt, LOG_INDEX, LOG_PK, LOG_SK, PK,
    Query, SK, Store, StoreError, n, s,
};
use crate::domain::events::{EventFilter, EventPage, Refused, Source, Step, WebhookEvent};
use crate::domain::keys::{Key, TenantScope};
use crate::domain::timeline::{Correction, Heard};
use crate::ports::{Clock, EventLog, MAX_HEARD, PortFuture};

/// Refusal counters are kept as long as events are (Razorpay's replay window and a day).
pub const KEEP: Duration = Duration::from_secs(16 * 24 * 3600);

/// A listing reads at most this many index pages for one answer (a filter that matches
/// little answers with a cursor rather than reading a scope's whole log at once).
const MAX_PAGES: usize = 10;

/// How often a settling is tried again when another one wrote the event first.
const SETTLE_TRIES: usize = 3;

/// A burst of refusals is written at most once a minute per scope, day and reason (a flood
/// of forged requests costs a write a minute, not one each); the first is written at once.
const REFUSALS_EVERY_MS: u64 = 60_000;

/// Refusals counted by this instance and not written yet.
#[derive(Default)]
struct Tally {
    pending: u64,
    written_at_ms: Option<u64>,
}

/// The event log over DynamoDB.
#[derive(Clone)]
pub struct DynamoEventLog {
    store: Store,
    claims: Idempotency,
    clock: Arc<dyn Clock>,
    tallies: Arc<Mutex<HashMap<(Key, Refused), Tally>>>,
}

impl DynamoEventLog {
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> DynamoEventLog {
        DynamoEventLog {
            claims: Idempotency::new(store.clone(), clock.clone()),
            store,
            clock,
            tallies: Arc::default(),
        }
    }

    /// Counts one refusal in this instance; the counts to write now: this one's when it is
    /// time, and what earlier days left unwritten (their tallies are dropped, so an instance
    /// keeps one day's).
    fn tally(&self, key: &Key, refused: Refused) -> Vec<(Key, Refused, u64)> {
        let now = self.clock.now_millis();
        let mut tallies = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        let mut due = Vec::new();
        tallies.retain(|(k, r), tally| {
            let past = k.sk < key.sk;
            if past && tally.pending > 0 {
                due.push((k.clone(), *r, tally.pending));
            }
            !past
        });
        let tally = tallies.entry((key.clone(), refused)).or_default();
        tally.pending += 1;
        let time = tally
            .written_at_ms
            .is_none_or(|at| now.saturating_sub(at) >= REFUSALS_EVERY_MS);
        if time {
            tally.written_at_ms = Some(now);
            due.push((key.clone(), refused, std::mem::take(&mut tally.pending)));
        }
        due
    }

    /// A count that could not be written, back to wait for the next write.
    fn untally(&self, key: &Key, refused: Refused, count: u64) {
        let mut tallies = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        tallies.entry((key.clone(), refused)).or_default().pending += count;
    }

    async fn receive(
        &self,
        scope: &TenantScope,
        event: &WebhookEvent,
        payload_hash: &str,
        lifetimes: Lifetimes,
    ) -> Result<Claim, IdempotencyError> {
        let key = event_key(scope, event.source, &event.event_id);
        let item = event_item(scope, event);
        let settled = event.outcome.is_final();
        self.claims
            .claim_with(&key, payload_hash, lifetimes, item, settled)
            .await
    }

    async fn get(
        &self,
        scope: &TenantScope,
        source: Source,
        event_id: &str,
    ) -> Result<Option<WebhookEvent>, StoreError> {
        records::read(&self.store, &event_key(scope, source, event_id)).await
    }

    async fn settle(
        &self,
        scope: &TenantScope,
        read: WebhookEvent,
        step: Step,
        invoice_id: Option<&str>,
    ) -> Result<Option<WebhookEvent>, StoreError> {
        let (source, event_id) = (read.source, read.event_id.clone());
        let key = event_key(scope, source, &event_id);
        let mut current = Some(read);
        for _ in 0..SETTLE_TRIES {
            let Some(mut event) = current.take() else {
                return Ok(None);
            };
            if !event.settle_about(step.clone(), invoice_id) {
                return Ok(Some(event));
            }
            match self.store.update(&key, &event_settled(scope, &event)).await {
                Ok(item) => return WebhookEvent::from_item(&item).map(Some),
                Err(StoreError::ConditionFailed { .. }) => {
                    current = self.get(scope, source, &event_id).await?;
                }
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::ConditionFailed { current: None })
    }

    async fn about(&self, scope: &TenantScope, invoice_id: &str) -> Result<Heard, StoreError> {
        let mut heard = Heard::default();
        let mut start = None;
        let mut read = 0;
        loop {
            let query = invoice_query(scope, invoice_id, start);
            let (items, last) = self.store.query(query).await?;
            for item in items.iter().take(MAX_HEARD - read) {
                match about_invoice(item)? {
                    AboutInvoice::Event(event) => heard.events.push(event),
                    AboutInvoice::Correction(c) => heard.corrections.push(c),
                }
            }
            read += items.len();
            start = last;
            if start.is_none() || read >= MAX_HEARD {
                return Ok(heard);
            }
        }
    }

    async fn corrected(
        &self,
        scope: &TenantScope,
        invoice_id: &str,
        correction: &Correction,
    ) -> Result<(), StoreError> {
        let keep_until = (self.clock.now_millis() / 1000).saturating_add(KEEP.as_secs());
        let item = correction_item(scope, invoice_id, correction, keep_until);
        self.store
            .put(&correction_key(scope, correction), item)
            .await
    }

    async fn list(
        &self,
        scope: &TenantScope,
        filter: &EventFilter,
        after: Option<&str>,
    ) -> Result<EventPage, StoreError> {
        let mut page = EventPage::default();
        let mut start = None;
        for _ in 0..MAX_PAGES {
            let wanted = filter.limit.saturating_sub(page.events.len()).max(1);
            let (items, last) = self
                .store
                .query(log_query(scope, filter, after, wanted, start))
                .await?;
            for item in &items {
                let event = WebhookEvent::from_item(item)?;
                if after != Some(item.str_attr(LOG_SK).unwrap_or_default()) {
                    page.events.push(event);
                }
            }
            page.next = last
                .as_ref()
                .and_then(|k| k.str_attr(LOG_SK))
                .map(str::to_owned);
            start = last;
            if start.is_none() || page.events.len() >= filter.limit {
                break;
            }
        }
        page.events.truncate(filter.limit);
        Ok(page)
    }

    async fn refuse(
        &self,
        scope: &TenantScope,
        refused: Refused,
        day: &str,
    ) -> Result<(), StoreError> {
        let key = refusals_key(scope, day);
        let mut written = Ok(());
        for (key, refused, count) in self.tally(&key, refused) {
            if let Err(e) = self.add_refusals(&key, refused, count).await {
                self.untally(&key, refused, count);
                written = Err(e);
            }
        }
        written
    }

    async fn add_refusals(
        &self,
        key: &Key,
        refused: Refused,
        count: u64,
    ) -> Result<(), StoreError> {
        let mut expr = Expr::default();
        let keep_until = (self.clock.now_millis() / 1000).saturating_add(KEEP.as_secs());
        let update = format!(
            "ADD {reason} {count} SET {expires} = {until}",
            reason = expr.name(refused.as_str()),
            count = expr.value(n(count)),
            expires = expr.name(EXPIRES_AT),
            until = expr.value(n(keep_until)),
        );
        // No condition holds it back: the first refusal of the day makes the item.
        let pk = expr.name(PK);
        let condition = format!("attribute_not_exists({pk}) OR attribute_exists({pk})");
        self.store
            .update_with(key, update, condition, expr)
            .await
            .map(|_| ())
    }

    async fn refusals(
        &self,
        scope: &TenantScope,
        since_day: &str,
    ) -> Result<Vec<(Refused, u64)>, StoreError> {
        let mut expr = Expr::default();
        let key_condition = format!(
            "{pk} = {partition} AND {sk} >= {since}",
            pk = expr.name(PK),
            partition = expr.value(s(refusals_key(scope, since_day).pk)),
            sk = expr.name(SK),
            since = expr.value(s(since_day)),
        );
        let query = Query {
            key_condition,
            expr,
            limit: 32,
            ..Query::default()
        };
        let (days, _) = self.store.query(query).await?;
        Ok(sum_counts(&days))
    }
}

/// The counts of several days, added up per reason (in [`Refused::ALL`]'s order).
fn sum_counts(days: &[Item]) -> Vec<(Refused, u64)> {
    Refused::ALL
        .into_iter()
        .filter_map(|reason| {
            let counts = days.iter().flat_map(refusal_counts);
            let total: u64 = counts.filter(|(r, _)| *r == reason).map(|(_, c)| c).sum();
            (total > 0).then_some((reason, total))
        })
        .collect()
}

/// One page of what the `invoice` index holds about an invoice, oldest first.
fn invoice_query(scope: &TenantScope, invoice_id: &str, start: Option<Item>) -> Query {
    let mut expr = Expr::default();
    let key_condition = format!(
        "{pk} = {partition}",
        pk = expr.name(INVOICE_PK),
        partition = expr.value(s(invoice_partition(scope, invoice_id))),
    );
    Query {
        index: Some(INVOICE_INDEX),
        key_condition,
        expr,
        limit: 200,
        start,
        ..Query::default()
    }
}

/// One page of a scope's log in the index: newest first, from `after` (exclusive) back to
/// `since`, of the filter's type and outcome.
fn log_query(
    scope: &TenantScope,
    filter: &EventFilter,
    after: Option<&str>,
    limit: usize,
    start: Option<Item>,
) -> Query {
    let mut expr = Expr::default();
    let lowest = format!("{:015}", filter.since_ms.unwrap_or(0));
    let key_condition = format!(
        "{pk} = {partition} AND {sk} BETWEEN {lo} AND {hi}",
        pk = expr.name(LOG_PK),
        partition = expr.value(s(event_log_partition(scope))),
        sk = expr.name(LOG_SK),
        lo = expr.value(s(lowest)),
        // `~` sorts after every digit: no upper bound but the cursor.
        hi = expr.value(s(after.unwrap_or("~"))),
    );
    let mut filters = Vec::new();
    if let Some(event_type) = &filter.event_type {
        filters.push(format!(
            "{} = {}",
            expr.name(EVENT_TYPE),
            expr.value(s(event_type.as_str()))
        ));
    }
    if let Some(outcome) = filter.outcome {
        filters.push(format!(
            "{} = {}",
            expr.name(OUTCOME),
            expr.value(s(outcome.as_str()))
        ));
    }
    Query {
        index: Some(LOG_INDEX),
        key_condition,
        filter: (!filters.is_empty()).then(|| filters.join(" AND ")),
        expr,
        limit: i32::try_from(limit).unwrap_or(i32::MAX),
        newest_first: true,
        start,
    }
}

impl EventLog for DynamoEventLog {
    fn receive<'a>(
        &'a self,
        scope: &'a TenantScope,
        event: &'a WebhookEvent,
        payload_hash: &'a str,
        lifetimes: Lifetimes,
    ) -> PortFuture<'a, Result<Claim, IdempotencyError>> {
        Box::pin(DynamoEventLog::receive(
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
        Box::pin(self.claims.release(token))
    }

    fn get<'a>(
        &'a self,
        scope: &'a TenantScope,
        source: Source,
        event_id: &'a str,
    ) -> PortFuture<'a, Result<Option<WebhookEvent>, StoreError>> {
        Box::pin(DynamoEventLog::get(self, scope, source, event_id))
    }

    fn settle<'a>(
        &'a self,
        scope: &'a TenantScope,
        read: WebhookEvent,
        step: Step,
        invoice_id: Option<&'a str>,
    ) -> PortFuture<'a, Result<Option<WebhookEvent>, StoreError>> {
        Box::pin(DynamoEventLog::settle(self, scope, read, step, invoice_id))
    }

    fn about<'a>(
        &'a self,
        scope: &'a TenantScope,
        invoice_id: &'a str,
    ) -> PortFuture<'a, Result<Heard, StoreError>> {
        Box::pin(DynamoEventLog::about(self, scope, invoice_id))
    }

    fn corrected<'a>(
        &'a self,
        scope: &'a TenantScope,
        invoice_id: &'a str,
        correction: &'a Correction,
    ) -> PortFuture<'a, Result<(), StoreError>> {
        Box::pin(DynamoEventLog::corrected(
            self, scope, invoice_id, correction,
        ))
    }

    fn list<'a>(
        &'a self,
        scope: &'a TenantScope,
        filter: &'a EventFilter,
        after: Option<&'a str>,
    ) -> PortFuture<'a, Result<EventPage, StoreError>> {
        Box::pin(DynamoEventLog::list(self, scope, filter, after))
    }

    fn refuse<'a>(
        &'a self,
        scope: &'a TenantScope,
        refused: Refused,
        day: &'a str,
    ) -> PortFuture<'a, Result<(), StoreError>> {
        Box::pin(DynamoEventLog::refuse(self, scope, refused, day))
    }

    fn refusals<'a>(
        &'a self,
        scope: &'a TenantScope,
        since_day: &'a str,
    ) -> PortFuture<'a, Result<Vec<(Refused, u64)>, StoreError>> {
        Box::pin(DynamoEventLog::refusals(self, scope, since_day))
    }
}
