//! The reconciliation sweep's rules (`docs/architecture.md` §3.6): webhooks are a trigger, not
//! the truth. Each run of a tenant's sweep reads Razorpay's payments created since its
//! watermark (less an overlap), leaving the last minutes to the webhooks, and re-reads the
//! failed payments it saw for three days (a late authorisation can still capture them). What it
//! applies that no webhook brought is counted: the webhook looks disabled. Refunds are read the
//! same way: those created in the window, and the payments with a refund still pending are
//! re-read until it settles (a normal refund takes days).

use serde::{Deserialize, Serialize};

/// The last minutes are left to the webhooks (a sweep that raced them would count every
/// payment as missed).
pub const GRACE_SECS: u64 = 120;
/// Payments created just before the watermark may be listed late: read again.
pub const OVERLAP_SECS: u64 = 600;
/// A tenant's first sweep looks this far back.
pub const FIRST_LOOKBACK_SECS: u64 = 3 * 24 * 3600;
/// Razorpay keeps asking the bank about a failed payment for up to three days.
pub const WATCH_FAILED_SECS: u64 = 3 * 24 * 3600;
/// A normal refund is paid out within 5–7 working days; its payment is watched this long.
pub const WATCH_REFUNDS_SECS: u64 = 15 * 24 * 3600;
/// At most this many failed payments are watched (the oldest give way).
pub const MAX_WATCHED: usize = 500;
/// A webhook that missed something is reported degraded for this long.
pub const DEGRADED_FOR_SECS: u64 = 24 * 3600;

/// A failed Razorpay payment, watched for a late capture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watched {
    pub razorpay_payment_id: String,
    /// When it was created (epoch seconds).
    pub since: u64,
}

/// One tenant's sweep, as stored between runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepState {
    /// Payments created before this (epoch seconds) were read by an earlier run.
    pub watermark: Option<u64>,
    pub watching: Vec<Watched>,
    /// Payments with a refund still pending.
    pub refunds_watching: Vec<Watched>,
    /// How many things the sweep applied that no webhook had brought, in all.
    pub missed: u64,
    pub last_missed_at: Option<u64>,
    pub last_run_at: Option<u64>,
    pub version: u64,
}

/// What a run found, to be folded into the state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFindings {
    /// The end of the window read.
    pub until: u64,
    /// Failed payments seen (listed, or re-read and still failed).
    pub failed: Vec<Watched>,
    /// Payments no longer to watch (captured, or anything but failed).
    pub settled: Vec<String>,
    /// Payments with a refund seen pending.
    pub refunds_pending: Vec<Watched>,
    /// Payments whose refunds were all read settled.
    pub refunds_settled: Vec<String>,
    /// Changes applied that no webhook had brought.
    pub missed: u64,
}

/// Whether the tenant's Razorpay webhook looks healthy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum WebhookHealth {
    /// The sweep has found nothing a webhook missed in the last day (or has not run yet).
    Healthy { last_sweep_at: Option<u64> },
    /// The sweep applied payments or link changes no webhook brought: Razorpay may have
    /// disabled the webhook (it does after a day of failed deliveries).
    Degraded {
        last_missed_at: u64,
        missed: u64,
        last_sweep_at: Option<u64>,
    },
}

impl SweepState {
    /// The creation times to read this run: `[from, to)`. `scale` divides the grace and the
    /// overlap (the local stack runs its schedules faster).
    pub fn window(&self, now: u64, scale: u32) -> (u64, u64) {
        let scale = u64::from(scale.max(1));
        let to = now.saturating_sub(GRACE_SECS / scale);
        let from = self.watermark.map_or_else(
            || now.saturating_sub(FIRST_LOOKBACK_SECS),
            |w| w.saturating_sub(OVERLAP_SECS / scale),
        );
        (from.min(to), to)
    }

    /// The state after a run that read up to `findings.until`.
    pub fn after_run(&self, now: u64, findings: RunFindings) -> SweepState {
        let watching = watch(
            &self.watching,
            &findings.failed,
            &findings.settled,
            now,
            WATCH_FAILED_SECS,
        );
        let refunds_watching = watch(
            &self.refunds_watching,
            &findings.refunds_pending,
            &findings.refunds_settled,
            now,
            WATCH_REFUNDS_SECS,
        );
        SweepState {
            watermark: Some(findings.until.max(self.watermark.unwrap_or(0))),
            watching,
            refunds_watching,
            missed: self.missed + findings.missed,
            last_missed_at: if findings.missed > 0 {
                Some(now)
            } else {
                self.last_missed_at
            },
            last_run_at: Some(now),
            version: self.version,
        }
    }

    pub fn health(&self, now: u64) -> WebhookHealth {
        match self.last_missed_at {
            Some(at) if now.saturating_sub(at) < DEGRADED_FOR_SECS => WebhookHealth::Degraded {
                last_missed_at: at,
                missed: self.missed,
                last_sweep_at: self.last_run_at,
            },
            _ => WebhookHealth::Healthy {
                last_sweep_at: self.last_run_at,
            },
        }
    }
}

/// What is watched after a run: what was, and what was `found`, less the `settled` and those
/// watched `for_secs` already; newest first, once each, at most [`MAX_WATCHED`].
fn watch(
    watched: &[Watched],
    found: &[Watched],
    settled: &[String],
    now: u64,
    for_secs: u64,
) -> Vec<Watched> {
    let mut watching: Vec<Watched> = watched
        .iter()
        .chain(found.iter())
        .filter(|w| !settled.contains(&w.razorpay_payment_id))
        .filter(|w| now.saturating_sub(w.since) < for_secs)
        .cloned()
        .collect();
    watching.sort_by_key(|w| std::cmp::Reverse(w.since));
    let mut seen = std::collections::HashSet::new();
    watching.retain(|w| seen.insert(w.razorpay_payment_id.clone()));
    watching.truncate(MAX_WATCHED);
    watching
}

/// A token bucket: `capacity` calls at once, refilled at `per_sec`; `wait_ms` says how long to
/// wait before the next call may go (0: go now, and the token is taken).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBucket {
    capacity: f64,
    per_sec: f64,
    tokens: f64,
    at_ms: u64,
}

impl TokenBucket {
    pub fn new(capacity: u32, per_sec: u32, now_ms: u64) -> TokenBucket {
        TokenBucket {
            capacity: f64::from(capacity),
            per_sec: f64::from(per_sec.max(1)),
            tokens: f64::from(capacity),
            at_ms: now_ms,
        }
    }

    pub fn wait_ms(&mut self, now_ms: u64) -> u64 {
        let elapsed = now_ms.saturating_sub(self.at_ms) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.capacity);
        self.at_ms = now_ms;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return 0;
        }
        (((1.0 - self.tokens) / self.per_sec) * 1000.0).ceil() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    #[test]
    fn the_window_starts_three_days_back_then_overlaps_the_last_run_and_leaves_the_grace() {
        let first = SweepState::default();
        assert_eq!(
            first.window(NOW, 1),
            (NOW - FIRST_LOOKBACK_SECS, NOW - GRACE_SECS)
        );
        let later = first.after_run(
            NOW,
            RunFindings {
                until: NOW - GRACE_SECS,
                ..RunFindings::default()
            },
        );
        assert_eq!(
            later.window(NOW + 900, 1),
            (NOW - GRACE_SECS - OVERLAP_SECS, NOW + 900 - GRACE_SECS)
        );
        assert_eq!(
            first.window(NOW, 60).1,
            NOW - 2,
            "the local stack's grace: 2 s"
        );
    }

    #[test]
    fn failed_payments_are_watched_for_three_days_unless_settled_and_bounded() {
        let watched = |id: &str, since| Watched {
            razorpay_payment_id: id.into(),
            since,
        };
        let state = SweepState::default().after_run(
            NOW,
            RunFindings {
                until: NOW,
                failed: vec![
                    watched("pay_a", NOW - 100),
                    watched("pay_old", NOW - WATCH_FAILED_SECS),
                ],
                ..RunFindings::default()
            },
        );
        assert_eq!(state.watching, [watched("pay_a", NOW - 100)]);
        let again = state.after_run(
            NOW + 10,
            RunFindings {
                until: NOW + 10,
                failed: vec![watched("pay_a", NOW - 100)],
                ..RunFindings::default()
            },
        );
        assert_eq!(again.watching.len(), 1, "no duplicates");
        let settled = again.after_run(
            NOW + 20,
            RunFindings {
                until: NOW + 20,
                settled: vec!["pay_a".into()],
                ..RunFindings::default()
            },
        );
        assert!(settled.watching.is_empty());
        let many: Vec<Watched> = (0..MAX_WATCHED as u64 + 10)
            .map(|n| watched(&format!("pay_{n}"), NOW - n))
            .collect();
        let bounded = SweepState::default().after_run(
            NOW,
            RunFindings {
                until: NOW,
                failed: many,
                ..RunFindings::default()
            },
        );
        assert_eq!(bounded.watching.len(), MAX_WATCHED);
        assert_eq!(
            bounded.watching[0].razorpay_payment_id, "pay_0",
            "newest kept"
        );
    }

    #[test]
    fn a_miss_marks_the_webhook_degraded_for_a_day() {
        let state = SweepState::default();
        assert!(matches!(
            state.health(NOW),
            WebhookHealth::Healthy {
                last_sweep_at: None
            }
        ));
        let missed = state.after_run(
            NOW,
            RunFindings {
                until: NOW,
                missed: 3,
                ..RunFindings::default()
            },
        );
        assert_eq!(
            missed.health(NOW + 60),
            WebhookHealth::Degraded {
                last_missed_at: NOW,
                missed: 3,
                last_sweep_at: Some(NOW)
            }
        );
        let quiet = missed.after_run(NOW + DEGRADED_FOR_SECS, RunFindings::default());
        assert!(matches!(
            quiet.health(NOW + DEGRADED_FOR_SECS),
            WebhookHealth::Healthy { .. }
        ));
        assert_eq!(quiet.watermark, Some(NOW), "the watermark never goes back");
    }

    #[test]
    fn the_bucket_lets_a_burst_through_then_paces() {
        let mut bucket = TokenBucket::new(2, 10, 0);
        assert_eq!((bucket.wait_ms(0), bucket.wait_ms(0)), (0, 0));
        assert_eq!(bucket.wait_ms(0), 100);
        assert_eq!(bucket.wait_ms(100), 0);
    }
}
