//! JSON logs for CloudWatch, filtered by `RUST_LOG` if set, else by Lambda's own
//! `AWS_LAMBDA_LOG_LEVEL` (the function's advanced logging setting), else `info`.

use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The filter directive to use, from the two variables.
pub fn filter_directive(rust_log: Option<&str>, lambda_level: Option<&str>) -> String {
    if let Some(directive) = rust_log.map(str::trim).filter(|d| !d.is_empty()) {
        return directive.to_owned();
    }
    let level = match lambda_level
        .map(|l| l.trim().to_ascii_uppercase())
        .as_deref()
    {
        Some("TRACE") => "trace",
        Some("DEBUG") => "debug",
        Some("WARN") => "warn",
        Some("ERROR") | Some("FATAL") => "error",
        _ => "info",
    };
    level.to_owned()
}

/// The CloudWatch namespace of flexrzp's metrics.
pub const NAMESPACE: &str = "flexrzp";

/// Every metric flexrzp emits (all counts; money in the currency's subunits). The dashboard
/// and the alarms in `template.yaml` name only these (`tests/template.rs` holds them to it).
pub mod metrics {
    /// A delivery on a webhook route, by `Source` and the intake's `Outcome` (`accepted`,
    /// `duplicate`, `in_progress`, `bad_signature`, `wrong_account`, `conflict`, `unavailable`,
    /// `rejected`).
    pub const WEBHOOKS_RECEIVED: &str = "WebhooksReceived";
    /// An event settled by the worker, by `Source` and `Outcome` (`applied`, `duplicate`,
    /// `ignored`, `retrying`, `parked`).
    pub const WEBHOOK_EVENTS: &str = "WebhookEvents";
    /// A job's message handled, by `Kind` and `Outcome`: `done`, `retrying` (comes back after
    /// its wait), `failing` (failed for good; it burns its receives at once) or `parked` (its
    /// last receive failed: it rests in the DLQ now).
    pub const JOBS: &str = "Jobs";
    /// Money counted on a payment (and recorded in Flexprice once), by `Currency`, in subunits.
    pub const MONEY_RECORDED: &str = "MoneyRecordedMinor";
    /// Money that went back (refunds processed, reflected in Flexprice), by `Currency`, in
    /// subunits.
    pub const MONEY_REFUNDED: &str = "MoneyRefundedMinor";
    /// What the sweep applied that no webhook brought.
    pub const SWEEP_CORRECTIONS: &str = "SweepCorrections";
    /// A sweep run's misses, by tenant: the webhook looks degraded.
    pub const WEBHOOK_MISSED: &str = "WebhookMissed";
    /// A dispute that must be answered within 48 hours.
    pub const DISPUTE_RESPONSE_DUE: &str = "DisputeResponseDue";
    /// One HTTP call to Razorpay or Flexprice, by `Provider` and `Outcome` (`ok`, `4xx`,
    /// `5xx`, `timeout`, `unreachable`, `unreadable`).
    pub const PROVIDER_CALLS: &str = "ProviderCalls";
    /// How long that call took, in milliseconds, by `Provider`.
    pub const PROVIDER_LATENCY: &str = "ProviderLatency";

    pub const ALL: [&str; 10] = [
        MONEY_REFUNDED,
        PROVIDER_CALLS,
        PROVIDER_LATENCY,
        WEBHOOKS_RECEIVED,
        WEBHOOK_EVENTS,
        JOBS,
        MONEY_RECORDED,
        SWEEP_CORRECTIONS,
        WEBHOOK_MISSED,
        DISPUTE_RESPONSE_DUE,
    ];
}

/// Where metric lines go when not to stdout (set once per process).
type Sink = Box<dyn Fn(&str) + Send + Sync>;
static SINK: std::sync::OnceLock<Sink> = std::sync::OnceLock::new();

/// Sends the metric lines to `sink` instead of stdout, for the rest of the process: the local
/// stack writes them into its log file, beside the functions' log lines, as CloudWatch Logs
/// would hold them. Only the first call takes.
pub fn send_metrics_to(sink: impl Fn(&str) + Send + Sync + 'static) {
    let _ = SINK.set(Box::new(sink));
}

fn emit(line: &str) {
    match SINK.get() {
        Some(sink) => sink(line),
        None => println!("{line}"),
    }
}

/// One metric in CloudWatch's embedded metric format: a JSON line on stdout, which Lambda
/// sends to CloudWatch Logs and CloudWatch turns into the metric (no API call), per its
/// dimensions, without any (what an alarm over all tenants watches) and, with two or more,
/// by the last alone (`Outcome`: what a rate alarm divides).
pub fn metric(name: &str, value: u64, dimensions: &[(&str, &str)]) {
    let now = crate::ports::Clock::now_millis(&crate::ports::SystemClock);
    emit(&emf_line(name, value, dimensions, now));
}

/// One call to a provider (`razorpay`, `flexprice`) that began at `started`: its count by
/// outcome and its latency.
pub fn provider_call(provider: &str, started: std::time::Instant, outcome: &str) {
    let now = crate::ports::Clock::now_millis(&crate::ports::SystemClock);
    let dimensions = [("Provider", provider), ("Outcome", outcome)];
    emit(&emf_line(metrics::PROVIDER_CALLS, 1, &dimensions, now));
    let millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let latency = Emf {
        name: metrics::PROVIDER_LATENCY,
        value: millis,
        unit: "Milliseconds",
    };
    emit(&latency.line(&[("Provider", provider)], now));
}

/// What an HTTP call's answer is called in `ProviderCalls`: by status class, or how it failed.
pub fn call_outcome(status: Option<u16>, timed_out: bool) -> &'static str {
    match (status, timed_out) {
        (_, true) => "timeout",
        (Some(s), _) if s < 400 => "ok",
        (Some(s), _) if s < 500 => "4xx",
        (Some(_), _) => "5xx",
        (None, _) => "unreachable",
    }
}

/// A metric's name, value and unit.
struct Emf<'a> {
    name: &'a str,
    value: u64,
    unit: &'a str,
}

/// The EMF line of [`metric`], at `timestamp_ms`.
pub fn emf_line(name: &str, value: u64, dimensions: &[(&str, &str)], timestamp_ms: u64) -> String {
    let count = Emf {
        name,
        value,
        unit: "Count",
    };
    count.line(dimensions, timestamp_ms)
}

impl Emf<'_> {
    fn line(&self, dimensions: &[(&str, &str)], timestamp_ms: u64) -> String {
        let (name, value, unit) = (self.name, self.value, self.unit);
        let mut line = serde_json::Map::new();
        let keys: Vec<&str> = dimensions.iter().map(|(k, _)| *k).collect();
        let mut sets = vec![keys.clone()];
        if !keys.is_empty() {
            sets.push(Vec::new());
        }
        if let [_, .., last] = keys.as_slice() {
            sets.push(vec![*last]);
        }
        line.insert(
            "_aws".to_owned(),
            serde_json::json!({"Timestamp": timestamp_ms, "CloudWatchMetrics": [{
            "Namespace": NAMESPACE, "Dimensions": sets,
            "Metrics": [{"Name": name, "Unit": unit}]}]}),
        );
        for (key, value) in dimensions {
            line.insert((*key).to_owned(), serde_json::json!(value));
        }
        line.insert(name.to_owned(), serde_json::json!(value));
        serde_json::Value::Object(line).to_string()
    }
}

tokio::task_local! {
    /// The SQS message whose job the current task runs, for the panic hook.
    static MESSAGE_ID: String;
}

/// Runs `work` as the job of message `message_id`: a panic inside it names the message in the
/// log line the panic hook writes.
pub async fn for_message<F: std::future::Future>(message_id: String, work: F) -> F::Output {
    MESSAGE_ID.scope(message_id, work).await
}

/// The message whose job the current task runs, if any.
pub fn current_message() -> Option<String> {
    MESSAGE_ID.try_with(Clone::clone).ok()
}

/// Logs a panic as one JSON error line (with the message being worked on, if any) before the
/// default hook prints it. Release builds abort on a panic, so this line is the only record:
/// the worker's batch comes back whole and the message is found by its id.
fn log_panics() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message_id = current_message();
        tracing::error!(message_id = ?message_id, panic = %info, "panicked; the invocation ends here");
        default_hook(info);
    }));
}

/// Installs the global JSON subscriber and the panic hook. Call once, from `main`.
pub fn init() {
    log_panics();
    let directive = filter_directive(
        std::env::var("RUST_LOG").ok().as_deref(),
        std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref(),
    );
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(false)
                .with_ansi(false)
                .with_target(true),
        )
        .with(targets(&directive))
        .try_init();
}

/// `RUST_LOG`-style directives (`info`, `info,shared=debug`), read without regular
/// expressions (a regex engine would add about 230 KiB to every binary); `info` if unreadable.
pub fn targets(directive: &str) -> Targets {
    directive
        .parse()
        .unwrap_or_else(|_| Targets::new().with_default(Level::INFO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_job_s_task_knows_its_message_and_no_other_task_does() {
        assert_eq!(current_message(), None);
        let inside = for_message("m-1".to_owned(), async {
            tokio::task::yield_now().await;
            current_message()
        });
        let spawned = tokio::spawn(for_message("m-2".to_owned(), async { current_message() }));
        assert_eq!(inside.await.as_deref(), Some("m-1"));
        assert_eq!(spawned.await.ok().flatten().as_deref(), Some("m-2"));
        assert_eq!(current_message(), None);
    }

    #[test]
    fn calls_are_named_by_status_class_or_how_they_failed() {
        assert_eq!(call_outcome(Some(200), false), "ok");
        assert_eq!(call_outcome(Some(404), false), "4xx");
        assert_eq!(call_outcome(Some(429), false), "4xx");
        assert_eq!(call_outcome(Some(503), false), "5xx");
        assert_eq!(call_outcome(None, true), "timeout");
        assert_eq!(call_outcome(None, false), "unreachable");
    }

    #[test]
    fn a_metric_rolls_up_to_no_dimension_and_to_its_last() {
        let line = emf_line(
            metrics::JOBS,
            2,
            &[("Kind", "sweep"), ("Outcome", "done")],
            7,
        );
        let line: serde_json::Value = serde_json::from_str(&line).unwrap();
        let spec = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(
            spec["Dimensions"],
            serde_json::json!([["Kind", "Outcome"], [], ["Outcome"]])
        );
        assert_eq!(
            (line["Jobs"].as_u64(), line["_aws"]["Timestamp"].as_u64()),
            (Some(2), Some(7))
        );
        let single = emf_line(metrics::SWEEP_CORRECTIONS, 1, &[], 7);
        let single: serde_json::Value = serde_json::from_str(&single).unwrap();
        assert_eq!(
            single["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            serde_json::json!([[]])
        );
    }

    #[test]
    fn rust_log_wins_then_lambda_level_then_info() {
        assert_eq!(
            filter_directive(Some("shared=debug"), Some("ERROR")),
            "shared=debug"
        );
        assert_eq!(filter_directive(Some(" "), Some("DEBUG")), "debug");
        assert_eq!(filter_directive(None, Some("warn")), "warn");
        assert_eq!(filter_directive(None, Some("FATAL")), "error");
        assert_eq!(filter_directive(None, Some("TRACE")), "trace");
        assert_eq!(filter_directive(None, Some("nonsense")), "info");
        assert_eq!(filter_directive(None, None), "info");
    }

    #[test]
    fn directives_set_levels_per_target_and_nonsense_falls_back_to_info() {
        let levels = targets("warn,shared=debug");
        assert!(levels.would_enable("shared::services::payments", &Level::DEBUG));
        assert!(!levels.would_enable("aws_config", &Level::INFO));
        let fallback = targets("=nonsense=");
        assert!(fallback.would_enable("anything", &Level::INFO));
        assert!(!fallback.would_enable("anything", &Level::DEBUG));
    }
}
