//! `local-stack demo`: walks the whole workflow on the local stack, through the gateway
//! as a tenant's backend, Razorpay and Flexprice would, says what each step did, and ends with
//! a table. A step that did not happen is reported as failed, never as done.

use std::time::Duration;

use serde_json::{Value, json};

use crate::LocalStack;
use crate::driver::{Driver, text};

struct Demo<'a> {
    driver: Driver<'a>,
    rows: Vec<(String, Result<String, String>)>,
}

impl<'a> std::ops::Deref for Demo<'a> {
    type Target = Driver<'a>;

    fn deref(&self) -> &Driver<'a> {
        &self.driver
    }
}

impl Demo<'_> {
    fn record(&mut self, step: &str, outcome: Result<String, String>) {
        match &outcome {
            Ok(text) => println!("  [ok    ] {step}: {text}"),
            Err(text) => println!("  [FAILED] {step}: {text}"),
        }
        self.rows.push((step.to_owned(), outcome));
    }

    /// Records a step whose value later steps use, described by `describe`.
    fn record_with<T>(
        &mut self,
        step: &str,
        outcome: &Result<T, String>,
        describe: impl Fn(&T) -> String,
    ) {
        self.record(step, outcome.as_ref().map(describe).map_err(Clone::clone));
    }
}

/// Runs the demo against a started stack; `true` when every step did what it says.
pub async fn run(stack: &LocalStack) -> bool {
    let driver = match Driver::new(stack) {
        Ok(driver) => driver,
        Err(e) => {
            println!("  [FAILED] HTTP client: {e}");
            return false;
        }
    };
    let mut demo = Demo {
        driver,
        rows: Vec::new(),
    };
    println!(
        "flexrzp local demo: tenant {}/{}, gateway {}",
        stack.ready.tenant_id, stack.ready.environment_id, stack.ready.gateway_url
    );
    let inr = stack.ready.invoice_ids[0].clone();
    let usd = stack.ready.invoice_ids[1].clone();

    // 1. The connection (made at start-up through the connection service).
    let outcome = connection(&demo).await;
    demo.record("Connection", outcome);
    // 2-3. A payment link for the INR invoice (syncing its customer first), paid.
    let paid = link_and_pay(&mut demo, &inr).await;
    // 4. A duplicate webhook: Razorpay redelivers an event; it is acknowledged, not applied.
    let outcome = match &paid {
        Ok((payment, razorpay_id)) => duplicate_webhook(&demo, payment, razorpay_id, &inr).await,
        Err(_) => Err("no paid payment to redeliver".to_owned()),
    };
    demo.record("Duplicate webhook", outcome);
    // 4b. Some of it goes back: a refund through the API, processed by Razorpay, reflected on
    // the payment and in Flexprice once.
    let outcome = match &paid {
        Ok((payment, _)) => refund(&demo, payment).await,
        Err(_) => Err("no paid payment to refund".to_owned()),
    };
    demo.record("Refund", outcome);
    // 5. A failed payment: the customer's bank declines; the attempt is recorded, the link
    // stays open for another try.
    let failed = failed_payment(&demo, &usd).await;
    demo.record_with("Failed payment", &failed, |(text, _)| text.clone());
    // 6. The link expires unpaid; the invoice's payment URL heals with a new one.
    let outcome = match &failed {
        Ok((_, plink)) => healed_url(&demo, &usd, plink).await,
        Err(_) => Err("no open link to expire".to_owned()),
    };
    demo.record("Payment URL heals", outcome);
    synced_invoice_steps(&mut demo).await;
    // 10. The timeline of the invoice paid in step 3: what was made for it and heard about it.
    let outcome = timeline(&demo, &inr).await;
    demo.record("Invoice timeline", outcome);
    summary(&demo.rows)
}

/// Prints the invoice's timeline, one line per entry; it must show the link, the payment,
/// its capture and refund, and the webhook events, each settled.
async fn timeline(demo: &Demo<'_>, invoice: &str) -> Result<String, String> {
    let path = format!("/api/v1/invoices/{invoice}/timeline?limit=100");
    let mut page = on_ok(demo.api("GET", &path, None).await, 200)?;
    // The worker may still be settling the last events: a few seconds for them.
    for _ in 0..20 {
        let queued = page["entries"].as_array().into_iter().flatten();
        if !queued.into_iter().any(|e| e["status"] == "queued") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        page = on_ok(demo.api("GET", &path, None).await, 200)?;
    }
    let entries = page["entries"].as_array().cloned().unwrap_or_default();
    println!("  timeline of invoice {invoice}:");
    for entry in &entries {
        let amount = match entry["amount"].as_str() {
            Some(amount) => format!(" {amount} {}", text(&entry["currency"])),
            None => String::new(),
        };
        println!(
            "    {} {:<16} {:<24} {:<10} {}{amount}",
            text(&entry["at"]),
            text(&entry["kind"]),
            text(&entry["id"]),
            text(&entry["status"]),
            entry["detail"].as_str().unwrap_or(""),
        );
    }
    let kinds = [
        "instrument",
        "payment",
        "capture",
        "refund",
        "razorpay_event",
    ];
    let missing: Vec<&str> = kinds
        .into_iter()
        .filter(|k| !entries.iter().any(|e| e["kind"] == *k))
        .collect();
    let unsettled = entries.iter().filter(|e| e["status"] == "queued").count();
    if !missing.is_empty() || unsettled > 0 {
        return Err(format!(
            "missing {missing:?}, {unsettled} events unsettled: {page}"
        ));
    }
    Ok(format!("{} entries, oldest first", entries.len()))
}

/// Steps 7-9: an invoice synced to Razorpay, one way to pay it, and a payment on it.
async fn synced_invoice_steps(demo: &mut Demo<'_>) {
    // 7. A newly finalized invoice syncs to a Razorpay invoice with a payment URL ...
    let synced = sync_new_invoice(demo).await;
    demo.record_with("Invoice sync", &synced, |(id, view)| {
        describe_sync(id, view)
    });
    // 8. A payment link asked for what the synced invoice asks is that invoice: one way to pay.
    let outcome = match &synced {
        Ok((id, view)) => one_way_to_pay(demo, id, view).await,
        Err(_) => Err("no synced invoice to ask a link for".to_owned()),
    };
    demo.record("One way to pay", outcome);
    // 9. ... and a payment on that Razorpay invoice reaches Flexprice the same way.
    let outcome = match &synced {
        Ok((id, view)) => pay_synced_invoice(demo, id, view).await,
        Err(_) => Err("no synced invoice to pay".to_owned()),
    };
    demo.record("Payment on the synced invoice", outcome);
}

/// A payment link for all the invoice owes, the customer synced first; paid in the
/// simulator; the Flexprice invoice settled. Returns the paid payment and its Razorpay id.
async fn link_and_pay(demo: &mut Demo<'_>, inr: &str) -> Result<(Value, String), String> {
    let customer_id = demo.stack.ready.customer_id.clone();
    let link = payment_link(demo, inr).await;
    demo.record_with("Customer sync", &link, |p| {
        format!(
            "Flexprice customer {} is Razorpay customer {}",
            customer_id,
            text(&p["razorpay_customer_id"])
        )
    });
    demo.record_with("Payment link", &link, describe_link);
    // 3. The customer pays; Razorpay's signed webhooks settle the invoice in Flexprice.
    let paid = match &link {
        Ok(payment) => pay(demo, payment).await,
        Err(_) => Err("no payment link to pay".to_owned()),
    };
    demo.record_with("Payment via webhook", &paid, |(done, _)| {
        format!(
            "payment {} SUCCEEDED, {} subunits paid",
            text(&done["id"]),
            done["amount_paid_minor"]
        )
    });
    let outcome = reconciled(demo, inr).await;
    demo.record("Reconciliation", outcome);
    paid
}

/// Refunds 10.00 of a paid payment through the API (asked twice under one key: one refund),
/// has Razorpay process it, and waits for the payment and Flexprice to show it.
async fn refund(demo: &Demo<'_>, payment: &Value) -> Result<String, String> {
    let id = text(&payment["id"]);
    let path = format!("/api/v1/payments/{id}/refunds");
    let body = json!({"amount": "10.00", "reason": "goodwill", "idempotency_key": "demo-refund-1"});
    let made = on_ok(demo.api("POST", &path, Some(&body)).await, 201)?;
    let again = on_ok(demo.api("POST", &path, Some(&body)).await, 200)?;
    if again["id"] != made["id"] {
        return Err(format!("the same key made a second refund: {again}"));
    }
    let razorpay_refund = text(&made["razorpay_refund_id"]);
    demo.razorpay_action(&format!("refunds/{razorpay_refund}/process"), json!({}))
        .await?;
    let done = demo
        .payment_when(id, |p| p["refund_status"] == "partial")
        .await?;
    let flexprice = flexprice_refunded(demo).await?;
    Ok(format!(
        "refund {} of {} PROCESSED (Razorpay {razorpay_refund}); payment {id} shows {} refunded; Flexprice payment {}",
        text(&made["id"]),
        text(&made["amount"]),
        text(&done["amount_refunded"]),
        flexprice
    ))
}

/// The Flexprice payment a refund was written to, once it says PARTIALLY_REFUNDED.
async fn flexprice_refunded(demo: &Demo<'_>) -> Result<String, String> {
    use simulators::HasRecorder;
    let found = demo
        .until(|| async {
            let requests = demo.stack.flexprice.requests();
            let put = requests
                .iter()
                .rfind(|r| r.method == "PUT" && r.path.starts_with("/v1/payments/"))?;
            let (_, payment) = demo.flexprice("GET", &put.path, None).await.ok()?;
            (payment["payment_status"] == "PARTIALLY_REFUNDED").then(|| {
                format!(
                    "{} PARTIALLY_REFUNDED, refunds {}",
                    text(&payment["id"]),
                    text(&payment["metadata"]["razorpay_refund_ids"])
                )
            })
        })
        .await;
    found.ok_or_else(|| "Flexprice's payment never showed the refund".to_owned())
}

/// Prints the table of steps; `true` when none failed.
fn summary(rows: &[(String, Result<String, String>)]) -> bool {
    let failed = rows.iter().filter(|(_, o)| o.is_err()).count();
    println!();
    println!("  {:<32} result", "step");
    println!("  {:-<32} ------", "");
    for (step, outcome) in rows {
        println!(
            "  {step:<32} {}",
            if outcome.is_ok() { "ok" } else { "FAILED" }
        );
    }
    println!(
        "summary: {} of {} steps done, {failed} failed",
        rows.len() - failed,
        rows.len()
    );
    failed == 0
}

fn on_ok(answer: Result<(u16, Value), String>, expected: u16) -> Result<Value, String> {
    match answer {
        Ok((status, body)) if status == expected => Ok(body),
        Ok((status, body)) => Err(format!("{status}: {body}")),
        Err(e) => Err(e),
    }
}

/// The connection as the tenant reads it: connected, every secret redacted.
async fn connection(demo: &Demo<'_>) -> Result<String, String> {
    let view = on_ok(
        demo.api("GET", "/api/v1/connections/razorpay", None).await,
        200,
    )?;
    if view["key_secret"] != "********" {
        return Err(format!("a secret is shown: {view}"));
    }
    Ok(format!(
        "Razorpay key {} connected, invoice sync {}, every secret redacted",
        text(&view["key_id"]),
        if view["invoice_outbound_sync"] == true {
            "on"
        } else {
            "off"
        }
    ))
}

/// A payment link for all the invoice owes.
async fn payment_link(demo: &Demo<'_>, invoice: &str) -> Result<Value, String> {
    let owed = match demo
        .flexprice("GET", &format!("/v1/invoices/{invoice}"), None)
        .await
    {
        Ok((200, invoice)) => invoice["amount_remaining"].clone(),
        _ => Value::Null,
    };
    let body = json!({"amount": owed, "currency": "inr", "destination_id": invoice,
        "destination_type": "INVOICE", "payment_method_type": "PAYMENT_LINK",
        "payment_gateway": "razorpay", "process_payment": true,
        "success_url": "https://example.com/paid"});
    on_ok(demo.api("POST", "/api/v1/payments", Some(&body)).await, 201)
}

fn describe_link(payment: &Value) -> String {
    format!(
        "payment {} {} for {} INR, pay at {}",
        text(&payment["id"]),
        text(&payment["payment_status"]),
        text(&payment["amount"]),
        text(&payment["payment_url"])
    )
}

/// Pays the link in the simulator; the payment once SUCCEEDED, and the Razorpay payment id.
async fn pay(demo: &Demo<'_>, payment: &Value) -> Result<(Value, String), String> {
    let plink = text(&payment["gateway_tracking_id"]);
    let answer = demo
        .razorpay_action(&format!("payment_links/{plink}/pay"), json!({}))
        .await?;
    let done = demo
        .payment_when(text(&payment["id"]), |p| p["payment_status"] == "SUCCEEDED")
        .await?;
    Ok((done, text(&answer["payments"][0]).to_owned()))
}

/// The Flexprice invoice, settled.
async fn reconciled(demo: &Demo<'_>, invoice: &str) -> Result<String, String> {
    let settled = demo
        .invoice_when(invoice, |i| i["payment_status"] == "SUCCEEDED")
        .await?;
    Ok(format!(
        "Flexprice invoice {invoice} SUCCEEDED: paid {}, remaining {}",
        text(&settled["amount_paid"]),
        text(&settled["amount_remaining"])
    ))
}

/// A declined payment on a link for the USD invoice: recorded, the payment still open.
/// Returns what happened and the link.
async fn failed_payment(demo: &Demo<'_>, invoice: &str) -> Result<(String, String), String> {
    let body = json!({"amount": "100.00", "currency": "usd", "destination_id": invoice,
        "destination_type": "INVOICE", "payment_method_type": "PAYMENT_LINK",
        "payment_gateway": "razorpay"});
    let payment = on_ok(demo.api("POST", "/api/v1/payments", Some(&body)).await, 201)?;
    let plink = text(&payment["gateway_tracking_id"]);
    demo.razorpay_action(&format!("payment_links/{plink}/fail"), json!({}))
        .await?;
    let p = demo
        .payment_when(text(&payment["id"]), |p| {
            p["attempts"].as_array().is_some_and(|a| !a.is_empty())
        })
        .await?;
    let done = format!(
        "payment {} still {}, attempt recorded: {} ({})",
        text(&p["id"]),
        text(&p["payment_status"]),
        text(&p["attempts"][0]["error_code"]),
        text(&p["attempts"][0]["error_description"])
    );
    Ok((done, plink.to_owned()))
}

/// Razorpay expires the link; the invoice's payment URL is then a new link for all it owes.
async fn healed_url(demo: &Demo<'_>, invoice: &str, plink: &str) -> Result<String, String> {
    demo.razorpay_action(&format!("payment_links/{plink}/expire"), json!({}))
        .await?;
    // No waiting for the webhook: the endpoint asks Razorpay whether its link still works.
    let path = format!("/api/v1/invoices/{invoice}/payment-url");
    let url = on_ok(demo.api("GET", &path, None).await, 200)?;
    if url["razorpay_id"] == plink || url["reissued"] != true {
        return Err(format!("the expired link was not replaced: {url}"));
    }
    Ok(format!(
        "link {plink} expired; {invoice}'s payment URL is now link {} for {} {} at {}",
        text(&url["razorpay_id"]),
        text(&url["amount"]),
        text(&url["currency"]),
        text(&url["payment_url"])
    ))
}

fn describe_sync(id: &str, view: &Value) -> String {
    format!(
        "{id} -> Razorpay invoice {} for {} {} ({} form), pay at {}",
        text(&view["razorpay_invoice_id"]),
        view["amount_minor"],
        text(&view["currency"]),
        text(&view["form"]),
        text(&view["payment_url"])
    )
}

/// Asks a payment link for all the synced invoice owes: the answer is the Razorpay invoice
/// already sent to the customer (its URL), not a second way to pay.
async fn one_way_to_pay(demo: &Demo<'_>, id: &str, view: &Value) -> Result<String, String> {
    let payment = payment_link(demo, id).await?;
    if payment["payment_method_type"] != "RAZORPAY_INVOICE"
        || payment["payment_url"] != view["payment_url"]
    {
        return Err(format!(
            "expected the synced invoice's URL, got {} at {}",
            text(&payment["payment_method_type"]),
            text(&payment["payment_url"])
        ));
    }
    Ok(format!(
        "payment {} for {} INR is Razorpay invoice {}, pay at {} (no link made)",
        text(&payment["id"]),
        text(&payment["amount"]),
        text(&payment["razorpay_invoice_id"]),
        text(&payment["payment_url"])
    ))
}

/// Pays the synced Razorpay invoice in the simulator; the Flexprice invoice settles.
async fn pay_synced_invoice(demo: &Demo<'_>, id: &str, view: &Value) -> Result<String, String> {
    let rzp = text(&view["razorpay_invoice_id"]);
    demo.razorpay_action(&format!("invoices/{rzp}/pay"), json!({}))
        .await?;
    let settled = demo
        .invoice_when(id, |i| i["payment_status"] == "SUCCEEDED")
        .await?;
    Ok(format!(
        "Flexprice invoice {id} SUCCEEDED: paid {}",
        text(&settled["amount_paid"])
    ))
}

/// The answers to one event delivered, then redelivered as Razorpay retries: 409 (in
/// progress) until the worker has settled the accepted copy, then a duplicate.
async fn redelivered(demo: &Demo<'_>, body: &str) -> Result<Vec<String>, String> {
    let mut answers = Vec::new();
    for _ in 0..50 {
        let (status, answer) = demo.deliver_razorpay("evt_demo_replayed", body).await?;
        let said = match status {
            409 => "409 in progress".to_owned(),
            _ => format!("{status} {}", text(&answer["status"])),
        };
        if answers.last() != Some(&said) {
            answers.push(said);
        }
        if answers.len() > 1 && status != 409 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let first_and_last = (
        answers.first().map(String::as_str),
        answers.last().map(String::as_str),
    );
    let between_ok = answers.len() <= 3
        && answers
            .iter()
            .skip(1)
            .take(answers.len().saturating_sub(2))
            .all(|a| a == "409 in progress");
    if first_and_last != (Some("200 accepted"), Some("200 duplicate")) || !between_ok {
        return Err(format!("answers {answers:?}"));
    }
    Ok(answers)
}

/// Redelivers the `payment.captured` of a paid link payment twice under one new event id (a
/// replay from Razorpay's dashboard gets a new id; a retry keeps it): the first copy is taken
/// and found already counted, the redeliveries are in progress (409) until the worker settled
/// it, then answered as a duplicate; the invoice stays paid
/// once.
async fn duplicate_webhook(
    demo: &Demo<'_>,
    payment: &Value,
    razorpay_id: &str,
    invoice: &str,
) -> Result<String, String> {
    let body = demo.captured_event(razorpay_id).await?;
    let answers = redelivered(demo, &body).await?;
    // Let the worker apply the accepted copy, then check nothing was counted twice.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, after) = demo
        .flexprice("GET", &format!("/v1/invoices/{invoice}"), None)
        .await?;
    let (_, ours) = demo
        .api(
            "GET",
            &format!("/api/v1/payments/{}", text(&payment["id"])),
            None,
        )
        .await?;
    if after["amount_paid"] != after["amount_due"]
        || ours["amount_paid_minor"] != payment["amount_paid_minor"]
    {
        return Err(format!(
            "counted again: Flexprice paid {}, ours {}",
            after["amount_paid"], ours["amount_paid_minor"]
        ));
    }
    Ok(format!(
        "{razorpay_id} redelivered under one event id: {}; still paid {} once",
        answers.join(", then "),
        text(&after["amount_paid"])
    ))
}

/// Creates and finalizes an invoice in the Flexprice simulator (which sends the Svix-signed
/// `invoice.update.finalized`), then waits for its sync record.
async fn sync_new_invoice(demo: &Demo<'_>) -> Result<(String, Value), String> {
    let body = json!({"customer_id": demo.stack.ready.customer_id, "currency": "inr",
        "due_date": "2030-01-31T00:00:00Z",
        "line_items": [{"display_name": "Pro plan", "entity_type": "plan", "amount": "999.00"},
                       {"display_name": "API calls (8,200)", "entity_type": "usage", "amount": "82.00"}],
        "taxes": [{"name": "GST 18%", "amount": "194.58"}]});
    let (status, created) = demo.flexprice("POST", "/v1/invoices", Some(&body)).await?;
    if status != 201 {
        return Err(format!("Flexprice answered {status}: {created}"));
    }
    let id = text(&created["id"]).to_owned();
    demo.flexprice("POST", &format!("/v1/invoices/{id}/finalize"), None)
        .await?;
    let view = demo
        .sync_when(&id, |view| view["state"] == "SYNCED")
        .await
        .map_err(|_| format!("invoice {id} did not sync"))?;
    Ok((id, view))
}
