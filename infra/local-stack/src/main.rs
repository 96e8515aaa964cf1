//! `local-stack up [--port 3000] [--events]`: runs the whole system locally and prints the
//! READY line (`--events`: with the test identity of `events/README.md`).
//! `local-stack demo [--port 0]`: starts it, drives every flow, prints a summary.
//! `local-stack redrive [--gateway http://127.0.0.1:3000]`: moves the running stack's parked
//! jobs from the DLQ back to the job queue (what `aws sqs start-message-move-task` does on AWS).

use local_stack::{LocalStack, Options};

fn port(args: &[String], default: u16) -> Result<u16, String> {
    match args.windows(2).find(|pair| pair[0] == "--port") {
        Some(pair) => pair[1]
            .parse()
            .map_err(|_| format!("--port {} is not a port number", pair[1])),
        None => Ok(default),
    }
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
        other => Err(format!(
            "unknown command {other:?}; use `up`, `demo` or `redrive`"
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
    let options = if args.iter().any(|a| a == "--events") {
        Options::events(port)
    } else {
        Options::from_env(port)
    };
    let stack = LocalStack::start(options).await?;
    println!("{}", stack.ready_line());
    shutdown_signal().await;
    eprintln!("local-stack: shutting down");
    drop(stack);
    Ok(std::process::ExitCode::SUCCESS)
}

async fn demo(args: &[String]) -> Result<std::process::ExitCode, String> {
    println!("starting the local stack (moto, simulators, gateway, SQS poller)...");
    let stack = LocalStack::start(Options::from_env(port(args, 0)?)).await?;
    println!("{}", stack.ready_line());
    let ok = local_stack::demo::run(&stack).await;
    drop(stack);
    Ok(if ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

async fn redrive(args: &[String]) -> Result<std::process::ExitCode, String> {
    let gateway = args
        .windows(2)
        .find(|pair| pair[0] == "--gateway")
        .map(|pair| pair[1].trim_end_matches('/').to_owned())
        .unwrap_or_else(|| "http://127.0.0.1:3000".to_owned());
    let http =
        shared::http::client(shared::http::Timeouts::default()).map_err(|e| e.to_string())?;
    let response = http
        .post(format!("{gateway}/_local/dlq/redrive"))
        .send()
        .await
        .map_err(|e| format!("no local stack answers at {gateway}: {e}"))?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("the redrive failed ({status}): {body}"));
    }
    println!(
        "moved {} job(s) from the DLQ back to the job queue",
        body["moved"]
    );
    Ok(std::process::ExitCode::SUCCESS)
}
