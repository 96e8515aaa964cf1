//! Service decisions over the in-memory fakes (held to DynamoDB by `contract.rs`): no emulator,
//! no simulator, milliseconds each. The end-to-end tests keep proving the same flows on the
//! local stack; these pin each decision down alone.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use shared::adapters::aws::records;
use shared::adapters::flexprice::wire::RecordPaymentRequest;
use shared::adapters::memory::Fault;
use shared::adapters::memory::MemoryTable;
use shared::adapters::razorpay::wire::{InvoiceStatus, LinkStatus, Refund, RefundStatus};
use shared::api::requests::PaymentRequest;
use shared::api::views;
use shared::domain::error::{Failure, FieldsKind, Refusal};
use shared::domain::ids::FlexpriceId;
use shared::domain::instruments::{Collection, InstrumentState};
use shared::domain::jobs::Task;
use shared::domain::keys::TenantScope;
use shared::domain::money::{Currency, DecimalText, Money};
use shared::domain::payment::{Payment, PaymentStatus};
use shared::domain::requests::RefundRequest;
use shared::domain::sync::{InvoiceSync, MadeInvoice, SyncChange};
use shared::ports::{Clock, SystemClock, Table};
use shared::ports::{FlexpriceApi, ManualClock, RazorpayApi};
use shared::services::apikeys::{self, ApiKeyError};
use shared::services::credit_notes::{self, CreditNoteRefund};
use shared::services::reconcile::{self, Applied};
use shared::services::{collection, payment_url, refund_requests, sweep};
use shared::services::{customers, invoice_sync, payments};
use testkit::FakeStack;

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
    payment.gateway_tracking_id = Some(format!("plink_{id}"));
    payment.version = 3;
    records::create(table, &records::payment_key(&scope(), id), &payment)
        .await
        .unwrap();
    // Its link's order, as a confirmed link event taught it.
    let order = records::PaymentRef {
        payment_id: id.to_owned(),
    };
    records::create(
        table,
        &records::order_key(&scope(), &format!("order_{id}")),
        &order,
    )
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
            "order_id": format!("order_{payment_id}"),
            "notes": {"flexprice_payment_id": payment_id, "tenant_id": "acme",
                "environment_id": "live"}}}}),
    )
}

/// A link event for a payment stored by [`stored_payment`] (its link is `plink_{id}`).
fn link_ended(payment_id: &str, name: &str) -> String {
    ended_link(payment_id, &format!("plink_{payment_id}"), name)
}

fn ended_link(payment_id: &str, link_id: &str, name: &str) -> String {
    event(
        name,
        json!({"payment_link": {"entity": {"id": link_id, "reference_id": payment_id,
            "status": "expired", "notes": {}}}}),
    )
}

/// The link event of a payment the payment service made.
fn ended(payment: &Payment, name: &str) -> String {
    ended_link(&payment.id, link_of(payment), name)
}

fn link_of(payment: &Payment) -> &str {
    payment
        .gateway_tracking_id
        .as_deref()
        .expect("a payment with a link")
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
async fn events_about_other_tenants_or_payments_we_did_not_make_are_acknowledged_unchanged() {
    let (adapters, table) = testkit::fake_adapters().await;
    stored_payment(table.as_ref(), "fxp_1", "PENDING").await;
    let unmapped = |body: String| body.replace("order_fxp_1", "order_elsewhere");
    // Another tenant's notes on our route, another integration's payment id (Flexprice's own
    // Razorpay integration names `pay_01…`), a link made outside flexrzp: none is ours, and
    // none is parked (acknowledged, nothing changed).
    let theirs = unmapped(failed_attempt("fxp_1", "pay_X").replace("\"acme\"", "\"globex\""));
    let native = failed_attempt("pay_01JXAMPLE", "pay_Y");
    let foreign = link_ended("", "payment_link.expired")
        .replace("\"reference_id\":\"\"", "\"reference_id\":null");
    for body in [theirs, native, foreign] {
        let applied = reconcile::apply(&adapters, &scope(), &body).await;
        assert_eq!(applied, Ok(Applied::NotOurs), "{body}");
    }
    assert_eq!(
        status_of(table.as_ref(), "fxp_1").await,
        ("PENDING".into(), 3)
    );
}

#[tokio::test]
async fn notes_naming_our_payment_count_only_on_its_links_order() {
    let stack = connected_stack(false).await;
    let made = payments::create(&stack.adapters, &scope(), payment_request("order-9"))
        .await
        .unwrap();
    let order = stack.razorpay.attempt_link(link_of(&made.payment));
    // A Checkout payment whose notes were copied from ours, on another order: nothing counts.
    let forged = captured_on("order_Checkout1", &made.payment.id, "pay_Forged", 10000);
    let applied = reconcile::apply(&stack.adapters, &scope(), &forged).await;
    assert_eq!(applied, Ok(Applied::NotOurs));
    assert_eq!(
        stack.razorpay.calls("get_payment_link"),
        1,
        "the link was asked once"
    );
    assert!(stack.flexprice.payments().is_empty());
    // The real payment, on the link's order, counts; its order is remembered, so the next
    // event about it asks Razorpay nothing.
    let real = captured_on(&order, &made.payment.id, "pay_Real", 10000);
    let counted = reconcile::apply(&stack.adapters, &scope(), &real).await;
    assert_eq!(
        counted,
        Ok(Applied::Counted {
            status: "SUCCEEDED".into()
        })
    );
    let again = reconcile::apply(&stack.adapters, &scope(), &real).await;
    assert_eq!(again, Ok(Applied::AlreadyCounted));
    assert_eq!(stack.razorpay.calls("get_payment_link"), 2);
    assert_eq!(
        standing(&stack, &made.payment.id).await,
        (PaymentStatus::Succeeded, 10000)
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
    assert!(matches!(theirs, Refusal::NotFound(_)), "{theirs:?}");
}

// ---- invoice sync ----

#[tokio::test]
async fn a_sync_status_reads_its_record_or_says_how_to_start_one() {
    let (adapters, table) = testkit::fake_adapters().await;
    let invoice = FlexpriceId::parse("inv_1").unwrap();
    let missing = invoice_sync::status(&adapters, &scope(), &invoice)
        .await
        .unwrap_err();
    let Refusal::NotFound(detail) = &missing else {
        panic!("{missing:?}");
    };
    assert!(detail.contains("POST"), "{detail}");
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

// ---- with Razorpay and Flexprice faked too ----

/// A finalized ₹100.00 invoice of a customer with an email, in the fake Flexprice.
fn open_invoice(stack: &FakeStack) {
    stack.flexprice.add_invoice(json!({
        "id": "inv_1", "customer_id": "cust_1", "invoice_status": "FINALIZED",
        "payment_status": "PENDING", "currency": "inr", "amount_due": "100.00",
        "amount_paid": "0", "amount_remaining": "100.00", "subtotal": "100.00",
        "total": "100.00", "total_tax": "0", "invoice_number": "INV-1",
        "line_items": [{"display_name": "Plan", "amount": "100.00", "quantity": "1"}],
    }));
    stack.flexprice.add_customer(json!({
        "id": "cust_1", "name": "Acme", "email": "billing@acme.test",
    }));
}

async fn connected_stack(outbound_sync: bool) -> FakeStack {
    let stack = FakeStack::new().await;
    stack.connect(&scope(), outbound_sync).await;
    open_invoice(&stack);
    stack
}

fn payment_request(key: &str) -> PaymentRequest {
    let body = json!({"amount": "100.00", "currency": "INR", "destination_type": "INVOICE",
        "destination_id": "inv_1", "payment_method_type": "PAYMENT_LINK",
        "payment_gateway": "razorpay", "idempotency_key": key});
    PaymentRequest::parse(Some("application/json"), body.to_string().as_bytes()).unwrap()
}

#[tokio::test]
async fn a_link_made_before_a_lost_answer_is_adopted_by_the_retry_never_made_twice() {
    let stack = connected_stack(false).await;
    stack
        .razorpay
        .fail_next("create_payment_link", Fault::TimeoutAfter);
    let first = payments::create(&stack.adapters, &scope(), payment_request("order-1")).await;
    assert!(
        matches!(&first, Err(Refusal::Unavailable(_))),
        "safe to retry: {first:?}"
    );
    assert_eq!(stack.razorpay.links().len(), 1, "Razorpay made it");
    let retried = payments::create(&stack.adapters, &scope(), payment_request("order-1"))
        .await
        .unwrap();
    let links = stack.razorpay.links();
    assert_eq!(links.len(), 1, "adopted, not made again");
    assert_eq!(stack.razorpay.calls("create_payment_link"), 1);
    assert_eq!(retried.payment.status, PaymentStatus::Pending);
    assert_eq!(
        retried.payment.gateway_tracking_id.as_deref(),
        Some(links[0].id.as_str())
    );
}

#[tokio::test]
async fn a_payment_abandoned_mid_create_is_taken_over_and_its_link_adopted() {
    let stack = connected_stack(false).await;
    // A request created the payment and its link, then died before recording the link.
    let made = payments::create(&stack.adapters, &scope(), payment_request("order-2"))
        .await
        .unwrap();
    let key = records::payment_key(&scope(), &made.payment.id);
    let mut abandoned = made.payment.clone();
    abandoned.status = PaymentStatus::Initiated;
    abandoned.gateway_tracking_id = None;
    abandoned.lock_expires_at = Some(1); // long run out
    records::put(stack.table.as_ref(), &key, &abandoned)
        .await
        .unwrap();
    let again = payments::create(&stack.adapters, &scope(), payment_request("order-2"))
        .await
        .unwrap();
    assert!(!again.new, "the same payment");
    assert_eq!(again.payment.status, PaymentStatus::Pending);
    assert_eq!(
        again.payment.version,
        abandoned.version + 2,
        "taken, then linked"
    );
    assert_eq!(stack.razorpay.links().len(), 1);
    assert_eq!(stack.razorpay.calls("find_payment_links_by_reference"), 1);
}

#[tokio::test]
async fn the_same_key_with_another_body_is_refused_and_a_finished_payment_is_returned() {
    let stack = connected_stack(false).await;
    let made = payments::create(&stack.adapters, &scope(), payment_request("order-3"))
        .await
        .unwrap();
    assert!(made.new);
    let same = payments::create(&stack.adapters, &scope(), payment_request("order-3"))
        .await
        .unwrap();
    assert!(!same.new);
    assert_eq!(same.payment, made.payment);
    let mut other = payment_request("order-3");
    other.amount = shared::domain::money::DecimalText::new("50.00");
    let refused = payments::create(&stack.adapters, &scope(), other)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &refused,
            Refusal::Fields {
                kind: FieldsKind::Conflict,
                ..
            }
        ),
        "{refused:?}"
    );
    assert_eq!(refused.field_at_fault(), Some("idempotency_key"));
    assert_eq!(stack.razorpay.calls("create_payment_link"), 1);
}

#[tokio::test]
async fn concurrent_first_syncs_of_one_customer_map_one_razorpay_customer() {
    let stack = connected_stack(false).await;
    let scope = scope();
    let ensure = || {
        customers::ensure(
            stack.table.as_ref(),
            customers::RazorpayAccount {
                key_id: "rzp_test_fake",
                api: stack.razorpay.as_ref(),
            },
            stack.flexprice.as_ref(),
            &scope,
            "cust_1",
        )
    };
    let (a, b) = tokio::join!(ensure(), ensure());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.razorpay_id(), b.razorpay_id());
    assert_eq!(stack.razorpay.calls("create_customer"), 2, "both raced");
    assert_eq!(stack.razorpay.customers().len(), 1);
    let outcomes = [&a, &b].map(|s| matches!(s, customers::Synced::Adopted(_)));
    assert_eq!(outcomes.iter().filter(|adopted| **adopted).count(), 1);
    let third = ensure().await.unwrap();
    assert_eq!(third, customers::Synced::Mapped(a.razorpay_id().to_owned()));
}

async fn claimed_sync(stack: &FakeStack, lease_until: u64) {
    let claimed = SyncChange::Claimed {
        lease_until,
        customer_id: "cust_1".into(),
    };
    let record = InvoiceSync::first("inv_1", claimed, 1);
    records::put(
        stack.table.as_ref(),
        &records::sync_key(&scope(), "inv_1"),
        &record,
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_sync_under_a_live_lease_waits_and_one_after_it_adopts_what_the_holder_made() {
    let stack = connected_stack(true).await;
    claimed_sync(&stack, u64::MAX).await;
    let busy = invoice_sync::sync(&stack.adapters, &scope(), "inv_1").await;
    assert!(
        matches!(&busy, Err(Failure::Retryable(r)) if r.contains("in progress")),
        "{busy:?}"
    );
    assert_eq!(stack.razorpay.calls("find_invoices_by_receipt"), 0);
    // The holder created the Razorpay invoice, then died: its lease runs out.
    stack
        .razorpay
        .fail_next("create_invoice", Fault::TimeoutAfter);
    claimed_sync(&stack, 0).await;
    let lost = invoice_sync::sync(&stack.adapters, &scope(), "inv_1").await;
    assert!(matches!(lost, Err(Failure::Retryable(_))), "{lost:?}");
    let after = invoice_sync::sync(&stack.adapters, &scope(), "inv_1")
        .await
        .unwrap();
    let made = stack.razorpay.invoices();
    assert_eq!(made.len(), 1, "adopted by receipt, not made twice");
    assert_eq!(
        after,
        invoice_sync::Synced::Created {
            razorpay_invoice_id: made[0].id.clone()
        }
    );
    let record = invoice_sync::status(
        &stack.adapters,
        &scope(),
        &FlexpriceId::parse("inv_1").unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(record.state, shared::domain::sync::SyncState::Synced);
    assert_eq!(record.amount.map(|a| a.minor()), Some(10000));
    assert!(record.metadata_written);
    let metadata = stack.flexprice.invoice("inv_1").unwrap().metadata;
    assert_eq!(metadata.get("razorpay_invoice_id"), Some(&made[0].id));
}

/// `payment.captured` for a payment on `payment`'s link (on the link's order, with the
/// link's notes copied, as Razorpay does).
fn captured(stack: &FakeStack, payment: &Payment, razorpay_id: &str, amount: u64) -> String {
    let order_id = stack.razorpay.attempt_link(link_of(payment));
    captured_on(&order_id, &payment.id, razorpay_id, amount)
}

/// A payment's status and what was counted on it.
async fn standing(stack: &FakeStack, id: &str) -> (PaymentStatus, u64) {
    let payment = payments::get(&stack.adapters, &scope(), id).await.unwrap();
    (payment.status, payment.amount_paid)
}

fn captured_on(order_id: &str, payment_id: &str, razorpay_id: &str, amount: u64) -> String {
    event(
        "payment.captured",
        json!({"payment": {"entity": {"id": razorpay_id, "entity": "payment", "amount": amount,
            "currency": "INR", "status": "captured", "captured": true, "order_id": order_id,
            "notes": {"flexprice_payment_id": payment_id, "tenant_id": "acme",
                "environment_id": "live"}}}}),
    )
}

#[tokio::test]
async fn captured_money_is_recorded_in_flexprice_once_through_a_lost_answer_and_a_duplicate() {
    let stack = connected_stack(false).await;
    let made = payments::create(&stack.adapters, &scope(), payment_request("order-4"))
        .await
        .unwrap();
    let body = captured(&stack, &made.payment, "pay_Cap1", 10000);
    stack
        .flexprice
        .fail_next("record_payment", Fault::TimeoutAfter);
    let lost = reconcile::apply(&stack.adapters, &scope(), &body).await;
    assert!(matches!(lost, Err(Failure::Retryable(_))), "{lost:?}");
    let counted = reconcile::apply(&stack.adapters, &scope(), &body)
        .await
        .unwrap();
    assert_eq!(
        counted,
        Applied::Counted {
            status: "SUCCEEDED".into()
        }
    );
    let again = reconcile::apply(&stack.adapters, &scope(), &body)
        .await
        .unwrap();
    assert_eq!(again, Applied::AlreadyCounted);
    let recorded = stack.flexprice.payments();
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded["razorpay:pay_Cap1"].amount, "100.00");
    assert_eq!(
        standing(&stack, &made.payment.id).await,
        (PaymentStatus::Succeeded, 10000)
    );
}

#[tokio::test]
async fn money_counts_only_once_flexprice_processed_it_and_a_busy_key_is_not_a_refusal() {
    let stack = connected_stack(false).await;
    let made = payments::create(&stack.adapters, &scope(), payment_request("order-5"))
        .await
        .unwrap();
    let body = captured(&stack, &made.payment, "pay_Two", 10000);
    // A 409 (another delivery holds the key) is asked again, not filed as a refusal; then
    // Flexprice inserts the row and fails before processing it.
    stack.flexprice.fail_next("record_payment", Fault::Conflict);
    stack
        .flexprice
        .fail_next("record_payment", Fault::InsertedUnprocessed);
    let first = reconcile::apply(&stack.adapters, &scope(), &body).await;
    assert!(matches!(first, Err(Failure::Retryable(_))), "{first:?}");
    assert_eq!(
        standing(&stack, &made.payment.id).await,
        (PaymentStatus::Pending, 0)
    );
    assert_eq!(stack.flexprice.invoice("inv_1").unwrap().amount_paid, "0");
    // The retry gets the unprocessed row back, processes it, and only then counts.
    let counted = reconcile::apply(&stack.adapters, &scope(), &body)
        .await
        .unwrap();
    assert_eq!(
        counted,
        Applied::Counted {
            status: "SUCCEEDED".into()
        }
    );
    assert_eq!(stack.flexprice.calls("process_payment"), 1);
    let invoice = stack.flexprice.invoice("inv_1").unwrap();
    assert_eq!(
        (
            invoice.payment_status.as_str(),
            invoice.amount_paid.as_str()
        ),
        ("SUCCEEDED", "100.00")
    );
    assert_eq!(
        standing(&stack, &made.payment.id).await,
        (PaymentStatus::Succeeded, 10000)
    );
}

#[tokio::test]
async fn an_event_whose_payment_has_a_null_amount_is_counted_from_razorpays_copy() {
    let stack = connected_stack(false).await;
    let made = payments::create(&stack.adapters, &scope(), payment_request("order-8"))
        .await
        .unwrap();
    let order = stack.razorpay.attempt_link(link_of(&made.payment));
    let body = captured_on(&order, &made.payment.id, "pay_Null", 10000)
        .replace("\"amount\":10000", "\"amount\":null");
    assert!(body.contains("\"amount\":null"), "{body}");
    let notes = json!({"flexprice_payment_id": made.payment.id, "tenant_id": "acme",
        "environment_id": "live"});
    let copy = json!({"id": "pay_Null", "amount": 10000, "currency": "INR",
        "status": "captured", "order_id": order, "notes": notes});
    stack.razorpay.add_payment(copy);
    let counted = reconcile::apply(&stack.adapters, &scope(), &body).await;
    assert_eq!(
        counted,
        Ok(Applied::Counted {
            status: "SUCCEEDED".into()
        })
    );
    assert_eq!(stack.razorpay.calls("get_payment"), 1);
    assert_eq!(
        standing(&stack, &made.payment.id).await,
        (PaymentStatus::Succeeded, 10000)
    );
}

// ---- the reconciliation sweep ----

#[tokio::test]
async fn the_sweep_applies_what_no_webhook_brought_once_including_a_late_capture() {
    let stack = connected_stack(false).await;
    let made = payments::create(&stack.adapters, &scope(), payment_request("sweep-1"))
        .await
        .unwrap();
    let order = stack.razorpay.attempt_link(link_of(&made.payment));
    let notes = json!({"flexprice_payment_id": made.payment.id, "tenant_id": "acme",
        "environment_id": "live"});
    // A failed attempt five minutes ago, whose webhook never came.
    let created_at = SystemClock.now_secs() - 300;
    stack
        .razorpay
        .add_payment(json!({"id": "pay_Late", "amount": 10000, "currency": "INR",
        "status": "failed", "order_id": order, "notes": notes, "created_at": created_at}));
    let first = sweep::sweep(&stack.adapters, &scope()).await.unwrap();
    assert_eq!(first.missed, 1, "{first:?}");
    let tried = payments::get(&stack.adapters, &scope(), &made.payment.id)
        .await
        .unwrap();
    assert_eq!(
        (tried.status, tried.attempts.len()),
        (PaymentStatus::Pending, 1)
    );
    let shown = shared::services::connection::get(&stack.adapters, &scope())
        .await
        .unwrap();
    assert_eq!(shown["webhook"]["status"], "degraded", "{shown}");
    // Nothing new: nothing applied. Then the bank confirms the payment after all: the watched
    // payment is read again and its money counted, once.
    let quiet = sweep::sweep(&stack.adapters, &scope()).await.unwrap();
    assert_eq!(quiet.missed, 0, "{quiet:?}");
    stack.razorpay.capture("pay_Late");
    let late = sweep::sweep(&stack.adapters, &scope()).await.unwrap();
    assert_eq!(late.missed, 1, "{late:?}");
    assert_eq!(
        standing(&stack, &made.payment.id).await,
        (PaymentStatus::Succeeded, 10000)
    );
    let again = sweep::sweep(&stack.adapters, &scope()).await.unwrap();
    assert_eq!(again.missed, 0);
    assert_eq!(stack.flexprice.payments().len(), 1, "recorded once");
}

// ---- refunds ----

/// A payment made and paid in full by Razorpay payment `razorpay_id` (which Razorpay has, made
/// five minutes ago), its capture applied.
async fn paid_payment(stack: &FakeStack, key: &str, razorpay_id: &str) -> Payment {
    let made = payments::create(&stack.adapters, &scope(), payment_request(key))
        .await
        .unwrap();
    let order = stack.razorpay.attempt_link(link_of(&made.payment));
    let notes = json!({"flexprice_payment_id": made.payment.id, "tenant_id": "acme",
        "environment_id": "live"});
    stack.razorpay.add_payment(
        json!({"id": razorpay_id, "amount": 10000, "currency": "INR",
        "status": "captured", "captured": true, "order_id": order, "notes": notes,
        "created_at": SystemClock.now_secs() - 300}),
    );
    made.payment
}

fn refund_event(name: &str, refund: &Refund) -> String {
    json!({"entity": "event", "event": name, "contains": ["refund"],
        "payload": {"refund": {"entity": refund}}, "created_at": 1764060000})
    .to_string()
}

async fn refunded_payment(stack: &FakeStack, id: &str) -> Value {
    views::payment(&payments::get(&stack.adapters, &scope(), id).await.unwrap())
}

#[tokio::test]
async fn a_dashboard_refund_is_reflected_once_partial_then_full_in_any_order_of_delivery() {
    let stack = connected_stack(false).await;
    let payment = paid_payment(&stack, "refund-1", "pay_R1").await;
    let order = stack.razorpay.attempt_link(link_of(&payment));
    let capture = captured_on(&order, &payment.id, "pay_R1", 10000);
    reconcile::apply(&stack.adapters, &scope(), &capture)
        .await
        .unwrap();
    let pending = stack.razorpay.dashboard_refund("pay_R1", 4000);
    let processed = stack
        .razorpay
        .settle_refund(&pending.id, RefundStatus::Processed);
    // Reordered and duplicated: processed first, then the late created, then processed again.
    let first = reconcile::apply(
        &stack.adapters,
        &scope(),
        &refund_event("refund.processed", &processed),
    )
    .await;
    assert_eq!(
        first,
        Ok(Applied::Refunded {
            status: "PROCESSED".into()
        })
    );
    for (name, refund) in [
        ("refund.created", &pending),
        ("refund.processed", &processed),
    ] {
        let again = reconcile::apply(&stack.adapters, &scope(), &refund_event(name, refund)).await;
        assert_eq!(again, Ok(Applied::NoChange), "{name}");
    }
    let shown = refunded_payment(&stack, &payment.id).await;
    assert_eq!(
        (
            &shown["amount_refunded"],
            &shown["refund_status"],
            &shown["refunds"][0]["status"]
        ),
        (&json!("40.00"), &json!("partial"), &json!("PROCESSED")),
        "{shown}"
    );
    let partial = stack.flexprice.payment("razorpay:pay_R1").unwrap();
    assert_eq!(partial.payment_status, "PARTIALLY_REFUNDED");
    assert_eq!(partial.metadata["razorpay_refund_ids"], processed.id);
    assert_eq!(partial.metadata["amount_refunded"], "40.00");
    assert_eq!(partial.metadata["razorpay_payment_id"], "pay_R1", "kept");
    // The rest: REFUNDED, both ids, the amounts added up (never overwritten).
    let rest = stack.razorpay.dashboard_refund("pay_R1", 6000);
    let rest = stack
        .razorpay
        .settle_refund(&rest.id, RefundStatus::Processed);
    reconcile::apply(
        &stack.adapters,
        &scope(),
        &refund_event("refund.processed", &rest),
    )
    .await
    .unwrap();
    let full = stack.flexprice.payment("razorpay:pay_R1").unwrap();
    assert_eq!(full.payment_status, "REFUNDED");
    assert_eq!(
        full.metadata["razorpay_refund_ids"],
        format!("{},{}", processed.id, rest.id)
    );
    assert_eq!(full.metadata["amount_refunded"], "100.00");
    let shown = refunded_payment(&stack, &payment.id).await;
    assert_eq!(
        (&shown["amount_refunded_minor"], &shown["refund_status"]),
        (&json!(10000), &json!("full"))
    );
    assert_eq!(
        stack.flexprice.calls("update_payment"),
        2,
        "once per change"
    );
    assert_eq!(
        stack.flexprice.payments().len(),
        1,
        "the capture recorded once"
    );
}

#[tokio::test]
async fn a_refund_that_arrives_before_its_capture_counts_the_capture_first() {
    let stack = connected_stack(false).await;
    let payment = paid_payment(&stack, "refund-2", "pay_R2").await;
    let refund = stack.razorpay.dashboard_refund("pay_R2", 10000);
    let refund = stack
        .razorpay
        .settle_refund(&refund.id, RefundStatus::Processed);
    // Razorpay's copy now says `refunded`: still captured money, counted, then refunded.
    let applied = reconcile::apply(
        &stack.adapters,
        &scope(),
        &refund_event("refund.processed", &refund),
    )
    .await;
    assert_eq!(
        applied,
        Ok(Applied::Refunded {
            status: "PROCESSED".into()
        })
    );
    assert_eq!(
        standing(&stack, &payment.id).await,
        (PaymentStatus::Succeeded, 10000)
    );
    let recorded = stack.flexprice.payment("razorpay:pay_R2").unwrap();
    assert_eq!(recorded.payment_status, "REFUNDED");
    // The capture's own webhook, late, with the snapshot saying `refunded`: already counted.
    let order = stack.razorpay.attempt_link(link_of(&payment));
    let late = captured_on(&order, &payment.id, "pay_R2", 10000)
        .replace("\"status\":\"captured\"", "\"status\":\"refunded\"");
    assert!(late.contains("refunded"), "{late}");
    let again = reconcile::apply(&stack.adapters, &scope(), &late).await;
    assert_eq!(again, Ok(Applied::AlreadyCounted));
}

#[tokio::test]
async fn a_refund_of_a_payment_flexrzp_did_not_collect_is_acknowledged() {
    let stack = connected_stack(false).await;
    stack
        .razorpay
        .add_payment(json!({"id": "pay_Else", "amount": 5000, "currency": "INR",
        "status": "captured", "captured": true, "order_id": "order_else", "notes": {}, "created_at": 1}));
    let refund = stack.razorpay.dashboard_refund("pay_Else", 5000);
    let applied = reconcile::apply(
        &stack.adapters,
        &scope(),
        &refund_event("refund.created", &refund),
    )
    .await;
    assert_eq!(applied, Ok(Applied::NotOurs));
    assert!(stack.flexprice.payments().is_empty());
}

#[tokio::test]
async fn an_auto_refund_of_money_never_captured_records_nothing() {
    let stack = connected_stack(false).await;
    let payment = paid_payment(&stack, "refund-auto", "pay_Auto").await;
    // Authorised, never captured, refunded by Razorpay itself: `captured: false`.
    let event = json!({"entity": "event", "event": "refund.processed",
        "contains": ["refund", "payment"], "payload": {
            "refund": {"entity": {"id": "rfnd_Auto", "amount": 10000, "currency": "INR",
                "payment_id": "pay_Auto", "status": "processed", "created_at": 1}},
            "payment": {"entity": {"id": "pay_Auto", "amount": 10000, "currency": "INR",
                "status": "refunded", "captured": false, "amount_refunded": 10000,
                "notes": {"flexprice_payment_id": payment.id, "tenant_id": "acme",
                    "environment_id": "live"}}}}});
    let applied = reconcile::apply(&stack.adapters, &scope(), &event.to_string()).await;
    assert_eq!(applied, Ok(Applied::NotOurs));
    assert!(stack.flexprice.payments().is_empty(), "nothing recorded");
    assert_eq!(
        standing(&stack, &payment.id).await,
        (PaymentStatus::Pending, 0)
    );
}

#[tokio::test]
async fn the_sweep_finds_a_refund_whose_webhooks_were_dropped_and_follows_it_until_processed() {
    let stack = connected_stack(false).await;
    let payment = paid_payment(&stack, "refund-3", "pay_R3").await;
    let order = stack.razorpay.attempt_link(link_of(&payment));
    let capture = captured_on(&order, &payment.id, "pay_R3", 10000);
    reconcile::apply(&stack.adapters, &scope(), &capture)
        .await
        .unwrap();
    let refund = stack.razorpay.dashboard_refund("pay_R3", 2500);
    let first = sweep::sweep(&stack.adapters, &scope()).await.unwrap();
    assert_eq!(first.missed, 1, "the pending refund: {first:?}");
    let shown = refunded_payment(&stack, &payment.id).await;
    assert_eq!(shown["refunds"][0]["status"], "PENDING", "{shown}");
    assert_eq!(
        stack.flexprice.calls("update_payment"),
        0,
        "nothing went back yet"
    );
    stack
        .razorpay
        .settle_refund(&refund.id, RefundStatus::Processed);
    let second = sweep::sweep(&stack.adapters, &scope()).await.unwrap();
    assert_eq!(second.missed, 1, "processed: {second:?}");
    let recorded = stack.flexprice.payment("razorpay:pay_R3").unwrap();
    assert_eq!(recorded.payment_status, "PARTIALLY_REFUNDED");
    assert_eq!(recorded.metadata["amount_refunded"], "25.00");
    let third = sweep::sweep(&stack.adapters, &scope()).await.unwrap();
    assert_eq!(third.missed, 0, "{third:?}");
    assert_eq!(
        stack.razorpay.calls("list_payment_refunds"),
        1,
        "watched until settled"
    );
    assert_eq!(stack.flexprice.calls("update_payment"), 1);
}

/// A payment paid in full by `razorpay_id`, its capture applied.
async fn counted_payment(stack: &FakeStack, key: &str, razorpay_id: &str) -> Payment {
    let payment = paid_payment(stack, key, razorpay_id).await;
    let order = stack.razorpay.attempt_link(link_of(&payment));
    let capture = captured_on(&order, &payment.id, razorpay_id, 10000);
    reconcile::apply(&stack.adapters, &scope(), &capture)
        .await
        .unwrap();
    payment
}

fn refund_ask(key: &str, amount: Option<&str>) -> RefundRequest {
    RefundRequest {
        amount: amount.map(DecimalText::new),
        reason: Some("duplicate payment".into()),
        speed: "normal".into(),
        idempotency_key: key.into(),
        razorpay_payment_id: None,
    }
}

#[tokio::test]
async fn an_api_refund_is_made_once_per_key_and_reflected_when_razorpay_processes_it() {
    let stack = connected_stack(false).await;
    let payment = counted_payment(&stack, "api-refund-1", "pay_A1").await;
    let ask = refund_ask("refund-42", Some("40.00"));
    let made = refund_requests::create(&stack.adapters, &scope(), &payment.id, ask.clone())
        .await
        .unwrap();
    assert!(made.new);
    assert_eq!(
        (made.refund.status.as_str(), made.refund.amount_minor),
        ("PENDING", 4000)
    );
    let razorpay_id = made.refund.razorpay_refund_id.clone().unwrap();
    // The same key: the same refund, no second call to Razorpay's refund.
    let again = refund_requests::create(&stack.adapters, &scope(), &payment.id, ask)
        .await
        .unwrap();
    assert!(!again.new);
    assert_eq!(again.refund.id, made.refund.id);
    assert_eq!(stack.razorpay.refunds().len(), 1);
    assert_eq!(stack.razorpay.calls("create_refund"), 1);
    let other = refund_requests::create(
        &stack.adapters,
        &scope(),
        &payment.id,
        refund_ask("refund-42", Some("41.00")),
    )
    .await;
    assert_eq!(
        other.as_ref().err().and_then(Refusal::field_at_fault),
        Some("idempotency_key"),
        "{other:?}"
    );
    // Razorpay's webhook of the same refund fills it in; nothing is counted twice.
    let processed = stack
        .razorpay
        .settle_refund(&razorpay_id, RefundStatus::Processed);
    reconcile::apply(
        &stack.adapters,
        &scope(),
        &refund_event("refund.processed", &processed),
    )
    .await
    .unwrap();
    let shown = refunded_payment(&stack, &payment.id).await;
    assert_eq!(
        shown["refunds"].as_array().map(Vec::len),
        Some(1),
        "{shown}"
    );
    assert_eq!(
        (&shown["refunds"][0]["id"], &shown["refunds"][0]["source"]),
        (&json!(made.refund.id), &json!("API"))
    );
    assert_eq!(shown["amount_refunded"], "40.00");
    let recorded = stack.flexprice.payment("razorpay:pay_A1").unwrap();
    assert_eq!(recorded.payment_status, "PARTIALLY_REFUNDED");
}

#[tokio::test]
async fn of_two_concurrent_refunds_that_exceed_the_capture_exactly_one_is_made() {
    let stack = connected_stack(false).await;
    let payment = counted_payment(&stack, "api-refund-2", "pay_A2").await;
    let scope = scope();
    let (first, second) = tokio::join!(
        refund_requests::create(
            &stack.adapters,
            &scope,
            &payment.id,
            refund_ask("refund-a", Some("60.00"))
        ),
        refund_requests::create(
            &stack.adapters,
            &scope,
            &payment.id,
            refund_ask("refund-b", Some("60.00"))
        ),
    );
    let results = [first, second];
    let made = results.iter().filter(|r| r.is_ok()).count();
    let refused: Vec<_> = results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .map(|e| (e.field_at_fault(), e.to_string()))
        .collect();
    assert_eq!(made, 1, "{results:?}");
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].0, Some("amount"), "{refused:?}");
    assert!(
        refused[0].1.contains("4000"),
        "names what is left: {refused:?}"
    );
    assert_eq!(stack.razorpay.refunds().len(), 1);
}

#[tokio::test]
async fn a_refund_razorpay_refuses_fails_and_a_lost_answer_is_retried_under_the_same_key() {
    let stack = connected_stack(false).await;
    let payment = counted_payment(&stack, "api-refund-3", "pay_A3").await;
    // Refunded in the dashboard meanwhile, unknown to us yet: Razorpay refuses the rest.
    stack.razorpay.dashboard_refund("pay_A3", 5000);
    let refused = refund_requests::create(
        &stack.adapters,
        &scope(),
        &payment.id,
        refund_ask("refund-c", Some("60.00")),
    )
    .await;
    assert_eq!(
        refused.as_ref().err().and_then(Refusal::field_at_fault),
        Some("amount"),
        "{refused:?}"
    );
    let shown = refunded_payment(&stack, &payment.id).await;
    assert_eq!(shown["refunds"][0]["status"], "FAILED", "{shown}");
    assert!(shown["refunds"][0]["failure"].is_string());
    // A lost answer: retryable; the retry with the same key meets the refund Razorpay made.
    stack
        .razorpay
        .fail_next("create_refund", Fault::TimeoutAfter);
    let lost = refund_requests::create(
        &stack.adapters,
        &scope(),
        &payment.id,
        refund_ask("refund-d", Some("20.00")),
    )
    .await;
    assert!(matches!(lost, Err(Refusal::Unavailable(_))), "{lost:?}");
    let retried = refund_requests::create(
        &stack.adapters,
        &scope(),
        &payment.id,
        refund_ask("refund-d", Some("20.00")),
    )
    .await
    .unwrap();
    assert_eq!(retried.refund.status.as_str(), "PENDING");
    assert_eq!(
        stack.razorpay.refunds().len(),
        2,
        "the dashboard's and this one"
    );
}

fn dispute_event(name: &str, status: &str, deducted: u64, respond_by: u64) -> String {
    json!({"entity": "event", "event": name, "contains": ["payment", "dispute"], "payload": {
        "dispute": {"entity": {"id": "disp_D1", "entity": "dispute", "payment_id": "pay_D1",
            "amount": 10000, "currency": "INR", "amount_deducted": deducted,
            "reason_code": "chargeback", "respond_by": respond_by, "status": status,
            "phase": "chargeback", "created_at": 1764000000}}}})
    .to_string()
}

#[tokio::test]
async fn a_lost_dispute_is_reflected_in_flexprice_like_a_refund_of_what_was_deducted() {
    let stack = connected_stack(false).await;
    let payment = counted_payment(&stack, "dispute-1", "pay_D1").await;
    let soon = SystemClock.now_secs() + 3600;
    let opened = dispute_event("payment.dispute.created", "open", 0, soon);
    let applied = reconcile::apply(&stack.adapters, &scope(), &opened).await;
    assert_eq!(
        applied,
        Ok(Applied::Disputed {
            status: "open".into()
        })
    );
    let shown = refunded_payment(&stack, &payment.id).await;
    assert_eq!(
        (
            &shown["disputes"][0]["status"],
            &shown["disputes"][0]["respond_by"]
        ),
        (&json!("open"), &json!(soon)),
        "{shown}"
    );
    assert_eq!(
        stack.flexprice.calls("update_payment"),
        0,
        "nothing lost yet"
    );
    let lost = dispute_event("payment.dispute.lost", "lost", 10000, soon);
    reconcile::apply(&stack.adapters, &scope(), &lost)
        .await
        .unwrap();
    let recorded = stack.flexprice.payment("razorpay:pay_D1").unwrap();
    assert_eq!(recorded.payment_status, "REFUNDED");
    assert_eq!(recorded.metadata["razorpay_dispute_ids"], "disp_D1");
    assert_eq!(recorded.metadata["amount_refunded"], "100.00");
    // Late and repeated news changes nothing; nothing is left to refund.
    for (name, status) in [
        ("payment.dispute.lost", "lost"),
        ("payment.dispute.won", "won"),
    ] {
        let again = reconcile::apply(
            &stack.adapters,
            &scope(),
            &dispute_event(name, status, 10000, soon),
        )
        .await;
        assert_eq!(again, Ok(Applied::NoChange), "{name}");
    }
    let shown = refunded_payment(&stack, &payment.id).await;
    assert_eq!(
        (
            &shown["disputes"][0]["amount_deducted"],
            &shown["refund_status"]
        ),
        (&json!("100.00"), &json!("full"))
    );
    let more = refund_requests::create(
        &stack.adapters,
        &scope(),
        &payment.id,
        refund_ask("after-dispute", None),
    )
    .await;
    assert_eq!(
        more.as_ref().err().and_then(Refusal::field_at_fault),
        Some("amount")
    );
}

#[tokio::test]
async fn the_schedule_sweeps_every_connected_scope_and_no_disconnected_one() {
    let stack = FakeStack::new().await;
    let other = TenantScope::new("globex", "test").unwrap();
    for scope in [scope(), other.clone()] {
        sweep::register(&stack.adapters, &scope, true)
            .await
            .unwrap();
        sweep::register(&stack.adapters, &scope, true)
            .await
            .unwrap();
    }
    sweep::register(&stack.adapters, &other, false)
        .await
        .unwrap();
    assert_eq!(sweep::sweep_all(&stack.adapters).await, Ok(1));
    let sent = stack.queue.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].1.tenant_id.as_str(), &sent[0].1.task),
        ("acme", &Task::Sweep)
    );
}

#[tokio::test]
async fn a_refusal_noted_on_the_payment_is_cleared_when_its_money_is_counted() {
    let stack = connected_stack(false).await;
    let made = payments::create(&stack.adapters, &scope(), payment_request("order-6"))
        .await
        .unwrap();
    let body = captured(&stack, &made.payment, "pay_Ref", 10000);
    stack
        .flexprice
        .fail_next("record_payment", Fault::Refused { field: "amount" });
    let refused = reconcile::apply(&stack.adapters, &scope(), &body).await;
    assert!(matches!(refused, Err(Failure::Permanent(_))), "{refused:?}");
    let noted = payments::get(&stack.adapters, &scope(), &made.payment.id)
        .await
        .unwrap();
    assert!(noted.last_error.is_some_and(|e| e.contains("amount")));
    // Whoever fixed the cause redrives the event: counted, and the note is gone.
    reconcile::apply(&stack.adapters, &scope(), &body)
        .await
        .unwrap();
    let paid = payments::get(&stack.adapters, &scope(), &made.payment.id)
        .await
        .unwrap();
    assert_eq!(
        (paid.status, paid.last_error),
        (PaymentStatus::Succeeded, None)
    );
}

#[tokio::test]
async fn a_manual_sync_queues_one_job_for_a_connected_scope_only() {
    let stack = FakeStack::new().await;
    let invoice = FlexpriceId::parse("inv_1").unwrap();
    let refused = invoice_sync::request_sync(&stack.adapters, &scope(), &invoice, None)
        .await
        .unwrap_err();
    assert_eq!(
        (
            matches!(
                refused,
                Refusal::Fields {
                    kind: FieldsKind::Unprocessable,
                    ..
                }
            ),
            refused.field_at_fault()
        ),
        (true, Some("connection"))
    );
    assert!(stack.queue.sent().is_empty());
    stack.connect(&scope(), true).await;
    let queued = invoice_sync::request_sync(&stack.adapters, &scope(), &invoice, Some("t-1"))
        .await
        .unwrap();
    let sent = stack.queue.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(queued["job_id"], sent[0].0.as_str());
    assert_eq!(
        sent[0].1.task,
        Task::SyncInvoice {
            invoice_id: "inv_1".into()
        }
    );
}

// ---- idempotency edges ----

fn keyless_request() -> PaymentRequest {
    let body = json!({"amount": "100.00", "currency": "INR", "destination_type": "INVOICE",
        "destination_id": "inv_1", "payment_method_type": "PAYMENT_LINK",
        "payment_gateway": "razorpay"});
    PaymentRequest::parse(Some("application/json"), body.to_string().as_bytes()).unwrap()
}

#[tokio::test]
async fn a_retry_after_the_invoice_was_paid_returns_the_paid_payment_unvalidated() {
    let stack = connected_stack(false).await;
    let made = payments::create(&stack.adapters, &scope(), payment_request("order-5"))
        .await
        .unwrap();
    let body = captured(&stack, &made.payment, "pay_Full5", 10000);
    reconcile::apply(&stack.adapters, &scope(), &body)
        .await
        .unwrap();
    // Flexprice now says the invoice is paid: a new request for it would be refused.
    stack.flexprice.add_invoice(json!({
        "id": "inv_1", "customer_id": "cust_1", "invoice_status": "FINALIZED",
        "payment_status": "SUCCEEDED", "currency": "inr", "amount_due": "100.00",
        "amount_paid": "100.00", "amount_remaining": "0", "total": "100.00",
    }));
    let reads = stack.flexprice.calls("get_invoice");
    let mut retry = payment_request("order-5");
    retry.amount = shared::domain::money::DecimalText::new("100.0");
    let again = payments::create(&stack.adapters, &scope(), retry)
        .await
        .unwrap();
    assert!(!again.new);
    assert_eq!(again.payment.id, made.payment.id);
    assert_eq!(again.payment.status, PaymentStatus::Succeeded);
    assert_eq!(
        stack.flexprice.calls("get_invoice"),
        reads,
        "answered before any read"
    );
    let fresh = payments::create(&stack.adapters, &scope(), payment_request("order-6"))
        .await
        .unwrap_err();
    assert_eq!(fresh.field_at_fault(), Some("destination_id"), "{fresh:?}");
}

#[tokio::test]
async fn without_a_key_an_ended_link_gives_way_to_a_new_payment_and_retries_still_meet() {
    let stack = connected_stack(false).await;
    let first = payments::create(&stack.adapters, &scope(), keyless_request())
        .await
        .unwrap();
    let retried = payments::create(&stack.adapters, &scope(), keyless_request())
        .await
        .unwrap();
    assert_eq!(
        (retried.new, &retried.payment.id),
        (false, &first.payment.id)
    );
    let end = ended(&first.payment, "payment_link.expired");
    reconcile::apply(&stack.adapters, &scope(), &end)
        .await
        .unwrap();
    let next = payments::create(&stack.adapters, &scope(), keyless_request())
        .await
        .unwrap();
    assert!(next.new, "a new payment after the link ended");
    assert_ne!(next.payment.id, first.payment.id);
    assert_eq!(next.payment.status, PaymentStatus::Pending);
    assert_eq!(stack.razorpay.links().len(), 2);
    let again = payments::create(&stack.adapters, &scope(), keyless_request())
        .await
        .unwrap();
    assert_eq!((again.new, &again.payment.id), (false, &next.payment.id));
    let end = ended(&next.payment, "payment_link.expired");
    reconcile::apply(&stack.adapters, &scope(), &end)
        .await
        .unwrap();
    // With a key, the ended payment stays the answer: the same key is the same payment.
    let keyed = payments::create(&stack.adapters, &scope(), payment_request("order-7"))
        .await
        .unwrap();
    let end = ended(&keyed.payment, "payment_link.expired");
    reconcile::apply(&stack.adapters, &scope(), &end)
        .await
        .unwrap();
    let same = payments::create(&stack.adapters, &scope(), payment_request("order-7"))
        .await
        .unwrap();
    assert_eq!(
        (&same.payment.id, same.payment.status),
        (&keyed.payment.id, PaymentStatus::Failed)
    );
}

#[tokio::test]
async fn a_caller_key_never_names_an_internal_payment() {
    let stack = connected_stack(false).await;
    let made = payments::create(&stack.adapters, &scope(), payment_request("razorpay:pay_X"))
        .await
        .unwrap();
    assert_ne!(
        made.payment.id,
        payments::payment_id_for(&scope(), "razorpay:pay_X")
    );
    assert_eq!(
        made.payment.idempotency_key, "razorpay:pay_X",
        "shown as sent"
    );
}

// ---- amounts ----

#[tokio::test]
async fn an_invoice_with_an_inexact_line_and_subtotal_is_still_linked_and_synced() {
    let stack = connected_stack(true).await;
    stack.flexprice.add_invoice(json!({
        "id": "inv_1", "customer_id": "cust_1", "invoice_status": "FINALIZED",
        "payment_status": "PENDING", "currency": "inr", "amount_due": "100.00",
        "amount_paid": "0", "amount_remaining": "100.00", "subtotal": "99.99999",
        "total": "100.00", "total_tax": "0.001", "invoice_number": "INV-1",
        "line_items": [{"display_name": "Usage", "amount": "99.995", "quantity": "1"}],
    }));
    let synced = invoice_sync::sync(&stack.adapters, &scope(), "inv_1")
        .await
        .unwrap();
    assert!(
        matches!(synced, invoice_sync::Synced::Created { .. }),
        "{synced:?}"
    );
    let made = payments::create(&stack.adapters, &scope(), payment_request("order-8"))
        .await
        .unwrap();
    assert_eq!(made.payment.amount.minor(), 10000);
    let invoice = &stack.razorpay.invoices()[0];
    assert_eq!(invoice.amount, Some(10000));
    let record = invoice_sync::status(
        &stack.adapters,
        &scope(),
        &FlexpriceId::parse("inv_1").unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(record.form.as_deref(), Some("balance"));
    assert!(
        record
            .form_reason
            .as_deref()
            .unwrap_or_default()
            .contains("Usage"),
        "{record:?}"
    );
}

// ---- customers ----

#[tokio::test]
async fn a_customer_razorpay_still_refuses_is_a_422_naming_the_field_and_the_reason() {
    let stack = connected_stack(false).await;
    stack
        .razorpay
        .fail_next("create_customer", Fault::Refused { field: "contact" });
    let refused = payments::create(&stack.adapters, &scope(), payment_request("order-9"))
        .await
        .unwrap_err();
    assert_eq!(
        refused.field_at_fault(),
        Some("customer.contact"),
        "{refused:?}"
    );
    let shown = refused.to_string();
    assert!(
        shown.contains("cust_1") && shown.contains("The contact is invalid."),
        "{shown}"
    );
    assert!(stack.razorpay.links().is_empty());
}

// ---- one live way to pay ----

fn request_for(key: &str, amount: &str) -> PaymentRequest {
    let body = json!({"amount": amount, "currency": "INR", "destination_type": "INVOICE",
        "destination_id": "inv_1", "payment_method_type": "PAYMENT_LINK",
        "payment_gateway": "razorpay", "idempotency_key": key});
    PaymentRequest::parse(Some("application/json"), body.to_string().as_bytes()).unwrap()
}

async fn collection_of(stack: &FakeStack) -> Collection {
    collection::read(&stack.adapters, &scope(), "inv_1")
        .await
        .unwrap()
        .expect("the invoice has a collection state")
}

fn refused_rule(result: Result<payments::Created, Refusal>) -> (String, String, String) {
    let Err(Refusal::Fields { fields, .. }) = result else {
        panic!("expected a field refusal, got {result:?}");
    };
    let e = &fields[0];
    (e.field.clone(), e.rule.clone(), e.detail.clone())
}

#[tokio::test]
async fn what_open_links_ask_never_exceeds_what_the_invoice_owes() {
    let stack = connected_stack(false).await;
    let first = payments::create(&stack.adapters, &scope(), request_for("a", "100.00"))
        .await
        .unwrap();
    let second = payments::create(&stack.adapters, &scope(), request_for("b", "100.00")).await;
    let (field, rule, message) = refused_rule(second);
    assert_eq!(
        (field.as_str(), rule.as_str()),
        ("amount", "payable_remaining")
    );
    let link_id = first.payment.gateway_tracking_id.clone().unwrap();
    assert!(
        message.contains(&link_id) && message.contains(&first.payment.id),
        "{message}"
    );
    assert_eq!(
        stack.razorpay.links().len(),
        1,
        "the refused one made nothing"
    );
    // Once the first link ends, its share is free again; partial links share the rest.
    let end = ended(&first.payment, "payment_link.expired");
    reconcile::apply(&stack.adapters, &scope(), &end)
        .await
        .unwrap();
    for (key, amount) in [("c", "40.00"), ("d", "60.00")] {
        payments::create(&stack.adapters, &scope(), request_for(key, amount))
            .await
            .unwrap();
    }
    let third = payments::create(&stack.adapters, &scope(), request_for("e", "1.00")).await;
    assert_eq!(refused_rule(third).1, "payable_remaining");
    assert_eq!(collection_of(&stack).await.payable().minor(), 10000);
}

#[tokio::test]
async fn a_payment_for_what_the_synced_invoice_asks_is_that_invoice_and_is_counted_on_it() {
    let stack = connected_stack(true).await;
    invoice_sync::sync(&stack.adapters, &scope(), "inv_1")
        .await
        .unwrap();
    let razorpay_invoice = stack.razorpay.invoices()[0].clone();
    let made = payments::create(&stack.adapters, &scope(), request_for("a", "100.00"))
        .await
        .unwrap();
    let payment = &made.payment;
    assert_eq!(payment.method.as_str(), "RAZORPAY_INVOICE");
    assert_eq!(payment.payment_url, razorpay_invoice.short_url);
    assert!(stack.razorpay.links().is_empty(), "no second way to pay");
    assert!(
        views::payment(payment)["notice"]
            .as_str()
            .unwrap()
            .contains("one way to pay")
    );
    // A partial link beside it would let the customer pay more than is owed.
    let partial = payments::create(&stack.adapters, &scope(), request_for("b", "10.00")).await;
    assert_eq!(refused_rule(partial).1, "payable_remaining");
    // The invoice's payment is counted on the caller's payment, not on one of its own.
    let paid = event(
        "invoice.paid",
        json!({"payment": {"entity": {"id": "pay_Inv1", "entity": "payment", "amount": 10000,
            "currency": "INR", "status": "captured", "invoice_id": razorpay_invoice.id,
            "notes": []}}}),
    );
    reconcile::apply(&stack.adapters, &scope(), &paid)
        .await
        .unwrap();
    let after = payments::get(&stack.adapters, &scope(), &payment.id)
        .await
        .unwrap();
    assert_eq!(
        (after.status, after.amount_paid),
        (PaymentStatus::Succeeded, 10000)
    );
    let instrument = collection_of(&stack).await.instruments[0].clone();
    assert_eq!(instrument.state, InstrumentState::Paid);
    assert!(stack.queue.sent().iter().any(|(_, job)| matches!(
        &job.task, Task::SettleCollection { invoice_id } if invoice_id == "inv_1")));
}

#[tokio::test]
async fn a_sync_asks_only_what_open_links_leave_and_skips_when_they_ask_it_all() {
    let stack = connected_stack(true).await;
    payments::create(&stack.adapters, &scope(), request_for("a", "40.00"))
        .await
        .unwrap();
    invoice_sync::sync(&stack.adapters, &scope(), "inv_1")
        .await
        .unwrap();
    assert_eq!(stack.razorpay.invoices()[0].amount, Some(6000));
    assert_eq!(collection_of(&stack).await.payable().minor(), 10000);

    let other = connected_stack(true).await;
    payments::create(&other.adapters, &scope(), request_for("a", "100.00"))
        .await
        .unwrap();
    let synced = invoice_sync::sync(&other.adapters, &scope(), "inv_1")
        .await
        .unwrap();
    assert!(
        matches!(&synced, invoice_sync::Synced::Skipped { reason } if reason.contains("open payment links")),
        "{synced:?}"
    );
    assert!(other.razorpay.invoices().is_empty());
}

#[tokio::test]
async fn money_paid_elsewhere_or_a_void_closes_the_links_it_leaves_nothing_for() {
    let stack = connected_stack(false).await;
    let a = payments::create(&stack.adapters, &scope(), request_for("a", "40.00"))
        .await
        .unwrap();
    let b = payments::create(&stack.adapters, &scope(), request_for("b", "60.00"))
        .await
        .unwrap();
    // b is paid: the invoice still owes a's 40.00, so nothing closes.
    let paid = captured(&stack, &b.payment, "pay_B", 6000);
    reconcile::apply(&stack.adapters, &scope(), &paid)
        .await
        .unwrap();
    let settled = collection::settle(&stack.adapters, &scope(), "inv_1")
        .await
        .unwrap();
    assert_eq!((settled.closed, settled.owed.minor()), (0, 4000));
    // 40.00 paid in Flexprice directly: a's link would collect it twice, so it is cancelled.
    let elsewhere = RecordPaymentRequest::offline(
        "inv_1",
        Money::from_minor(4000, Currency::INR),
        "bank-transfer-1",
        Default::default(),
    );
    stack.flexprice.record_payment(&elsewhere).await.unwrap();
    let settled = collection::settle(&stack.adapters, &scope(), "inv_1")
        .await
        .unwrap();
    assert_eq!((settled.closed, settled.owed.minor()), (1, 0));
    let link_a = a.payment.gateway_tracking_id.clone().unwrap();
    let cancelled = stack
        .razorpay
        .links()
        .into_iter()
        .find(|l| l.id == link_a)
        .unwrap();
    assert_eq!(cancelled.status, LinkStatus::Cancelled);
    let a_now = payments::get(&stack.adapters, &scope(), &a.payment.id)
        .await
        .unwrap();
    assert_eq!(a_now.status, PaymentStatus::Failed);
    assert_eq!(collection_of(&stack).await.payable().minor(), 0);
    // Settling again changes nothing.
    let again = collection::settle(&stack.adapters, &scope(), "inv_1")
        .await
        .unwrap();
    assert_eq!(again.closed, 0);
    assert_eq!(stack.razorpay.calls("cancel_payment_link"), 1);
}

#[tokio::test]
async fn a_void_closes_every_open_instrument_and_one_paid_first_is_marked_paid() {
    let stack = connected_stack(true).await;
    let a = payments::create(&stack.adapters, &scope(), request_for("a", "30.00"))
        .await
        .unwrap();
    let b = payments::create(&stack.adapters, &scope(), request_for("b", "20.00"))
        .await
        .unwrap();
    invoice_sync::sync(&stack.adapters, &scope(), "inv_1")
        .await
        .unwrap();
    // The customer pays b at Razorpay; its event has not arrived yet.
    let link_b = b.payment.gateway_tracking_id.clone().unwrap();
    stack.razorpay.set_link_status(&link_b, LinkStatus::Paid);
    let mut voided = stack.flexprice.invoice("inv_1").unwrap();
    voided.invoice_status = "VOIDED".into();
    stack
        .flexprice
        .add_invoice(serde_json::to_value(&voided).unwrap());
    let settled = collection::settle(&stack.adapters, &scope(), "inv_1")
        .await
        .unwrap();
    assert_eq!(settled.closed, 3);
    let states: Vec<_> = collection_of(&stack)
        .await
        .instruments
        .iter()
        .map(|i| (i.key.clone(), i.state))
        .collect();
    assert_eq!(
        states,
        vec![
            (a.payment.id.clone(), InstrumentState::Closed),
            (b.payment.id.clone(), InstrumentState::Paid),
            ("inv_1".to_owned(), InstrumentState::Closed),
        ]
    );
    assert_eq!(stack.razorpay.invoices()[0].status.as_str(), "cancelled");
}

#[tokio::test]
async fn a_reservation_whose_request_died_is_opened_or_closed_by_what_razorpay_made() {
    let mut stack = connected_stack(false).await;
    let clock = Arc::new(ManualClock::at_millis(1_800_000_000_000));
    stack.adapters.clock = clock.clone();
    // The link is made but the answer is lost: the payment stays reserved.
    stack
        .razorpay
        .fail_next("create_payment_link", Fault::TimeoutAfter);
    let lost = payments::create(&stack.adapters, &scope(), request_for("a", "40.00")).await;
    assert!(matches!(lost, Err(Refusal::Unavailable(_))), "{lost:?}");
    // The next request is refused nothing: the reservation is not stale yet, but 60.00 fit.
    stack
        .razorpay
        .fail_next("create_payment_link", Fault::Unavailable);
    let down = payments::create(&stack.adapters, &scope(), request_for("b", "60.00")).await;
    assert!(matches!(down, Err(Refusal::Unavailable(_))), "{down:?}");
    assert_eq!(collection_of(&stack).await.payable().minor(), 10000);
    clock.advance(Duration::from_millis(collection::STALE_RESERVATION_MS));
    collection::settle(&stack.adapters, &scope(), "inv_1")
        .await
        .unwrap();
    let instruments = collection_of(&stack).await.instruments;
    let link = &stack.razorpay.links()[0];
    assert_eq!(instruments[0].state, InstrumentState::Open);
    assert_eq!(
        instruments[0].razorpay_id.as_deref(),
        Some(link.id.as_str())
    );
    assert_eq!(instruments[1].state, InstrumentState::Closed, "never made");
    assert_eq!(collection_of(&stack).await.payable().minor(), 4000);
}

// ---- re-issue and adoption ----

async fn sync_record(stack: &FakeStack) -> InvoiceSync {
    invoice_sync::status(
        &stack.adapters,
        &scope(),
        &FlexpriceId::parse("inv_1").unwrap(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_synced_invoice_is_mapped_before_it_is_issued_and_a_draft_left_behind_is_issued() {
    let stack = connected_stack(true).await;
    stack
        .razorpay
        .fail_next("issue_invoice", Fault::Unavailable);
    let stopped = invoice_sync::sync(&stack.adapters, &scope(), "inv_1").await;
    assert!(matches!(stopped, Err(Failure::Retryable(_))), "{stopped:?}");
    let draft = &stack.razorpay.invoices()[0];
    assert_eq!(
        (draft.status.as_str(), draft.short_url.as_deref()),
        ("draft", None)
    );
    let mapped = invoice_sync::flexprice_invoice_of(&stack.adapters, &scope(), &draft.id)
        .await
        .unwrap();
    assert_eq!(
        mapped.map(|s| s.invoice_id).as_deref(),
        Some("inv_1"),
        "mapped while a draft"
    );
    // The redelivery finds the draft by receipt, and issues it: one invoice, payable.
    invoice_sync::sync(&stack.adapters, &scope(), "inv_1")
        .await
        .unwrap();
    let invoices = stack.razorpay.invoices();
    assert_eq!(invoices.len(), 1);
    assert_eq!(invoices[0].status.as_str(), "issued");
    assert_eq!(sync_record(&stack).await.payment_url, invoices[0].short_url);
}

fn invoice_captured(razorpay_invoice_id: &str, razorpay_id: &str) -> String {
    event(
        "payment.captured",
        json!({"payment": {"entity": {"id": razorpay_id, "entity": "payment", "amount": 10000,
            "currency": "INR", "status": "captured", "captured": true,
            "order_id": "order_inv", "invoice_id": razorpay_invoice_id, "notes": []}}}),
    )
}

#[tokio::test]
async fn a_payment_on_an_unmapped_invoice_of_ours_is_retried_and_another_integrations_is_not_ours()
{
    let stack = connected_stack(true).await;
    invoice_sync::sync(&stack.adapters, &scope(), "inv_1")
        .await
        .unwrap();
    let ours = stack.razorpay.invoices()[0].id.clone();
    // The mapping is gone (as when a sync died between the create and its record, before
    // invoices were mapped first): the payment is retried, never "not ours".
    let mapping = records::razorpay_invoice_key(&scope(), &ours);
    stack.table.delete(&mapping, &[]).await.unwrap();
    let unmapped = reconcile::apply(
        &stack.adapters,
        &scope(),
        &invoice_captured(&ours, "pay_I1"),
    )
    .await;
    assert!(
        matches!(&unmapped, Err(Failure::Retryable(r)) if r.contains("not mapped yet")),
        "{unmapped:?}"
    );
    // An invoice another integration made on the account: acknowledged, not parked.
    let theirs = stack
        .razorpay
        .create_invoice(&shared::adapters::razorpay::wire::InvoiceRequest {
            kind: "invoice".into(),
            customer_id: "cust_x".into(),
            currency: "INR".into(),
            receipt: "their-1".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let foreign = reconcile::apply(
        &stack.adapters,
        &scope(),
        &invoice_captured(&theirs.id, "pay_I2"),
    )
    .await;
    assert_eq!(foreign, Ok(Applied::NotOurs));
    assert!(stack.flexprice.payments().is_empty());
}

fn paid_elsewhere(minor: u64, key: &str) -> RecordPaymentRequest {
    RecordPaymentRequest::offline(
        "inv_1",
        Money::from_minor(minor, Currency::INR),
        key,
        Default::default(),
    )
}

#[tokio::test]
async fn a_partial_payment_elsewhere_reissues_the_synced_invoice_for_what_is_left() {
    let stack = connected_stack(true).await;
    invoice_sync::sync(&stack.adapters, &scope(), "inv_1")
        .await
        .unwrap();
    let first = stack.razorpay.invoices()[0].clone();
    stack
        .flexprice
        .record_payment(&paid_elsewhere(3000, "cash-1"))
        .await
        .unwrap();
    let settled = collection::settle(&stack.adapters, &scope(), "inv_1")
        .await
        .unwrap();
    assert_eq!((settled.closed, settled.owed.minor()), (1, 7000));
    assert_eq!(stack.razorpay.invoices()[0].status.as_str(), "cancelled");
    let queued = stack.queue.sent();
    assert!(
        queued.iter().any(|(_, job)| matches!(&job.task, Task::SyncInvoice { invoice_id } if invoice_id == "inv_1")),
        "the settle job queues the re-issue: {queued:?}"
    );
    let reissued = invoice_sync::sync(&stack.adapters, &scope(), "inv_1")
        .await
        .unwrap();
    let invoices = stack.razorpay.invoices();
    assert_eq!(invoices.len(), 2);
    let second = &invoices[1];
    assert_eq!(
        reissued,
        invoice_sync::Synced::Created {
            razorpay_invoice_id: second.id.clone()
        }
    );
    assert_eq!(
        (second.receipt.as_deref(), second.amount),
        (Some("inv_1/1"), Some(7000))
    );
    let record = sync_record(&stack).await;
    assert_eq!(
        (record.issue, record.razorpay_invoice_id.as_deref()),
        (1, Some(second.id.as_str()))
    );
    let metadata = stack.flexprice.invoice("inv_1").unwrap().metadata;
    assert_eq!(
        metadata.get("razorpay_invoice_id"),
        Some(&second.id),
        "the new URL is written"
    );
    let states: Vec<_> = collection_of(&stack)
        .await
        .instruments
        .iter()
        .map(|i| (i.razorpay_id.clone(), i.state))
        .collect();
    assert_eq!(
        states,
        vec![
            (Some(first.id.clone()), InstrumentState::Closed),
            (Some(second.id.clone()), InstrumentState::Open),
        ]
    );
    // Again: nothing new; never two live invoices.
    let again = invoice_sync::sync(&stack.adapters, &scope(), "inv_1")
        .await
        .unwrap();
    assert!(
        matches!(again, invoice_sync::Synced::AlreadySynced { .. }),
        "{again:?}"
    );
    assert_eq!(stack.razorpay.invoices().len(), 2);
}

#[tokio::test]
async fn an_expired_synced_invoice_is_reissued_by_the_next_sync() {
    let stack = connected_stack(true).await;
    invoice_sync::sync(&stack.adapters, &scope(), "inv_1")
        .await
        .unwrap();
    let first = stack.razorpay.invoices()[0].clone();
    stack
        .razorpay
        .set_invoice_status(&first.id, InvoiceStatus::Expired);
    let expired = event(
        "invoice.expired",
        json!({"invoice": {"entity": {"id": first.id, "entity": "invoice", "status": "expired",
            "receipt": "inv_1", "amount": 10000, "currency": "INR", "notes": []}}}),
    );
    reconcile::apply(&stack.adapters, &scope(), &expired)
        .await
        .unwrap();
    assert_eq!(
        collection_of(&stack).await.payable().minor(),
        0,
        "the expired one asks nothing"
    );
    invoice_sync::sync(&stack.adapters, &scope(), "inv_1")
        .await
        .unwrap();
    let invoices = stack.razorpay.invoices();
    assert_eq!(invoices.len(), 2);
    assert_eq!(
        (invoices[1].receipt.as_deref(), invoices[1].amount),
        (Some("inv_1/1"), Some(10000))
    );
    assert_eq!(collection_of(&stack).await.payable().minor(), 10000);
}

#[tokio::test]
async fn a_resumed_sync_replaces_an_invoice_that_no_longer_fits_what_is_owed() {
    let stack = connected_stack(true).await;
    // The holder created the invoice for 100.00, then died; 40.00 were paid elsewhere since.
    stack
        .razorpay
        .fail_next("create_invoice", Fault::TimeoutAfter);
    claimed_sync(&stack, 0).await;
    let lost = invoice_sync::sync(&stack.adapters, &scope(), "inv_1").await;
    assert!(matches!(lost, Err(Failure::Retryable(_))), "{lost:?}");
    stack
        .flexprice
        .record_payment(&paid_elsewhere(4000, "cash-2"))
        .await
        .unwrap();
    let replaced = invoice_sync::sync(&stack.adapters, &scope(), "inv_1").await;
    assert!(
        matches!(&replaced, Err(Failure::Retryable(r)) if r.contains("cannot be adopted")),
        "{replaced:?}"
    );
    assert_eq!(stack.razorpay.invoices()[0].status.as_str(), "cancelled");
    invoice_sync::sync(&stack.adapters, &scope(), "inv_1")
        .await
        .unwrap();
    let invoices = stack.razorpay.invoices();
    assert_eq!(invoices.len(), 2);
    assert_eq!(
        (invoices[1].receipt.as_deref(), invoices[1].amount),
        (Some("inv_1/1"), Some(6000))
    );
    let record = sync_record(&stack).await;
    assert_eq!(record.state, shared::domain::sync::SyncState::Synced);
    assert_eq!(record.amount.map(|a| a.minor()), Some(6000));
    assert_eq!(collection_of(&stack).await.payable().minor(), 6000);
}

// ---- the payment URL ----

async fn payment_url(stack: &FakeStack) -> Result<payment_url::PaymentUrl, Refusal> {
    payment_url::get(
        &stack.adapters,
        &scope(),
        &FlexpriceId::parse("inv_1").unwrap(),
    )
    .await
}

#[tokio::test]
async fn the_payment_url_is_the_live_link_and_an_expired_one_is_replaced() {
    let stack = connected_stack(false).await;
    let first = payment_url(&stack).await.unwrap();
    assert!(first.reissued);
    assert_eq!(first.instrument.amount_minor, 10000);
    let again = payment_url(&stack).await.unwrap();
    assert_eq!(
        (again.reissued, &again.instrument.url),
        (false, &first.instrument.url)
    );
    assert_eq!(stack.razorpay.links().len(), 1);
    // The link expires at Razorpay (its event lost): the next call finds out and replaces it.
    let link = first.instrument.razorpay_id.clone().unwrap();
    stack.razorpay.set_link_status(&link, LinkStatus::Expired);
    let healed = payment_url(&stack).await.unwrap();
    assert!(healed.reissued);
    assert_ne!(healed.instrument.url, first.instrument.url);
    assert_ne!(healed.instrument.payment_id, first.instrument.payment_id);
    let old = payments::get(
        &stack.adapters,
        &scope(),
        first.instrument.payment_id.as_deref().unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(old.status, PaymentStatus::Failed);
    assert_eq!(
        collection_of(&stack).await.payable().minor(),
        10000,
        "one live link"
    );
}

#[tokio::test]
async fn the_payment_url_of_a_synced_invoice_reissues_it_after_it_expired() {
    let stack = connected_stack(true).await;
    invoice_sync::sync(&stack.adapters, &scope(), "inv_1")
        .await
        .unwrap();
    let synced = payment_url(&stack).await.unwrap();
    assert!(!synced.reissued);
    let first = stack.razorpay.invoices()[0].clone();
    assert_eq!(
        synced.instrument.razorpay_id.as_deref(),
        Some(first.id.as_str())
    );
    stack
        .razorpay
        .set_invoice_status(&first.id, InvoiceStatus::Expired);
    let healed = payment_url(&stack).await.unwrap();
    assert!(healed.reissued);
    let invoices = stack.razorpay.invoices();
    assert_eq!(invoices.len(), 2);
    assert_eq!(invoices[1].receipt.as_deref(), Some("inv_1/1"));
    assert_eq!(
        healed.instrument.razorpay_id.as_deref(),
        Some(invoices[1].id.as_str())
    );
    assert!(stack.razorpay.links().is_empty());
}

#[tokio::test]
async fn open_partial_links_are_named_not_doubled_and_a_paid_invoice_has_no_url() {
    let stack = connected_stack(false).await;
    payments::create(&stack.adapters, &scope(), request_for("a", "40.00"))
        .await
        .unwrap();
    let parts = payment_url(&stack).await;
    let Err(Refusal::Fields { fields, .. }) = &parts else {
        panic!("expected a conflict naming the parts: {parts:?}");
    };
    assert_eq!(fields[0].rule, "payable_in_parts");
    assert!(
        fields[0].detail.contains("for 40.00"),
        "{}",
        fields[0].detail
    );
    stack
        .flexprice
        .record_payment(&paid_elsewhere(10000, "cash-3"))
        .await
        .unwrap();
    let paid = payment_url(&stack).await;
    let Err(Refusal::Fields { fields, .. }) = &paid else {
        panic!("expected a refusal: {paid:?}");
    };
    assert_eq!(
        (fields[0].field.as_str(), fields[0].rule.as_str()),
        ("invoice_id", "invoice_unpaid")
    );
}

#[tokio::test]
async fn under_the_refund_policy_a_double_payment_refunds_the_excess_once() {
    let stack = FakeStack::new().await;
    stack
        .connect_with(&scope(), false, json!({"overcollection": "refund"}))
        .await;
    open_invoice(&stack);
    let link = payments::create(&stack.adapters, &scope(), request_for("a", "100.00"))
        .await
        .unwrap();
    // Paid in full elsewhere, and the link paid at the same instant.
    stack
        .flexprice
        .record_payment(&paid_elsewhere(10000, "cash-5"))
        .await
        .unwrap();
    let order = stack.razorpay.attempt_link(link_of(&link.payment));
    stack
        .razorpay
        .add_payment(json!({"id": "pay_Dbl", "amount": 10000, "currency": "INR",
        "status": "captured", "captured": true, "order_id": order, "notes": {}, "created_at": 1}));
    let paid = captured_on(&order, &link.payment.id, "pay_Dbl", 10000);
    reconcile::apply(&stack.adapters, &scope(), &paid)
        .await
        .unwrap();
    for _ in 0..3 {
        collection::settle(&stack.adapters, &scope(), "inv_1")
            .await
            .unwrap();
    }
    let refunds = stack.razorpay.refunds();
    assert_eq!(refunds.len(), 1, "refunded once: {refunds:?}");
    assert_eq!(
        (refunds[0].payment_id.as_str(), refunds[0].amount),
        ("pay_Dbl", 10000)
    );
    let shown = refunded_payment(&stack, &link.payment.id).await;
    assert_eq!(shown["refunds"][0]["source"], "POLICY", "{shown}");
    assert!(shown["review"].is_null(), "refunded, not flagged: {shown}");
    // Razorpay processes it: the Flexprice payment of the excess is REFUNDED.
    let processed = stack
        .razorpay
        .settle_refund(&refunds[0].id, RefundStatus::Processed);
    reconcile::apply(
        &stack.adapters,
        &scope(),
        &refund_event("refund.processed", &processed),
    )
    .await
    .unwrap();
    let excess = stack.flexprice.payment("razorpay:pay_Dbl").unwrap();
    assert_eq!(excess.payment_status, "REFUNDED");
}

#[tokio::test]
async fn a_refund_credit_note_is_refunded_at_razorpay_once_when_the_connection_says_so() {
    let stack = FakeStack::new().await;
    stack.connect(&scope(), false).await;
    open_invoice(&stack);
    let payment = counted_payment(&stack, "credit-note-1", "pay_CN1").await;
    let note = |id: &str, kind: &str, status: &str| {
        json!({"id": id, "invoice_id": "inv_1", "credit_note_type": kind,
            "credit_note_status": status, "total_amount": "30.00", "currency": "inr"})
    };
    stack
        .flexprice
        .add_credit_note(note("cn_1", "REFUND", "FINALIZED"));
    let off = credit_notes::refund(&stack.adapters, &scope(), "cn_1").await;
    assert!(
        matches!(off, Ok(CreditNoteRefund::Skipped(_))),
        "off by default: {off:?}"
    );
    stack
        .connect_with(&scope(), false, json!({"credit_note_refunds": true}))
        .await;
    for _ in 0..2 {
        let done = credit_notes::refund(&stack.adapters, &scope(), "cn_1").await;
        assert_eq!(done, Ok(CreditNoteRefund::Refunded { minor: 3000 }));
    }
    let refunds = stack.razorpay.refunds();
    assert_eq!(refunds.len(), 1, "once: {refunds:?}");
    assert_eq!(
        (refunds[0].payment_id.as_str(), refunds[0].amount),
        ("pay_CN1", 3000)
    );
    let shown = refunded_payment(&stack, &payment.id).await;
    assert_eq!(shown["refunds"][0]["source"], "CREDIT_NOTE", "{shown}");
    for (id, kind, status) in [
        ("cn_2", "ADJUSTMENT", "FINALIZED"),
        ("cn_3", "REFUND", "DRAFT"),
    ] {
        stack.flexprice.add_credit_note(note(id, kind, status));
        let skipped = credit_notes::refund(&stack.adapters, &scope(), id).await;
        assert!(
            matches!(skipped, Ok(CreditNoteRefund::Skipped(_))),
            "{id}: {skipped:?}"
        );
    }
    stack
        .flexprice
        .add_credit_note(json!({"id": "cn_4", "invoice_id": "inv_1",
        "credit_note_type": "REFUND", "credit_note_status": "FINALIZED", "currency": "inr"}));
    let refused = credit_notes::refund(&stack.adapters, &scope(), "cn_4").await;
    assert!(
        matches!(refused, Err(Failure::Permanent(ref why)) if why.contains("total_amount")),
        "{refused:?}"
    );
    assert_eq!(stack.razorpay.refunds().len(), 1);
}

/// A link paid after its invoice was voided, under `policy`; the payment and the capture.
async fn paid_after_void(policy: &str) -> (FakeStack, Payment, Result<Applied, Failure>) {
    let stack = FakeStack::new().await;
    stack
        .connect_with(&scope(), false, json!({"overcollection": policy}))
        .await;
    open_invoice(&stack);
    let link = payments::create(&stack.adapters, &scope(), request_for("a", "100.00"))
        .await
        .unwrap();
    let mut voided = stack.flexprice.invoice("inv_1").unwrap();
    voided.invoice_status = "VOIDED".into();
    stack
        .flexprice
        .add_invoice(serde_json::to_value(&voided).unwrap());
    let order = stack.razorpay.attempt_link(link_of(&link.payment));
    stack
        .razorpay
        .add_payment(json!({"id": "pay_Void", "amount": 10000, "currency": "INR",
        "status": "captured", "captured": true, "order_id": order, "notes": {}, "created_at": 1}));
    let paid = captured_on(&order, &link.payment.id, "pay_Void", 10000);
    let applied = reconcile::apply(&stack.adapters, &scope(), &paid).await;
    (stack, link.payment, applied)
}

#[tokio::test]
async fn money_captured_after_a_void_is_counted_and_flagged_or_refunded_never_parked() {
    let (stack, payment, applied) = paid_after_void("review").await;
    assert!(
        matches!(applied, Ok(Applied::Counted { .. })),
        "{applied:?}"
    );
    let shown = refunded_payment(&stack, &payment.id).await;
    assert!(
        shown["review"]
            .as_str()
            .is_some_and(|r| r.contains("voided")),
        "{shown}"
    );
    assert!(
        stack.razorpay.refunds().is_empty(),
        "review refunds nothing"
    );
    let (stack, payment, applied) = paid_after_void("refund").await;
    assert!(
        matches!(applied, Ok(Applied::Counted { .. })),
        "{applied:?}"
    );
    let refunds = stack.razorpay.refunds();
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    assert_eq!(refunds[0].amount, 10000);
    // Processed: nothing to move in Flexprice (it never recorded the money), nothing parked.
    let processed = stack
        .razorpay
        .settle_refund(&refunds[0].id, RefundStatus::Processed);
    let done = reconcile::apply(
        &stack.adapters,
        &scope(),
        &refund_event("refund.processed", &processed),
    )
    .await;
    assert!(done.is_ok(), "{done:?}");
    let shown = refunded_payment(&stack, &payment.id).await;
    assert_eq!(shown["refund_status"], "full", "{shown}");
    assert!(stack.flexprice.payments().is_empty());
}

#[tokio::test]
async fn the_sweep_finds_a_dispute_whose_webhooks_were_dropped() {
    let stack = connected_stack(false).await;
    let payment = counted_payment(&stack, "dispute-swept", "pay_DS").await;
    let created_at = SystemClock.now_secs() - 300;
    stack
        .razorpay
        .put_dispute(json!({"id": "disp_S1", "payment_id": "pay_DS",
        "amount": 10000, "currency": "INR", "amount_deducted": 0, "status": "open",
        "phase": "chargeback", "respond_by": created_at + 86400, "created_at": created_at}));
    let first = sweep::sweep(&stack.adapters, &scope()).await.unwrap();
    assert_eq!(first.missed, 1, "{first:?}");
    let shown = refunded_payment(&stack, &payment.id).await;
    assert_eq!(shown["disputes"][0]["status"], "open", "{shown}");
    let again = sweep::sweep(&stack.adapters, &scope()).await.unwrap();
    assert_eq!(again.missed, 0, "{again:?}");
}

#[tokio::test]
async fn money_paid_on_a_link_after_the_invoice_was_paid_elsewhere_is_flagged_not_silent() {
    let stack = connected_stack(false).await;
    let link = payments::create(&stack.adapters, &scope(), request_for("a", "100.00"))
        .await
        .unwrap();
    // Paid in full elsewhere, and the link paid at the same instant, before anything settled.
    stack
        .flexprice
        .record_payment(&paid_elsewhere(10000, "cash-4"))
        .await
        .unwrap();
    let paid = captured(&stack, &link.payment, "pay_Twice", 10000);
    reconcile::apply(&stack.adapters, &scope(), &paid)
        .await
        .unwrap();
    assert_eq!(
        stack.flexprice.invoice("inv_1").unwrap().payment_status,
        "OVERPAID"
    );
    collection::settle(&stack.adapters, &scope(), "inv_1")
        .await
        .unwrap();
    let flagged = payments::get(&stack.adapters, &scope(), &link.payment.id)
        .await
        .unwrap();
    assert_eq!(
        flagged.status,
        PaymentStatus::Succeeded,
        "the money is real and recorded"
    );
    let review = flagged.review.unwrap_or_default();
    assert!(review.contains("OVERPAID"), "{review}");
}
