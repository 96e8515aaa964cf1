//! The reconciliation sweep (`docs/architecture.md` §3.6): webhooks are a trigger, not the
//! truth. For one tenant and environment, a run reads from Razorpay
//! - the payments created since its watermark (`GET /v1/payments?from=&to=`, paged, at most
//!   [`MAX_PAGES`] pages a run), leaving the last minutes to the webhooks;
//! - the failed payments it saw in the last three days, again (a late authorisation can still
//!   capture one);
//! - the payment links that expired or were cancelled in the window, and the Razorpay invoices
//!   that expired in it;
//! - the refunds created in the window (`GET /v1/refunds`), and again the refunds of the
//!   payments it saw a refund pending on (`GET /v1/payments/{id}/refunds`) until they settle;
//! - the disputes created in the window (`GET /v1/disputes`);
//!
//! and feeds each through the very apply path of a webhook ([`reconcile::apply`]), so whatever
//! is already applied changes nothing and the rest is applied exactly once. What it applies was
//! missed by the webhooks: counted on the sweep's state (the connection shows the webhook as
//! degraded) and emitted as a metric for an alarm. Calls are paced by a token bucket per run;
//! a 429 that outlasts the client's own backoff ends the run, to be retried.

use std::time::Duration;

use serde_json::json;

use crate::adapters::aws::Adapters;
use crate::adapters::aws::records::{self, Registry};
use crate::adapters::aws::store::StoreError;
use crate::adapters::razorpay::PaymentsPage;
use crate::adapters::razorpay::wire::{
    InvoiceStatus, LinkStatus, Payment, PaymentLink, PaymentStatus as RazorpayStatus, Refund,
    RefundStatus,
};
use crate::domain::error::Failure;
use crate::domain::jobs::{Job, Task};
use crate::domain::keys::TenantScope;
use crate::domain::sweep::{RunFindings, SweepState, TokenBucket, Watched};
use crate::services::connection::{self, Clients};
use crate::services::reconcile::{self, Applied};
use crate::services::webhook_events;

/// Razorpay's largest page.
const PAGE: u32 = 100;
/// At most this many pages of payments a run (1,000 payments).
pub const MAX_PAGES: u32 = 10;
/// A run stops applying after this long and saves how far it got (the worker's 30 s must hold
/// it; the next run goes on from there).
const RUN_BUDGET: Duration = Duration::from_secs(20);
/// Razorpay calls a run may make at once, and per second after that.
const BURST: u32 = 10;
const PER_SEC: u32 = 5;

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept {
    /// Payments read (listed or re-read).
    pub payments: usize,
    /// Links read that ended in the window.
    pub links: usize,
    /// Changes applied that no webhook had brought.
    pub missed: u64,
    /// Razorpay calls made.
    pub calls: usize,
}

/// One run of a scope's sweep.
pub async fn sweep(adapters: &Adapters, scope: &TenantScope) -> Result<Swept, Failure> {
    let clients = connection::job_clients(adapters, scope).await?;
    let key = records::sweep_key(scope);
    let stored = records::read::<SweepState>(adapters.store.as_ref(), &key)
        .await
        .map_err(Failure::retryable)?;
    let state = stored.clone().unwrap_or_default();
    let now = adapters.clock.now_secs();
    let (from, to) = state.window(now, adapters.config.retry.scale);
    let mut run = Run::new(adapters, scope, &clients);
    let (listed, complete) = run.list_payments(from, to).await?;
    let watched = run.reread(&state.watching).await?;
    let mut findings = RunFindings {
        until: if complete {
            to
        } else {
            state.watermark.unwrap_or(from)
        },
        ..RunFindings::default()
    };
    run.apply_payments(watched, listed, &mut findings).await?;
    run.apply_ended_links(from, to, &mut findings).await?;
    run.apply_expired_invoices(from, to, &mut findings).await?;
    run.apply_refunds(from, to, &mut findings).await?;
    run.apply_disputes(from, to, &mut findings).await?;
    run.reread_refunds(&state.refunds_watching, &mut findings)
        .await?;
    let missed = findings.missed;
    let next = state.after_run(now, findings);
    let read_version = stored.map(|s| s.version);
    records::save_versioned(adapters.store.as_ref(), &key, read_version, &next)
        .await
        .map_err(|e| Failure::retryable(format!("the sweep state changed meanwhile: {e}")))?;
    let swept = run.done(missed);
    report(scope, &swept);
    Ok(swept)
}

/// Says what a run found; a miss is a warning and a metric.
fn report(scope: &TenantScope, swept: &Swept) {
    if swept.missed > 0 {
        tracing::warn!(
            tenant = scope.tenant_id(),
            environment = scope.environment_id(),
            missed = swept.missed,
            "the sweep applied what no webhook brought: the Razorpay webhook looks disabled"
        );
    }
    crate::adapters::telemetry::metric(
        crate::adapters::telemetry::metrics::WEBHOOK_MISSED,
        swept.missed,
        &[
            ("tenant", scope.tenant_id()),
            ("environment", scope.environment_id()),
        ],
    );
    tracing::info!(
        tenant = scope.tenant_id(),
        payments = swept.payments,
        links = swept.links,
        calls = swept.calls,
        "sweep done"
    );
}

/// One run: its scope, its pace, what it counted.
struct Run<'a> {
    adapters: &'a Adapters,
    scope: &'a TenantScope,
    clients: &'a Clients,
    bucket: TokenBucket,
    started_ms: u64,
    swept: Swept,
}

impl<'a> Run<'a> {
    fn new(adapters: &'a Adapters, scope: &'a TenantScope, clients: &'a Clients) -> Run<'a> {
        let bucket = TokenBucket::new(BURST, PER_SEC, adapters.clock.now_millis());
        Run {
            adapters,
            scope,
            clients,
            bucket,
            started_ms: adapters.clock.now_millis(),
            swept: Swept::default(),
        }
    }

    fn out_of_time(&self) -> bool {
        let spent = self
            .adapters
            .clock
            .now_millis()
            .saturating_sub(self.started_ms);
        Duration::from_millis(spent) >= RUN_BUDGET
    }

    fn done(mut self, missed: u64) -> Swept {
        self.swept.missed = missed;
        self.swept
    }

    /// Waits for the bucket's next token.
    async fn paced(&mut self) {
        self.swept.calls += 1;
        let wait = self.bucket.wait_ms(self.adapters.clock.now_millis());
        if wait > 0 {
            tokio::time::sleep(Duration::from_millis(wait)).await;
            self.bucket.wait_ms(self.adapters.clock.now_millis());
        }
    }

    /// The payments created in `[from, to)`, page by page; `false` when pages were left.
    async fn list_payments(&mut self, from: u64, to: u64) -> Result<(Vec<Payment>, bool), Failure> {
        let mut listed = Vec::new();
        for page in 0..MAX_PAGES {
            self.paced().await;
            let request = PaymentsPage {
                from,
                to,
                count: PAGE,
                skip: page * PAGE,
            };
            let items = self
                .clients
                .razorpay
                .list_payments(&request)
                .await
                .map_err(|e| Failure::classed(&e))?;
            let last = items.len() < PAGE as usize;
            listed.extend(items);
            if last {
                self.swept.payments += listed.len();
                return Ok((listed, true));
            }
        }
        tracing::warn!(
            tenant = self.scope.tenant_id(),
            "more payments than a sweep reads in one run; the rest next run"
        );
        self.swept.payments += listed.len();
        Ok((listed, false))
    }

    /// The failed payments watched, as Razorpay has them now.
    async fn reread(&mut self, watching: &[Watched]) -> Result<Vec<Payment>, Failure> {
        let mut fresh = Vec::with_capacity(watching.len());
        for watched in watching {
            self.paced().await;
            let payment = self
                .clients
                .razorpay
                .get_payment(&watched.razorpay_payment_id)
                .await
                .map_err(|e| Failure::classed(&e))?;
            fresh.push(payment);
        }
        self.swept.payments += fresh.len();
        Ok(fresh)
    }

    /// The watched payments, then the listed ones oldest first: when the run's time is up,
    /// everything created before the next one is applied, and the window ends there.
    async fn apply_payments(
        &mut self,
        watched: Vec<Payment>,
        mut listed: Vec<Payment>,
        findings: &mut RunFindings,
    ) -> Result<(), Failure> {
        for payment in &watched {
            self.apply_payment(payment, findings).await?;
        }
        listed.sort_by_key(|p| p.created_at);
        for payment in &listed {
            if self.out_of_time() {
                tracing::warn!(
                    tenant = self.scope.tenant_id(),
                    "the sweep ran out of time; the next run goes on"
                );
                findings.until = findings.until.min(payment.created_at);
                break;
            }
            self.apply_payment(payment, findings).await?;
        }
        Ok(())
    }

    /// A payment through the webhook path, as the event its state would have sent; failed
    /// ones are watched, settled ones no longer.
    async fn apply_payment(
        &mut self,
        payment: &Payment,
        findings: &mut RunFindings,
    ) -> Result<(), Failure> {
        let event = match payment.status {
            RazorpayStatus::Captured | RazorpayStatus::Refunded => "payment.captured",
            RazorpayStatus::Failed => "payment.failed",
            _ => return Ok(()),
        };
        if payment.status == RazorpayStatus::Failed {
            findings.failed.push(Watched {
                razorpay_payment_id: payment.id.clone(),
                since: payment.created_at,
            });
        } else {
            findings.settled.push(payment.id.clone());
        }
        let body = json!({"entity": "event", "event": event, "contains": ["payment"],
            "payload": {"payment": {"entity": payment}}});
        self.apply(&payment.id, &body.to_string(), findings).await
    }

    /// The links that expired or were cancelled in the window, through the webhook path.
    async fn apply_ended_links(
        &mut self,
        from: u64,
        to: u64,
        findings: &mut RunFindings,
    ) -> Result<(), Failure> {
        self.paced().await;
        let links = self
            .clients
            .razorpay
            .list_payment_links()
            .await
            .map_err(|e| Failure::classed(&e))?;
        for link in links.iter().filter(|l| ended_within(l, from, to)) {
            self.swept.links += 1;
            let event = match link.status {
                LinkStatus::Cancelled => "payment_link.cancelled",
                _ => "payment_link.expired",
            };
            let body = json!({"entity": "event", "event": event, "contains": ["payment_link"],
                "payload": {"payment_link": {"entity": link}}});
            self.apply(&link.id, &body.to_string(), findings).await?;
        }
        Ok(())
    }

    /// The Razorpay invoices that expired in the window (newest made first, at most
    /// [`MAX_PAGES`] pages), through the webhook path; one not synced by flexrzp is not ours.
    async fn apply_expired_invoices(
        &mut self,
        from: u64,
        to: u64,
        findings: &mut RunFindings,
    ) -> Result<(), Failure> {
        for page in 0..MAX_PAGES {
            self.paced().await;
            let invoices = self
                .clients
                .razorpay
                .list_invoices(PAGE, page * PAGE)
                .await
                .map_err(|e| Failure::classed(&e))?;
            let expired = invoices.iter().filter(|i| {
                i.status == InvoiceStatus::Expired
                    && i.expired_at.is_some_and(|at| (from..to).contains(&at))
            });
            for invoice in expired {
                let body = json!({"entity": "event", "event": "invoice.expired",
                    "contains": ["invoice"], "payload": {"invoice": {"entity": invoice}}});
                self.apply(&invoice.id, &body.to_string(), findings).await?;
            }
            if invoices.len() < PAGE as usize {
                break;
            }
        }
        Ok(())
    }

    /// The refunds created in `[from, to)`, page by page (at most [`MAX_PAGES`]), through the
    /// webhook path; the payments of pending ones are watched.
    async fn apply_refunds(
        &mut self,
        from: u64,
        to: u64,
        findings: &mut RunFindings,
    ) -> Result<(), Failure> {
        for page in 0..MAX_PAGES {
            self.paced().await;
            let request = PaymentsPage {
                from,
                to,
                count: PAGE,
                skip: page * PAGE,
            };
            let refunds = self
                .clients
                .razorpay
                .list_refunds(&request)
                .await
                .map_err(|e| Failure::classed(&e))?;
            for refund in &refunds {
                self.apply_refund(refund, findings).await?;
            }
            if refunds.len() < PAGE as usize {
                break;
            }
        }
        Ok(())
    }

    /// The disputes created in `[from, to)` (at most [`MAX_PAGES`] pages), through the webhook
    /// path, as the event their status would have sent.
    async fn apply_disputes(
        &mut self,
        from: u64,
        to: u64,
        findings: &mut RunFindings,
    ) -> Result<(), Failure> {
        for page in 0..MAX_PAGES {
            self.paced().await;
            let request = PaymentsPage {
                from,
                to,
                count: PAGE,
                skip: page * PAGE,
            };
            let disputes = self
                .clients
                .razorpay
                .list_disputes(&request)
                .await
                .map_err(|e| Failure::classed(&e))?;
            for dispute in &disputes {
                let event = match dispute.status.as_str() {
                    "under_review" => "payment.dispute.under_review",
                    "won" => "payment.dispute.won",
                    "lost" => "payment.dispute.lost",
                    "closed" => "payment.dispute.closed",
                    _ => "payment.dispute.created",
                };
                let body = json!({"entity": "event", "event": event, "contains": ["dispute"],
                    "payload": {"dispute": {"entity": dispute}}});
                self.apply(&dispute.id, &body.to_string(), findings).await?;
            }
            if disputes.len() < PAGE as usize {
                break;
            }
        }
        Ok(())
    }

    /// The refunds of the payments watched for a pending refund, as Razorpay has them now;
    /// a payment whose refunds all settled is watched no longer.
    async fn reread_refunds(
        &mut self,
        watching: &[Watched],
        findings: &mut RunFindings,
    ) -> Result<(), Failure> {
        for watched in watching {
            self.paced().await;
            let refunds = self
                .clients
                .razorpay
                .list_payment_refunds(&watched.razorpay_payment_id)
                .await
                .map_err(|e| Failure::classed(&e))?;
            for refund in &refunds {
                self.apply_refund(refund, findings).await?;
            }
            if refunds.iter().all(|r| r.status != RefundStatus::Pending) {
                findings
                    .refunds_settled
                    .push(watched.razorpay_payment_id.clone());
            }
        }
        Ok(())
    }

    /// A refund through the webhook path, as the event its state would have sent.
    async fn apply_refund(
        &mut self,
        refund: &Refund,
        findings: &mut RunFindings,
    ) -> Result<(), Failure> {
        let event = match refund.status {
            RefundStatus::Processed => "refund.processed",
            RefundStatus::Failed => "refund.failed",
            _ => "refund.created",
        };
        if refund.status == RefundStatus::Pending {
            findings.refunds_pending.push(Watched {
                razorpay_payment_id: refund.payment_id.clone(),
                since: refund.created_at,
            });
        }
        let body = json!({"entity": "event", "event": event, "contains": ["refund"],
            "payload": {"refund": {"entity": refund}}});
        self.apply(&refund.id, &body.to_string(), findings).await
    }

    /// One synthesized event through [`reconcile::apply`]: a change is a miss; a permanent
    /// failure is logged and left (the sweep goes on), a retryable one ends the run.
    async fn apply(
        &mut self,
        id: &str,
        body: &str,
        findings: &mut RunFindings,
    ) -> Result<(), Failure> {
        match reconcile::apply(self.adapters, self.scope, body).await {
            Ok(applied) if changed(&applied) => {
                tracing::warn!(
                    razorpay_id = id,
                    ?applied,
                    "the sweep applied what no webhook brought"
                );
                findings.missed += 1;
                webhook_events::corrected(self.adapters, self.scope, id, body, &applied).await;
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(Failure::Permanent(reason)) => {
                tracing::error!(razorpay_id = id, %reason, "the sweep could not apply this");
                Ok(())
            }
            Err(retryable) => Err(retryable),
        }
    }
}

/// Whether applying changed anything (the webhook had not brought it).
fn changed(applied: &Applied) -> bool {
    matches!(
        applied,
        Applied::Counted { .. }
            | Applied::AttemptRecorded
            | Applied::Failed
            | Applied::InvoiceExpired
            | Applied::Refunded { .. }
            | Applied::Disputed { .. }
    )
}

/// A link that expired or was cancelled within `[from, to)`.
fn ended_within(link: &PaymentLink, from: u64, to: u64) -> bool {
    let ended_at = match link.status {
        LinkStatus::Expired => link.expired_at,
        LinkStatus::Cancelled => link.cancelled_at,
        _ => None,
    };
    ended_at.is_some_and(|at| (from..to).contains(&at))
}

/// The sweep state of a scope, to show its webhook's health.
pub async fn state(adapters: &Adapters, scope: &TenantScope) -> Option<SweepState> {
    let key = records::sweep_key(scope);
    records::read::<SweepState>(adapters.store.as_ref(), &key)
        .await
        .ok()
        .flatten()
}

/// Queues one sweep job per connected scope (the schedule's message); how many.
pub async fn sweep_all(adapters: &Adapters) -> Result<usize, Failure> {
    let registry = records::read::<Registry>(adapters.store.as_ref(), &records::registry_key())
        .await
        .map_err(Failure::retryable)?
        .unwrap_or_default();
    let mut queued = 0;
    for scope in registry.scopes.iter().filter_map(|s| scope_of(s)) {
        let job = Job::new(&scope, Task::Sweep);
        adapters
            .queue
            .send(&job, None)
            .await
            .map_err(|e| Failure::classed(&e))?;
        queued += 1;
    }
    Ok(queued)
}

fn scope_of(text: &str) -> Option<TenantScope> {
    let (tenant, environment) = text.split_once('/')?;
    TenantScope::new(tenant, environment).ok()
}

/// How a scope is named in the registry.
fn registry_name(scope: &TenantScope) -> String {
    format!("{}/{}", scope.tenant_id(), scope.environment_id())
}

/// Adds a connected scope to the registry the schedule sweeps (or, `connected: false`, takes a
/// disconnected one out). A lost race reads again, a few times.
pub async fn register(
    adapters: &Adapters,
    scope: &TenantScope,
    connected: bool,
) -> Result<(), StoreError> {
    let key = records::registry_key();
    let name = registry_name(scope);
    let mut last = StoreError::ConditionFailed { current: None };
    for _ in 0..5 {
        let read = records::read::<Registry>(adapters.store.as_ref(), &key).await?;
        let mut next = read.clone().unwrap_or_default();
        let listed = next.scopes.contains(&name);
        if listed == connected {
            return Ok(());
        }
        if connected {
            next.scopes.push(name.clone());
        } else {
            next.scopes.retain(|s| *s != name);
        }
        let version = read.map(|r| r.version);
        match records::save_versioned(adapters.store.as_ref(), &key, version, &next).await {
            Ok(_) => return Ok(()),
            Err(e) => last = e,
        }
    }
    Err(last)
}
