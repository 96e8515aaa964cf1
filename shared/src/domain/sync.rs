//! An invoice sync's states and the rules of its jobs (`docs/architecture.md` §3.2, §4). Pure:
//! the services read the sync record, ask what a job may do, and write the answer with a
//! condition on the record they read.

use std::fmt;

use crate::domain::money::Money;

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
    /// Its Razorpay invoice can no longer be paid (expired, or cancelled while the Flexprice
    /// invoice still owes).
    pub razorpay_closed: bool,
}

/// What a sync job may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncStart {
    /// Already synced: only make sure its metadata is written.
    AlreadySynced,
    /// Synced, but its Razorpay invoice expired or was cancelled: issue a new one (a new
    /// receipt) for what is owed now, if anything is.
    Reissue,
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
        Some(Found {
            state,
            lease_live,
            razorpay_closed,
        }) => match state {
            SyncState::Synced if razorpay_closed => SyncStart::Reissue,
            SyncState::Synced => SyncStart::AlreadySynced,
            SyncState::Cancelled | SyncState::Review => SyncStart::Closed,
            SyncState::Syncing if lease_live => SyncStart::Busy,
            SyncState::Syncing | SyncState::Failed if razorpay_closed => SyncStart::Reissue,
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
            ..
        }) => CancelStart::Busy,
        _ => CancelStart::Begin,
    }
}

/// Whether a job's permanent failure is recorded (as FAILED) over what it finds now.
pub fn records_failure(found: Option<SyncState>) -> bool {
    !found.is_some_and(SyncState::is_settled)
}

/// An invoice's sync record: the claim of the job that syncs it and what it made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceSync {
    /// The Flexprice invoice.
    pub invoice_id: String,
    pub state: SyncState,
    /// Bumped by every write.
    pub version: u64,
    /// While SYNCING: until when (epoch ms) the claiming job holds it.
    pub lease_until: Option<u64>,
    /// Claims so far.
    pub attempts: u64,
    /// Which Razorpay invoice of this Flexprice invoice: 0 for the first, one more for each
    /// re-issue (each has its own receipt, see [`receipt`]).
    pub issue: u64,
    pub customer_id: Option<String>,
    pub razorpay_invoice_id: Option<String>,
    /// The Razorpay invoice's status as last seen (e.g. `issued`, `expired`).
    pub razorpay_status: Option<String>,
    pub payment_url: Option<String>,
    /// How the Razorpay invoice expresses the amount: `itemized` or `balance` (and why).
    pub form: Option<String>,
    pub form_reason: Option<String>,
    /// What the Razorpay invoice asks.
    pub amount: Option<Money>,
    pub last_error: Option<String>,
    pub skip_reason: Option<String>,
    pub review: Option<String>,
    pub cancel_reason: Option<String>,
    /// The Razorpay invoice id and URL are in the Flexprice invoice's metadata.
    pub metadata_written: bool,
    /// Epoch seconds.
    pub created_at: u64,
    pub updated_at: u64,
}

/// Whether a resumed sync may adopt the Razorpay invoice it found by receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Adoption {
    /// It is what the invoice owes now (or was paid already: its money is counted by its
    /// events, so it must be mapped).
    Adopt,
    /// It is not: closed at Razorpay, or asking another amount (then `cancel` it first); the
    /// next attempt issues a new one under the next receipt.
    Replace { cancel: bool, reason: String },
}

/// The rule for a Razorpay invoice in `status` asking `amount_minor`, when `asked_minor` is
/// what the invoice's share is now.
pub fn adoption(status: &str, amount_minor: u64, asked_minor: u64) -> Adoption {
    match status {
        "issued" | "draft" if amount_minor == asked_minor => Adoption::Adopt,
        "paid" | "partially_paid" => Adoption::Adopt,
        "issued" | "draft" => Adoption::Replace {
            cancel: true,
            reason: format!(
                "it asks {amount_minor} subunits, the invoice's share is {asked_minor}"
            ),
        },
        other => Adoption::Replace {
            cancel: false,
            reason: format!("it is {other}"),
        },
    }
}

/// Razorpay's cap on a receipt's length.
pub const MAX_RECEIPT: usize = 40;

/// The receipt of a Flexprice invoice's `issue`-th Razorpay invoice: its id for the first (how
/// a resumed sync finds it), `{id}/{issue}` after; an id too long for the suffix gives way to
/// a digest of it (still one receipt per invoice and issue).
pub fn receipt(invoice_id: &str, issue: u64) -> String {
    if issue == 0 {
        return invoice_id.to_owned();
    }
    let suffix = format!("/{issue}");
    if invoice_id.len() + suffix.len() <= MAX_RECEIPT {
        return format!("{invoice_id}{suffix}");
    }
    use sha2::{Digest, Sha256};
    let digest = hex::encode(Sha256::digest(invoice_id.as_bytes()));
    format!("{}{suffix}", &digest[..MAX_RECEIPT - suffix.len()])
}

/// What a Razorpay invoice made for a sync is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MadeInvoice {
    pub razorpay_invoice_id: String,
    pub razorpay_status: String,
    pub payment_url: Option<String>,
    pub form: String,
    pub form_reason: Option<String>,
    pub amount: Money,
}

/// A change to an invoice's sync record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncChange {
    /// A job claims the invoice until `lease_until` (epoch ms).
    Claimed {
        lease_until: u64,
        customer_id: String,
    },
    /// A job claims a synced invoice whose Razorpay invoice closed, to issue the next one: the
    /// closed one is forgotten here (its reverse mapping stays, for late events).
    Reissued {
        lease_until: u64,
        customer_id: String,
    },
    /// The claiming job gives the invoice up, saying why (its retry resumes at once).
    LeaseReleased {
        reason: String,
    },
    /// Its Razorpay invoice exists.
    Synced(MadeInvoice),
    MetadataWritten,
    Skipped {
        reason: String,
        customer_id: Option<String>,
    },
    /// A refusal retrying will not fix.
    Failed {
        reason: String,
    },
    /// Voided in Flexprice; its Razorpay invoice (if any) is closed.
    Cancelled {
        razorpay_invoice_id: Option<String>,
        razorpay_status: Option<String>,
        reason: String,
    },
    /// Voided in Flexprice but paid in Razorpay.
    Review {
        reason: String,
        razorpay_invoice_id: String,
    },
    /// Razorpay says its invoice is now `status`.
    RazorpayStatus {
        status: String,
    },
}

impl InvoiceSync {
    /// The record a first change creates (every creating change sets the state).
    pub fn first(invoice_id: &str, change: SyncChange, now_secs: u64) -> InvoiceSync {
        InvoiceSync {
            invoice_id: invoice_id.to_owned(),
            state: SyncState::Failed,
            version: 0,
            lease_until: None,
            attempts: 0,
            issue: 0,
            customer_id: None,
            razorpay_invoice_id: None,
            razorpay_status: None,
            payment_url: None,
            form: None,
            form_reason: None,
            amount: None,
            last_error: None,
            skip_reason: None,
            review: None,
            cancel_reason: None,
            metadata_written: false,
            created_at: now_secs,
            updated_at: now_secs,
        }
        .with(change, now_secs)
    }

    /// A job's lease is still held at `now_ms`.
    pub fn leased(&self, now_ms: u64) -> bool {
        self.lease_until.unwrap_or(0) > now_ms
    }

    /// The record as the rules see it.
    pub fn found(&self, now_ms: u64) -> Found {
        Found {
            state: self.state,
            lease_live: self.leased(now_ms),
            razorpay_closed: matches!(
                self.razorpay_status.as_deref(),
                Some("expired" | "cancelled")
            ),
        }
    }

    /// The receipt of its current Razorpay invoice.
    pub fn receipt(&self) -> String {
        receipt(&self.invoice_id, self.issue)
    }

    /// Its Razorpay invoice exists: SYNCED, the lease and the last error gone.
    fn synced(mut self, made: MadeInvoice) -> InvoiceSync {
        self.state = SyncState::Synced;
        self.lease_until = None;
        self.last_error = None;
        self.razorpay_invoice_id = Some(made.razorpay_invoice_id);
        self.razorpay_status = Some(made.razorpay_status);
        self.form = Some(made.form);
        self.form_reason = made.form_reason;
        self.amount = Some(made.amount);
        self.payment_url = made.payment_url.or(self.payment_url);
        self
    }

    /// Claimed for the next receipt: the closed Razorpay invoice forgotten.
    fn reissued(self, lease_until: u64, customer_id: String, now_secs: u64) -> InvoiceSync {
        let claimed = SyncChange::Claimed {
            lease_until,
            customer_id,
        };
        let mut next = self.with(claimed, now_secs);
        next.issue += 1;
        next.razorpay_invoice_id = None;
        next.razorpay_status = None;
        next.payment_url = None;
        next.amount = None;
        next.metadata_written = false;
        next
    }

    /// The record after `change` (the version is the store's to bump).
    pub fn with(mut self, change: SyncChange, now_secs: u64) -> InvoiceSync {
        self.updated_at = now_secs;
        match change {
            SyncChange::Claimed {
                lease_until,
                customer_id,
            } => {
                self.state = SyncState::Syncing;
                self.lease_until = Some(lease_until);
                self.attempts += 1;
                self.customer_id = Some(customer_id);
            }
            SyncChange::Reissued {
                lease_until,
                customer_id,
            } => return self.reissued(lease_until, customer_id, now_secs),
            SyncChange::LeaseReleased { reason } => {
                self.lease_until = None;
                self.last_error = Some(reason);
            }
            SyncChange::Synced(made) => return self.synced(made),
            SyncChange::MetadataWritten => self.metadata_written = true,
            SyncChange::Skipped {
                reason,
                customer_id,
            } => {
                self.state = SyncState::Skipped;
                self.skip_reason = Some(reason);
                self.customer_id = customer_id.or(self.customer_id);
            }
            SyncChange::Failed { reason } => {
                self.state = SyncState::Failed;
                self.lease_until = None;
                self.last_error = Some(reason);
            }
            SyncChange::Cancelled {
                razorpay_invoice_id,
                razorpay_status,
                reason,
            } => {
                self.state = SyncState::Cancelled;
                self.razorpay_invoice_id = razorpay_invoice_id.or(self.razorpay_invoice_id);
                self.razorpay_status = razorpay_status.or(self.razorpay_status);
                self.cancel_reason = Some(reason);
            }
            SyncChange::Review {
                reason,
                razorpay_invoice_id,
            } => {
                self.state = SyncState::Review;
                self.review = Some(reason);
                self.razorpay_invoice_id = Some(razorpay_invoice_id);
            }
            SyncChange::RazorpayStatus { status } => self.razorpay_status = Some(status),
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::SyncState::*;
    use super::*;

    fn found(state: SyncState, lease_live: bool) -> Option<Found> {
        Some(Found {
            state,
            lease_live,
            razorpay_closed: false,
        })
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
            (
                Some(Found {
                    state: Synced,
                    lease_live: false,
                    razorpay_closed: true,
                }),
                SyncStart::Reissue,
            ),
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
    fn a_claim_then_a_release_then_success_clear_the_lease_and_the_error() {
        let claimed = InvoiceSync::first(
            "inv_1",
            SyncChange::Claimed {
                lease_until: 2_000,
                customer_id: "cust_1".into(),
            },
            1,
        );
        assert_eq!((claimed.state, claimed.attempts), (Syncing, 1));
        assert!(claimed.leased(1_999) && !claimed.leased(2_000));
        let released = claimed.with(
            SyncChange::LeaseReleased {
                reason: "Razorpay: 503".into(),
            },
            2,
        );
        assert!(!released.leased(0));
        assert_eq!(released.found(0).state, Syncing);
        let inr = crate::domain::money::Currency::from_code("INR").unwrap();
        let synced = released.with(
            SyncChange::Synced(MadeInvoice {
                razorpay_invoice_id: "inv_R".into(),
                razorpay_status: "issued".into(),
                payment_url: Some("https://rzp.io/i/R".into()),
                form: "itemized".into(),
                form_reason: None,
                amount: Money::from_minor(100_000, inr),
            }),
            3,
        );
        assert_eq!(synced.state, Synced);
        assert_eq!((synced.last_error, synced.lease_until), (None, None));
        assert_eq!(synced.customer_id.as_deref(), Some("cust_1"));
        assert_eq!(synced.attempts, 1);
    }

    #[test]
    fn a_reissue_claims_the_next_receipt_and_forgets_the_closed_invoice() {
        let inr = crate::domain::money::Currency::from_code("INR").unwrap();
        let synced = InvoiceSync::first(
            "inv_1",
            SyncChange::Claimed {
                lease_until: 2_000,
                customer_id: "cust_1".into(),
            },
            1,
        )
        .with(
            SyncChange::Synced(MadeInvoice {
                razorpay_invoice_id: "inv_R".into(),
                razorpay_status: "issued".into(),
                payment_url: Some("u".into()),
                form: "itemized".into(),
                form_reason: None,
                amount: Money::from_minor(100, inr),
            }),
            2,
        )
        .with(SyncChange::MetadataWritten, 3)
        .with(
            SyncChange::RazorpayStatus {
                status: "expired".into(),
            },
            4,
        );
        assert_eq!(on_sync(Some(synced.found(0))), SyncStart::Reissue);
        let again = synced.with(
            SyncChange::Reissued {
                lease_until: 9_000,
                customer_id: "cust_1".into(),
            },
            5,
        );
        assert_eq!((again.state, again.issue, again.attempts), (Syncing, 1, 2));
        assert_eq!(
            (&again.razorpay_invoice_id, &again.payment_url),
            (&None, &None)
        );
        assert!(!again.metadata_written);
        assert_eq!(again.receipt(), "inv_1/1");
    }

    #[test]
    fn a_resumed_sync_adopts_only_what_fits() {
        assert_eq!(adoption("issued", 100, 100), Adoption::Adopt);
        assert_eq!(adoption("paid", 100, 60), Adoption::Adopt);
        assert!(matches!(
            adoption("issued", 100, 60),
            Adoption::Replace { cancel: true, .. }
        ));
        assert!(matches!(
            adoption("expired", 100, 100),
            Adoption::Replace { cancel: false, .. }
        ));
        assert!(matches!(
            adoption("cancelled", 100, 100),
            Adoption::Replace { cancel: false, .. }
        ));
        let closed = Some(Found {
            state: Syncing,
            lease_live: false,
            razorpay_closed: true,
        });
        assert_eq!(on_sync(closed), SyncStart::Reissue);
    }

    #[test]
    fn receipts_stay_within_razorpay_s_forty_characters() {
        assert_eq!(receipt("inv_1", 0), "inv_1");
        assert_eq!(receipt("inv_1", 12), "inv_1/12");
        let long = "i".repeat(40);
        assert_eq!(receipt(&long, 0), long);
        let reissued = receipt(&long, 3);
        assert_eq!(reissued.len(), MAX_RECEIPT);
        assert!(reissued.ends_with("/3"));
        assert_ne!(reissued, receipt(&"j".repeat(40), 3));
    }

    #[test]
    fn a_skip_keeps_what_it_does_not_name() {
        let failed = InvoiceSync::first(
            "inv_1",
            SyncChange::Failed {
                reason: "refused".into(),
            },
            1,
        );
        let skipped = failed.with(
            SyncChange::Skipped {
                reason: "paid".into(),
                customer_id: None,
            },
            2,
        );
        assert_eq!(skipped.state, Skipped);
        assert_eq!(skipped.last_error.as_deref(), Some("refused"));
        assert_eq!((skipped.created_at, skipped.updated_at), (1, 2));
    }

    #[test]
    fn states_read_back_as_stored() {
        for state in SyncState::ALL {
            assert_eq!(SyncState::parse(state.as_str()), Some(state));
        }
        assert_eq!(SyncState::parse("synced"), None);
    }
}
