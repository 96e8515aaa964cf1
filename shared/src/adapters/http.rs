//! What the outbound HTTP clients (Razorpay, Flexprice) share: one reqwest client setup on the
//! build's one TLS stack (rustls on ring), timeouts, and retries with jittered exponential
//! backoff.

use std::future::Future;
use std::sync::Once;
use std::time::Duration;

/// Connect and total timeouts. The defaults sit well inside Razorpay's own 10 s SDK timeout and
/// the functions' Lambda timeouts (10-30 s), leaving room for a retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(2),
            total: Duration::from_secs(6),
        }
    }
}

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubles after each, up to `max_delay`.
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// No retries.
    pub const NONE: RetryPolicy = RetryPolicy {
        max_attempts: 1,
        base_delay: Duration::ZERO,
        max_delay: Duration::ZERO,
    };

    /// The delay before attempt `attempt + 1` (after `attempt` failures): "full jitter", a
    /// uniform random wait between 0 and the capped exponential backoff.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
        let cap = exp.min(self.max_delay);
        let cap_ms = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(fastrand::u64(0..=cap_ms))
    }

    /// Runs `call` until it succeeds, fails with an error `retryable` refuses, or the attempts
    /// run out; returns the last result.
    pub async fn run<T, E, F, Fut>(
        &self,
        mut call: F,
        retryable: impl Fn(&E) -> bool,
    ) -> Result<T, E>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut attempt = 1;
        loop {
            match call(attempt).await {
                Err(e) if attempt < self.max_attempts && retryable(&e) => {
                    tokio::time::sleep(self.delay(attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

static TLS_PROVIDER: Once = Once::new();

/// Installs ring as the process's rustls provider (once). reqwest is built without a provider
/// of its own, so a client made any other way than [`client`] needs this first.
pub fn install_tls_provider() {
    TLS_PROVIDER.call_once(|| {
        // Fails only if another provider was installed first, which this build never does.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A reqwest client with the given timeouts, on rustls with ring.
pub fn client(timeouts: Timeouts) -> Result<reqwest::Client, reqwest::Error> {
    install_tls_provider();
    reqwest::Client::builder()
        .connect_timeout(timeouts.connect)
        .timeout(timeouts.total)
        .user_agent(concat!("flexrzp/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// `id` as one URL path segment: every byte but RFC 3986's unreserved characters
/// (letters, digits, `-`, `.`, `_`, `~`) percent-encoded, so no id can add a segment, a query
/// or a fragment to the URL it is put in. (Ids are parsed strictly before they get here; this
/// is the second lock on the door.)
pub fn segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for byte in id.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Sends `request` to `provider`, counting the call by outcome and timing it
/// (`ProviderCalls`, `ProviderLatency`: up to the answer's status line).
pub async fn counted(
    provider: &str,
    request: reqwest::RequestBuilder,
) -> Result<reqwest::Response, reqwest::Error> {
    let started = std::time::Instant::now();
    let answered = request.send().await;
    let (status, timed_out) = match &answered {
        Ok(response) => (Some(response.status().as_u16()), false),
        Err(e) => (None, e.is_timeout()),
    };
    let outcome = crate::adapters::telemetry::call_outcome(status, timed_out);
    crate::adapters::telemetry::provider_call(provider, started, outcome);
    answered
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_cannot_escape_its_place_in_the_path() {
        assert_eq!(segment("inv_local-1.x~"), "inv_local-1.x~");
        assert_eq!(segment("inv/../x?y=1#z"), "inv%2F..%2Fx%3Fy%3D1%23z");
        assert_eq!(segment("a b\0\n"), "a%20b%00%0A");
        assert_eq!(segment("é"), "%C3%A9");
    }

    #[test]
    fn backoff_is_jittered_exponential_and_capped() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(500),
        };
        for _ in 0..200 {
            assert!(policy.delay(1) <= Duration::from_millis(100));
            assert!(policy.delay(2) <= Duration::from_millis(200));
            assert!(policy.delay(3) <= Duration::from_millis(400));
            assert!(policy.delay(9) <= Duration::from_millis(500));
        }
        // Jitter: not always the same wait.
        let waits: std::collections::HashSet<_> = (0..50).map(|_| policy.delay(3)).collect();
        assert!(waits.len() > 1);
    }

    #[tokio::test]
    async fn run_retries_only_what_is_retryable_and_stops_at_max_attempts() {
        let policy = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
        };
        let mut calls = 0;
        let result: Result<(), &str> = policy
            .run(
                |_| {
                    calls += 1;
                    async { Err("transient") }
                },
                |_| true,
            )
            .await;
        assert_eq!((result, calls), (Err("transient"), 3));

        let mut calls = 0;
        let result: Result<(), &str> = policy
            .run(
                |_| {
                    calls += 1;
                    async { Err("permanent") }
                },
                |e| *e != "permanent",
            )
            .await;
        assert_eq!((result, calls), (Err("permanent"), 1));

        let result: Result<u32, &str> = policy
            .run(
                |attempt| async move {
                    if attempt < 2 {
                        Err("once")
                    } else {
                        Ok(attempt)
                    }
                },
                |_| true,
            )
            .await;
        assert_eq!(result, Ok(2));
    }
}
