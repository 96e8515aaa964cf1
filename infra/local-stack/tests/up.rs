//! `local-stack up` as a process: prints the READY line, serves the gateway, and exits cleanly
//! on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn up_prints_ready_serves_and_stops_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_local-stack"))
        .args(["up", "--port", "0"])
        .env("FLEXRZP_LOCAL_API_KEY", "fxr_fixed_for_test")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
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
        shared::http::client(shared::http::Timeouts::default())
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
}
