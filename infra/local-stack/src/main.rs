//! `local-stack up [--port 3000] [--events] [--log-file PATH] [--verbose]`: runs the whole
//! system locally and prints the READY line (`--events`: with the test identity of
//! `events/README.md`).
//! `local-stack demo [--port 0] [--log-file PATH] [--verbose]`: starts it, drives every flow,
//! prints a summary.
//! `local-stack stress [--runs 10] [--links 6] [--syncs 6] [--copies 3] [--log-file PATH]`:
//! starts it and runs rounds of concurrent, duplicated and reordered payments and syncs with
//! injected faults, each ending only when everything is settled exactly once.
//! All three write every function's JSON log lines to a file (`--log-file`, else
//! `target/local-stack-logs/{command}-{pid}.jsonl`), named on start and in the READY line;
//! `--verbose` prints them on stderr too.
//! `local-stack redrive [--gateway http://127.0.0.1:3000]`: moves the running stack's parked
//! jobs from the DLQ back to the job queue (what `aws sqs start-message-move-task` does on AWS).
//! `local-stack sweep [--gateway http://127.0.0.1:3000]`: queues a reconciliation sweep of
//! every connected scope now (`up` also runs one every 15 s, the template's 15 minutes
//! scaled).

use std::path::PathBuf;

use local_stack::{LocalStack, Options, logs};

fn port(args: &[String], default: u16) -> Result<u16, String> {
    match value(args, "--port") {
        Some(port) => port
            .parse()
            .map_err(|_| format!("--port {port} is not a port number")),
        None => Ok(default),
    }
}

/// The value after `flag`, if given.
fn value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.windows(2)
        .find(|pair| pair[0] == flag)
        .map(|pair| pair[1].as_str())
}

/// Sends the functions' logs to the file (and stderr with `--verbose`), says where, and
/// returns the file for the READY line.
fn start_logs(args: &[String], command: &str) -> Result<PathBuf, String> {
    let path = value(args, "--log-file")
        .map(PathBuf::from)
        .unwrap_or_else(|| logs::default_path(command));
    let verbose = args.iter().any(|a| a == "--verbose");
    logs::init(&path, verbose)?;
    eprintln!(
        "local-stack: every function's JSON log lines go to {}{}",
        path.display(),
        if verbose { " (and to stderr)" } else { "" }
    );
    Ok(path)
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = args.first().map(String::as_str).unwrap_or("up");
    let result = match command {
        "up" => up(&args).await,
        "demo" => demo(&args).await,
        "redrive" => redrive(&args).await,
        "sweep" => sweep(&args).await,
        "stress" => stress(&args).await,
        other => Err(format!(
            "unknown command {other:?}; use `up`, `demo`, `stress`, `redrive` or `sweep`"
        )),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("local-stack: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn up(args: &[String]) -> Result<std::process::ExitCode, String> {
    let port = port(args, 3000)?;
    // `--events`: the documented test identity the files of `events/` are made for.
    let mut options = if args.iter().any(|a| a == "--events") {
        Options::events(port)
    } else {
        Options::from_env(port)
    };
    options.log_file = Some(start_logs(args, "up")?);
    // The stand-in for the template's sweep schedule (every 15 s at the local speed).
    options.scheduled_sweeps = true;
    let stack = LocalStack::start(options).await?;
    println!("{}", stack.ready_line());
    shutdown_signal().await;
    eprintln!("local-stack: shutting down");
    drop(stack);
    Ok(std::process::ExitCode::SUCCESS)
}

async fn demo(args: &[String]) -> Result<std::process::ExitCode, String> {
    println!("starting the local stack (moto, simulators, gateway, SQS poller)...");
    let mut options = Options::from_env(port(args, 0)?);
    let log_file = start_logs(args, "demo")?;
    options.log_file = Some(log_file.clone());
    let stack = LocalStack::start(options).await?;
    println!("{}", stack.ready_line());
    let ok = local_stack::demo::run(&stack).await;
    drop(stack);
    println!("logs: {}", log_file.display());
    Ok(if ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

/// A whole-number option, or its default.
fn number(args: &[String], flag: &str, default: usize) -> Result<usize, String> {
    match value(args, flag) {
        Some(n) => n
            .parse()
            .map_err(|_| format!("{flag} {n} is not a whole number")),
        None => Ok(default),
    }
}

async fn stress(args: &[String]) -> Result<std::process::ExitCode, String> {
    let defaults = local_stack::stress::Plan::default();
    let plan = local_stack::stress::Plan {
        links: number(args, "--links", defaults.links)?,
        syncs: number(args, "--syncs", defaults.syncs)?,
        copies: number(args, "--copies", defaults.copies)?.max(1),
    };
    let runs = number(args, "--runs", 10)?;
    let mut options = Options::from_env(port(args, 0)?);
    let log_file = start_logs(args, "stress")?;
    options.log_file = Some(log_file.clone());
    let stack = LocalStack::start(options).await?;
    let driver = local_stack::driver::Driver::new(&stack)?;
    println!("stress: {runs} rounds of {plan:?}");
    let started = std::time::Instant::now();
    let mut failed = 0;
    for number in 1..=runs {
        match local_stack::stress::round(&driver, plan, number).await {
            Ok(done) => println!("  round {number}: ok: {done}"),
            Err(e) => {
                failed += 1;
                println!("  round {number}: FAILED: {e}");
            }
        }
    }
    println!(
        "stress: {} of {runs} rounds settled exactly, {failed} failed, in {:.1} s; logs: {}",
        runs - failed,
        started.elapsed().as_secs_f64(),
        log_file.display()
    );
    drop(stack);
    Ok(if failed == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

/// POSTs to one of the running stack's `/_local` routes; its JSON answer.
async fn local_post(args: &[String], path: &str, what: &str) -> Result<serde_json::Value, String> {
    let gateway = value(args, "--gateway")
        .map(|url| url.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| "http://127.0.0.1:3000".to_owned());
    let http = shared::adapters::http::client(shared::adapters::http::Timeouts::default())
        .map_err(|e| e.to_string())?;
    let response = http
        .post(format!("{gateway}{path}"))
        .send()
        .await
        .map_err(|e| format!("no local stack answers at {gateway}: {e}"))?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("the {what} failed ({status}): {body}"));
    }
    Ok(body)
}

async fn redrive(args: &[String]) -> Result<std::process::ExitCode, String> {
    let body = local_post(args, "/_local/dlq/redrive", "redrive").await?;
    println!(
        "moved {} job(s) from the DLQ back to the job queue",
        body["moved"]
    );
    Ok(std::process::ExitCode::SUCCESS)
}

async fn sweep(args: &[String]) -> Result<std::process::ExitCode, String> {
    let body = local_post(args, "/_local/sweep", "sweep").await?;
    println!("queued a sweep of {} connected scope(s)", body["queued"]);
    Ok(std::process::ExitCode::SUCCESS)
}
