//! `local-stack demo`: walks the seed's whole workflow on the local stack, through the gateway
//! as a tenant's backend, Razorpay and Flexprice would, says what each step did, and ends with
//! a table. A step that did not happen is reported as failed, never as done.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shared::secret::Secret;
use shared::signature::razorpay_sign;

use crate::LocalStack;

/// How long a step may wait for the worker.
const WAIT: Duration = Duration::from_secs(20);

struct Demo<'a> {
    stack: &'a LocalStack,
    http: reqwest::Client,
    rows: Vec<(String, Result<String, String>)>,
}

impl Demo<'_> {
    fn record(&mut self, step: &str, outcome: Result<String, String>) {
        match &outcome {
            Ok(text) => println!("  [ok    ] {step}: {text}"),
            Err(text) => println!("  [FAILED] {step}: {text}"),
        }
        self.rows.push((step.to_owned(), outcome));
    }

    async fn call(
        &self,
        method: reqwest::Method,
        url: String,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let mut request = self.http.request(method, url);
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    /// The tenant API, with the demo tenant's key.
    async fn api(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let url = format!("{}{path}", self.stack.ready.gateway_url);
        self.call(method, url, Some(&self.stack.ready.api_key), body)
            .await
    }

    /// The Flexprice simulator's API.
    async fn flexprice(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let url = format!("{}{path}", self.stack.ready.flexprice_sim_url);
        self.call(method, url, Some(&self.stack.flexprice_api_key), body)
            .await
    }

    /// A customer's action in the Razorpay simulator (pay, fail...).
    async fn razorpay_action(&self, path: &str, body: Value) -> Result<Value, String> {
        let url = format!("{}/_sim/{path}", self.stack.ready.razorpay_sim_url);
        match self
            .call(reqwest::Method::POST, url, None, Some(&body))
            .await?
        {
            (200, answer) => Ok(answer),
            (status, answer) => Err(format!("the simulator answered {status}: {answer}")),
        }
    }

    /// Polls `probe` until it gives a value.
    async fn until<T, F, Fut>(&self, mut probe: F) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Some(value) = probe().await {
                return Some(value);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        None
    }

    /// Polls `GET url` (the tenant API, or Flexprice when `flexprice`) until `done` holds.
    async fn get_when(
        &self,
        flexprice: bool,
        path: String,
        done: impl Fn(&Value) -> bool,
    ) -> Result<Value, String> {
        let found = self
            .until(|| {
                let (path, done) = (&path, &done);
                async move {
                    let (_, value) = if flexprice {
                        self.flexprice("GET", path, None).await.ok()?
                    } else {
                        self.api("GET", path, None).await.ok()?
                    };
                    done(&value).then_some(value)
                }
            })
            .await;
        found.ok_or_else(|| format!("{path} did not change as expected"))
    }

    async fn payment_when(&self, id: &str, done: impl Fn(&Value) -> bool) -> Result<Value, String> {
        self.get_when(false, format!("/api/v1/payments/{id}"), done)
            .await
    }

    async fn invoice_when(&self, id: &str, done: impl Fn(&Value) -> bool) -> Result<Value, String> {
        self.get_when(true, format!("/v1/invoices/{id}"), done)
            .await
    }
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("?")
}

/// Runs the demo against a started stack; `true` when every step did what it says.
pub async fn run(stack: &LocalStack) -> bool {
    let http = match shared::http::client(shared::http::Timeouts::default()) {
        Ok(http) => http,
        Err(e) => {
            println!("  [FAILED] HTTP client: {e}");
            return false;
        }
    };
    let mut demo = Demo {
        stack,
        http,
        rows: Vec::new(),
    };
    println!(
        "flexrzp local demo: tenant {}/{}, gateway {}",
        stack.ready.tenant_id, stack.ready.environment_id, stack.ready.gateway_url
    );
    let inr = stack.ready.invoice_ids[0].clone();
    let usd = stack.ready.invoice_ids[1].clone();

    // 1. Step 1 of the seed: the connection (made at start-up through the connection service).
    let outcome = match demo.api("GET", "/api/v1/connections/razorpay", None).await {
        Ok((200, view)) if view["key_secret"] == "********" => Ok(format!(
            "Razorpay key {} connected, invoice sync {}, every secret redacted",
            text(&view["key_id"]),
            if view["invoice_outbound_sync"] == true {
                "on"
            } else {
                "off"
            }
        )),
        Ok((status, view)) => Err(format!("{status}: {view}")),
        Err(e) => Err(e),
    };
    demo.record("Connection", outcome);

    // 2. Steps 4 and 5: a payment link for the INR invoice (syncing its customer first).
    let owed = match demo
        .flexprice("GET", &format!("/v1/invoices/{inr}"), None)
        .await
    {
        Ok((200, invoice)) => invoice["amount_remaining"].clone(),
        _ => Value::Null,
    };
    let body = json!({"amount": owed, "currency": "inr", "destination_id": inr,
        "destination_type": "INVOICE", "payment_method_type": "PAYMENT_LINK",
        "payment_gateway": "razorpay", "process_payment": true,
        "success_url": "https://example.com/paid"});
    let link = match demo.api("POST", "/api/v1/payments", Some(&body)).await {
        Ok((201, payment)) => Ok(payment),
        Ok((status, answer)) => Err(format!("{status}: {answer}")),
        Err(e) => Err(e),
    };
    demo.record(
        "Customer sync",
        link.as_ref()
            .map(|p| {
                format!(
                    "Flexprice customer {} is Razorpay customer {}",
                    stack.ready.customer_id,
                    text(&p["razorpay_customer_id"])
                )
            })
            .map_err(Clone::clone),
    );
    demo.record(
        "Payment link",
        link.as_ref()
            .map(|p| {
                format!(
                    "payment {} {} for {} INR, pay at {}",
                    text(&p["id"]),
                    text(&p["payment_status"]),
                    text(&p["amount"]),
                    text(&p["payment_url"])
                )
            })
            .map_err(Clone::clone),
    );

    // 3. Step 6: the customer pays; Razorpay's signed webhooks settle the invoice in Flexprice.
    let mut paid_link: Option<(Value, String)> = None;
    let outcome = match &link {
        Ok(payment) => {
            let plink = text(&payment["gateway_tracking_id"]).to_owned();
            match demo
                .razorpay_action(&format!("payment_links/{plink}/pay"), json!({}))
                .await
            {
                Ok(answer) => match demo
                    .payment_when(text(&payment["id"]), |p| p["payment_status"] == "SUCCEEDED")
                    .await
                {
                    Ok(done) => {
                        paid_link = Some((done.clone(), text(&answer["payments"][0]).to_owned()));
                        Ok(format!(
                            "payment {} SUCCEEDED, {} subunits paid",
                            text(&done["id"]),
                            done["amount_paid_minor"]
                        ))
                    }
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            }
        }
        Err(_) => Err("no payment link to pay".to_owned()),
    };
    demo.record("Payment via webhook", outcome);
    let outcome = match demo
        .invoice_when(&inr, |i| i["payment_status"] == "SUCCEEDED")
        .await
    {
        Ok(invoice) => Ok(format!(
            "Flexprice invoice {inr} SUCCEEDED: paid {}, remaining {}",
            text(&invoice["amount_paid"]),
            text(&invoice["amount_remaining"])
        )),
        Err(e) => Err(e),
    };
    demo.record("Reconciliation", outcome);

    // 4. A duplicate webhook: Razorpay redelivers an event; it is acknowledged, not applied.
    let outcome = match &paid_link {
        Some((payment, razorpay_id)) => duplicate_webhook(&demo, payment, razorpay_id, &inr).await,
        None => Err("no paid payment to redeliver".to_owned()),
    };
    demo.record("Duplicate webhook", outcome);

    // 5. A failed payment: the customer's bank declines; the attempt is recorded, the link
    // stays open for another try.
    let body = json!({"amount": "100.00", "currency": "usd", "destination_id": usd,
        "destination_type": "INVOICE", "payment_method_type": "PAYMENT_LINK",
        "payment_gateway": "razorpay"});
    let outcome = match demo.api("POST", "/api/v1/payments", Some(&body)).await {
        Ok((201, payment)) => {
            let plink = text(&payment["gateway_tracking_id"]).to_owned();
            match demo
                .razorpay_action(&format!("payment_links/{plink}/fail"), json!({}))
                .await
            {
                Ok(_) => demo
                    .payment_when(text(&payment["id"]), |p| {
                        p["attempts"].as_array().is_some_and(|a| !a.is_empty())
                    })
                    .await
                    .map(|p| {
                        format!(
                            "payment {} still {}, attempt recorded: {} ({})",
                            text(&p["id"]),
                            text(&p["payment_status"]),
                            text(&p["attempts"][0]["error_code"]),
                            text(&p["attempts"][0]["error_description"])
                        )
                    }),
                Err(e) => Err(e),
            }
        }
        Ok((status, answer)) => Err(format!("{status}: {answer}")),
        Err(e) => Err(e),
    };
    demo.record("Failed payment", outcome);

    // 6. Step 2: a newly finalized invoice syncs to a Razorpay invoice with a payment URL ...
    let synced = sync_new_invoice(&demo).await;
    demo.record(
        "Invoice sync",
        synced
            .as_ref()
            .map(|(id, view)| {
                format!(
                    "{id} -> Razorpay invoice {} for {} {} ({} form), pay at {}",
                    text(&view["razorpay_invoice_id"]),
                    view["amount_minor"],
                    text(&view["currency"]),
                    text(&view["form"]),
                    text(&view["payment_url"])
                )
            })
            .map_err(Clone::clone),
    );

    // 7. ... and a payment on that Razorpay invoice reaches Flexprice the same way.
    let outcome = match &synced {
        Ok((id, view)) => {
            let rzp = text(&view["razorpay_invoice_id"]).to_owned();
            match demo
                .razorpay_action(&format!("invoices/{rzp}/pay"), json!({}))
                .await
            {
                Ok(_) => demo
                    .invoice_when(id, |i| i["payment_status"] == "SUCCEEDED")
                    .await
                    .map(|i| {
                        format!(
                            "Flexprice invoice {id} SUCCEEDED: paid {}",
                            text(&i["amount_paid"])
                        )
                    }),
                Err(e) => Err(e),
            }
        }
        Err(_) => Err("no synced invoice to pay".to_owned()),
    };
    demo.record("Payment on the synced invoice", outcome);

    let failed = demo.rows.iter().filter(|(_, o)| o.is_err()).count();
    println!();
    println!("  {:<32} result", "step");
    println!("  {:-<32} ------", "");
    for (step, outcome) in &demo.rows {
        println!(
            "  {step:<32} {}",
            if outcome.is_ok() { "ok" } else { "FAILED" }
        );
    }
    println!(
        "summary: {} of {} steps done, {failed} failed",
        demo.rows.len() - failed,
        demo.rows.len()
    );
    failed == 0
}

/// Redelivers the `payment.captured` of a paid link payment twice under one new event id (a
/// replay from Razorpay's dashboard gets a new id; a retry keeps it): the first copy is taken
/// and found already counted, the second is answered as a duplicate; the invoice stays paid
/// once.
async fn duplicate_webhook(
    demo: &Demo<'_>,
    payment: &Value,
    razorpay_id: &str,
    invoice: &str,
) -> Result<String, String> {
    let stack = demo.stack;
    let body = json!({"entity": "event", "account_id": stack.razorpay.account_id(),
        "event": "payment.captured", "contains": ["payment"],
        "payload": {"payment": {"entity": {"id": razorpay_id, "entity": "payment",
            "amount": payment["amount_paid_minor"], "currency": "INR", "status": "captured",
            "notes": {"flexprice_payment_id": payment["id"], "tenant_id": stack.ready.tenant_id,
                "environment_id": stack.ready.environment_id}}}},
        "created_at": 1764060000})
    .to_string();
    let signature = razorpay_sign(
        &Secret::new(stack.ready.webhook_secret.clone()),
        body.as_bytes(),
    );
    let url = format!(
        "{}/v1/webhooks/razorpay/{}/{}",
        stack.ready.gateway_url, stack.ready.tenant_id, stack.ready.environment_id
    );
    let mut answers = Vec::new();
    for _ in 0..2 {
        let response = demo
            .http
            .post(&url)
            .header("x-razorpay-signature", &signature)
            .header("x-razorpay-event-id", "evt_demo_replayed")
            .body(body.clone())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        answers.push(format!("{status} {}", text(&answer["status"])));
    }
    if answers != ["200 accepted", "200 duplicate"] {
        return Err(format!("answers {answers:?}"));
    }
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
        "{razorpay_id} replayed twice under one event id: {}; still paid {} once",
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
    let path = format!("/api/v1/invoices/{id}/sync");
    let view = demo
        .until(|| {
            let path = path.clone();
            async move {
                let (_, view) = demo.api("GET", &path, None).await.ok()?;
                (view["state"] == "SYNCED").then_some(view)
            }
        })
        .await
        .ok_or_else(|| format!("invoice {id} did not sync"))?;
    Ok((id, view))
}
