//! Retryable or permanent: the one question every failure answers, whichever edge it reaches
//! (an HTTP answer's `retryable`, a job left for SQS to redeliver, or recorded and stopped).

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
