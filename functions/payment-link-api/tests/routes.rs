//! The API routes: authentication by API key, then the route, driven by the sample API
//! Gateway events in `events/`.

use lambda_http::Request;
use shared::domain::keys::TenantScope;
use shared::ports::SystemClock;
use shared::services::apikeys;
use testkit::TestEnv;
use testkit::http::{problem, request, request_from_event};

fn with_key(mut request: Request, key: &str) -> Request {
    request
        .headers_mut()
        .insert("x-api-key", key.parse().unwrap());
    request
}

async fn new_key(env: &TestEnv, tenant: &str) -> apikeys::NewApiKey {
    let scope = TenantScope::new(tenant, "live").unwrap();
    apikeys::create(&env.store(), &SystemClock, &scope, "tests", None)
        .await
        .unwrap()
}

#[tokio::test]
async fn every_route_gives_an_unconnected_tenant_a_clear_answer() {
    let env = TestEnv::new().await;
    let adapters = env.adapters();
    let key = new_key(&env, "tenant_a").await;
    let event = include_str!("../../../events/create-payment.json");
    let mut sample = request_from_event(event);
    sample.headers_mut().remove("x-api-key");
    // The sample request, for a tenant with no Razorpay connection.
    let response = payment_link_api::handle(&adapters, with_key(sample, key.key.expose())).await;
    assert_eq!(response.status(), 422);
    assert_eq!(problem(&response)["errors"][0]["rule"], "connected");
    let expected = [
        (payment_link_api::CREATE_PAYMENT, 400),
        (payment_link_api::GET_PAYMENT, 404),
        (payment_link_api::CREATE_REFUND, 400),
        (payment_link_api::LIST_REFUNDS, 404),
        (payment_link_api::PUT_CONNECTION, 400),
        (payment_link_api::GET_CONNECTION, 404),
        (payment_link_api::DELETE_CONNECTION, 404),
        (payment_link_api::GET_INVOICE_SYNC, 404),
        (payment_link_api::RETRY_INVOICE_SYNC, 422),
        (payment_link_api::GET_PAYMENT_URL, 422),
        // Nothing made for the invoice, nothing heard about it.
        (payment_link_api::GET_INVOICE_TIMELINE, 404),
        // The event log of a scope without a connection: empty, its earlier events kept.
        (payment_link_api::LIST_WEBHOOK_EVENTS, 200),
        (payment_link_api::REPLAY_WEBHOOK_EVENT, 404),
    ];
    assert_eq!(expected.len(), payment_link_api::ROUTES.len());
    for (route, status) in expected {
        let path = route
            .template
            .replace("{payment_id}", "pay_1")
            .replace("{invoice_id}", "inv_1")
            .replace("{event_id}", "evt_1");
        let request = with_key(request(route.method, &path), key.key.expose());
        let response = payment_link_api::handle(&adapters, request).await;
        assert_eq!(response.status(), status, "{}", route.describe());
        if status >= 400 {
            assert_eq!(problem(&response)["status"], status);
        }
    }
}

#[tokio::test]
async fn missing_unknown_malformed_and_revoked_keys_get_the_same_401() {
    let env = TestEnv::new().await;
    let adapters = env.adapters();
    let key = new_key(&env, "tenant_b").await;
    let scope = TenantScope::new("tenant_b", "live").unwrap();
    apikeys::revoke(&env.store(), &scope, &key.key_id)
        .await
        .unwrap();
    let unknown = format!("fxr_{}", "0".repeat(64));
    let cases: [Option<&str>; 4] = [
        None,
        Some(&unknown),
        Some("not-a-key"),
        Some(key.key.expose()),
    ];
    let mut bodies = Vec::new();
    for case in cases {
        let mut req = request("POST", "/api/v1/payments");
        if let Some(k) = case {
            req = with_key(req, k);
        }
        let response = payment_link_api::handle(&adapters, req).await;
        assert_eq!(response.status(), 401, "{case:?}");
        bodies.push(problem(&response));
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
    assert_eq!(
        bodies[0]["detail"],
        "Send a valid API key in the x-api-key header."
    );
}

#[tokio::test]
async fn a_key_addresses_its_own_tenant_and_revoking_needs_the_right_tenant() {
    let env = TestEnv::new().await;
    let store = env.store();
    let a = new_key(&env, "tenant_c").await;
    let scope = apikeys::authenticate(&store, Some(a.key.expose()))
        .await
        .unwrap();
    assert_eq!(
        (scope.tenant_id(), scope.environment_id()),
        ("tenant_c", "live")
    );
    // Another tenant cannot revoke it by id.
    let other = TenantScope::new("tenant_d", "live").unwrap();
    assert!(matches!(
        apikeys::revoke(&store, &other, &a.key_id).await,
        Err(apikeys::ApiKeyError::NotFound { .. })
    ));
    assert!(
        apikeys::authenticate(&store, Some(a.key.expose()))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn unknown_paths_and_methods_are_problems_before_authentication() {
    let env = TestEnv::new().await;
    let adapters = env.adapters();
    let cases = [
        ("PATCH", "/api/v1/payments", 405),
        ("GET", "/api/v1/refunds", 404),
        ("POST", "/api/v1/connections/stripe", 404),
    ];
    for (method, path, status) in cases {
        let response = payment_link_api::handle(&adapters, request(method, path)).await;
        assert_eq!(response.status(), status, "{method} {path}");
        assert_eq!(problem(&response)["status"], status);
    }
}
