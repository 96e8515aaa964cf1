//! Drives a running stack from outside, as its users do: the tenant's backend (the API, with
//! the demo tenant's key), Flexprice (its simulator's API), Razorpay's customers (the
//! simulator's `/_sim` actions) and Razorpay's signed webhooks, all over HTTP. The demo and the
//! stress run share it.

use std::time::{Duration, Instant};

use serde_json::Value;
use shared::domain::secret::Secret;
use shared::domain::signature::razorpay_sign;

use crate::LocalStack;

/// How long a wait for the worker may take by default.
pub const WAIT: Duration = Duration::from_secs(20);

/// A string field, or `?`.
pub fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("?")
}

pub struct Driver<'a> {
    pub stack: &'a LocalStack,
    pub http: reqwest::Client,
    /// How long [`Driver::until`] polls.
    pub wait: Duration,
}

impl<'a> Driver<'a> {
    pub fn new(stack: &'a LocalStack) -> Result<Driver<'a>, String> {
        let http = shared::adapters::http::client(shared::adapters::http::Timeouts {
            connect: Duration::from_secs(2),
            total: Duration::from_secs(30),
        })
        .map_err(|e| e.to_string())?;
        Ok(Driver {
            stack,
            http,
            wait: WAIT,
        })
    }

    async fn call(
        &self,
        method: &str,
        url: String,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
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
    pub async fn api(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let url = format!("{}{path}", self.stack.ready.gateway_url);
        self.call(method, url, Some(&self.stack.ready.api_key), body)
            .await
    }

    /// The Flexprice simulator's API.
    pub async fn flexprice(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let url = format!("{}{path}", self.stack.ready.flexprice_sim_url);
        self.call(method, url, Some(&self.stack.flexprice_api_key), body)
            .await
    }

    /// A customer's action in the Razorpay simulator (pay, fail...).
    pub async fn razorpay_action(&self, path: &str, body: Value) -> Result<Value, String> {
        let url = format!("{}/_sim/{path}", self.stack.ready.razorpay_sim_url);
        match self.call("POST", url, None, Some(&body)).await? {
            (200, answer) => Ok(answer),
            (status, answer) => Err(format!("the simulator answered {status}: {answer}")),
        }
    }

    /// A Razorpay webhook signed with the demo tenant's secret, through the gateway.
    pub async fn deliver_razorpay(
        &self,
        event_id: &str,
        body: &str,
    ) -> Result<(u16, Value), String> {
        let ready = &self.stack.ready;
        let signature = razorpay_sign(&Secret::new(ready.webhook_secret.clone()), body.as_bytes());
        let response = self
            .http
            .post(format!(
                "{}/v1/webhooks/razorpay/{}/{}",
                ready.gateway_url, ready.tenant_id, ready.environment_id
            ))
            .header("x-razorpay-signature", signature)
            .header("x-razorpay-event-id", event_id)
            .body(body.to_owned())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    /// A Razorpay event about a payment on one of our links, as Razorpay sends it (the link's
    /// notes copied onto the payment): `name` (`payment.captured`, `payment.failed`, ...) for
    /// Razorpay payment `razorpay_id` of `amount` subunits, in `status`.
    pub fn payment_event(
        &self,
        name: &str,
        payment: &Value,
        razorpay_id: &str,
        amount: &Value,
        status: &str,
    ) -> String {
        let ready = &self.stack.ready;
        serde_json::json!({"entity": "event", "account_id": self.stack.razorpay.account_id(),
            "event": name, "contains": ["payment"],
            "payload": {"payment": {"entity": {"id": razorpay_id, "entity": "payment",
                "amount": amount, "currency": "INR", "status": status,
                "captured": status == "captured",
                "error_code": (status == "failed").then_some("BAD_REQUEST_ERROR"),
                "notes": {"flexprice_payment_id": payment["id"], "tenant_id": ready.tenant_id,
                    "environment_id": ready.environment_id}}}},
            "created_at": 1764060000})
        .to_string()
    }

    /// The `payment.captured` Razorpay sends for one of its payments: the payment as Razorpay's
    /// API has it now (order, notes and all), in an event envelope.
    pub async fn captured_event(&self, razorpay_id: &str) -> Result<String, String> {
        let url = format!(
            "{}/v1/payments/{razorpay_id}",
            self.stack.ready.razorpay_sim_url
        );
        let response = self
            .http
            .get(url)
            .basic_auth(
                crate::RAZORPAY_KEY_ID,
                Some(&self.stack.razorpay_key_secret),
            )
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let payment: Value = response.json().await.map_err(|e| e.to_string())?;
        if payment["id"] != razorpay_id {
            return Err(format!("Razorpay has no payment {razorpay_id}: {payment}"));
        }
        let body = serde_json::json!({"entity": "event",
            "account_id": self.stack.razorpay.account_id(), "event": "payment.captured",
            "contains": ["payment"], "payload": {"payment": {"entity": payment}},
            "created_at": payment["created_at"]});
        Ok(body.to_string())
    }

    /// Polls `probe` until it gives a value, for at most [`Driver::wait`].
    pub async fn until<T, F, Fut>(&self, mut probe: F) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + self.wait;
        while Instant::now() < deadline {
            if let Some(value) = probe().await {
                return Some(value);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        None
    }

    /// Polls `GET path` (the tenant API, or Flexprice when `flexprice`) until `done` holds.
    async fn get_when(
        &self,
        flexprice: bool,
        path: String,
        done: impl Fn(&Value) -> bool,
    ) -> Result<Value, String> {
        let last = std::cell::RefCell::new(Value::Null);
        let found = self
            .until(|| {
                let (path, done, last) = (&path, &done, &last);
                async move {
                    let (_, value) = if flexprice {
                        self.flexprice("GET", path, None).await.ok()?
                    } else {
                        self.api("GET", path, None).await.ok()?
                    };
                    let found = done(&value).then(|| value.clone());
                    last.replace(value);
                    found
                }
            })
            .await;
        found.ok_or_else(|| {
            format!(
                "{path} did not change as expected; last seen: {}",
                last.borrow()
            )
        })
    }

    pub async fn payment_when(
        &self,
        id: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Result<Value, String> {
        self.get_when(false, format!("/api/v1/payments/{id}"), done)
            .await
    }

    pub async fn invoice_when(
        &self,
        id: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Result<Value, String> {
        self.get_when(true, format!("/v1/invoices/{id}"), done)
            .await
    }

    pub async fn sync_when(
        &self,
        id: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Result<Value, String> {
        self.get_when(false, format!("/api/v1/invoices/{id}/sync"), done)
            .await
    }
}
