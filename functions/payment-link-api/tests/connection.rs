//! `PUT`, `GET` and `DELETE /api/v1/connections/razorpay` against the emulator and the
//! Razorpay simulator.

use std::net::{Ipv4Addr, SocketAddr};

use lambda_http::{Body, Request};
use serde_json::{Value, json};
use shared::adapters::aws::Adapters;
use shared::domain::keys::TenantScope;
use shared::ports::SystemClock;
use shared::services::apikeys;
use shared::services::connection;
use simulators::HasRecorder;
use simulators::razorpay::{RunningSim, SimConfig, Simulator};
use testkit::TestEnv;
use testkit::http::{problem, request};

const KEY_ID: &str = "rzp_test_conn";
const KEY_SECRET: &str = "conn_key_secret_value";

struct Setup {
    env: TestEnv,
    adapters: Adapters,
    sim: RunningSim,
    key: String,
}

async fn setup(tenant: &str) -> Setup {
    let env = TestEnv::new().await;
    let sim = Simulator::new(SimConfig::new(KEY_ID, KEY_SECRET))
        .unwrap()
        .serve(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .unwrap();
    let mut adapters = env.adapters();
    adapters.config.razorpay_api_url = sim.url.clone();
    let scope = TenantScope::new(tenant, "live").unwrap();
    let key = apikeys::create(&env.store(), &SystemClock, &scope, "tests", None)
        .await
        .unwrap()
        .key
        .expose()
        .clone();
    Setup {
        env,
        adapters,
        sim,
        key,
    }
}

fn call(method: &str, key: &str, body: Option<Value>) -> Request {
    let mut req = request(method, "/api/v1/connections/razorpay");
    req.headers_mut().insert("x-api-key", key.parse().unwrap());
    if let Some(body) = body {
        req.headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        *req.body_mut() = Body::from(body.to_string());
    }
    req
}

fn body(webhook_secret: &str) -> Value {
    json!({"key_id": KEY_ID, "key_secret": KEY_SECRET, "webhook_secret": webhook_secret,
        "flexprice_api_key": "fp_live_secret_key", "invoice_outbound_sync": true,
        "razorpay_account_id": "acc_TestAccount0001"})
}

fn json_of(response: &lambda_http::Response<Body>) -> Value {
    serde_json::from_slice(response.body().as_ref()).unwrap()
}

#[tokio::test]
async fn connect_read_rotate_and_disconnect() {
    let s = setup("tenant_conn").await;
    let put =
        payment_link_api::handle(&s.adapters, call("PUT", &s.key, Some(body("whsec_first")))).await;
    assert_eq!(put.status(), 201);
    let view = json_of(&put);
    assert_eq!(view["key_id"], KEY_ID);
    assert_eq!(view["invoice_outbound_sync"], true);
    assert_eq!(view["razorpay_account_id"], "acc_TestAccount0001");
    // Razorpay was asked once, with the tenant's credentials.
    assert_eq!(
        s.sim
            .sim
            .requests()
            .iter()
            .filter(|r| r.path == "/v1/customers" && r.status == 200)
            .count(),
        1
    );

    let get = payment_link_api::handle(&s.adapters, call("GET", &s.key, None)).await;
    assert_eq!(get.status(), 200);
    let text = String::from_utf8(get.body().as_ref().to_vec()).unwrap();
    for secret in [KEY_SECRET, "whsec_first", "fp_live_secret_key"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    assert_eq!(json_of(&get)["key_secret"], "********");

    // A new webhook secret: the old one stays accepted for 25 hours.
    let rotated =
        payment_link_api::handle(&s.adapters, call("PUT", &s.key, Some(body("whsec_second"))))
            .await;
    assert_eq!(rotated.status(), 200);
    let until = json_of(&rotated)["previous_webhook_secret_accepted_until"]
        .as_u64()
        .unwrap();
    let now = shared::ports::Clock::now_secs(&SystemClock);
    assert!(
        (now + 25 * 3600 - 5..=now + 25 * 3600 + 5).contains(&until),
        "{until}"
    );
    let scope = TenantScope::new("tenant_conn", "live").unwrap();
    let credentials = connection::credentials(&s.adapters, &scope)
        .await
        .unwrap()
        .unwrap();
    let secrets: Vec<&str> = credentials
        .webhook_secrets
        .iter()
        .map(|w| w.expose().as_str())
        .collect();
    assert_eq!(secrets, ["whsec_second", "whsec_first"]);

    let deleted = payment_link_api::handle(&s.adapters, call("DELETE", &s.key, None)).await;
    assert_eq!(deleted.status(), 204);
    let gone = payment_link_api::handle(&s.adapters, call("GET", &s.key, None)).await;
    assert_eq!(gone.status(), 404);
    assert!(
        connection::credentials(&s.adapters, &scope)
            .await
            .unwrap()
            .is_none()
    );
    drop(s.env);
}

#[tokio::test]
async fn bad_credentials_are_a_422_and_nothing_is_saved() {
    let s = setup("tenant_bad").await;
    let mut wrong = body("whsec_x");
    wrong["key_secret"] = json!("not-the-secret");
    let response = payment_link_api::handle(&s.adapters, call("PUT", &s.key, Some(wrong))).await;
    assert_eq!(response.status(), 422);
    let problem = problem(&response);
    assert_eq!(problem["errors"][0]["field"], "key_secret");
    assert_eq!(problem["errors"][0]["rule"], "razorpay_credentials");
    let get = payment_link_api::handle(&s.adapters, call("GET", &s.key, None)).await;
    assert_eq!(get.status(), 404);
}

#[tokio::test]
async fn each_invalid_field_is_named() {
    let s = setup("tenant_fields").await;
    let cases = [
        ("key_id", json!(null), "required"),
        ("key_id", json!("key_123"), "razorpay_key_id"),
        ("webhook_secret", json!(""), "non_empty_string"),
        ("flexprice_api_key", json!(7), "non_empty_string"),
        ("invoice_outbound_sync", json!("yes"), "boolean"),
    ];
    for (field, value, rule) in cases {
        let mut b = body("whsec_x");
        if value.is_null() {
            b.as_object_mut().unwrap().remove(field);
        } else {
            b[field] = value;
        }
        let response = payment_link_api::handle(&s.adapters, call("PUT", &s.key, Some(b))).await;
        assert_eq!(response.status(), 422, "{field}");
        let problem = problem(&response);
        assert_eq!(
            (
                problem["errors"][0]["field"].as_str(),
                problem["errors"][0]["rule"].as_str()
            ),
            (Some(field), Some(rule))
        );
    }
    let not_json = payment_link_api::handle(&s.adapters, {
        let mut r = call("PUT", &s.key, None);
        r.headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        *r.body_mut() = Body::from("{nope");
        r
    })
    .await;
    assert_eq!(not_json.status(), 400);
    // Razorpay down: 503, retryable.
    s.sim
        .sim
        .add_fault(simulators::Fault::Status { status: 503 }, 3);
    let down =
        payment_link_api::handle(&s.adapters, call("PUT", &s.key, Some(body("whsec_x")))).await;
    assert_eq!(down.status(), 503);
    assert_eq!(problem(&down)["retryable"], true);
}

#[tokio::test]
async fn one_tenants_key_never_sees_anothers_connection() {
    let a = setup("tenant_iso_a").await;
    let put =
        payment_link_api::handle(&a.adapters, call("PUT", &a.key, Some(body("whsec_a")))).await;
    assert_eq!(put.status(), 201);
    let scope_b = TenantScope::new("tenant_iso_b", "live").unwrap();
    let key_b = apikeys::create(&a.env.store(), &SystemClock, &scope_b, "b", None)
        .await
        .unwrap();
    let get_b = payment_link_api::handle(&a.adapters, call("GET", key_b.key.expose(), None)).await;
    assert_eq!(get_b.status(), 404);
    let delete_b =
        payment_link_api::handle(&a.adapters, call("DELETE", key_b.key.expose(), None)).await;
    assert_eq!(delete_b.status(), 404);
    let get_a = payment_link_api::handle(&a.adapters, call("GET", &a.key, None)).await;
    assert_eq!(get_a.status(), 200);
}
