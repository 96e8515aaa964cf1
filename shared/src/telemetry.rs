//! JSON logs for CloudWatch, filtered by `RUST_LOG` if set, else by Lambda's own
//! `AWS_LAMBDA_LOG_LEVEL` (the function's advanced logging setting), else `info`.

use tracing_subscriber::EnvFilter;

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

/// Installs the global JSON subscriber. Call once, from `main`.
pub fn init() {
    let directive = filter_directive(
        std::env::var("RUST_LOG").ok().as_deref(),
        std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref(),
    );
    let filter = EnvFilter::try_new(&directive).unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_ansi(false)
        .with_target(true)
        .try_init();
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
}
