//! The Razorpay REST client: HTTP Basic `key_id:key_secret`, JSON, timeouts, and retries that
//! never create anything twice.
//!
//! Retry rules: reads retry on 429, 5xx, timeouts and connection errors. A create retries only
//! where a lookup can tell whether the first attempt took effect: a payment link is found by
//! its `reference_id`, an invoice by its `receipt`, a customer (created with
//! `fail_existing: "0"`) by its email and contact. A 429 is always retried: Razorpay refused
//! the request without acting on it.

pub mod events;
pub mod wire;

use std::future::Future;

use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

use crate::adapters::http::{RetryPolicy, Timeouts, counted, segment};
use crate::domain::error::{Classify, ErrorClass};
use crate::domain::secret::Secret;
use crate::ports::PortFuture;
use wire::{
    Collection, Customer, CustomerRequest, Dispute, ErrorBody, Invoice, InvoiceRequest,
    InvoiceStatus, Payment, PaymentLink, PaymentLinkList, PaymentLinkRequest, Refund,
    RefundRequest,
};

/// Razorpay's production API.
pub const DEFAULT_BASE_URL: &str = "https://api.razorpay.com";

#[derive(Debug, Error)]
pub enum RazorpayError {
    /// Razorpay answered with an error body (any of its three shapes) or a bare status.
    #[error("Razorpay answered {status}: {description}")]
    Api {
        status: u16,
        code: Option<String>,
        description: String,
        field: Option<String>,
        reason: Option<String>,
    },
    #[error("Razorpay did not answer in time")]
    Timeout,
    #[error("could not reach Razorpay: {0}")]
    Transport(String),
    #[error("Razorpay's answer could not be read: {0}")]
    Decode(String),
    #[error("the Razorpay client could not be set up: {0}")]
    Setup(String),
}

impl RazorpayError {
    /// 429: Razorpay refused the request without acting on it.
    pub fn is_throttled(&self) -> bool {
        matches!(self, RazorpayError::Api { status: 429, .. })
    }

    /// 404, or Razorpay's 400 for an id it does not know ("… is not a valid id", "The id
    /// provided does not exist"): no such object on this account.
    pub fn is_not_found(&self) -> bool {
        match self {
            RazorpayError::Api { status: 404, .. } => true,
            RazorpayError::Api {
                status: 400,
                description,
                ..
            } => {
                description.contains("does not exist") || description.ends_with("is not a valid id")
            }
            _ => false,
        }
    }

    /// A 4xx other than 429: the request itself was refused.
    pub fn is_client_error(&self) -> bool {
        matches!(self, RazorpayError::Api { status, .. } if (400..500).contains(status) && *status != 429)
    }

    /// The field Razorpay blamed, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            RazorpayError::Api { field, .. } => field.as_deref(),
            _ => None,
        }
    }
}

impl Classify for RazorpayError {
    fn class(&self) -> ErrorClass {
        match self {
            RazorpayError::Api { status, .. } if *status == 429 || *status >= 500 => {
                ErrorClass::Retryable
            }
            // A 2xx whose body cannot be read is an unknown outcome, like a timeout: a create
            // may have acted (its recovery lookup decides), a read can be asked again.
            RazorpayError::Timeout | RazorpayError::Transport(_) | RazorpayError::Decode(_) => {
                ErrorClass::Retryable
            }
            _ => ErrorClass::Permanent,
        }
    }
}

fn transport_error(err: reqwest::Error) -> RazorpayError {
    if err.is_timeout() {
        RazorpayError::Timeout
    } else {
        // Without the URL: it is ours, and the error text stays short.
        RazorpayError::Transport(err.without_url().to_string())
    }
}

/// Where and as whom to call Razorpay.
#[derive(Debug, Clone)]
pub struct RazorpayConfig {
    pub base_url: String,
    pub key_id: String,
    pub key_secret: Secret<String>,
    pub timeouts: Timeouts,
    pub retry: RetryPolicy,
}

impl RazorpayConfig {
    pub fn new(
        base_url: impl Into<String>,
        key_id: impl Into<String>,
        key_secret: Secret<String>,
    ) -> RazorpayConfig {
        RazorpayConfig {
            base_url: base_url.into(),
            key_id: key_id.into(),
            key_secret,
            timeouts: Timeouts::default(),
            retry: RetryPolicy::default(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RazorpayClient {
    http: reqwest::Client,
    base_url: String,
    key_id: String,
    key_secret: Secret<String>,
    retry: RetryPolicy,
}

impl RazorpayClient {
    pub fn new(config: RazorpayConfig) -> Result<RazorpayClient, RazorpayError> {
        let http = crate::adapters::http::client(config.timeouts)
            .map_err(|e| RazorpayError::Setup(e.to_string()))?;
        Ok(RazorpayClient {
            http,
            base_url: config.base_url.trim_end_matches('/').to_owned(),
            key_id: config.key_id,
            key_secret: config.key_secret,
            retry: config.retry,
        })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&(impl Serialize + Sync)>,
    ) -> Result<T, RazorpayError> {
        self.call_with(method, path, query, &[], body).await
    }

    async fn call_with<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        body: Option<&(impl Serialize + Sync)>,
    ) -> Result<T, RazorpayError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base_url))
            .basic_auth(&self.key_id, Some(self.key_secret.expose()))
            .query(query);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = counted("razorpay", request)
            .await
            .map_err(transport_error)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport_error)?;
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| RazorpayError::Decode(e.to_string()));
        }
        let detail = ErrorBody::parse(&bytes).unwrap_or_default();
        Err(RazorpayError::Api {
            status: status.as_u16(),
            code: detail.code,
            description: detail.description.unwrap_or_else(|| {
                status
                    .canonical_reason()
                    .unwrap_or("no description")
                    .to_owned()
            }),
            field: detail.field,
            reason: detail.reason,
        })
    }

    /// A read: retried on every retryable error.
    async fn read<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, RazorpayError> {
        self.retry
            .run(
                |_| self.call(Method::GET, path, query, None::<&()>),
                RazorpayError::is_retryable,
            )
            .await
    }

    /// A write that has no recovery lookup: retried only when Razorpay throttled it.
    async fn write<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&(impl Serialize + Sync)>,
    ) -> Result<T, RazorpayError> {
        self.retry
            .run(
                |_| self.call(Method::POST, path, &[], body),
                RazorpayError::is_throttled,
            )
            .await
    }

    /// A create with a recovery lookup. After a failure whose outcome is unknown (timeout,
    /// connection error, 5xx), or a refusal on a later attempt (the first one may have taken
    /// effect after all: "reference ID already attempted"), the lookup decides: what it finds
    /// is returned, otherwise the create is tried again.
    async fn create_recoverable<T, C, CF, L, LF>(
        &self,
        create: C,
        lookup: L,
    ) -> Result<T, RazorpayError>
    where
        C: Fn() -> CF,
        CF: Future<Output = Result<T, RazorpayError>>,
        L: Fn() -> LF,
        LF: Future<Output = Result<Option<T>, RazorpayError>>,
    {
        let mut attempt = 1;
        loop {
            let err = match create().await {
                Ok(created) => return Ok(created),
                Err(err) => err,
            };
            let unknown_outcome = err.is_retryable() && !err.is_throttled();
            if (unknown_outcome || (attempt > 1 && err.is_client_error()))
                && let Some(found) = lookup().await?
            {
                tracing::info!(
                    attempt,
                    "found the object a failed create had made; not creating it again"
                );
                return Ok(found);
            }
            if !err.is_retryable() || attempt >= self.retry.max_attempts {
                return Err(err);
            }
            tokio::time::sleep(self.retry.delay(attempt)).await;
            attempt += 1;
        }
    }

    // ---------- customers ----------

    /// Creates a customer with `fail_existing: "0"`: Razorpay returns the existing customer
    /// with the same email and contact instead of failing. Retried after an unknown outcome
    /// only when email or contact is given (the retry then finds the first one).
    pub async fn create_customer(
        &self,
        request: &CustomerRequest,
    ) -> Result<Customer, RazorpayError> {
        let mut request = request.clone();
        request.fail_existing = "0".to_owned();
        let matchable = request.email.is_some() || request.contact.is_some();
        self.retry
            .run(
                |_| self.call(Method::POST, "/v1/customers", &[], Some(&request)),
                |e: &RazorpayError| e.is_throttled() || (matchable && e.is_retryable()),
            )
            .await
    }

    /// One harmless authenticated call (lists at most one customer): `Ok` when Razorpay
    /// accepts the key pair.
    pub async fn check_credentials(&self) -> Result<(), RazorpayError> {
        let _: Collection<Customer> = self.read("/v1/customers", &[("count", "1")]).await?;
        Ok(())
    }

    pub async fn get_customer(&self, id: &str) -> Result<Customer, RazorpayError> {
        self.read(&format!("/v1/customers/{}", segment(id)), &[])
            .await
    }

    // ---------- payment links ----------

    /// Creates a payment link; after an unknown outcome, finds it by `reference_id` before
    /// creating again.
    pub async fn create_payment_link(
        &self,
        request: &PaymentLinkRequest,
    ) -> Result<PaymentLink, RazorpayError> {
        self.create_recoverable(
            || self.call(Method::POST, "/v1/payment_links", &[], Some(request)),
            || async {
                let found = self
                    .find_payment_links_by_reference(&request.reference_id)
                    .await?;
                Ok(found.into_iter().next())
            },
        )
        .await
    }

    pub async fn get_payment_link(&self, id: &str) -> Result<PaymentLink, RazorpayError> {
        self.read(&format!("/v1/payment_links/{}", segment(id)), &[])
            .await
    }

    pub async fn find_payment_links_by_reference(
        &self,
        reference_id: &str,
    ) -> Result<Vec<PaymentLink>, RazorpayError> {
        let list: PaymentLinkList = self
            .read("/v1/payment_links", &[("reference_id", reference_id)])
            .await?;
        Ok(list.payment_links)
    }

    pub async fn cancel_payment_link(&self, id: &str) -> Result<PaymentLink, RazorpayError> {
        self.write(
            &format!("/v1/payment_links/{}/cancel", segment(id)),
            None::<&()>,
        )
        .await
    }

    // ---------- invoices ----------

    /// Creates an invoice; after an unknown outcome, finds it by `receipt` before creating
    /// again.
    pub async fn create_invoice(&self, request: &InvoiceRequest) -> Result<Invoice, RazorpayError> {
        self.create_recoverable(
            || self.call(Method::POST, "/v1/invoices", &[], Some(request)),
            || async {
                let found = self.find_invoices_by_receipt(&request.receipt).await?;
                Ok(found.into_iter().next())
            },
        )
        .await
    }

    pub async fn get_invoice(&self, id: &str) -> Result<Invoice, RazorpayError> {
        self.read(&format!("/v1/invoices/{}", segment(id)), &[])
            .await
    }

    pub async fn find_invoices_by_receipt(
        &self,
        receipt: &str,
    ) -> Result<Vec<Invoice>, RazorpayError> {
        let list: Collection<Invoice> = self.read("/v1/invoices", &[("receipt", receipt)]).await?;
        Ok(list.items)
    }

    pub async fn cancel_invoice(&self, id: &str) -> Result<Invoice, RazorpayError> {
        self.write(&format!("/v1/invoices/{}/cancel", segment(id)), None::<&()>)
            .await
    }

    /// Issues a draft invoice (payable, and sent if it says so); after an unknown outcome, or
    /// a refusal of a retry, reads it: no longer a draft means the first call issued it.
    pub async fn issue_invoice(&self, id: &str) -> Result<Invoice, RazorpayError> {
        let path = format!("/v1/invoices/{}/issue", segment(id));
        self.create_recoverable(
            || self.call(Method::POST, &path, &[], None::<&()>),
            || async {
                let invoice = self.get_invoice(id).await?;
                Ok((invoice.status != InvoiceStatus::Draft).then_some(invoice))
            },
        )
        .await
    }

    // ---------- payments ----------

    pub async fn get_payment(&self, id: &str) -> Result<Payment, RazorpayError> {
        self.read(&format!("/v1/payments/{}", segment(id)), &[])
            .await
    }

    /// One page of the payments created in `[from, to)` (epoch seconds), newest first.
    pub async fn list_payments(&self, page: &PaymentsPage) -> Result<Vec<Payment>, RazorpayError> {
        self.read_page("/v1/payments", page).await
    }

    /// One page of a collection created in `[from, to)`, newest first.
    async fn read_page<T: DeserializeOwned>(
        &self,
        path: &str,
        page: &PaymentsPage,
    ) -> Result<Vec<T>, RazorpayError> {
        let (from, to) = (page.from.to_string(), page.to.to_string());
        let (count, skip) = (page.count.to_string(), page.skip.to_string());
        let query = [
            ("from", from.as_str()),
            ("to", to.as_str()),
            ("count", count.as_str()),
            ("skip", skip.as_str()),
        ];
        let list: Collection<T> = self.read(path, &query).await?;
        Ok(list.items)
    }

    /// A page of the account's invoices, newest first (`count` at most 100, after `skip`).
    pub async fn list_invoices(
        &self,
        count: u32,
        skip: u32,
    ) -> Result<Vec<Invoice>, RazorpayError> {
        let (count, skip) = (count.to_string(), skip.to_string());
        let query = [
            ("type", "invoice"),
            ("count", count.as_str()),
            ("skip", skip.as_str()),
        ];
        let list: Collection<Invoice> = self.read("/v1/invoices", &query).await?;
        Ok(list.items)
    }

    // ---------- refunds ----------

    /// Refunds a payment under `X-Refund-Idempotency: {idempotency_key}`: Razorpay answers a
    /// retry with the same body with the refund the first call made (and 409 while that call
    /// is still in flight), so every unknown outcome, and a 409, is asked again.
    pub async fn create_refund(
        &self,
        payment_id: &str,
        idempotency_key: &str,
        request: &RefundRequest,
    ) -> Result<Refund, RazorpayError> {
        let path = format!("/v1/payments/{}/refund", segment(payment_id));
        let headers = [("X-Refund-Idempotency", idempotency_key)];
        self.retry
            .run(
                |_| self.call_with(Method::POST, &path, &[], &headers, Some(request)),
                |e: &RazorpayError| {
                    e.is_retryable() || matches!(e, RazorpayError::Api { status: 409, .. })
                },
            )
            .await
    }

    /// The refunds of one payment.
    pub async fn list_payment_refunds(
        &self,
        payment_id: &str,
    ) -> Result<Vec<Refund>, RazorpayError> {
        let path = format!("/v1/payments/{}/refunds", segment(payment_id));
        let list: Collection<Refund> = self.read(&path, &[("count", "100")]).await?;
        Ok(list.items)
    }

    /// One page of the account's refunds created in `[from, to)`, newest first.
    pub async fn list_refunds(&self, page: &PaymentsPage) -> Result<Vec<Refund>, RazorpayError> {
        self.read_page("/v1/refunds", page).await
    }

    /// One page of the account's disputes created in `[from, to)`, newest first.
    pub async fn list_disputes(&self, page: &PaymentsPage) -> Result<Vec<Dispute>, RazorpayError> {
        self.read_page("/v1/disputes", page).await
    }

    /// The account's payment links (`GET /v1/payment_links`: no paging is documented).
    pub async fn list_payment_links(&self) -> Result<Vec<PaymentLink>, RazorpayError> {
        let list: PaymentLinkList = self.read("/v1/payment_links", &[]).await?;
        Ok(list.payment_links)
    }
}

/// A page of `GET /v1/payments`: created in `[from, to)`, at most `count` (Razorpay: 100),
/// after `skip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaymentsPage {
    pub from: u64,
    pub to: u64,
    pub count: u32,
    pub skip: u32,
}

impl crate::ports::RazorpayApi for RazorpayClient {
    fn create_customer<'a>(
        &'a self,
        request: &'a CustomerRequest,
    ) -> PortFuture<'a, Result<Customer, RazorpayError>> {
        Box::pin(RazorpayClient::create_customer(self, request))
    }

    fn create_payment_link<'a>(
        &'a self,
        request: &'a PaymentLinkRequest,
    ) -> PortFuture<'a, Result<PaymentLink, RazorpayError>> {
        Box::pin(RazorpayClient::create_payment_link(self, request))
    }

    fn find_payment_links_by_reference<'a>(
        &'a self,
        reference_id: &'a str,
    ) -> PortFuture<'a, Result<Vec<PaymentLink>, RazorpayError>> {
        Box::pin(RazorpayClient::find_payment_links_by_reference(
            self,
            reference_id,
        ))
    }

    fn get_payment_link<'a>(
        &'a self,
        id: &'a str,
    ) -> PortFuture<'a, Result<PaymentLink, RazorpayError>> {
        Box::pin(RazorpayClient::get_payment_link(self, id))
    }

    fn cancel_payment_link<'a>(
        &'a self,
        id: &'a str,
    ) -> PortFuture<'a, Result<PaymentLink, RazorpayError>> {
        Box::pin(RazorpayClient::cancel_payment_link(self, id))
    }

    fn create_invoice<'a>(
        &'a self,
        request: &'a InvoiceRequest,
    ) -> PortFuture<'a, Result<Invoice, RazorpayError>> {
        Box::pin(RazorpayClient::create_invoice(self, request))
    }

    fn get_invoice<'a>(&'a self, id: &'a str) -> PortFuture<'a, Result<Invoice, RazorpayError>> {
        Box::pin(RazorpayClient::get_invoice(self, id))
    }

    fn find_invoices_by_receipt<'a>(
        &'a self,
        receipt: &'a str,
    ) -> PortFuture<'a, Result<Vec<Invoice>, RazorpayError>> {
        Box::pin(RazorpayClient::find_invoices_by_receipt(self, receipt))
    }

    fn cancel_invoice<'a>(&'a self, id: &'a str) -> PortFuture<'a, Result<Invoice, RazorpayError>> {
        Box::pin(RazorpayClient::cancel_invoice(self, id))
    }

    fn issue_invoice<'a>(&'a self, id: &'a str) -> PortFuture<'a, Result<Invoice, RazorpayError>> {
        Box::pin(RazorpayClient::issue_invoice(self, id))
    }

    fn get_payment<'a>(&'a self, id: &'a str) -> PortFuture<'a, Result<Payment, RazorpayError>> {
        Box::pin(RazorpayClient::get_payment(self, id))
    }

    fn list_payments<'a>(
        &'a self,
        page: &'a PaymentsPage,
    ) -> PortFuture<'a, Result<Vec<Payment>, RazorpayError>> {
        Box::pin(RazorpayClient::list_payments(self, page))
    }

    fn list_payment_links(&self) -> PortFuture<'_, Result<Vec<PaymentLink>, RazorpayError>> {
        Box::pin(RazorpayClient::list_payment_links(self))
    }

    fn create_refund<'a>(
        &'a self,
        payment_id: &'a str,
        idempotency_key: &'a str,
        request: &'a RefundRequest,
    ) -> PortFuture<'a, Result<Refund, RazorpayError>> {
        Box::pin(RazorpayClient::create_refund(
            self,
            payment_id,
            idempotency_key,
            request,
        ))
    }

    fn list_payment_refunds<'a>(
        &'a self,
        payment_id: &'a str,
    ) -> PortFuture<'a, Result<Vec<Refund>, RazorpayError>> {
        Box::pin(RazorpayClient::list_payment_refunds(self, payment_id))
    }

    fn list_refunds<'a>(
        &'a self,
        page: &'a PaymentsPage,
    ) -> PortFuture<'a, Result<Vec<Refund>, RazorpayError>> {
        Box::pin(RazorpayClient::list_refunds(self, page))
    }

    fn list_disputes<'a>(
        &'a self,
        page: &'a PaymentsPage,
    ) -> PortFuture<'a, Result<Vec<Dispute>, RazorpayError>> {
        Box::pin(RazorpayClient::list_disputes(self, page))
    }

    fn list_invoices(
        &self,
        count: u32,
        skip: u32,
    ) -> PortFuture<'_, Result<Vec<Invoice>, RazorpayError>> {
        Box::pin(RazorpayClient::list_invoices(self, count, skip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_of_errors() {
        let api = |status| RazorpayError::Api {
            status,
            code: None,
            description: String::new(),
            field: None,
            reason: None,
        };
        assert!(api(429).is_retryable() && api(429).is_throttled());
        assert!(api(500).is_retryable() && !api(500).is_client_error());
        assert!(api(503).is_retryable());
        assert!(!api(400).is_retryable() && api(400).is_client_error());
        assert!(!api(401).is_retryable());
        assert!(RazorpayError::Timeout.is_retryable());
        assert!(
            RazorpayError::Decode("x".into()).is_retryable(),
            "an unknown outcome"
        );
    }

    #[test]
    fn the_key_secret_never_shows_in_debug() {
        let config = RazorpayConfig::new(
            "http://127.0.0.1:1",
            "rzp_test_1",
            Secret::new("very-secret".to_owned()),
        );
        let client = RazorpayClient::new(config.clone()).unwrap();
        let shown = format!("{config:?} {client:?}");
        assert!(shown.contains("rzp_test_1"));
        assert!(!shown.contains("very-secret"), "{shown}");
    }
}
