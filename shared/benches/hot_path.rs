//! The webhook hot path: verifying a ~2 KB Razorpay webhook against the bare HMAC-SHA256 of
//! the same bytes (the floor), plus exact money parsing. Run: `cargo bench -p shared`.

use criterion::{Criterion, criterion_group, criterion_main};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use shared::domain::money::{Currency, Money};
use shared::domain::secret::Secret;
use shared::domain::signature::{razorpay_sign, verify_razorpay_webhook};
use std::hint::black_box;

/// The sample `payment.captured` body from `events/`, padded with notes to about 2 KB.
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

fn hot_path(c: &mut Criterion) {
    let body = body();
    assert!((1900..2300).contains(&body.len()), "{} bytes", body.len());
    let current = Secret::new("whsec_current_0123456789".to_owned());
    let previous = Secret::new("whsec_previous_0123456789".to_owned());
    let signature = razorpay_sign(&current, &body);
    let old_signature = razorpay_sign(&previous, &body);

    let mut group = c.benchmark_group("razorpay_webhook_2kb");
    group.bench_function("floor_bare_hmac_sha256", |b| {
        b.iter(|| {
            let mut mac =
                <Hmac<Sha256> as KeyInit>::new_from_slice(current.expose().as_bytes()).unwrap();
            mac.update(black_box(&body));
            black_box(mac.finalize().into_bytes())
        })
    });
    group.bench_function("verify_current_secret", |b| {
        b.iter(|| {
            verify_razorpay_webhook(black_box(&body), Some(&signature), &[&current, &previous])
                .unwrap()
        })
    });
    group.bench_function("verify_previous_secret_during_rotation", |b| {
        b.iter(|| {
            verify_razorpay_webhook(
                black_box(&body),
                Some(&old_signature),
                &[&current, &previous],
            )
            .unwrap()
        })
    });
    group.finish();

    c.bench_function("money_parse_1120_50_inr", |b| {
        b.iter(|| Money::parse(black_box("1120.50"), Currency::INR).unwrap())
    });
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
