//! `local-stack demo`: drives the flows that exist so far end to end, says what each step did,
//! and never claims a step that did not happen. A step whose flow is not built yet is reported
//! as pending, not as done.

use std::time::{Duration, Instant};

use serde_json::json;
use shared::flexprice::{FlexpriceClient, FlexpriceConfig};
use shared::money::Money;
use shared::secret::Secret;
use simulators::HasRecorder;

use crate::LocalStack;

/// What became of one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done(String),
    /// The step ran as far as what is built; the rest of its flow is not built yet.
    Pending(String),
    Failed(String),
}

struct Report {
    outcomes: Vec<(String, Outcome)>,
}

impl Report {
    fn record(&mut self, step: &str, outcome: Outcome) {
        let (mark, text) = match &outcome {
            Outcome::Done(t) => ("ok     ", t),
            Outcome::Pending(t) => ("pending", t),
            Outcome::Failed(t) => ("FAILED ", t),
        };
        println!("  [{mark}] {step}: {text}");
        self.outcomes.push((step.to_owned(), outcome));
    }
}

async fn wait_until<F: FnMut() -> bool>(limit: Duration, mut done: F) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    done()
}

/// Runs the demo against a started stack; `true` when no step failed.
pub async fn run(stack: &LocalStack) -> bool {
    let mut report = Report {
        outcomes: Vec::new(),
    };
    println!(
        "flexrzp local demo (tenant {}/{})",
        stack.ready.tenant_id, stack.ready.environment_id
    );
    println!(
        "  gateway {}  razorpay-sim {}  flexprice-sim {}",
        stack.ready.gateway_url, stack.ready.razorpay_sim_url, stack.ready.flexprice_sim_url
    );

    // 1. The seeded Flexprice invoices, read through the Flexprice client.
    let flexprice = FlexpriceClient::new(FlexpriceConfig::new(
        &stack.ready.flexprice_sim_url,
        Secret::new(stack.flexprice_api_key.clone()),
    ));
    let mut inr_remaining: Option<Money> = None;
    match &flexprice {
        Ok(client) => {
            let mut shown = Vec::new();
            let mut failure = None;
            for id in &stack.ready.invoice_ids {
                match client
                    .get_invoice(id)
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|inv| {
                        let amounts = inv.amounts().map_err(|e| e.to_string())?;
                        Ok((inv.invoice_status, inv.line_items.len(), amounts.remaining))
                    }) {
                    Ok((status, items, remaining)) => {
                        if remaining.currency().code() == "INR" {
                            inr_remaining = Some(remaining);
                        }
                        shown.push(format!("{id} {status}, {items} lines, owes {remaining}"));
                    }
                    Err(e) => failure = Some(format!("{id}: {e}")),
                }
            }
            report.record(
                "Flexprice invoices",
                match failure {
                    None => Outcome::Done(shown.join("; ")),
                    Some(e) => Outcome::Failed(e),
                },
            );
        }
        Err(e) => report.record("Flexprice invoices", Outcome::Failed(e.to_string())),
    }

    let mut link_id: Option<String> = None;
    let http = match shared::http::client(shared::http::Timeouts::default()) {
        Ok(http) => http,
        Err(e) => {
            report.record("HTTP client", Outcome::Failed(e.to_string()));
            return false;
        }
    };

    // 2. The tenant's connection, read through the gateway with its API key.
    let connection = http
        .get(format!(
            "{}/api/v1/connections/razorpay",
            stack.ready.gateway_url
        ))
        .header("x-api-key", &stack.ready.api_key)
        .send()
        .await;
    report.record(
        "GET /api/v1/connections/razorpay through the gateway",
        match connection {
            Ok(r) if r.status() == 200 => match r.json::<serde_json::Value>().await {
                Ok(view) if view["key_secret"] == "********" => Outcome::Done(format!(
                    "key {} connected, invoice sync {}, secrets redacted",
                    view["key_id"].as_str().unwrap_or("?"),
                    if view["invoice_outbound_sync"] == true {
                        "on"
                    } else {
                        "off"
                    }
                )),
                Ok(view) => Outcome::Failed(format!("unexpected view {view}")),
                Err(e) => Outcome::Failed(e.to_string()),
            },
            Ok(r) => Outcome::Failed(format!("answered {}", r.status())),
            Err(e) => Outcome::Failed(e.to_string()),
        },
    );

    // 3. A payment link for the INR invoice, through the gateway.
    let body = json!({"amount": inr_remaining.map(|m| m.to_decimal_string()), "currency": "inr",
        "destination_id": stack.ready.invoice_ids[0], "destination_type": "INVOICE",
        "payment_method_type": "PAYMENT_LINK", "payment_gateway": "razorpay", "process_payment": true});
    let api = http
        .post(format!("{}/api/v1/payments", stack.ready.gateway_url))
        .header("x-api-key", &stack.ready.api_key)
        .json(&body)
        .send()
        .await;
    let outcome = match api {
        Ok(r) if r.status().is_success() => {
            let status = r.status();
            match r.json::<serde_json::Value>().await {
                Ok(p) => {
                    link_id = p["gateway_tracking_id"].as_str().map(str::to_owned);
                    Outcome::Done(format!(
                        "{status}: payment {} {} for {} {}, pay at {}",
                        p["id"].as_str().unwrap_or("?"),
                        p["payment_status"].as_str().unwrap_or("?"),
                        p["amount"].as_str().unwrap_or("?"),
                        p["currency"].as_str().unwrap_or("?"),
                        p["payment_url"].as_str().unwrap_or("?")
                    ))
                }
                Err(e) => Outcome::Failed(e.to_string()),
            }
        }
        Ok(r) => Outcome::Failed(format!("answered {}", r.status())),
        Err(e) => Outcome::Failed(e.to_string()),
    };
    report.record("POST /api/v1/payments through the gateway", outcome);

    // 4. The customer pays the link; Razorpay signs and delivers the webhooks to the gateway.
    if let Some(link_id) = link_id {
        let paid = http
            .post(format!(
                "{}/_sim/payment_links/{link_id}/pay",
                stack.ready.razorpay_sim_url
            ))
            .json(&json!({}))
            .send()
            .await;
        let sim = stack.razorpay.clone();
        let arrived = paid.is_ok()
            && wait_until(Duration::from_secs(20), || sim.deliveries().len() >= 3).await;
        let deliveries = stack.razorpay.deliveries();
        let statuses: Vec<String> = deliveries
            .iter()
            .map(|d| {
                format!(
                    "{} -> {}",
                    d.event,
                    d.status.map_or("no answer".into(), |s| s.to_string())
                )
            })
            .collect();
        report.record(
            "Payment and signed Razorpay webhooks",
            if !arrived {
                Outcome::Failed(format!("webhooks did not reach the gateway: {statuses:?}"))
            } else if deliveries.iter().all(|d| d.delivered) {
                Outcome::Done(format!(
                    "{}; each verified, claimed once and queued for the worker",
                    statuses.join(", ")
                ))
            } else {
                Outcome::Failed(statuses.join(", "))
            },
        );
    }

    // 5. The captured payment reaches Flexprice and settles the invoice.
    if let Ok(client) = &flexprice {
        let invoice_id = stack.ready.invoice_ids[0].clone();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut last = String::new();
        let mut settled = false;
        while Instant::now() < deadline {
            if let Ok(invoice) = client.get_invoice(&invoice_id).await {
                last = format!(
                    "{} (paid {}, remaining {})",
                    invoice.payment_status, invoice.amount_paid, invoice.amount_remaining
                );
                if invoice.payment_status == "SUCCEEDED" {
                    settled = true;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        report.record(
            "Flexprice invoice settled by the captured payment",
            if settled {
                Outcome::Done(format!("{invoice_id} is {last}, recorded once"))
            } else {
                Outcome::Failed(format!("{invoice_id} is {last}"))
            },
        );
    }

    // 6. Invoice outbound sync: a new invoice finalized in Flexprice (the simulator sends the
    // Svix-signed `invoice.update.finalized`) becomes a Razorpay invoice with a payment URL.
    let outcome = match sync_new_invoice(stack, &http).await {
        Ok(text) => Outcome::Done(text),
        Err(e) => Outcome::Failed(e),
    };
    report.record(
        "Invoice finalized in Flexprice, synced to Razorpay",
        outcome,
    );

    let count = |f: fn(&Outcome) -> bool| report.outcomes.iter().filter(|(_, o)| f(o)).count();
    let failed = count(|o| matches!(o, Outcome::Failed(_)));
    println!(
        "summary: {} done, {} pending (their flows are not built yet), {} failed",
        count(|o| matches!(o, Outcome::Done(_))),
        count(|o| matches!(o, Outcome::Pending(_))),
        failed
    );
    failed == 0
}

/// Creates and finalizes an invoice in the Flexprice simulator, then waits for its sync.
async fn sync_new_invoice(stack: &LocalStack, http: &reqwest::Client) -> Result<String, String> {
    let flexprice = |path: &str| {
        http.post(format!("{}{path}", stack.ready.flexprice_sim_url))
            .header("x-api-key", &stack.flexprice_api_key)
    };
    let created: serde_json::Value = flexprice("/v1/invoices")
        .json(&json!({"customer_id": stack.ready.customer_id, "currency": "inr",
            "due_date": "2030-01-31T00:00:00Z",
            "line_items": [{"display_name": "Pro plan", "entity_type": "plan", "amount": "999.00"},
                           {"display_name": "API calls (8,200)", "entity_type": "usage", "amount": "82.00"}],
            "taxes": [{"name": "GST 18%", "amount": "194.58"}]}))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let id = created["id"]
        .as_str()
        .ok_or("Flexprice created no invoice")?
        .to_owned();
    flexprice(&format!("/v1/invoices/{id}/finalize"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = serde_json::Value::Null;
    while Instant::now() < deadline {
        let view = http
            .get(format!(
                "{}/api/v1/invoices/{id}/sync",
                stack.ready.gateway_url
            ))
            .header("x-api-key", &stack.ready.api_key)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json::<serde_json::Value>()
            .await
            .unwrap_or_default();
        if view["state"] == "SYNCED" {
            return Ok(format!(
                "{id} ({}) -> Razorpay invoice {} for {} {} ({} lines form), pay at {}",
                created["invoice_number"].as_str().unwrap_or("?"),
                view["razorpay_invoice_id"].as_str().unwrap_or("?"),
                created["amount_remaining"].as_str().unwrap_or("?"),
                view["currency"].as_str().unwrap_or("?"),
                view["form"].as_str().unwrap_or("?"),
                view["payment_url"].as_str().unwrap_or("?"),
            ));
        }
        last = view;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!("the invoice did not sync: {last}"))
}
