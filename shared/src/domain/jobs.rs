//! The jobs the receivers hand to the worker through SQS. A job names its tenant and
//! environment and one task; the body is JSON, small enough for one SQS message.

use serde::{Deserialize, Serialize};

use super::events::EventRef;
use super::keys::{ScopeError, TenantScope};

/// What the worker is asked to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Task {
    /// Create the Razorpay invoice for a finalized Flexprice invoice.
    SyncInvoice { invoice_id: String },
    /// Cancel the Razorpay invoice of a voided Flexprice invoice.
    CancelInvoice { invoice_id: String },
    /// Apply a verified Razorpay webhook event (its raw body, as received).
    ApplyRazorpayEvent { event_id: String, body: String },
    /// Close the instruments of an invoice that would let its customer pay more than it owes.
    SettleCollection { invoice_id: String },
    /// Compare Razorpay's payments and links with what was applied, and apply the rest.
    Sweep,
    /// Refund a Flexprice REFUND credit note at Razorpay (when the connection says so).
    RefundCreditNote { credit_note_id: String },
}

impl Task {
    pub fn kind(&self) -> &'static str {
        match self {
            Task::SyncInvoice { .. } => "sync_invoice",
            Task::CancelInvoice { .. } => "cancel_invoice",
            Task::ApplyRazorpayEvent { .. } => "apply_razorpay_event",
            Task::SettleCollection { .. } => "settle_collection",
            Task::Sweep => "sweep",
            Task::RefundCreditNote { .. } => "refund_credit_note",
        }
    }
}

/// One message on the job queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub tenant_id: String,
    pub environment_id: String,
    #[serde(flatten)]
    pub task: Task,
    /// The webhook event the job was queued for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<EventRef>,
}

impl Job {
    pub fn new(scope: &TenantScope, task: Task) -> Job {
        Job {
            tenant_id: scope.tenant_id().to_owned(),
            environment_id: scope.environment_id().to_owned(),
            task,
            event: None,
        }
    }

    /// The job for a webhook event: the worker settles the event with its outcome.
    pub fn for_event(scope: &TenantScope, task: Task, event: EventRef) -> Job {
        Job {
            event: Some(event),
            ..Job::new(scope, task)
        }
    }

    /// The job's scope, validated again: a message body is input like any other.
    pub fn scope(&self) -> Result<TenantScope, ScopeError> {
        TenantScope::new(&self.tenant_id, &self.environment_id)
    }
}

/// What a message on the job queue asks: a job of one scope, or (from the schedule, which
/// knows no tenant) a sweep of every connected scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Work {
    Job(Job),
    SweepAll,
}

/// The schedule's message: `{"kind": "sweep_all"}`.
#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Scheduled {
    SweepAll,
}

impl Work {
    /// A message body as work; a job's scope is validated again (a body is input like any
    /// other).
    pub fn parse(body: &str) -> Result<Work, String> {
        if let Ok(Scheduled::SweepAll) = serde_json::from_str::<Scheduled>(body) {
            return Ok(Work::SweepAll);
        }
        let job: Job = serde_json::from_str(body).map_err(|e| e.to_string())?;
        job.scope().map_err(|e| e.to_string())?;
        Ok(Work::Job(job))
    }
}

/// How long a failed job waits before its next try: doubling from `base_secs` up to
/// `cap_secs`, for `max_receives` tries, after which SQS parks it in the DLQ (the queue's
/// `maxReceiveCount`). `scale` divides every wait: the local stack runs the same schedule 60
/// times faster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySchedule {
    pub base_secs: u32,
    pub cap_secs: u32,
    pub max_receives: u32,
    pub scale: u32,
}

impl RetrySchedule {
    /// One minute doubling to three hours, 16 tries: 28 h 15 min before a job is parked, longer
    /// than Razorpay's own 24 h of webhook retries.
    pub const PRODUCTION: RetrySchedule = RetrySchedule {
        base_secs: 60,
        cap_secs: 3 * 3600,
        max_receives: 16,
        scale: 1,
    };

    /// The same schedule, every wait divided by `scale` (at least 1).
    pub fn scaled(self, scale: u32) -> RetrySchedule {
        RetrySchedule {
            scale: scale.max(1),
            ..self
        }
    }

    /// The wait after the `receive`-th try failed (1 for the first), in whole seconds (SQS's
    /// unit; SQS allows at most 12 h).
    pub fn wait_secs(&self, receive: u32) -> u32 {
        let doublings = receive.saturating_sub(1).min(31);
        let wait = u64::from(self.base_secs) << doublings;
        let capped = wait.min(u64::from(self.cap_secs)).min(MAX_VISIBILITY_SECS);
        u32::try_from(capped / u64::from(self.scale.max(1))).unwrap_or(u32::MAX)
    }

    /// How long a job that always fails is retried before it is parked.
    pub fn budget_secs(&self) -> u64 {
        (1..=self.max_receives)
            .map(|receive| u64::from(self.wait_secs(receive)))
            .sum()
    }
}

/// SQS's longest visibility timeout.
const MAX_VISIBILITY_SECS: u64 = 12 * 3600;

/// A failed message to be tried again after `wait_secs` (by its receipt handle, from the
/// delivery that failed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    pub receipt_handle: String,
    pub wait_secs: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retry_budget_outlasts_razorpays_day_of_retries() {
        let schedule = RetrySchedule::PRODUCTION;
        let waits: Vec<u32> = (1..=10).map(|r| schedule.wait_secs(r)).collect();
        assert_eq!(
            waits,
            [60, 120, 240, 480, 960, 1920, 3840, 7680, 10800, 10800]
        );
        assert_eq!(schedule.budget_secs(), 101_700, "28 h 15 min");
        assert!(schedule.budget_secs() >= 24 * 3600);
        let local = schedule.scaled(60);
        assert_eq!((local.wait_secs(1), local.wait_secs(9)), (1, 180));
        assert_eq!(local.budget_secs(), 101_700 / 60);
        assert_eq!(schedule.wait_secs(u32::MAX), 10800, "no overflow");
    }

    #[test]
    fn job_body_is_flat_json_with_a_kind() {
        let scope = TenantScope::new("t1", "live").unwrap();
        let job = Job::new(
            &scope,
            Task::SyncInvoice {
                invoice_id: "inv_1".into(),
            },
        );
        let json: serde_json::Value = serde_json::to_value(&job).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"tenant_id":"t1","environment_id":"live","kind":"sync_invoice","invoice_id":"inv_1"})
        );
        let back: Job = serde_json::from_value(json).unwrap();
        assert_eq!(back, job);
        assert_eq!(back.task.kind(), "sync_invoice");
    }

    #[test]
    fn the_schedules_message_is_a_sweep_of_every_scope_and_a_sweep_job_names_one() {
        assert_eq!(Work::parse(r#"{"kind":"sweep_all"}"#), Ok(Work::SweepAll));
        let one = r#"{"tenant_id":"t","environment_id":"e","kind":"sweep"}"#;
        assert!(matches!(
            Work::parse(one),
            Ok(Work::Job(Job {
                task: Task::Sweep,
                ..
            }))
        ));
        assert!(Work::parse(r#"{"kind":"sweep_everything"}"#).is_err());
    }

    #[test]
    fn unknown_kinds_and_bad_scopes_are_refused() {
        let unknown = r#"{"tenant_id":"t","environment_id":"e","kind":"mine_bitcoin"}"#;
        assert!(serde_json::from_str::<Job>(unknown).is_err());
        let bad =
            r#"{"tenant_id":"t#x","environment_id":"e","kind":"cancel_invoice","invoice_id":"i"}"#;
        let job: Job = serde_json::from_str(bad).unwrap();
        assert!(job.scope().is_err());
    }
}

/// Why a job's message last failed, kept beside its scope by the message's id: what
/// `flexrzp-admin jobs parked` shows for a message resting in the DLQ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFailure {
    pub message_id: String,
    /// The task's kind (`sync_invoice`, `apply_razorpay_event`, ...).
    pub kind: String,
    pub reason: String,
    /// The delivery that failed (SQS's receive count).
    pub receives: u32,
    pub at_ms: u64,
}

/// A message resting in the dead-letter queue, as the admin tool lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedJob {
    pub message_id: String,
    /// `None` for the schedule's sweep of every scope, or a body that is not a job.
    pub scope: Option<(String, String)>,
    /// The task's kind; `sweep_all` for the schedule's, `unreadable` for a body that is no job.
    pub kind: String,
    /// When the message was first sent (epoch ms), so its age.
    pub sent_at_ms: u64,
    pub receives: u32,
    /// Why it last failed, when the worker could say.
    pub reason: Option<String>,
}

/// Which parked jobs a command is about: all, or one tenant's, or one kind's, or both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParkedFilter {
    pub tenant_id: Option<String>,
    pub kind: Option<String>,
}

impl ParkedFilter {
    pub fn matches(&self, job: &ParkedJob) -> bool {
        let tenant = job.scope.as_ref().map(|(t, _)| t.as_str());
        self.tenant_id.as_deref().is_none_or(|t| tenant == Some(t))
            && self.kind.as_deref().is_none_or(|k| job.kind == k)
    }
}

/// A message body's scope and kind, as far as it can be read.
pub fn describe_body(body: &str) -> (Option<(String, String)>, String) {
    match Work::parse(body) {
        Ok(Work::Job(job)) => (
            Some((job.tenant_id.clone(), job.environment_id.clone())),
            job.task.kind().to_owned(),
        ),
        Ok(Work::SweepAll) => (None, "sweep_all".to_owned()),
        Err(_) => (None, "unreadable".to_owned()),
    }
}
