//! Retryable or permanent: the one question every failure answers, whichever edge it reaches.
//! [`ErrorClass`] is the answer, [`Classify`] asks it of any error, and [`Failure`] is what a
//! job ends with. Each edge maps it once: HTTP into a problem's status and `retryable`, the
//! worker into a message left for SQS to redeliver, or recorded and acknowledged.

/// What the worker does with a failed job: try again later, or record it and stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// 5xx, 429, timeouts, throttling: SQS redelivers the message.
    Retryable,
    /// Will never succeed as it is: recorded, not retried forever.
    Permanent,
}

/// Errors that know whether trying again can help.
pub trait Classify {
    fn class(&self) -> ErrorClass;

    fn is_retryable(&self) -> bool {
        self.class() == ErrorClass::Retryable
    }
}

/// Why a job could not be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// May work later (a dependency was unavailable, a concurrent update won).
    #[error("the job failed and may succeed later: {0}")]
    Retryable(String),
    /// Will not work as it is (unknown payment, a refusal that will not change).
    #[error("the job cannot succeed as it is: {0}")]
    Permanent(String),
}

impl Classify for Failure {
    fn class(&self) -> ErrorClass {
        match self {
            Failure::Retryable(_) => ErrorClass::Retryable,
            Failure::Permanent(_) => ErrorClass::Permanent,
        }
    }
}

impl Failure {
    /// A message body that is not a job (it will never be one): permanent.
    pub fn poison(reason: impl std::fmt::Display) -> Failure {
        Failure::Permanent(format!("the message body is not a job: {reason}"))
    }

    /// Any classified error, as the failure its class says.
    pub fn classed<E: Classify + std::fmt::Display>(error: &E) -> Failure {
        match error.class() {
            ErrorClass::Retryable => Failure::Retryable(error.to_string()),
            ErrorClass::Permanent => Failure::Permanent(error.to_string()),
        }
    }

    pub fn retryable(reason: impl std::fmt::Display) -> Failure {
        Failure::Retryable(reason.to_string())
    }

    pub fn permanent(reason: impl std::fmt::Display) -> Failure {
        Failure::Permanent(reason.to_string())
    }
}
