//! Service decisions over the in-memory fakes (held to DynamoDB by `contract.rs`): no emulator,
//! no simulator, milliseconds each. The end-to-end tests keep proving the same flows on the
//! local stack; these pin each decision down alone.

use serde_json::{Value, json};
use shared::adapters::aws::records;
use shared::adapters::memory::MemoryTable;
use shared::api::views;
use shared::domain::ids::FlexpriceId;
use shared::domain::keys::TenantScope;
use shared::domain::money::{Currency, Money};
use shared::domain::payment::{Payment, PaymentStatus};
use shared::domain::sync::{InvoiceSync, MadeInvoice, SyncChange};
use shared::ports::{SystemClock, Table};
use shared::services::apikeys::{self, ApiKeyError};
use shared::services::reconcile::{self, Applied};
use shared::services::{invoice_sync, payments};

fn scope() -> TenantScope {
    TenantScope::new("acme", "live").unwrap()
}

// ---- API keys ----

#[tokio::test]
async fn a_key_authenticates_to_its_own_scope_until_revoked() {
    let table = MemoryTable::new();
    let created = apikeys::create(&table, &SystemClock, &scope(), "backend", None)
        .await
        .unwrap();
    let other = TenantScope::new("globex", "live").unwrap();
    apikeys::create(&table, &SystemClock, &other, "theirs", None)
        .await
        .unwrap();
    let found = apikeys::authenticate(&table, Some(created.key.expose()))
        .await
        .unwrap();
    assert_eq!(found, scope());
    apikeys::revoke(&table, &scope(), &created.key_id)
        .await
        .unwrap();
    let after = apikeys::authenticate(&table, Some(created.key.expose())).await;
    assert!(matches!(after, Err(ApiKeyError::Unauthorized)), "{after:?}");
}

#[tokio::test]
async fn missing_malformed_and_unknown_keys_are_one_and_the_same_refusal() {
    let table = MemoryTable::new();
    let unknown = format!("fxr_{}", "0".repeat(64));
    for header in [None, Some(""), Some("Bearer x"), Some(unknown.as_str())] {
        let result = apikeys::authenticate(&table, header).await;
        assert!(
            matches!(result, Err(ApiKeyError::Unauthorized)),
            "{header:?}: {result:?}"
        );
    }
    let revoke = apikeys::revoke(&table, &scope(), "key_nope").await;
    assert!(
        matches!(revoke, Err(ApiKeyError::NotFound { .. })),
        "{revoke:?}"
    );
}

// ---- payments ----

/// A link payment as the payment service leaves it, in `status`, at version 3.
async fn stored_payment(table: &dyn Table, id: &str, status: &str) {
    let inr = Currency::from_code("INR").unwrap();
    let mut payment = Payment::new(
        id.into(),
        format!("key-{id}"),
        "inv_1".into(),
        Money::from_minor(10000, inr),
        1_764_000_000,
    );
    payment.status = PaymentStatus::parse(status).unwrap();
    payment.version = 3;
    records::create(table, &records::payment_key(&scope(), id), &payment)
        .await
        .unwrap();
}

fn event(name: &str, entity: Value) -> String {
    json!({"entity": "event", "event": name, "contains": ["payment"],
        "payload": entity, "created_at": 1764060000})
    .to_string()
}

fn failed_attempt(payment_id: &str, razorpay_id: &str) -> String {
    event(
        "payment.failed",
        json!({"payment": {"entity": {"id": razorpay_id, "entity": "payment", "amount": 10000,
            "currency": "INR", "status": "failed", "error_code": "BAD_REQUEST_ERROR",
            "notes": {"flexprice_payment_id": payment_id, "tenant_id": "acme",
                "environment_id": "live"}}}}),
    )
}

fn link_ended(payment_id: &str, name: &str) -> String {
    event(
        name,
        json!({"payment_link": {"entity": {"id": "plink_1", "reference_id": payment_id,
            "status": "expired", "notes": {}}}}),
    )
}

async fn status_of(table: &dyn Table, id: &str) -> (String, u64) {
    let payment = records::read::<Payment>(table, &records::payment_key(&scope(), id))
        .await
        .unwrap()
        .unwrap();
    (payment.status.as_str().to_owned(), payment.version)
}

#[tokio::test]
async fn a_late_failed_attempt_is_recorded_and_never_undoes_success() {
    let (adapters, table) = testkit::fake_adapters().await;
    stored_payment(table.as_ref(), "fxp_paid", "SUCCEEDED").await;
    let applied = reconcile::apply(
        &adapters,
        &scope(),
        &failed_attempt("fxp_paid", "pay_Late1"),
    )
    .await
    .unwrap();
    assert_eq!(applied, Applied::AttemptRecorded);
    assert_eq!(
        status_of(table.as_ref(), "fxp_paid").await,
        ("SUCCEEDED".into(), 4)
    );
    // The same attempt again (a redelivery) changes nothing.
    let again = reconcile::apply(
        &adapters,
        &scope(),
        &failed_attempt("fxp_paid", "pay_Late1"),
    )
    .await
    .unwrap();
    assert_eq!(again, Applied::NoChange);
    assert_eq!(
        status_of(table.as_ref(), "fxp_paid").await,
        ("SUCCEEDED".into(), 4)
    );
}

#[tokio::test]
async fn an_ended_link_fails_an_open_payment_and_leaves_a_paid_one() {
    let (adapters, table) = testkit::fake_adapters().await;
    stored_payment(table.as_ref(), "fxp_open", "PENDING").await;
    stored_payment(table.as_ref(), "fxp_done", "SUCCEEDED").await;
    let open = reconcile::apply(
        &adapters,
        &scope(),
        &link_ended("fxp_open", "payment_link.expired"),
    )
    .await
    .unwrap();
    assert_eq!(open, Applied::Failed);
    assert_eq!(
        status_of(table.as_ref(), "fxp_open").await,
        ("FAILED".into(), 4)
    );
    let done = reconcile::apply(
        &adapters,
        &scope(),
        &link_ended("fxp_done", "payment_link.cancelled"),
    )
    .await
    .unwrap();
    assert_eq!(done, Applied::NoChange);
    assert_eq!(
        status_of(table.as_ref(), "fxp_done").await,
        ("SUCCEEDED".into(), 3)
    );
}

#[tokio::test]
async fn events_about_other_tenants_or_payments_we_did_not_make_change_nothing() {
    let (adapters, table) = testkit::fake_adapters().await;
    stored_payment(table.as_ref(), "fxp_1", "PENDING").await;
    // Another tenant's notes on our route: refused, never applied to our payment.
    let theirs = failed_attempt("fxp_1", "pay_X").replace("\"acme\"", "\"globex\"");
    assert!(
        reconcile::apply(&adapters, &scope(), &theirs)
            .await
            .is_err()
    );
    // A link made outside flexrzp on the same Razorpay account.
    let foreign = link_ended("", "payment_link.expired")
        .replace("\"reference_id\":\"\"", "\"reference_id\":null");
    assert_eq!(
        reconcile::apply(&adapters, &scope(), &foreign)
            .await
            .unwrap(),
        Applied::NotOurs
    );
    // Named in the notes but missing: an error to look at, not silence.
    assert!(
        reconcile::apply(&adapters, &scope(), &failed_attempt("fxp_gone", "pay_Y"))
            .await
            .is_err()
    );
    assert_eq!(
        status_of(table.as_ref(), "fxp_1").await,
        ("PENDING".into(), 3)
    );
}

#[tokio::test]
async fn a_payment_is_read_only_through_its_own_scope() {
    let (adapters, table) = testkit::fake_adapters().await;
    stored_payment(table.as_ref(), "fxp_mine", "PENDING").await;
    let mine = payments::get(&adapters, &scope(), "fxp_mine")
        .await
        .unwrap();
    assert_eq!(mine.status, PaymentStatus::Pending);
    assert_eq!(mine.amount.minor(), 10000);
    let other = TenantScope::new("globex", "live").unwrap();
    let theirs = payments::get(&adapters, &other, "fxp_mine")
        .await
        .unwrap_err();
    assert_eq!(theirs.status, 404);
}

// ---- invoice sync ----

#[tokio::test]
async fn a_sync_status_reads_its_record_or_says_how_to_start_one() {
    let (adapters, table) = testkit::fake_adapters().await;
    let invoice = FlexpriceId::parse("inv_1").unwrap();
    let missing = invoice_sync::status(&adapters, &scope(), &invoice)
        .await
        .unwrap_err();
    assert_eq!(missing.status, 404);
    assert!(missing.detail.contains("POST"), "{}", missing.detail);
    let inr = Currency::from_code("INR").unwrap();
    let claimed = SyncChange::Claimed {
        lease_until: 0,
        customer_id: "cust_1".into(),
    };
    let synced = InvoiceSync::first("inv_1", claimed, 1).with(
        SyncChange::Synced(MadeInvoice {
            razorpay_invoice_id: "inv_Rzp1".into(),
            razorpay_status: "issued".into(),
            payment_url: Some("https://rzp.io/i/x".into()),
            form: "itemized".into(),
            form_reason: None,
            amount: Money::from_minor(127558, inr),
        }),
        2,
    );
    records::put(
        table.as_ref(),
        &records::sync_key(&scope(), "inv_1"),
        &synced,
    )
    .await
    .unwrap();
    let view = invoice_sync::status(&adapters, &scope(), &invoice)
        .await
        .unwrap();
    assert_eq!(view, synced);
    let shown = views::invoice_sync(&view);
    assert_eq!(
        (
            shown["state"].as_str(),
            shown["razorpay_invoice_id"].as_str(),
            shown["amount_minor"].as_u64(),
            shown["currency"].as_str(),
            shown["attempts"].as_u64()
        ),
        (
            Some("SYNCED"),
            Some("inv_Rzp1"),
            Some(127558),
            Some("INR"),
            Some(1)
        )
    );
}
