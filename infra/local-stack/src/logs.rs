//! The local stack's logs: every function's JSON log lines, as CloudWatch would hold them, in
//! one file (named in the READY line as `log_file`), and on stderr too with `--verbose`. Each
//! line carries the function that wrote it (`"span": {"function": "webhook-receiver", ...}`),
//! since all three run in this one process. Filtered like the functions' own logs (`RUST_LOG`,
//! else `info`). The functions' embedded-metric lines go there too.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The three functions, as they name themselves in the local stack's log lines.
pub const WEBHOOK_RECEIVER: &str = "webhook-receiver";
pub const PAYMENT_LINK_API: &str = "payment-link-api";
pub const INVOICE_SYNC: &str = "invoice-sync";

/// The span a function's work runs in, so that its log lines name it.
pub fn function_span(function: &'static str) -> tracing::Span {
    tracing::info_span!("lambda", function)
}

/// Where a run's logs go by default: `target/local-stack-logs/{command}-{pid}.jsonl`.
pub fn default_path(command: &str) -> PathBuf {
    testkit::target_dir()
        .join("local-stack-logs")
        .join(format!("{command}-{}.jsonl", std::process::id()))
}

fn open(path: &Path) -> Result<File, String> {
    if let Some(folder) = path.parent() {
        fs::create_dir_all(folder)
            .map_err(|e| format!("cannot create the log folder {}: {e}", folder.display()))?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot write the log file {}: {e}", path.display()))
}

fn json_layer<S, W>(writer: W) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + 'static,
{
    tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_ansi(false)
        .with_target(true)
        .with_writer(writer)
}

/// Installs the process's subscriber: JSON lines appended to `path`, and to stderr when
/// `verbose`. Call once, before the stack starts.
pub fn init(path: &Path, verbose: bool) -> Result<(), String> {
    let file = open(path)?;
    let metrics = Mutex::new(open(path)?);
    shared::adapters::telemetry::send_metrics_to(move |line| {
        use std::io::Write;
        let mut file = metrics.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(file, "{line}");
    });
    let directive = shared::adapters::telemetry::filter_directive(
        std::env::var("RUST_LOG").ok().as_deref(),
        None,
    );
    let stderr = verbose.then(|| json_layer(std::io::stderr));
    tracing_subscriber::registry()
        .with(json_layer(Mutex::new(file)))
        .with(stderr)
        .with(shared::adapters::telemetry::targets(&directive))
        .try_init()
        .map_err(|e| format!("cannot install the log subscriber: {e}"))
}
