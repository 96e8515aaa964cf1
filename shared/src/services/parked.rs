//! Parked jobs (`docs/architecture.md` §7): the worker keeps why each failed message failed,
//! by message id under the job's scope; `flexrzp-admin jobs parked` lists the DLQ with those
//! reasons and `jobs redrive` moves back only the tenant's or kind's jobs asked for.

use crate::adapters::aws::Adapters;
use crate::adapters::aws::dlq::DeadLetters;
use crate::adapters::aws::records::{self, job_failure_item, job_failure_key};
use crate::adapters::aws::store::StoreError;
use crate::domain::jobs::{JobFailure, ParkedFilter, ParkedJob};
use crate::domain::keys::TenantScope;
use crate::ports::Table;

/// A failure reason is kept as long as the DLQ keeps a message (14 days).
pub const KEEP_SECS: u64 = 14 * 24 * 3600;

/// Keeps why each failed message failed (best effort: one not kept shows no reason).
pub async fn note_failures(adapters: &Adapters, failures: Vec<(TenantScope, JobFailure)>) {
    let now_ms = adapters.clock.now_millis();
    let keep_until = now_ms / 1000 + KEEP_SECS;
    for (scope, mut failure) in failures {
        failure.at_ms = now_ms;
        let key = job_failure_key(&scope, &failure.message_id);
        let item = job_failure_item(&failure, keep_until);
        if let Err(e) = adapters.store.put(&key, item).await {
            tracing::warn!(error = %e, message_id = %failure.message_id, "could not keep why the job failed");
        }
    }
}

/// The DLQ's messages that `filter` takes, each with its last failure's reason.
pub async fn list(
    table: &dyn Table,
    dead_letters: &DeadLetters,
    filter: &ParkedFilter,
) -> Result<Vec<ParkedJob>, String> {
    let listed = dead_letters.list().await.map_err(|e| e.to_string())?;
    let mut jobs = Vec::new();
    for mut job in listed.into_iter().filter(|j| filter.matches(j)) {
        job.reason = reason(table, &job).await.map_err(|e| e.to_string())?;
        jobs.push(job);
    }
    Ok(jobs)
}

/// Why the parked job last failed: what the worker kept, or what its body says.
async fn reason(table: &dyn Table, job: &ParkedJob) -> Result<Option<String>, StoreError> {
    if job.kind == "unreadable" {
        return Ok(Some("the message body is not a job".to_owned()));
    }
    let Some(scope) = job
        .scope
        .as_ref()
        .and_then(|(t, e)| TenantScope::new(t, e).ok())
    else {
        return Ok(None);
    };
    let key = job_failure_key(&scope, &job.message_id);
    let failure: Option<JobFailure> = records::read(table, &key).await?;
    Ok(failure.map(|f| f.reason))
}

/// Moves the DLQ's messages that `filter` takes back to the job queue; the jobs moved.
pub async fn redrive(
    dead_letters: &DeadLetters,
    filter: &ParkedFilter,
) -> Result<Vec<ParkedJob>, String> {
    dead_letters
        .redrive(filter)
        .await
        .map_err(|e| e.to_string())
}
