//! Customer sync against the emulator and both simulators.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use serde_json::{Value, json};
use shared::adapters::aws::store::ItemExt;
use shared::adapters::flexprice::{FlexpriceClient, FlexpriceConfig};
use shared::adapters::razorpay::{RazorpayClient, RazorpayConfig};
use shared::domain::keys::TenantScope;
use shared::domain::secret::Secret;
use shared::services::customers::{self, CustomerSyncError, Synced};
use simulators::HasRecorder;
use testkit::TestEnv;

struct Setup {
    env: TestEnv,
    razorpay_sim: simulators::razorpay::RunningSim,
    flexprice_url: String,
    razorpay: RazorpayClient,
    flexprice: FlexpriceClient,
    scope: TenantScope,
}

impl Setup {
    fn account(&self) -> customers::RazorpayAccount<'_> {
        customers::RazorpayAccount {
            key_id: "rzp_test_sync",
            api: &self.razorpay,
        }
    }
}

async fn setup() -> Setup {
    let env = TestEnv::new().await;
    let local = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let razorpay_sim = simulators::razorpay::Simulator::new(simulators::razorpay::SimConfig::new(
        "rzp_test_sync",
        "sync_secret",
    ))
    .unwrap()
    .serve(local)
    .await
    .unwrap();
    let flexprice_sim = simulators::flexprice::Simulator::new("fp_sync_key", None)
        .unwrap()
        .serve(local)
        .await
        .unwrap();
    let razorpay = RazorpayClient::new(RazorpayConfig::new(
        &razorpay_sim.url,
        "rzp_test_sync",
        Secret::new("sync_secret".into()),
    ))
    .unwrap();
    let flexprice = FlexpriceClient::new(FlexpriceConfig::new(
        &flexprice_sim.url,
        Secret::new("fp_sync_key".into()),
    ))
    .unwrap();
    Setup {
        env,
        razorpay_sim,
        flexprice_url: flexprice_sim.url,
        razorpay,
        flexprice,
        scope: TenantScope::new("tenant_sync", "live").unwrap(),
    }
}

async fn flexprice_customer(s: &Setup, body: Value) -> String {
    let created: Value =
        shared::adapters::http::client(shared::adapters::http::Timeouts::default())
            .unwrap()
            .post(format!("{}/v1/customers", s.flexprice_url))
            .header("x-api-key", "fp_sync_key")
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    created["id"].as_str().unwrap().to_owned()
}

fn customer_creates(s: &Setup) -> usize {
    s.razorpay_sim
        .sim
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/customers")
        .count()
}

#[tokio::test]
async fn first_sync_creates_then_the_mapping_answers() {
    let s = setup().await;
    let id = flexprice_customer(
        &s,
        json!({"external_id": "e1", "name": "Ada Lovelace", "email": "ada@example.com"}),
    )
    .await;
    let store = s.env.store();
    let first = customers::ensure(&store, s.account(), &s.flexprice, &s.scope, &id)
        .await
        .unwrap();
    assert!(matches!(first, Synced::Created(_)), "{first:?}");
    let second = customers::ensure(&store, s.account(), &s.flexprice, &s.scope, &id)
        .await
        .unwrap();
    assert_eq!(second, Synced::Mapped(first.razorpay_id().to_owned()));
    assert_eq!(customer_creates(&s), 1);
    // Both directions are stored, and the Razorpay customer carries our ids in its notes.
    let back = store
        .get(&s.scope.key("RZP_CUSTOMER", first.razorpay_id()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.str_attr("flexprice_customer_id"), Some(id.as_str()));
    let rzp = s.razorpay.get_customer(first.razorpay_id()).await.unwrap();
    assert_eq!(rzp.notes.get("flexprice_customer_id"), Some(id.as_str()));
    assert_eq!(rzp.notes.get("tenant_id"), Some("tenant_sync"));
}

#[tokio::test]
async fn concurrent_first_syncs_end_with_one_customer_and_one_mapping() {
    let s = Arc::new(setup().await);
    let id = flexprice_customer(&s, json!({"external_id": "e2", "name": "Grace Hopper", "email": "grace@example.com", "contact": "+919812345678"})).await;
    let syncs = (0..10).map(|_| {
        let s = s.clone();
        let id = id.clone();
        tokio::spawn(async move {
            customers::ensure(&s.env.store(), s.account(), &s.flexprice, &s.scope, &id).await
        })
    });
    let results: Vec<Synced> = futures::future::join_all(syncs)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    let ids: std::collections::HashSet<&str> = results.iter().map(Synced::razorpay_id).collect();
    assert_eq!(ids.len(), 1, "{results:?}");
    // Razorpay (fail_existing "0") returned one customer however often it was asked.
    let listed: Value = shared::adapters::http::client(shared::adapters::http::Timeouts::default())
        .unwrap()
        .get(format!("{}/v1/customers", s.razorpay_sim.url))
        .basic_auth("rzp_test_sync", Some("sync_secret"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["count"], 1);
    let created = results
        .iter()
        .filter(|r| matches!(r, Synced::Created(_)))
        .count();
    assert!(created <= 1, "{results:?}");
}

#[tokio::test]
async fn a_customer_without_email_or_contact_is_a_clear_422() {
    let s = setup().await;
    let id = flexprice_customer(&s, json!({"external_id": "e3", "name": "Nobody"})).await;
    let err = customers::ensure(&s.env.store(), s.account(), &s.flexprice, &s.scope, &id)
        .await
        .unwrap_err();
    assert!(
        matches!(err, CustomerSyncError::NoContact { .. }),
        "{err:?}"
    );
    let problem = shared::api::problem::Problem::from(err.to_refusal());
    assert_eq!(problem.status, 422);
    assert!(
        problem.detail.contains("neither an email nor a contact"),
        "{}",
        problem.detail
    );
    assert_eq!(customer_creates(&s), 0);
    let missing = customers::ensure(
        &s.env.store(),
        s.account(),
        &s.flexprice,
        &s.scope,
        "cust_missing",
    )
    .await
    .unwrap_err();
    assert!(
        matches!(missing, CustomerSyncError::NotFound { .. }),
        "{missing:?}"
    );
}

#[tokio::test]
async fn two_flexprice_customers_with_one_email_and_contact_share_the_razorpay_customer() {
    let s = setup().await;
    let body = |ext: &str| json!({"external_id": ext, "name": "Twin", "email": "twin@example.com", "contact": "+919800000000"});
    let a = flexprice_customer(&s, body("ea")).await;
    let b = flexprice_customer(&s, body("eb")).await;
    let store = s.env.store();
    let first = customers::ensure(&store, s.account(), &s.flexprice, &s.scope, &a)
        .await
        .unwrap();
    let second = customers::ensure(&store, s.account(), &s.flexprice, &s.scope, &b)
        .await
        .unwrap();
    assert_eq!(first.razorpay_id(), second.razorpay_id());
    assert!(
        store
            .get(&shared::adapters::aws::records::customer_key(
                &s.scope,
                "rzp_test_sync",
                &b
            ))
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn names_and_contacts_razorpay_would_refuse_are_made_to_fit_before_they_are_sent() {
    let s = setup().await;
    // The simulator holds Razorpay's rules: sent as they are, these are refused.
    let raw = s
        .razorpay
        .create_customer(&shared::adapters::razorpay::wire::CustomerRequest {
            name: "Acme & Sons, Inc.".into(),
            contact: Some("+1 (415) 555-0100".into()),
            fail_existing: "0".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        raw.field(),
        Some("name"),
        "the simulator refuses the raw name: {raw}"
    );
    let id = flexprice_customer(
        &s,
        json!({"external_id": "e9", "name": "Acme & Sons, Inc.", "contact": "+1 (415) 555-0100",
            "email": "billing@acme.test"}),
    )
    .await;
    let synced = customers::ensure(&s.env.store(), s.account(), &s.flexprice, &s.scope, &id)
        .await
        .unwrap();
    let customer = s.razorpay.get_customer(synced.razorpay_id()).await.unwrap();
    assert_eq!(customer.name.as_deref(), Some("Acme and Sons Inc."));
    assert_eq!(customer.contact.as_deref(), Some("+14155550100"));
    assert_eq!(customer.email.as_deref(), Some("billing@acme.test"));
}

#[tokio::test]
async fn a_connection_moved_to_another_razorpay_account_never_reuses_the_old_customer_id() {
    let s = setup().await;
    let id = flexprice_customer(
        &s,
        json!({"external_id": "e10", "name": "Ada Lovelace", "email": "ada@example.com"}),
    )
    .await;
    let store = s.env.store();
    let test_mode = customers::ensure(&store, s.account(), &s.flexprice, &s.scope, &id)
        .await
        .unwrap();
    // The same tenant now connected to a live account: another Razorpay, other ids.
    let live_sim = simulators::razorpay::Simulator::new(simulators::razorpay::SimConfig::new(
        "rzp_live_other",
        "live_secret",
    ))
    .unwrap()
    .serve(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
    .await
    .unwrap();
    let live = RazorpayClient::new(RazorpayConfig::new(
        &live_sim.url,
        "rzp_live_other",
        Secret::new("live_secret".into()),
    ))
    .unwrap();
    let live_account = customers::RazorpayAccount {
        key_id: "rzp_live_other",
        api: &live,
    };
    let in_live = customers::ensure(&store, live_account, &s.flexprice, &s.scope, &id)
        .await
        .unwrap();
    assert!(matches!(in_live, Synced::Created(_)), "{in_live:?}");
    assert_ne!(in_live.razorpay_id(), test_mode.razorpay_id());
    assert!(
        live.get_customer(in_live.razorpay_id()).await.is_ok(),
        "it exists in live"
    );
    // Each account keeps its own mapping.
    let again = customers::ensure(&store, s.account(), &s.flexprice, &s.scope, &id)
        .await
        .unwrap();
    assert_eq!(again, Synced::Mapped(test_mode.razorpay_id().to_owned()));
}

#[tokio::test]
async fn the_razorpay_customer_id_is_merged_into_the_flexprice_customer_metadata() {
    let s = setup().await;
    let id = flexprice_customer(
        &s,
        json!({"external_id": "e11", "name": "Ada Lovelace", "email": "ada11@example.com",
            "metadata": {"plan": "gold", "region": "in"}}),
    )
    .await;
    let synced = customers::ensure(&s.env.store(), s.account(), &s.flexprice, &s.scope, &id)
        .await
        .unwrap();
    let customer = s.flexprice.get_customer(&id).await.unwrap();
    assert_eq!(
        customer
            .metadata
            .get("razorpay_customer_id")
            .map(String::as_str),
        Some(synced.razorpay_id())
    );
    assert_eq!(
        customer.metadata.get("plan").map(String::as_str),
        Some("gold"),
        "kept"
    );
    assert_eq!(
        customer.metadata.get("region").map(String::as_str),
        Some("in"),
        "kept"
    );
}
