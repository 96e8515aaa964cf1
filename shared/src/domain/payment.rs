//! Our payment's states and the rules that move it (`docs/architecture.md` §4). Pure: the
//! services read the current state, ask [`PaymentStatus::on`] what an event does, and write the
//! answer with a condition on the state they read.

use std::fmt;

/// Where a payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentStatus {
    /// Being created: held by one request (a short lock), not yet a link to pay.
    Initiated,
    /// A link the customer can pay.
    Pending,
    /// The money it asked for is counted. Final: nothing moves a payment out of it.
    Succeeded,
    /// Its link expired or was cancelled unpaid.
    Failed,
}

impl PaymentStatus {
    pub const ALL: [PaymentStatus; 4] = [
        PaymentStatus::Initiated,
        PaymentStatus::Pending,
        PaymentStatus::Succeeded,
        PaymentStatus::Failed,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Initiated => "INITIATED",
            PaymentStatus::Pending => "PENDING",
            PaymentStatus::Succeeded => "SUCCEEDED",
            PaymentStatus::Failed => "FAILED",
        }
    }

    /// The stored spelling back; `None` for anything else.
    pub fn parse(text: &str) -> Option<PaymentStatus> {
        PaymentStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// What `event` does to a payment in this state.
    pub fn on(self, event: PaymentEvent) -> Change {
        use PaymentStatus::*;
        match (self, event) {
            (Initiated, PaymentEvent::LinkCreated) => Change::to(Pending),
            (_, PaymentEvent::LinkCreated) => Change::None,
            // All it asked for is in: SUCCEEDED, from anywhere. Money that came after the
            // payment had failed is real and recorded, but a person should look.
            (Failed, PaymentEvent::MoneyCounted { paid, asked }) if paid >= asked => {
                Change::to_review(Succeeded)
            }
            (_, PaymentEvent::MoneyCounted { paid, asked }) if paid >= asked => {
                Change::to(Succeeded)
            }
            // Part of it: a failed payment is open again (someone paid on it); the others stay.
            (Failed, PaymentEvent::MoneyCounted { .. }) => Change::to_review(Pending),
            (_, PaymentEvent::MoneyCounted { .. }) => Change::None,
            // A failed attempt is recorded beside the payment; the customer may try again.
            (_, PaymentEvent::AttemptFailed) => Change::None,
            (Initiated | Pending, PaymentEvent::LinkEnded) => Change::to(Failed),
            (Succeeded | Failed, PaymentEvent::LinkEnded) => Change::None,
        }
    }
}

impl fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened to a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentEvent {
    /// Its Razorpay link was created (or adopted).
    LinkCreated,
    /// A captured Razorpay payment was counted on it: `paid` in all now, of `asked`
    /// (subunits).
    MoneyCounted { paid: u64, asked: u64 },
    /// A try to pay failed (`payment.failed`).
    AttemptFailed,
    /// Its link expired or was cancelled.
    LinkEnded,
}

/// The answer of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The status stays as it is.
    None,
    /// The status becomes `to`; with `review`, a person should look at the payment.
    To { to: PaymentStatus, review: bool },
}

impl Change {
    fn to(to: PaymentStatus) -> Change {
        Change::To { to, review: false }
    }

    fn to_review(to: PaymentStatus) -> Change {
        Change::To { to, review: true }
    }

    /// The status after the change, given the one before.
    pub fn status(self, before: PaymentStatus) -> PaymentStatus {
        match self {
            Change::None => before,
            Change::To { to, .. } => to,
        }
    }

    pub fn needs_review(self) -> bool {
        matches!(self, Change::To { review: true, .. })
    }
}

#[cfg(test)]
mod tests {
    use super::PaymentEvent::*;
    use super::PaymentStatus::*;
    use super::*;

    const ALL_IN: PaymentEvent = MoneyCounted {
        paid: 100,
        asked: 100,
    };
    const MORE: PaymentEvent = MoneyCounted {
        paid: 150,
        asked: 100,
    };
    const PART: PaymentEvent = MoneyCounted {
        paid: 40,
        asked: 100,
    };

    /// Every state against every event: (before, event, after, review).
    const RULES: &[(PaymentStatus, PaymentEvent, PaymentStatus, bool)] = &[
        (Initiated, LinkCreated, Pending, false),
        (Pending, LinkCreated, Pending, false),
        (Succeeded, LinkCreated, Succeeded, false),
        (Failed, LinkCreated, Failed, false),
        (Initiated, ALL_IN, Succeeded, false),
        (Pending, ALL_IN, Succeeded, false),
        (Pending, MORE, Succeeded, false),
        (Succeeded, ALL_IN, Succeeded, false),
        (Failed, ALL_IN, Succeeded, true),
        (Pending, PART, Pending, false),
        (Initiated, PART, Initiated, false),
        (Succeeded, PART, Succeeded, false),
        (Failed, PART, Pending, true),
        (Initiated, AttemptFailed, Initiated, false),
        (Pending, AttemptFailed, Pending, false),
        (Succeeded, AttemptFailed, Succeeded, false),
        (Failed, AttemptFailed, Failed, false),
        (Initiated, LinkEnded, Failed, false),
        (Pending, LinkEnded, Failed, false),
        (Succeeded, LinkEnded, Succeeded, false),
        (Failed, LinkEnded, Failed, false),
    ];

    #[test]
    fn each_rule_of_the_payment_state_machine() {
        for &(before, event, after, review) in RULES {
            let change = before.on(event);
            assert_eq!(
                (change.status(before), change.needs_review()),
                (after, review),
                "{before} on {event:?}"
            );
        }
    }

    #[test]
    fn nothing_moves_a_payment_out_of_succeeded() {
        for event in [LinkCreated, ALL_IN, MORE, PART, AttemptFailed, LinkEnded] {
            assert_eq!(
                Succeeded.on(event).status(Succeeded),
                Succeeded,
                "{event:?}"
            );
        }
    }

    #[test]
    fn statuses_read_back_as_stored() {
        for status in PaymentStatus::ALL {
            assert_eq!(PaymentStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(PaymentStatus::parse("succeeded"), None);
    }
}
