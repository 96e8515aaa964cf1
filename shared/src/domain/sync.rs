//! An invoice sync's states and the rules of its jobs (`docs/architecture.md` §3.2, §4). Pure:
//! the services read the sync record, ask what a job may do, and write the answer with a
//! condition on the record they read.

use std::fmt;

/// Where an invoice's sync to Razorpay stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncState {
    /// Held by one job, with a lease.
    Syncing,
    /// Its Razorpay invoice exists and is mapped both ways.
    Synced,
    /// Nothing to sync (sync off, not finalized, paid, nothing remaining): see `skip_reason`.
    Skipped,
    /// A refusal retrying will not fix: see `last_error`; a manual sync starts again.
    Failed,
    /// Voided in Flexprice; the Razorpay invoice (if any) is cancelled.
    Cancelled,
    /// Voided in Flexprice but paid in Razorpay: a person decides.
    Review,
}

impl SyncState {
    pub const ALL: [SyncState; 6] = [
        SyncState::Syncing,
        SyncState::Synced,
        SyncState::Skipped,
        SyncState::Failed,
        SyncState::Cancelled,
        SyncState::Review,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            SyncState::Syncing => "SYNCING",
            SyncState::Synced => "SYNCED",
            SyncState::Skipped => "SKIPPED",
            SyncState::Failed => "FAILED",
            SyncState::Cancelled => "CANCELLED",
            SyncState::Review => "REVIEW",
        }
    }

    pub fn parse(text: &str) -> Option<SyncState> {
        SyncState::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Settled for good: no sync job and no failure changes it.
    pub fn is_settled(self) -> bool {
        matches!(
            self,
            SyncState::Synced | SyncState::Cancelled | SyncState::Review
        )
    }
}

impl fmt::Display for SyncState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The sync record as a job finds it: its state, and whether its lease is still held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub state: SyncState,
    pub lease_live: bool,
}

/// What a sync job may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncStart {
    /// Already synced: only make sure its metadata is written.
    AlreadySynced,
    /// Cancelled or under review: nothing to do.
    Closed,
    /// Another job holds the lease: retry later.
    Busy,
    /// Check the invoice and claim it. `resumed`: an earlier attempt may have created the
    /// Razorpay invoice, so look it up (by `receipt`) before creating one.
    Begin { resumed: bool },
}

/// What a cancel job may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelStart {
    /// Already cancelled or under review.
    Nothing,
    /// A sync holds the lease: cancel after it.
    Busy,
    /// Find the Razorpay invoice (mapped, or made by an unfinished sync) and cancel it.
    Begin,
}

/// The rule for a sync job finding `found` (`None`: no record yet).
pub fn on_sync(found: Option<Found>) -> SyncStart {
    match found {
        None => SyncStart::Begin { resumed: false },
        Some(Found { state, lease_live }) => match state {
            SyncState::Synced => SyncStart::AlreadySynced,
            SyncState::Cancelled | SyncState::Review => SyncStart::Closed,
            SyncState::Syncing if lease_live => SyncStart::Busy,
            SyncState::Syncing | SyncState::Failed => SyncStart::Begin { resumed: true },
            SyncState::Skipped => SyncStart::Begin { resumed: false },
        },
    }
}

/// The rule for a cancel job finding `found`.
pub fn on_cancel(found: Option<Found>) -> CancelStart {
    match found {
        Some(Found {
            state: SyncState::Cancelled | SyncState::Review,
            ..
        }) => CancelStart::Nothing,
        Some(Found {
            state: SyncState::Syncing,
            lease_live: true,
        }) => CancelStart::Busy,
        _ => CancelStart::Begin,
    }
}

/// Whether a job's permanent failure is recorded (as FAILED) over what it finds now.
pub fn records_failure(found: Option<SyncState>) -> bool {
    !found.is_some_and(SyncState::is_settled)
}

#[cfg(test)]
mod tests {
    use super::SyncState::*;
    use super::*;

    fn found(state: SyncState, lease_live: bool) -> Option<Found> {
        Some(Found { state, lease_live })
    }

    #[test]
    fn each_rule_of_a_sync_job() {
        let rules = [
            (None, SyncStart::Begin { resumed: false }),
            (found(Syncing, true), SyncStart::Busy),
            (found(Syncing, false), SyncStart::Begin { resumed: true }),
            (found(Failed, false), SyncStart::Begin { resumed: true }),
            (found(Skipped, false), SyncStart::Begin { resumed: false }),
            (found(Synced, false), SyncStart::AlreadySynced),
            (found(Cancelled, false), SyncStart::Closed),
            (found(Review, false), SyncStart::Closed),
        ];
        for (found, start) in rules {
            assert_eq!(on_sync(found), start, "{found:?}");
        }
    }

    #[test]
    fn each_rule_of_a_cancel_job() {
        let rules = [
            (None, CancelStart::Begin),
            (found(Syncing, true), CancelStart::Busy),
            (found(Syncing, false), CancelStart::Begin),
            (found(Failed, false), CancelStart::Begin),
            (found(Skipped, false), CancelStart::Begin),
            (found(Synced, false), CancelStart::Begin),
            (found(Cancelled, false), CancelStart::Nothing),
            (found(Review, false), CancelStart::Nothing),
        ];
        for (found, start) in rules {
            assert_eq!(on_cancel(found), start, "{found:?}");
        }
    }

    #[test]
    fn a_failure_never_overwrites_a_settled_sync() {
        for state in SyncState::ALL {
            assert_eq!(records_failure(Some(state)), !state.is_settled(), "{state}");
        }
        assert!(records_failure(None));
        assert!(!records_failure(Some(Synced)));
    }

    #[test]
    fn states_read_back_as_stored() {
        for state in SyncState::ALL {
            assert_eq!(SyncState::parse(state.as_str()), Some(state));
        }
        assert_eq!(SyncState::parse("synced"), None);
    }
}
