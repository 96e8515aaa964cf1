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

/// One metric in CloudWatch's embedded metric format: a JSON line on stdout, which Lambda
/// sends to CloudWatch Logs and CloudWatch turns into the metric (no API call), per its
/// dimensions and also without any (what an alarm over all tenants watches).
pub fn metric(name: &str, value: u64, dimensions: &[(&str, &str)]) {
    println!(
        "{}",
        emf_line(
            name,
            value,
            dimensions,
            crate::ports::Clock::now_millis(&crate::ports::SystemClock)
        )
    );
}

/// The EMF line of [`metric`], at `timestamp_ms`.
pub fn emf_line(name: &str, value: u64, dimensions: &[(&str, &str)], timestamp_ms: u64) -> String {
    let mut line = serde_json::Map::new();
    let keys: Vec<&str> = dimensions.iter().map(|(k, _)| *k).collect();
    line.insert(
        "_aws".to_owned(),
        serde_json::json!({"Timestamp": timestamp_ms, "CloudWatchMetrics": [{
            "Namespace": NAMESPACE, "Dimensions": [keys, []],
            "Metrics": [{"Name": name, "Unit": "Count"}]}]}),
    );
    for (key, value) in dimensions {
        line.insert((*key).to_owned(), serde_json::json!(value));
    }
    line.insert(name.to_owned(), serde_json::json!(value));
    serde_json::Value::Object(line).to_string()
}

/// Installs the global JSON subscriber. Call once, from `main`.
pub fn init() {
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
