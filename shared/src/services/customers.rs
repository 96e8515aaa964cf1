//! Customer sync (`docs/architecture.md` §3.5): one-way, on demand, never duplicated.
//!
//! The mapping in the table is asked first. Otherwise the Flexprice customer is fetched and the
//! Razorpay customer created with `fail_existing: "0"`, which makes Razorpay return the
//! existing customer with the same email and contact (email-based matching). The
//! mapping is stored in both directions with one conditional transaction: of concurrent first
//! syncs one wins, and the others adopt the winner's mapping.

use thiserror::Error;

use crate::adapters::aws::records::{self, CustomerMapping, Made, RazorpayCustomerMapping, Record};
use crate::adapters::aws::store::{CancelReason, StoreError, Write};
use std::collections::BTreeMap;

use crate::adapters::flexprice::FlexpriceError;
use crate::adapters::flexprice::wire::Customer as FlexpriceCustomer;
use crate::adapters::razorpay::RazorpayError;
use crate::adapters::razorpay::wire::{Customer, CustomerRequest, Notes};
use crate::domain::customer::for_razorpay;
use crate::domain::error::{Classify, ErrorClass, Refusal};
use crate::domain::keys::{Key, TenantScope};
use crate::ports::{FlexpriceApi, RazorpayApi, Table};

/// The Flexprice customer metadata key that names its Razorpay customer.
const RAZORPAY_CUSTOMER_ID: &str = "razorpay_customer_id";

#[derive(Debug, Error)]
pub enum CustomerSyncError {
    #[error(
        "Flexprice customer {id} has neither an email nor a contact, which Razorpay needs to match customers"
    )]
    NoContact { id: String },
    #[error("Flexprice customer {id} was not found")]
    NotFound { id: String },
    /// Razorpay refused the customer's fields even after they were made to fit its rules.
    #[error("Razorpay refused Flexprice customer {id}'s {field}: {reason}")]
    Refused {
        id: String,
        field: String,
        reason: String,
    },
    #[error(transparent)]
    Flexprice(#[from] FlexpriceError),
    #[error(transparent)]
    Razorpay(#[from] RazorpayError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Classify for CustomerSyncError {
    fn class(&self) -> ErrorClass {
        match self {
            CustomerSyncError::NoContact { .. }
            | CustomerSyncError::NotFound { .. }
            | CustomerSyncError::Refused { .. } => ErrorClass::Permanent,
            CustomerSyncError::Flexprice(e) => e.class(),
            CustomerSyncError::Razorpay(e) => e.class(),
            CustomerSyncError::Store(e) => e.class(),
        }
    }
}

impl CustomerSyncError {
    /// The request's refusal for this error: the customer cannot be synced, or a dependency
    /// may recover, or refused.
    pub fn to_refusal(&self) -> Refusal {
        match self {
            CustomerSyncError::NoContact { .. } | CustomerSyncError::NotFound { .. } => {
                Refusal::unprocessable("customer", "razorpay_customer", self.to_string())
            }
            CustomerSyncError::Refused { field, .. } => Refusal::unprocessable(
                &format!("customer.{field}"),
                "razorpay_customer",
                self.to_string(),
            ),
            e if e.is_retryable() => Refusal::Unavailable(
                "A payment service is unavailable; retry the request.".to_owned(),
            ),
            _ => Refusal::Upstream(
                "A payment service refused the customer; see the logs.".to_owned(),
            ),
        }
    }
}

/// How the customer was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Synced {
    /// The mapping was already there.
    Mapped(String),
    /// Created (or matched) in Razorpay and mapped now.
    Created(String),
    /// Another sync mapped it first; its mapping was adopted.
    Adopted(String),
}

impl Synced {
    pub fn razorpay_id(&self) -> &str {
        match self {
            Synced::Mapped(id) | Synced::Created(id) | Synced::Adopted(id) => id,
        }
    }
}

/// The Razorpay side of a customer sync: the account (the connection's key id, which names the
/// account and its mode) and its API.
pub struct RazorpayAccount<'a> {
    pub key_id: &'a str,
    pub api: &'a dyn RazorpayApi,
}

/// The Razorpay customer of a Flexprice customer in this Razorpay account, syncing it if
/// needed.
pub async fn ensure(
    store: &dyn Table,
    razorpay: RazorpayAccount<'_>,
    flexprice: &dyn FlexpriceApi,
    scope: &TenantScope,
    flexprice_customer_id: &str,
) -> Result<Synced, CustomerSyncError> {
    let forward = records::customer_key(scope, razorpay.key_id, flexprice_customer_id);
    if let Some(id) = mapped(store, &forward).await? {
        return Ok(Synced::Mapped(id));
    }
    let customer = read_customer(flexprice, flexprice_customer_id).await?;
    let created = create_in_razorpay(razorpay.api, scope, &customer).await?;
    let synced = store_mapping(store, scope, &forward, flexprice_customer_id, created.id).await?;
    link_in_flexprice(flexprice, &customer, synced.razorpay_id()).await;
    Ok(synced)
}

/// The Flexprice customer, or [`CustomerSyncError::NotFound`].
async fn read_customer(
    flexprice: &dyn FlexpriceApi,
    id: &str,
) -> Result<FlexpriceCustomer, CustomerSyncError> {
    match flexprice.get_customer(id).await {
        Ok(customer) => Ok(customer),
        Err(FlexpriceError::Api { status: 404, .. }) => {
            Err(CustomerSyncError::NotFound { id: id.to_owned() })
        }
        Err(e) => Err(e.into()),
    }
}

/// Writes the Razorpay customer id into the Flexprice customer's metadata
/// (`razorpay_customer_id`, as Flexprice's own integration does), merged with what is there.
/// Best effort: the mapping in the table is what flexrzp reads; a failure is logged.
async fn link_in_flexprice(
    flexprice: &dyn FlexpriceApi,
    customer: &FlexpriceCustomer,
    razorpay_id: &str,
) {
    if customer
        .metadata
        .get(RAZORPAY_CUSTOMER_ID)
        .map(String::as_str)
        == Some(razorpay_id)
    {
        return;
    }
    let keys = BTreeMap::from([(RAZORPAY_CUSTOMER_ID.to_owned(), razorpay_id.to_owned())]);
    if let Err(e) = flexprice.merge_customer_metadata(customer, &keys).await {
        tracing::warn!(error = %e, customer = %customer.id, "could not write the Razorpay customer id into the Flexprice customer");
    }
}

/// The Razorpay customer a mapping item names, if it exists.
async fn mapped(store: &dyn Table, forward: &Key) -> Result<Option<String>, StoreError> {
    Ok(records::read::<CustomerMapping>(store, forward)
        .await?
        .map(|m| m.razorpay_customer_id))
}

/// The Flexprice customer, created in Razorpay (`fail_existing: "0"`: Razorpay answers the
/// customer it has with the same email and contact, if any). One of email and contact is needed.
async fn create_in_razorpay(
    razorpay: &dyn RazorpayApi,
    scope: &TenantScope,
    customer: &FlexpriceCustomer,
) -> Result<Customer, CustomerSyncError> {
    let flexprice_customer_id = customer.id.as_str();
    let fields = for_razorpay(
        flexprice_customer_id,
        customer.name.as_deref(),
        customer.email.as_deref(),
        customer.contact.as_deref(),
    );
    if !fields.changes.is_empty() {
        tracing::info!(customer = flexprice_customer_id, changes = ?fields.changes, "customer fields made to fit Razorpay's rules");
    }
    if fields.email.is_none() && fields.contact.is_none() {
        return Err(CustomerSyncError::NoContact {
            id: flexprice_customer_id.to_owned(),
        });
    }
    let request = CustomerRequest {
        name: fields.name,
        email: fields.email,
        contact: fields.contact,
        notes: Notes::from([
            ("flexprice_customer_id", flexprice_customer_id),
            ("tenant_id", scope.tenant_id()),
            ("environment_id", scope.environment_id()),
        ]),
        ..CustomerRequest::default()
    };
    razorpay
        .create_customer(&request)
        .await
        .map_err(|e| refused(flexprice_customer_id, e))
}

/// A refusal of the customer's fields, named (and logged); other failures as they are.
fn refused(flexprice_customer_id: &str, error: RazorpayError) -> CustomerSyncError {
    match error {
        RazorpayError::Api {
            status: 400,
            field: Some(field),
            description,
            ..
        } => {
            tracing::warn!(customer = flexprice_customer_id, %field, reason = %description, "Razorpay refused the customer");
            CustomerSyncError::Refused {
                id: flexprice_customer_id.to_owned(),
                field,
                reason: description,
            }
        }
        other => other.into(),
    }
}

/// The mapping both ways, in one conditional transaction: of concurrent first syncs one wins
/// and the others adopt its mapping.
async fn store_mapping(
    store: &dyn Table,
    scope: &TenantScope,
    forward: &Key,
    flexprice_customer_id: &str,
    razorpay_id: String,
) -> Result<Synced, CustomerSyncError> {
    let mapping = CustomerMapping {
        razorpay_customer_id: razorpay_id.clone(),
    };
    let backward = RazorpayCustomerMapping {
        flexprice_customer_id: flexprice_customer_id.to_owned(),
    };
    let result = store
        .transact(vec![
            Write::Create {
                key: forward.clone(),
                attrs: mapping.to_item(),
            },
            Write::Create {
                key: records::razorpay_customer_key(scope, &razorpay_id),
                attrs: backward.to_item(),
            },
        ])
        .await;
    let reasons = match result {
        Ok(()) => return Ok(Synced::Created(razorpay_id)),
        Err(StoreError::TransactionCancelled { reasons }) => reasons,
        Err(e) => return Err(e.into()),
    };
    if matches!(reasons.first(), Some(CancelReason::ConditionFailed { .. })) {
        // Another sync won: adopt its mapping.
        let winner = mapped(store, forward).await?;
        return Ok(Synced::Adopted(winner.unwrap_or(razorpay_id)));
    }
    // Only the backward item exists: another Flexprice customer with the same email and
    // contact maps to this Razorpay customer already. Map this one forward alone.
    tracing::warn!(razorpay_customer = %razorpay_id, "two Flexprice customers share one Razorpay customer (same email and contact)");
    match records::create_or_read(store, forward, &mapping).await? {
        Made::New(_) => Ok(Synced::Created(razorpay_id)),
        Made::Existing(winner) => Ok(Synced::Adopted(winner.razorpay_customer_id)),
    }
}
