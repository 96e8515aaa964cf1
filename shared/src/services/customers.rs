//! Customer sync (`docs/architecture.md` §3.4): one-way, on demand, never duplicated.
//!
//! The mapping in the table is asked first. Otherwise the Flexprice customer is fetched and the
//! Razorpay customer created with `fail_existing: "0"`, which makes Razorpay return the
//! existing customer with the same email and contact (email-based matching). The
//! mapping is stored in both directions with one conditional transaction: of concurrent first
//! syncs one wins, and the others adopt the winner's mapping.

use thiserror::Error;

use crate::adapters::aws::store::{CancelReason, Item, ItemExt, StoreError, Write, s};
use crate::adapters::flexprice::{FlexpriceClient, FlexpriceError};
use crate::adapters::razorpay::wire::{CustomerRequest, Notes};
use crate::adapters::razorpay::{RazorpayClient, RazorpayError};
use crate::api::problem::Problem;
use crate::domain::error::{Classify, ErrorClass};
use crate::domain::keys::TenantScope;
use crate::ports::Table;

const FORWARD: &str = "CUSTOMER";
const BACKWARD: &str = "RZP_CUSTOMER";
const RAZORPAY_ID: &str = "razorpay_customer_id";
const FLEXPRICE_ID: &str = "flexprice_customer_id";

#[derive(Debug, Error)]
pub enum CustomerSyncError {
    #[error(
        "Flexprice customer {id} has neither an email nor a contact, which Razorpay needs to match customers"
    )]
    NoContact { id: String },
    #[error("Flexprice customer {id} was not found")]
    NotFound { id: String },
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
            CustomerSyncError::NoContact { .. } | CustomerSyncError::NotFound { .. } => {
                ErrorClass::Permanent
            }
            CustomerSyncError::Flexprice(e) => e.class(),
            CustomerSyncError::Razorpay(e) => e.class(),
            CustomerSyncError::Store(e) => e.class(),
        }
    }
}

impl CustomerSyncError {
    /// The API's answer for this error: 422 naming the customer, or 503 when a dependency
    /// may recover.
    pub fn to_problem(&self) -> Problem {
        match self {
            CustomerSyncError::NoContact { .. } | CustomerSyncError::NotFound { .. } => {
                Problem::invalid_field(422, "customer", "razorpay_customer", self.to_string())
            }
            e if e.is_retryable() => {
                Problem::unavailable("A payment service is unavailable; retry the request.")
            }
            _ => Problem::new(
                502,
                "upstream",
                "Bad gateway",
                "A payment service refused the customer; see the logs.",
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

/// The Razorpay customer of a Flexprice customer, syncing it if needed.
pub async fn ensure(
    store: &dyn Table,
    razorpay: &RazorpayClient,
    flexprice: &FlexpriceClient,
    scope: &TenantScope,
    flexprice_customer_id: &str,
) -> Result<Synced, CustomerSyncError> {
    let forward = scope.key(FORWARD, flexprice_customer_id);
    if let Some(id) = store
        .get(&forward)
        .await?
        .as_ref()
        .and_then(|m| m.str_attr(RAZORPAY_ID))
    {
        return Ok(Synced::Mapped(id.to_owned()));
    }
    let customer = match flexprice.get_customer(flexprice_customer_id).await {
        Ok(customer) => customer,
        Err(FlexpriceError::Api { status: 404, .. }) => {
            return Err(CustomerSyncError::NotFound {
                id: flexprice_customer_id.to_owned(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let email = customer.email.filter(|e| !e.trim().is_empty());
    let contact = customer.contact.filter(|c| !c.trim().is_empty());
    if email.is_none() && contact.is_none() {
        return Err(CustomerSyncError::NoContact {
            id: flexprice_customer_id.to_owned(),
        });
    }
    let created = razorpay
        .create_customer(&CustomerRequest {
            name: customer
                .name
                .unwrap_or_else(|| flexprice_customer_id.to_owned()),
            email,
            contact,
            notes: Notes::from([
                ("flexprice_customer_id", flexprice_customer_id),
                ("tenant_id", scope.tenant_id()),
                ("environment_id", scope.environment_id()),
            ]),
            ..CustomerRequest::default()
        })
        .await?;
    let backward = scope.key(BACKWARD, &created.id);
    let result = store
        .transact(vec![
            Write::Create {
                key: forward.clone(),
                attrs: Item::from([(RAZORPAY_ID.to_owned(), s(&created.id))]),
            },
            Write::Create {
                key: backward,
                attrs: Item::from([(FLEXPRICE_ID.to_owned(), s(flexprice_customer_id))]),
            },
        ])
        .await;
    match result {
        Ok(()) => Ok(Synced::Created(created.id)),
        Err(StoreError::TransactionCancelled { reasons }) => {
            let forward_taken =
                matches!(reasons.first(), Some(CancelReason::ConditionFailed { .. }));
            if forward_taken {
                // Another sync won: adopt its mapping.
                let winner = store.get(&forward).await?;
                let id = winner
                    .as_ref()
                    .and_then(|m| m.str_attr(RAZORPAY_ID))
                    .unwrap_or(&created.id);
                return Ok(Synced::Adopted(id.to_owned()));
            }
            // Only the backward item exists: another Flexprice customer with the same email and
            // contact maps to this Razorpay customer already. Map this one forward alone.
            tracing::warn!(razorpay_customer = %created.id, "two Flexprice customers share one Razorpay customer (same email and contact)");
            match store
                .create(
                    &forward,
                    Item::from([(RAZORPAY_ID.to_owned(), s(&created.id))]),
                )
                .await
            {
                Ok(()) => Ok(Synced::Created(created.id)),
                Err(StoreError::AlreadyExists { existing }) => Ok(Synced::Adopted(
                    existing
                        .as_ref()
                        .and_then(|m| m.str_attr(RAZORPAY_ID))
                        .unwrap_or(&created.id)
                        .to_owned(),
                )),
                Err(e) => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}
