//! The jobs the receivers hand to the worker through SQS. A job names its tenant and
//! environment and one task; the body is JSON, small enough for one SQS message.

use serde::{Deserialize, Serialize};

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
}

impl Task {
    pub fn kind(&self) -> &'static str {
        match self {
            Task::SyncInvoice { .. } => "sync_invoice",
            Task::CancelInvoice { .. } => "cancel_invoice",
            Task::ApplyRazorpayEvent { .. } => "apply_razorpay_event",
            Task::SettleCollection { .. } => "settle_collection",
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
}

impl Job {
    pub fn new(scope: &TenantScope, task: Task) -> Job {
        Job {
            tenant_id: scope.tenant_id().to_owned(),
            environment_id: scope.environment_id().to_owned(),
            task,
        }
    }

    /// The job's scope, validated again: a message body is input like any other.
    pub fn scope(&self) -> Result<TenantScope, ScopeError> {
        TenantScope::new(&self.tenant_id, &self.environment_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn unknown_kinds_and_bad_scopes_are_refused() {
        let unknown = r#"{"tenant_id":"t","environment_id":"e","kind":"mine_bitcoin"}"#;
        assert!(serde_json::from_str::<Job>(unknown).is_err());
        let bad =
            r#"{"tenant_id":"t#x","environment_id":"e","kind":"cancel_invoice","invoice_id":"i"}"#;
        let job: Job = serde_json::from_str(bad).unwrap();
        assert!(job.scope().is_err());
    }
}
