//! The Flexprice REST client (`x-api-key`): invoices, customers, recording payments, and
//! merging keys into invoice metadata.
//!
//! Every call here is safe to retry: reads, the metadata write (it writes the same merged map
//! again), recording a payment (Flexprice dedupes on the caller's `idempotency_key`, answering
//! the row it has, processed or not) and processing one (refused once processed).

pub mod wire;

use std::collections::BTreeMap;

use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

use crate::adapters::http::{RetryPolicy, Timeouts, segment};
use crate::domain::error::{Classify, ErrorClass};
use crate::domain::secret::Secret;
use crate::ports::PortFuture;
use wire::{
    CreditNote, Customer, ErrorBody, Invoice, Payment, RecordPaymentRequest, UpdateInvoiceRequest,
    UpdatePaymentRequest,
};

/// Flexprice Cloud's API.
pub const DEFAULT_BASE_URL: &str = "https://api.cloud.flexprice.io";

#[derive(Debug, Error)]
pub enum FlexpriceError {
    #[error("Flexprice answered {status}: {message}")]
    Api {
        status: u16,
        code: Option<String>,
        message: String,
    },
    #[error("Flexprice did not answer in time")]
    Timeout,
    #[error("could not reach Flexprice: {0}")]
    Transport(String),
    #[error("Flexprice's answer could not be read: {0}")]
    Decode(String),
    #[error("the Flexprice client could not be set up: {0}")]
    Setup(String),
}

impl Classify for FlexpriceError {
    fn class(&self) -> ErrorClass {
        match self {
            FlexpriceError::Api { status, .. } if *status == 429 || *status >= 500 => {
                ErrorClass::Retryable
            }
            // A 2xx whose body cannot be read: an unknown outcome, like a timeout (every call of
            // this client is safe to repeat).
            FlexpriceError::Timeout | FlexpriceError::Transport(_) | FlexpriceError::Decode(_) => {
                ErrorClass::Retryable
            }
            _ => ErrorClass::Permanent,
        }
    }
}

impl FlexpriceError {
    /// 409: another request holds the same idempotency key (or the object changed meanwhile).
    pub fn is_conflict(&self) -> bool {
        matches!(self, FlexpriceError::Api { status: 409, .. })
    }

    /// 404: no such object.
    pub fn is_not_found(&self) -> bool {
        matches!(self, FlexpriceError::Api { status: 404, .. })
    }
}

/// Where and as whom to call Flexprice.
#[derive(Debug, Clone)]
pub struct FlexpriceConfig {
    pub base_url: String,
    pub api_key: Secret<String>,
    pub timeouts: Timeouts,
    pub retry: RetryPolicy,
}

impl FlexpriceConfig {
    pub fn new(base_url: impl Into<String>, api_key: Secret<String>) -> FlexpriceConfig {
        FlexpriceConfig {
            base_url: base_url.into(),
            api_key,
            timeouts: Timeouts::default(),
            retry: RetryPolicy::default(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct FlexpriceClient {
    http: reqwest::Client,
    base_url: String,
    api_key: Secret<String>,
    retry: RetryPolicy,
}

impl FlexpriceClient {
    pub fn new(config: FlexpriceConfig) -> Result<FlexpriceClient, FlexpriceError> {
        let http = crate::adapters::http::client(config.timeouts)
            .map_err(|e| FlexpriceError::Setup(e.to_string()))?;
        Ok(FlexpriceClient {
            http,
            base_url: config.base_url.trim_end_matches('/').to_owned(),
            api_key: config.api_key,
            retry: config.retry,
        })
    }

    async fn call_once<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + Sync)>,
    ) -> Result<T, FlexpriceError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base_url))
            .header("x-api-key", self.api_key.expose());
        if let Some(body) = body {
            request = request.json(body);
        }
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                FlexpriceError::Timeout
            } else {
                FlexpriceError::Transport(e.without_url().to_string())
            }
        };
        let response = crate::adapters::http::counted("flexprice", request)
            .await
            .map_err(transport)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport)?;
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| FlexpriceError::Decode(e.to_string()));
        }
        let detail = ErrorBody::parse(&bytes).unwrap_or_default();
        Err(FlexpriceError::Api {
            status: status.as_u16(),
            code: detail.code,
            message: detail
                .message
                .unwrap_or_else(|| status.canonical_reason().unwrap_or("no message").to_owned()),
        })
    }

    /// Any call, retried on retryable errors (every call of this client is safe to repeat).
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + Sync)>,
    ) -> Result<T, FlexpriceError> {
        self.retry
            .run(
                |_| self.call_once(method.clone(), path, body),
                FlexpriceError::is_retryable,
            )
            .await
    }

    /// The invoice with its line items.
    pub async fn get_invoice(&self, id: &str) -> Result<Invoice, FlexpriceError> {
        self.call(
            Method::GET,
            &format!("/v1/invoices/{}", segment(id)),
            None::<&()>,
        )
        .await
    }

    pub async fn get_customer(&self, id: &str) -> Result<Customer, FlexpriceError> {
        self.call(
            Method::GET,
            &format!("/v1/customers/{}", segment(id)),
            None::<&()>,
        )
        .await
    }

    /// Records a payment; the same `idempotency_key` never records twice.
    pub async fn record_payment(
        &self,
        request: &RecordPaymentRequest,
    ) -> Result<Payment, FlexpriceError> {
        self.call(Method::POST, "/v1/payments", Some(request)).await
    }

    /// Processes a payment Flexprice inserted but did not process (an INITIATED row answered
    /// again for its idempotency key); refused for one already processed.
    pub async fn process_payment(&self, id: &str) -> Result<Payment, FlexpriceError> {
        let path = format!("/v1/payments/{}/process", segment(id));
        self.call(Method::POST, &path, None::<&()>).await
    }

    /// A credit note.
    pub async fn get_credit_note(&self, id: &str) -> Result<CreditNote, FlexpriceError> {
        let path = format!("/v1/creditnotes/{}", segment(id));
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// Moves a payment to a refund state (a repeat of the same move is accepted as is).
    pub async fn update_payment(
        &self,
        id: &str,
        request: &UpdatePaymentRequest,
    ) -> Result<Payment, FlexpriceError> {
        let path = format!("/v1/payments/{}", segment(id));
        self.call(Method::PUT, &path, Some(request)).await
    }

    /// Adds `keys` to the metadata of `customer` (as just read), keeping the rest: Flexprice
    /// replaces metadata on update, so the whole map is written back.
    pub async fn merge_customer_metadata(
        &self,
        customer: &Customer,
        keys: &BTreeMap<String, String>,
    ) -> Result<Customer, FlexpriceError> {
        let path = format!("/v1/customers/{}", segment(&customer.id));
        self.put_merged(&path, customer.metadata.clone(), keys)
            .await
    }

    /// Adds `keys` to the invoice's metadata. Flexprice replaces metadata on update, so this
    /// reads it, merges, and writes the whole map back.
    pub async fn merge_invoice_metadata(
        &self,
        id: &str,
        keys: &BTreeMap<String, String>,
    ) -> Result<Invoice, FlexpriceError> {
        let metadata = self.get_invoice(id).await?.metadata;
        self.put_merged(&format!("/v1/invoices/{}", segment(id)), metadata, keys)
            .await
    }

    /// Writes `metadata` with `keys` added back to the object at `path`, whole.
    async fn put_merged<T: DeserializeOwned>(
        &self,
        path: &str,
        mut metadata: BTreeMap<String, String>,
        keys: &BTreeMap<String, String>,
    ) -> Result<T, FlexpriceError> {
        metadata.extend(keys.iter().map(|(k, v)| (k.clone(), v.clone())));
        self.call(Method::PUT, path, Some(&UpdateInvoiceRequest { metadata }))
            .await
    }
}

impl crate::ports::FlexpriceApi for FlexpriceClient {
    fn get_credit_note<'a>(
        &'a self,
        id: &'a str,
    ) -> PortFuture<'a, Result<CreditNote, FlexpriceError>> {
        Box::pin(FlexpriceClient::get_credit_note(self, id))
    }

    fn update_payment<'a>(
        &'a self,
        id: &'a str,
        request: &'a UpdatePaymentRequest,
    ) -> PortFuture<'a, Result<Payment, FlexpriceError>> {
        Box::pin(FlexpriceClient::update_payment(self, id, request))
    }

    fn get_invoice<'a>(&'a self, id: &'a str) -> PortFuture<'a, Result<Invoice, FlexpriceError>> {
        Box::pin(FlexpriceClient::get_invoice(self, id))
    }

    fn get_customer<'a>(&'a self, id: &'a str) -> PortFuture<'a, Result<Customer, FlexpriceError>> {
        Box::pin(FlexpriceClient::get_customer(self, id))
    }

    fn record_payment<'a>(
        &'a self,
        request: &'a RecordPaymentRequest,
    ) -> PortFuture<'a, Result<Payment, FlexpriceError>> {
        Box::pin(FlexpriceClient::record_payment(self, request))
    }

    fn process_payment<'a>(
        &'a self,
        id: &'a str,
    ) -> PortFuture<'a, Result<Payment, FlexpriceError>> {
        Box::pin(FlexpriceClient::process_payment(self, id))
    }

    fn merge_customer_metadata<'a>(
        &'a self,
        customer: &'a Customer,
        keys: &'a BTreeMap<String, String>,
    ) -> PortFuture<'a, Result<Customer, FlexpriceError>> {
        Box::pin(FlexpriceClient::merge_customer_metadata(
            self, customer, keys,
        ))
    }

    fn merge_invoice_metadata<'a>(
        &'a self,
        id: &'a str,
        keys: &'a BTreeMap<String, String>,
    ) -> PortFuture<'a, Result<Invoice, FlexpriceError>> {
        Box::pin(FlexpriceClient::merge_invoice_metadata(self, id, keys))
    }
}
