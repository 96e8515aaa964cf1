//! `local-stack stress`: many payments and invoice syncs at once, with everything that makes
//! money handling hard arriving together: concurrent identical API requests (conditional
//! creates that lose races), manual syncs racing the webhook-driven one (leases taken by
//! another job), webhooks delivered twice and in reverse order, the same capture under other
//! event ids, a late failed attempt after success (a status condition that must not pass), and
//! both simulators answering 503 now and then. A round ends only when every payment and every
//! sync is in its final state and Flexprice holds each invoice paid exactly once, with nothing
//! left in the job queue or the DLQ.

use std::time::{Duration, Instant};

use futures::future::{join_all, try_join_all};
use serde_json::{Value, json};

use simulators::HasRecorder;

use crate::driver::{Driver, text};

/// The size of one round.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Invoices paid through a payment link.
    pub links: usize,
    /// Invoices paid through their synced Razorpay invoice.
    pub syncs: usize,
    /// How many copies of each request and of each extra webhook are sent at once.
    pub copies: usize,
}

impl Default for Plan {
    fn default() -> Plan {
        Plan {
            links: 6,
            syncs: 6,
            copies: 3,
        }
    }
}

/// A Flexprice invoice of the round and what it owes.
struct Owed {
    id: String,
    amount: String,
}

/// A link payment of the round and the Razorpay payment that paid it.
struct LinkPayment {
    invoice: Owed,
    payment: Value,
}

/// Runs one round; `Ok` says what it did.
pub async fn round(driver: &Driver<'_>, plan: Plan, number: usize) -> Result<String, String> {
    let started = Instant::now();
    let invoices = new_invoices(driver, plan.links + plan.syncs, number).await?;
    let (for_links, for_syncs) = invoices.split_at(plan.links);
    inject_faults(driver);
    let (links, synced) = tokio::join!(
        try_join_all(for_links.iter().enumerate().map(|(i, invoice)| create_link(
            driver,
            invoice,
            plan,
            format!("{number}-{i}")
        ))),
        try_join_all(for_syncs.iter().map(|invoice| sync(driver, invoice, plan))),
    );
    let (links, synced) = (links?, synced?);
    let delivered_before = driver.stack.razorpay.deliveries().len();
    let pays = links.iter().map(|link| pay_link(driver, link, plan));
    let invoice_pays = synced.iter().map(|rzp| pay_invoice(driver, rzp));
    let (paid, invoice_paid) = tokio::join!(try_join_all(pays), try_join_all(invoice_pays));
    let deliveries: Vec<Deliveries> = paid?.into_iter().chain(invoice_paid?).collect();
    let simulated: usize = deliveries.iter().map(|d| d.simulated).sum();
    let extra: usize = deliveries.iter().map(|d| d.extra).sum();
    all_delivered(driver, delivered_before + simulated).await?;
    for link in &links {
        settled_payment(driver, link).await?;
    }
    for invoice in &invoices {
        settled_invoice(driver, invoice).await?;
    }
    drained(driver).await?;
    // Anything applied twice would show now: the worker had every event.
    for invoice in &invoices {
        settled_invoice(driver, invoice).await?;
    }
    for invoice in for_links {
        final_sync(driver, invoice).await?;
    }
    Ok(format!(
        "{} link payments and {} synced invoices paid once each ({simulated} webhooks from \
         Razorpay, {extra} more sent again) in {:.1} s",
        links.len(),
        synced.len(),
        started.elapsed().as_secs_f64()
    ))
}

/// Deliver twice, in reverse order.
fn shuffled() -> Value {
    json!({"duplicate": true, "reorder": true})
}

/// The webhooks one payment caused: delivered by the simulator, and sent again by the round.
struct Deliveries {
    simulated: usize,
    extra: usize,
}

/// How many deliveries the simulator makes for an action it answered (each event twice).
fn simulated(answer: &Value) -> usize {
    2 * answer["events"].as_array().map_or(0, Vec::len)
}

/// Pays a synced Razorpay invoice in the simulator.
async fn pay_invoice(driver: &Driver<'_>, razorpay_invoice: &str) -> Result<Deliveries, String> {
    let answer = driver
        .razorpay_action(&format!("invoices/{razorpay_invoice}/pay"), shuffled())
        .await?;
    Ok(Deliveries {
        simulated: simulated(&answer),
        extra: 0,
    })
}

/// Waits until the Razorpay simulator has made `count` deliveries in all (each recorded once
/// its last attempt is done).
async fn all_delivered(driver: &Driver<'_>, count: usize) -> Result<(), String> {
    driver
        .until(|| async { (driver.stack.razorpay.deliveries().len() >= count).then_some(()) })
        .await
        .ok_or_else(|| format!("the Razorpay simulator did not make its {count} deliveries"))
}

/// Both simulators answer the next two API calls, whichever they are, with 503.
fn inject_faults(driver: &Driver<'_>) {
    let fault = simulators::Fault::Status { status: 503 };
    driver.stack.flexprice.add_fault(fault, 2);
    driver.stack.razorpay.add_fault(fault, 2);
}

/// Finalized Flexprice invoices, each owing its own amount (their finalization webhooks start
/// their syncs).
async fn new_invoices(
    driver: &Driver<'_>,
    count: usize,
    number: usize,
) -> Result<Vec<Owed>, String> {
    let customer = driver.stack.ready.customer_id.clone();
    try_join_all((0..count).map(|i| {
        let amount = format!("{}.{:02}", 100 + i, number % 100);
        let body = json!({"customer_id": customer, "currency": "inr",
            "due_date": "2030-01-31T00:00:00Z",
            "line_items": [{"display_name": format!("Usage, round {number}, #{i}"),
                "entity_type": "usage", "amount": amount}]});
        async move {
            let (status, created) =
                retried(|| driver.flexprice("POST", "/v1/invoices", Some(&body))).await?;
            if status != 201 {
                return Err(format!("Flexprice answered {status}: {created}"));
            }
            let id = text(&created["id"]).to_owned();
            let path = format!("/v1/invoices/{id}/finalize");
            retried(|| driver.flexprice("POST", &path, None)).await?;
            Ok(Owed { id, amount })
        }
    }))
    .await
}

/// A call answered with anything but 503 (the injected faults), tried a few times.
async fn retried<F, Fut>(mut call: F) -> Result<(u16, Value), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(u16, Value), String>>,
{
    let mut last = (503, Value::Null);
    for _ in 0..5 {
        last = call().await?;
        if last.0 != 503 && last.0 != 409 {
            return Ok(last);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Err(format!("still {} after 5 tries: {}", last.0, last.1))
}

/// `copies` identical requests at once for one payment link; all must name one payment (a
/// link, or the invoice's synced Razorpay invoice when its sync won the race).
async fn create_link(
    driver: &Driver<'_>,
    invoice: &Owed,
    plan: Plan,
    key: String,
) -> Result<LinkPayment, String> {
    let body = json!({"amount": invoice.amount, "currency": "INR", "destination_id": invoice.id,
        "destination_type": "INVOICE", "payment_method_type": "PAYMENT_LINK",
        "payment_gateway": "razorpay", "idempotency_key": format!("stress-{key}")});
    let mut answers = Vec::new();
    // The finalization webhook's sync races the link: while its Razorpay invoice is being made
    // the link is refused (one way to pay); once it is made, the request is answered with it.
    for _ in 0..20 {
        answers = try_join_all(
            (0..plan.copies)
                .map(|_| retried(|| driver.api("POST", "/api/v1/payments", Some(&body)))),
        )
        .await?;
        let being_made = answers.iter().any(|(status, answer)| {
            *status == 422 && answer["errors"][0]["rule"] == "payable_remaining"
        });
        if !being_made {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let ids: std::collections::BTreeSet<&str> = answers
        .iter()
        .map(|(_, payment)| text(&payment["id"]))
        .collect();
    match (ids.len(), answers.first()) {
        (1, Some((200 | 201, payment))) => Ok(LinkPayment {
            invoice: Owed {
                id: invoice.id.clone(),
                amount: invoice.amount.clone(),
            },
            payment: payment.clone(),
        }),
        _ => Err(format!(
            "identical requests for {} answered {answers:?}",
            invoice.id
        )),
    }
}

/// `copies` manual syncs at once, racing the one the finalization webhook queued; returns the
/// Razorpay invoice once synced.
async fn sync(driver: &Driver<'_>, invoice: &Owed, plan: Plan) -> Result<String, String> {
    let path = format!("/api/v1/invoices/{}/sync", invoice.id);
    let answers =
        try_join_all((0..plan.copies).map(|_| retried(|| driver.api("POST", &path, None)))).await?;
    if let Some((status, answer)) = answers
        .iter()
        .find(|(status, _)| !(200..300).contains(status))
    {
        return Err(format!(
            "a manual sync of {} answered {status}: {answer}",
            invoice.id
        ));
    }
    let view = driver
        .sync_when(&invoice.id, |view| view["state"] == "SYNCED")
        .await?;
    Ok(text(&view["razorpay_invoice_id"]).to_owned())
}

/// Pays the link (its webhooks twice, reversed), then sends the same capture under other
/// event ids and a late failed attempt, all at once.
async fn pay_link(
    driver: &Driver<'_>,
    link: &LinkPayment,
    plan: Plan,
) -> Result<Deliveries, String> {
    if link.payment["payment_method_type"] == "RAZORPAY_INVOICE" {
        return pay_invoice(driver, text(&link.payment["razorpay_invoice_id"])).await;
    }
    let plink = text(&link.payment["gateway_tracking_id"]);
    let answer = driver
        .razorpay_action(&format!("payment_links/{plink}/pay"), shuffled())
        .await?;
    let razorpay_id = text(&answer["payments"][0]).to_owned();
    let (payment, amount) = (&link.payment, &link.payment["amount_minor"]);
    let captured = driver.payment_event(
        "payment.captured",
        payment,
        &razorpay_id,
        amount,
        "captured",
    );
    let failed_id = format!("{razorpay_id}F");
    let failed = driver.payment_event("payment.failed", payment, &failed_id, amount, "failed");
    let mut deliveries: Vec<(String, String)> = (0..plan.copies)
        .map(|i| (format!("evt_{razorpay_id}_{i}"), captured.clone()))
        .collect();
    deliveries.push((format!("evt_{razorpay_id}_late"), failed));
    let answers = join_all(
        deliveries
            .iter()
            .map(|(id, body)| retried(|| driver.deliver_razorpay(id, body))),
    )
    .await;
    for answer in &answers {
        match answer {
            Ok((200, _)) => {}
            other => {
                return Err(format!(
                    "a webhook for {razorpay_id} was answered {other:?}"
                ));
            }
        }
    }
    Ok(Deliveries {
        simulated: simulated(&answer),
        extra: deliveries.len(),
    })
}

/// The link payment is SUCCEEDED for exactly what it asked.
async fn settled_payment(driver: &Driver<'_>, link: &LinkPayment) -> Result<(), String> {
    let id = text(&link.payment["id"]);
    let asked = link.payment["amount_minor"].clone();
    driver
        .payment_when(id, |p| {
            p["payment_status"] == "SUCCEEDED" && p["amount_paid_minor"] == asked
        })
        .await
        .map(|_| ())
        .map_err(|e| format!("payment {id} of invoice {}: {e}", link.invoice.id))
}

/// Flexprice holds the invoice paid, for exactly its amount.
async fn settled_invoice(driver: &Driver<'_>, invoice: &Owed) -> Result<(), String> {
    driver
        .invoice_when(&invoice.id, |i| {
            i["payment_status"] == "SUCCEEDED"
                && text(&i["amount_paid"]) == invoice.amount
                && text(&i["amount_remaining"]) == "0.00"
        })
        .await
        .map(|_| ())
}

/// An invoice paid by link: its sync ended too (synced before the payment, or skipped as paid).
async fn final_sync(driver: &Driver<'_>, invoice: &Owed) -> Result<(), String> {
    driver
        .sync_when(&invoice.id, |view| {
            matches!(text(&view["state"]), "SYNCED" | "SKIPPED")
        })
        .await
        .map(|_| ())
}

/// The job queue is empty (nothing waiting, nothing in flight) and so is the DLQ.
async fn drained(driver: &Driver<'_>) -> Result<(), String> {
    let stack = driver.stack;
    let count = |url: String| async move { stack.messages_in(&url).await };
    let queues = &stack.queues;
    let drained = driver
        .until(|| async { (count(queues.url.clone()).await? == 0).then_some(()) })
        .await;
    let parked = count(queues.dlq_url.clone()).await;
    match (drained, parked) {
        (Some(()), Some(0)) => Ok(()),
        (drained, parked) => Err(format!(
            "the job queue drained: {}, jobs parked in the DLQ: {parked:?}",
            drained.is_some()
        )),
    }
}
