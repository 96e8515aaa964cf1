//! The webhook event log through the API: an invoice paid after a failed attempt lists each
//! event with its outcome and invoice; a replay of an applied event changes nothing and shows
//! as a duplicate; filters and cursors page through it; a bad query names its field.

use std::time::Duration;

use serde_json::{Value, json};
use system_tests::{api, api_as, link_payment, payment_when, razorpay_control, start, wait_for};

async fn act_on_link(stack: &local_stack::LocalStack, link: &str, action: &str) {
    let path = format!("/_sim/payment_links/{link}/{action}");
    let (status, answer) = razorpay_control(stack, &path, &json!({})).await;
    assert_eq!(status, 200, "{answer}");
}

async fn events(stack: &local_stack::LocalStack, query: &str) -> Value {
    let (status, page) = api(
        stack,
        "GET",
        &format!("/api/v1/webhook-events{query}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    page
}

fn of_type<'a>(page: &'a Value, event_type: &str) -> Vec<&'a Value> {
    let all = page["events"].as_array().unwrap();
    all.iter().filter(|e| e["type"] == event_type).collect()
}

#[tokio::test]
async fn a_paid_invoice_s_events_show_their_outcomes_and_a_replay_changes_nothing() {
    let stack = start("evlog-").await;
    let invoice = stack.ready.invoice_ids[0].clone();
    let payment = link_payment(&stack, "100.00", "evlog-1").await;
    let id = payment["id"].as_str().unwrap();
    let link = payment["gateway_tracking_id"].as_str().unwrap();
    act_on_link(&stack, link, "fail").await;
    act_on_link(&stack, link, "pay").await;
    payment_when(&stack, id, |p| p["payment_status"] == "SUCCEEDED").await;
    let page = wait_for("every event settled", Duration::from_secs(30), || async {
        let page = events(&stack, "?limit=100").await;
        let settled = page["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["outcome"] != "queued");
        let captured = !of_type(&page, "payment.captured").is_empty();
        (settled && captured).then_some(page)
    })
    .await;
    let failed = of_type(&page, "payment.failed");
    assert_eq!(failed.len(), 1, "{page}");
    assert_eq!(failed[0]["outcome"], "applied", "{page}");
    assert_eq!(failed[0]["invoice_id"], invoice.as_str(), "{page}");
    // The capture is counted once, whichever of its events came first.
    let mut capture_outcomes: Vec<&str> = ["payment.captured", "payment_link.paid"]
        .iter()
        .flat_map(|t| of_type(&page, t))
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    capture_outcomes.sort_unstable();
    assert_eq!(capture_outcomes, ["applied", "duplicate"], "{page}");
    assert!(
        page["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e.get("body").is_none())
    );
    assert_eq!(
        page["refusals"],
        json!({"bad_signature": 0, "wrong_account": 0})
    );

    // A replay of the applied capture: queued, applied as a duplicate, nothing counted twice.
    let applied = ["payment.captured", "payment_link.paid"]
        .iter()
        .flat_map(|t| of_type(&page, t))
        .find(|e| e["outcome"] == "applied")
        .unwrap();
    let event_id = applied["event_id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/webhook-events/{event_id}/replay");
    let (status, queued) = api(&stack, "POST", &path, None).await;
    assert_eq!(
        (status, queued["status"].as_str()),
        (202, Some("queued")),
        "{queued}"
    );
    let replayed = wait_for("the replay settled", Duration::from_secs(30), || async {
        let page = events(&stack, "?limit=100").await;
        let found = page["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["event_id"] == event_id.as_str())
            .cloned();
        found.filter(|e| {
            e["history"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["replay"] == true)
        })
    })
    .await;
    assert_eq!(replayed["outcome"], "duplicate", "{replayed}");
    let after = payment_when(&stack, id, |_| true).await;
    assert_eq!(after["amount_paid_minor"], 10000, "counted once: {after}");

    // Filters and cursors.
    let duplicates = events(&stack, "?outcome=duplicate").await;
    let listed = duplicates["events"].as_array().unwrap();
    assert!(!listed.is_empty() && listed.iter().all(|e| e["outcome"] == "duplicate"));
    let first = events(&stack, "?limit=1").await;
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let second = events(&stack, &format!("?limit=1&cursor={cursor}")).await;
    assert_ne!(
        first["events"][0]["event_id"],
        second["events"][0]["event_id"]
    );

    // Bad queries name their field; an unknown event is a 404.
    for (query, field) in [
        ("?outcome=won", "outcome"),
        ("?limit=0", "limit"),
        ("?cursor=abc", "cursor"),
        ("?since=yesterday", "since"),
        ("?colour=red", "colour"),
    ] {
        let (status, problem) = api(
            &stack,
            "GET",
            &format!("/api/v1/webhook-events{query}"),
            None,
        )
        .await;
        assert_eq!(status, 400, "{query}: {problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{query}: {problem}");
    }
    let (status, _) = api(
        &stack,
        "POST",
        "/api/v1/webhook-events/evt_never/replay",
        None,
    )
    .await;
    assert_eq!(status, 404);
}

async fn timeline(stack: &local_stack::LocalStack, invoice: &str, query: &str) -> Value {
    let path = format!("/api/v1/invoices/{invoice}/timeline{query}");
    let (status, page) = api(stack, "GET", &path, None).await;
    assert_eq!(status, 200, "{page}");
    page
}

fn entries<'a>(page: &'a Value, kind: &str) -> Vec<&'a Value> {
    let all = page["entries"].as_array().unwrap();
    all.iter().filter(|e| e["kind"] == kind).collect()
}

#[tokio::test]
async fn an_invoice_timeline_shows_what_was_made_and_heard_and_nothing_of_another_tenant() {
    let stack = start("timeline-").await;
    let invoice = stack.ready.invoice_ids[0].clone();
    let payment = link_payment(&stack, "100.00", "timeline-1").await;
    let id = payment["id"].as_str().unwrap();
    let link = payment["gateway_tracking_id"].as_str().unwrap();
    act_on_link(&stack, link, "fail").await;
    act_on_link(&stack, link, "pay").await;
    payment_when(&stack, id, |p| p["payment_status"] == "SUCCEEDED").await;
    let page = wait_for(
        "the events on the timeline",
        Duration::from_secs(30),
        || async {
            let page = timeline(&stack, &invoice, "?limit=100").await;
            let all = page["entries"].as_array().unwrap();
            let settled = all.iter().all(|e| e["status"] != "queued");
            let events = entries(&page, "razorpay_event");
            let both = ["payment.captured", "payment_link.paid"]
                .iter()
                .all(|t| events.iter().any(|e| e["detail"] == *t));
            (settled && both).then_some(page)
        },
    )
    .await;
    // What was made: the link, the payment, its failed attempt and its one capture.
    let links = entries(&page, "instrument");
    assert_eq!(links.len(), 1, "{page}");
    assert_eq!(
        (
            links[0]["id"].as_str(),
            &links[0]["status"],
            &links[0]["amount"]
        ),
        (Some(link), &json!("paid"), &json!("100.00")),
        "{page}"
    );
    assert_eq!(entries(&page, "payment")[0]["status"], "SUCCEEDED");
    assert_eq!(entries(&page, "attempt").len(), 1, "{page}");
    let captures = entries(&page, "capture");
    assert_eq!(captures.len(), 1, "{page}");
    assert_eq!(
        (&captures[0]["amount"], &captures[0]["currency"]),
        (&json!("100.00"), &json!("INR"))
    );
    // What was heard: the failure applied, the capture applied once and a duplicate once.
    let outcome = |t: &str| -> Vec<String> {
        let events = entries(&page, "razorpay_event");
        let of_type = events.iter().filter(|e| e["detail"] == t);
        of_type
            .map(|e| e["status"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(outcome("payment.failed"), ["applied"], "{page}");
    let mut captured = [outcome("payment.captured"), outcome("payment_link.paid")].concat();
    captured.sort_unstable();
    assert_eq!(captured, ["applied", "duplicate"], "{page}");
    let times: Vec<&str> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["at"].as_str().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "oldest first: {times:?}"
    );
    pages_of(&stack, &invoice, &page).await;
    not_another_tenant_s(&stack, &invoice).await;
}

/// Pages of two cover the whole timeline once; a bad query names its field.
async fn pages_of(stack: &local_stack::LocalStack, invoice: &str, whole: &Value) {
    let mut seen = Vec::new();
    let mut query = "?limit=2".to_owned();
    loop {
        let page = timeline(stack, invoice, &query).await;
        seen.extend(page["entries"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(&Value::Array(seen), &whole["entries"]);
    for (query, field) in [
        ("?limit=101", "limit"),
        ("?cursor=bm9wZQ", "cursor"),
        ("?since=x", "since"),
    ] {
        let path = format!("/api/v1/invoices/{invoice}/timeline{query}");
        let (status, problem) = api(stack, "GET", &path, None).await;
        assert_eq!(status, 400, "{query}: {problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{query}: {problem}");
    }
}

/// Another tenant's key sees neither the invoice's timeline nor its events.
async fn not_another_tenant_s(stack: &local_stack::LocalStack, invoice: &str) {
    let scope = shared::domain::keys::TenantScope::new("other_tenant", "sandbox").unwrap();
    let store = stack.adapters.store.as_ref();
    let clock = shared::ports::SystemClock;
    let other = shared::services::apikeys::create(store, &clock, &scope, "tests", None)
        .await
        .unwrap();
    let path = format!("/api/v1/invoices/{invoice}/timeline");
    let (status, answer) = api_as(stack, other.key.expose(), "GET", &path, None).await;
    assert_eq!(status, 404, "{answer}");
    let (status, page) = api_as(
        stack,
        other.key.expose(),
        "GET",
        "/api/v1/webhook-events",
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["events"], json!([]), "{page}");
}
