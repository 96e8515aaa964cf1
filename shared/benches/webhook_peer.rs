//! The webhook hot path against its floor and its peer, measured in one run and reported as
//! ratios: verifying and parsing a 2 KB Razorpay webhook the way the intake does (constant-time
//! HMAC over the raw bytes, then only the envelope's fields) against the bare HMAC-SHA256 of
//! the same bytes (the floor), against parsing it into a whole `serde_json::Value`, and against
//! the official Razorpay Python SDK's `verify_webhook_signature` + `json.loads` (the peer; PyPI
//! `razorpay`, installed into `target/bench-venv`). Budget: at most 3x the floor.
//!
//! Run: `cargo bench -p shared --bench webhook_peer`.

use std::hint::black_box;
use std::process::Command;
use std::time::Instant;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use shared::domain::secret::Secret;
use shared::domain::signature::{razorpay_sign, verify_razorpay_webhook};
use shared::services::intake::Envelope;

const RAZORPAY_SDK: &str = "razorpay==2.0.1";
const ROUNDS: usize = 15;
const PER_ROUND: u32 = 20_000;

/// The events/ `payment.captured` body padded with notes to about 2 KB.
fn body() -> Vec<u8> {
    let event: serde_json::Value =
        serde_json::from_str(include_str!("../../events/razorpay-payment-captured.json")).unwrap();
    let mut body: serde_json::Value =
        serde_json::from_str(event["body"].as_str().unwrap()).unwrap();
    let notes = &mut body["payload"]["payment"]["entity"]["notes"];
    for i in 0..13 {
        notes[format!("note_{i}")] = serde_json::Value::from("x".repeat(90));
    }
    serde_json::to_vec(&body).unwrap()
}

/// The best nanoseconds per call of `f` over `ROUNDS` rounds of `PER_ROUND` calls.
fn best_ns(mut f: impl FnMut()) -> f64 {
    for _ in 0..PER_ROUND {
        f();
    }
    (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..PER_ROUND {
                f();
            }
            start.elapsed().as_nanos() as f64 / f64::from(PER_ROUND)
        })
        .fold(f64::INFINITY, f64::min)
}

fn python_peer(body: &[u8], secret: &str, signature: &str) -> Result<f64, String> {
    let python = testkit::venv::python_tool("bench-venv", None, RAZORPAY_SDK, "python")?;
    let dir = testkit::target_dir();
    let body_path = dir.join("webhook_peer_body.json");
    std::fs::write(&body_path, body).map_err(|e| e.to_string())?;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/peer.py");
    let output = Command::new(python)
        .arg(script)
        .arg(&body_path)
        .arg(secret)
        .arg(signature)
        .arg(ROUNDS.to_string())
        .arg((PER_ROUND / 4).to_string())
        .output()
        .map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .map_err(|e| format!("{e}"))
}

fn main() {
    // `cargo test` runs bench targets with `--bench` absent: nothing to measure then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let body = body();
    let current = Secret::new("whsec_current_0123456789".to_owned());
    let previous = Secret::new("whsec_previous_0123456789".to_owned());
    let signature = razorpay_sign(&current, &body);

    let floor = best_ns(|| {
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(current.expose().as_bytes()).unwrap();
        mac.update(black_box(&body));
        black_box(mac.finalize().into_bytes());
    });
    let ours = best_ns(|| {
        verify_razorpay_webhook(black_box(&body), Some(&signature), &[&current, &previous])
            .unwrap();
        black_box(Envelope::parse(black_box(&body)).unwrap());
    });
    let whole_value = best_ns(|| {
        verify_razorpay_webhook(black_box(&body), Some(&signature), &[&current, &previous])
            .unwrap();
        black_box(serde_json::from_slice::<serde_json::Value>(black_box(&body)).unwrap());
    });
    let peer = python_peer(&body, current.expose(), &signature)
        .unwrap_or_else(|e| panic!("the Python peer could not run: {e}"));

    println!(
        "razorpay webhook, {} bytes, best of {ROUNDS} rounds",
        body.len()
    );
    println!("{:<52} {:>10} {:>8}", "what", "ns/op", "x floor");
    for (what, ns) in [
        ("floor: bare HMAC-SHA256 of the body", floor),
        ("flexrzp: verify (constant time) + parse the envelope", ours),
        ("verify + parse into a whole serde_json::Value", whole_value),
        ("peer: razorpay-python verify + json.loads", peer),
    ] {
        println!("{what:<52} {ns:>10.0} {:>8.2}", ns / floor);
    }
    let budget = 3.0;
    println!(
        "budget: flexrzp <= {budget}x the floor: {} ({:.2}x); the peer is {:.1}x flexrzp",
        if ours / floor <= budget {
            "met"
        } else {
            "MISSED"
        },
        ours / floor,
        peer / ours
    );
}
