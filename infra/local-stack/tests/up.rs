//! `local-stack up` as a process: prints the READY line, serves the gateway, writes every
//! function's log lines to the file the READY line names (and to stderr with `--verbose`), and
//! exits cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn up_prints_ready_serves_logs_and_stops_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("flexrzp-up-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log_file = dir.join("functions.jsonl");
    let stderr_file = dir.join("stderr.txt");
    let mut child = Command::new(env!("CARGO_BIN_EXE_local-stack"))
        .args(["up", "--port", "0", "--verbose", "--log-file"])
        .arg(&log_file)
        .env("FLEXRZP_LOCAL_API_KEY", "fxr_fixed_for_test")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_file).unwrap())
        .spawn()
        .expect("local-stack starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(json) = line.strip_prefix("READY ") {
                let _ = tx.send(json.to_owned());
            }
        }
    });
    let ready = rx.recv_timeout(Duration::from_secs(60));
    let ready = match ready {
        Ok(json) => json,
        Err(e) => {
            let _ = child.kill();
            panic!("no READY line within 60 s: {e}");
        }
    };
    let ready: serde_json::Value = serde_json::from_str(&ready).expect("READY is followed by JSON");
    assert_eq!(ready["api_key"], "fxr_fixed_for_test");
    let gateway = ready["gateway_url"].as_str().expect("gateway_url");
    let status = tokio::runtime::Runtime::new().unwrap().block_on(async {
        shared::adapters::http::client(shared::adapters::http::Timeouts::default())
            .expect("an HTTP client")
            .get(format!("{gateway}/api/v1/payments/pay_1"))
            .header("x-api-key", "fxr_fixed_for_test")
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    // Authenticated, and no such payment.
    assert_eq!(status.ok(), Some(404));
    // SAFETY: kill(2) on the child we spawned.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let exit = child.wait().expect("local-stack exits");
    assert!(exit.success(), "{exit:?}");

    assert_eq!(ready["log_file"].as_str(), log_file.to_str());
    let logged = std::fs::read_to_string(&log_file).expect("the log file exists");
    let request = logged
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("JSON lines"))
        .find(|line| line["fields"]["message"] == "request")
        .unwrap_or_else(|| panic!("no request line in the log file:\n{logged}"));
    assert_eq!(request["span"]["function"], "payment-link-api", "{request}");
    assert_eq!(request["fields"]["route"], "/api/v1/payments/{payment_id}");
    assert_eq!(request["fields"]["status"], 404);
    // Where the logs go is said on start; --verbose prints the lines too.
    let stderr = std::fs::read_to_string(&stderr_file).unwrap();
    assert!(stderr.contains(log_file.to_str().unwrap()), "{stderr}");
    assert!(
        stderr.contains(r#""function":"payment-link-api""#),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
