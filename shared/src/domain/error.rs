//! Retryable or permanent: the one question every failure answers, whichever edge it reaches.
//! [`ErrorClass`] is the answer, [`Classify`] asks it of any error, [`Failure`] is what a job
//! ends with and [`Refusal`] what a request gets. Each edge maps them once: `api::problem` turns
//! a refusal into a problem+json status, the worker a failure into a message left for SQS to
//! redeliver, or recorded and acknowledged.

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

/// One field that breaks one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRule {
    pub field: String,
    pub rule: String,
    pub detail: String,
}

/// How a request's fields are wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldsKind {
    /// The request itself breaks the rule (its shape, a missing header).
    Malformed,
    /// Well formed, but refused against what exists (the invoice, the connection).
    Unprocessable,
    /// It contradicts an earlier request under the same key.
    Conflict,
}

/// Why a request was refused or could not be done: what a service answers the HTTP edge,
/// which alone decides the status and shape of the answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{}", fields.iter().map(|f| format!("{}: {}", f.field, f.detail)).collect::<Vec<_>>().join("; "))]
    Fields {
        kind: FieldsKind,
        fields: Vec<FieldRule>,
    },
    /// No valid credentials (the same answer whatever is wrong with them).
    #[error("{0}")]
    Unauthorized(String),
    /// A webhook's signature is missing, stale or does not match.
    #[error("{0}")]
    BadSignature(String),
    /// A webhook from another Razorpay account than the connection's.
    #[error("{0}")]
    WrongAccount(String),
    #[error("{0}")]
    NotFound(String),
    /// The scope has no Razorpay connection.
    #[error("this tenant and environment have no Razorpay connection")]
    NotConnected,
    /// A delivery whose id was seen with another body.
    #[error("{0}")]
    EventConflict(String),
    /// The same work is being done by another request: retry shortly.
    #[error("{0}")]
    InProgress(String),
    #[error("{0}")]
    TooLarge(String),
    /// Razorpay or Flexprice refused what a retry would not change.
    #[error("{0}")]
    Upstream(String),
    /// A dependency is unavailable: the same request may succeed later.
    #[error("{0}")]
    Unavailable(String),
    /// A fault of ours; safe to retry.
    #[error("the request could not be completed")]
    Internal,
}

impl Refusal {
    fn field(kind: FieldsKind, field: &str, rule: &str, detail: impl Into<String>) -> Refusal {
        Refusal::Fields {
            kind,
            fields: vec![FieldRule {
                field: field.to_owned(),
                rule: rule.to_owned(),
                detail: detail.into(),
            }],
        }
    }

    /// The request itself breaks `rule` in `field`.
    pub fn malformed(field: &str, rule: &str, detail: impl Into<String>) -> Refusal {
        Refusal::field(FieldsKind::Malformed, field, rule, detail)
    }

    /// `field` is refused against what exists.
    pub fn unprocessable(field: &str, rule: &str, detail: impl Into<String>) -> Refusal {
        Refusal::field(FieldsKind::Unprocessable, field, rule, detail)
    }

    /// `field` contradicts an earlier request under the same key.
    pub fn conflict(field: &str, rule: &str, detail: impl Into<String>) -> Refusal {
        Refusal::field(FieldsKind::Conflict, field, rule, detail)
    }

    /// A money rule broken by `field`.
    pub fn money(field: &str, error: &crate::domain::money::MoneyError) -> Refusal {
        Refusal::unprocessable(field, error.rule(), error.to_string())
    }

    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Refusal::Unavailable(_) | Refusal::InProgress(_))
    }

    /// The first field at fault, if any (for tests and logs).
    pub fn field_at_fault(&self) -> Option<&str> {
        match self {
            Refusal::Fields { fields, .. } => fields.first().map(|f| f.field.as_str()),
            _ => None,
        }
    }
}
