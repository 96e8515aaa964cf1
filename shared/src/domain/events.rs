//! The webhook event log: every verified event a tenant's webhook routes took, with its body
//! (for a replay) and what became of it, and the refusals counted by reason (an unverified
//! body is never stored).
//!
//! An event is received once (the claim on its id), queued for the worker, and settled by the
//! worker with an [`Outcome`]; each settling is a [`Step`] of its history, so a replay or a
//! second job for the same event shows beside the first.

use serde::{Deserialize, Serialize};

/// Which provider sent the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Razorpay,
    Flexprice,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Razorpay => "razorpay",
            Source::Flexprice => "flexprice",
        }
    }

    pub fn parse(text: &str) -> Option<Source> {
        match text {
            "razorpay" => Some(Source::Razorpay),
            "flexprice" => Some(Source::Flexprice),
            _ => None,
        }
    }

    /// The kind of the event's item (one per source, so ids never collide across them).
    pub fn kind(self) -> &'static str {
        match self {
            Source::Razorpay => "EVENT",
            Source::Flexprice => "FLEXPRICE_EVENT",
        }
    }
}

/// The event a job was queued for: the worker settles it with the job's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRef {
    pub source: Source,
    pub id: String,
    /// Queued by a replay asked through the API.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replay: bool,
}

/// What became of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Received and queued; the worker has not settled it yet.
    Queued,
    /// Its change was made.
    Applied,
    /// Its change had been made before (another event, a redelivery or a replay).
    Duplicate,
    /// Nothing to do: a kind flexrzp does not apply, or about something flexrzp did not make.
    Ignored,
    /// It failed for now and comes back (the reason says why).
    Retrying,
    /// It failed for good and is parked for a person (the reason says why).
    Parked,
}

impl Outcome {
    pub const ALL: [Outcome; 6] = [
        Outcome::Queued,
        Outcome::Applied,
        Outcome::Duplicate,
        Outcome::Ignored,
        Outcome::Retrying,
        Outcome::Parked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Queued => "queued",
            Outcome::Applied => "applied",
            Outcome::Duplicate => "duplicate",
            Outcome::Ignored => "ignored",
            Outcome::Retrying => "retrying",
            Outcome::Parked => "parked",
        }
    }

    pub fn parse(text: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == text)
    }

    /// Whether the worker is done with the event (a redelivery is then a duplicate).
    pub fn is_final(self) -> bool {
        !matches!(self, Outcome::Queued | Outcome::Retrying)
    }
}

/// One settling of an event, in its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub at_ms: u64,
    pub outcome: Outcome,
    pub reason: Option<String>,
    /// Settled from a replay asked through the API, not from Razorpay's delivery.
    pub replay: bool,
}

/// A history keeps this many steps (the newest); the record stays far below DynamoDB's item
/// limit with the largest body.
pub const MAX_STEPS: usize = 20;

/// One received event, as the log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    pub source: Source,
    pub event_id: String,
    /// The provider's event type (`payment.captured`, `invoice.update.finalized`).
    pub event_type: String,
    pub received_at_ms: u64,
    /// The verified body, exactly as received (bounded by the intake's size limit).
    pub body: String,
    /// The latest outcome.
    pub outcome: Outcome,
    pub reason: Option<String>,
    /// The Flexprice invoice the event is about, once known.
    pub invoice_id: Option<String>,
    pub history: Vec<Step>,
    /// Bumped by each settling (two workers settling at once do not lose a step).
    pub version: u64,
}

impl WebhookEvent {
    /// An event just received: queued for the worker, no history yet.
    pub fn received(
        source: Source,
        event_id: &str,
        event_type: &str,
        received_at_ms: u64,
        body: String,
    ) -> WebhookEvent {
        WebhookEvent {
            source,
            event_id: event_id.to_owned(),
            event_type: event_type.to_owned(),
            received_at_ms,
            body,
            outcome: Outcome::Queued,
            reason: None,
            invoice_id: None,
            history: Vec::new(),
            version: 0,
        }
    }

    /// The step as the newest of the history, and the event's latest outcome; `false` (and
    /// nothing changed) when it only repeats the newest step (a job failing the same way on
    /// each redelivery writes its history once).
    pub fn settle(&mut self, step: Step) -> bool {
        let repeats = self.history.last().is_some_and(|last| {
            last.outcome == step.outcome && last.reason == step.reason && last.replay == step.replay
        });
        if repeats {
            return false;
        }
        self.outcome = step.outcome;
        self.reason.clone_from(&step.reason);
        self.history.push(step);
        let extra = self.history.len().saturating_sub(MAX_STEPS);
        self.history.drain(..extra);
        true
    }

    /// [`WebhookEvent::settle`], learning the event's invoice too if it did not know it;
    /// `false` when neither is new (there is nothing to write).
    pub fn settle_about(&mut self, step: Step, invoice_id: Option<&str>) -> bool {
        let learned = invoice_id.filter(|_| self.invoice_id.is_none());
        if let Some(invoice_id) = learned {
            self.invoice_id = Some(invoice_id.to_owned());
        }
        self.settle(step) || learned.is_some()
    }
}

/// What a job that ended well came to, for its event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    /// It made its change.
    Applied,
    /// The change had been made before (why).
    Duplicate(String),
    /// There was nothing for flexrzp to do (why).
    Ignored(String),
}

/// How a job's end settles its event: a failure that comes back is `retrying`, one that
/// does not (permanent, or the last try) is `parked`, both with the failure as the reason.
pub fn step_of(done: Result<&Done, (&str, bool)>, at_ms: u64, replay: bool) -> Step {
    let (outcome, reason) = match done {
        Ok(Done::Applied) => (Outcome::Applied, None),
        Ok(Done::Duplicate(why)) => (Outcome::Duplicate, Some(why.clone())),
        Ok(Done::Ignored(why)) => (Outcome::Ignored, Some(why.clone())),
        Err((reason, true)) => (Outcome::Retrying, Some(reason.to_owned())),
        Err((reason, false)) => (Outcome::Parked, Some(reason.to_owned())),
    };
    Step {
        at_ms,
        outcome,
        reason,
        replay,
    }
}

/// Why a delivery was refused before it could be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refused {
    /// The signature header was missing, stale or did not match.
    BadSignature,
    /// The event names another Razorpay account than the connection's.
    WrongAccount,
}

impl Refused {
    pub const ALL: [Refused; 2] = [Refused::BadSignature, Refused::WrongAccount];

    pub fn as_str(self) -> &'static str {
        match self {
            Refused::BadSignature => "bad_signature",
            Refused::WrongAccount => "wrong_account",
        }
    }
}

/// Which events a listing wants: newest first, received at or after `since_ms`, of one type
/// and one outcome if given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub since_ms: Option<u64>,
    pub event_type: Option<String>,
    pub outcome: Option<Outcome>,
    pub limit: usize,
}

impl EventFilter {
    pub fn matches(&self, event: &WebhookEvent) -> bool {
        self.since_ms.is_none_or(|s| event.received_at_ms >= s)
            && self
                .event_type
                .as_deref()
                .is_none_or(|t| event.event_type == t)
            && self.outcome.is_none_or(|o| event.outcome == o)
    }
}

/// The position of an event in its scope's log: newest first, the received time then the
/// source and id breaking ties (what a listing's cursor carries).
pub fn log_position(event: &WebhookEvent) -> String {
    position(event.received_at_ms, event.source.kind(), &event.event_id)
}

/// A log position from its parts; times are zero-padded so the text sorts as the number.
pub fn position(received_at_ms: u64, kind: &str, event_id: &str) -> String {
    format!("{received_at_ms:015}#{kind}#{event_id}")
}

/// The parts of a log position (`None` if it is not one).
pub fn parse_position(text: &str) -> Option<(u64, Source, &str)> {
    let mut parts = text.splitn(3, '#');
    let at = parts.next()?.parse().ok()?;
    let source = match parts.next()? {
        "EVENT" => Source::Razorpay,
        "FLEXPRICE_EVENT" => Source::Flexprice,
        _ => return None,
    };
    let id = parts.next().filter(|id| !id.is_empty())?;
    Some((at, source, id))
}

/// The UTC day (`YYYY-MM-DD`) of a time in milliseconds since the epoch: refusals are
/// counted per day.
pub fn day_of(millis: u64) -> String {
    // Days to a civil date (Howard Hinnant's algorithm), for days since 1970-01-01.
    let days = millis / 86_400_000 + 719_468;
    let era = days / 146_097;
    let doe = days % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// A page of the log and where the next one starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventPage {
    pub events: Vec<WebhookEvent>,
    /// The position after which the next page starts, if more may follow.
    pub next: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(at: u64) -> WebhookEvent {
        WebhookEvent::received(
            Source::Razorpay,
            "evt_1",
            "payment.captured",
            at,
            "{}".into(),
        )
    }

    #[test]
    fn positions_sort_as_times_and_parse_back() {
        let early = log_position(&event(9));
        let late = log_position(&event(10));
        assert!(early < late);
        assert_eq!(parse_position(&late), Some((10, Source::Razorpay, "evt_1")));
        assert_eq!(parse_position("12#OTHER#x"), None);
        assert_eq!(parse_position("12#EVENT#"), None);
        assert_eq!(parse_position("x#EVENT#evt"), None);
    }

    #[test]
    fn days_are_utc_calendar_days() {
        assert_eq!(day_of(0), "1970-01-01");
        assert_eq!(day_of(951_782_400_000), "2000-02-29");
        assert_eq!(day_of(1_796_256_000_000 - 1), "2026-12-02");
        assert_eq!(day_of(1_796_256_000_000), "2026-12-03");
    }

    #[test]
    fn a_history_keeps_its_newest_steps_and_the_latest_outcome() {
        let mut e = event(1);
        for i in 0..(MAX_STEPS as u64 + 5) {
            let _ = e.settle(Step {
                at_ms: i,
                outcome: Outcome::Retrying,
                reason: Some(format!("try {i}")),
                replay: false,
            });
        }
        assert!(e.settle(Step {
            at_ms: 99,
            outcome: Outcome::Applied,
            reason: None,
            replay: true,
        }));
        let again = step_of(Ok(&Done::Applied), 100, true);
        assert!(
            !e.settle(again),
            "a repeat of the newest step is not written"
        );
        assert_eq!(e.history.len(), MAX_STEPS);
        assert_eq!(e.outcome, Outcome::Applied);
        assert_eq!(e.reason, None);
        assert_eq!(e.history.last().map(|s| s.at_ms), Some(99));
        assert!(!Outcome::Retrying.is_final() && Outcome::Duplicate.is_final());
    }

    #[test]
    fn a_filter_takes_since_type_and_outcome() {
        let e = event(100);
        assert!(EventFilter::default().matches(&e));
        let since = |s| EventFilter {
            since_ms: Some(s),
            ..EventFilter::default()
        };
        assert!(since(100).matches(&e) && !since(101).matches(&e));
        let typed = EventFilter {
            event_type: Some("payment.failed".into()),
            ..EventFilter::default()
        };
        assert!(!typed.matches(&e));
        let parked = EventFilter {
            outcome: Some(Outcome::Parked),
            ..EventFilter::default()
        };
        assert!(!parked.matches(&e));
        assert_eq!(Outcome::parse("parked"), Some(Outcome::Parked));
        assert_eq!(Outcome::parse("nope"), None);
    }
}
