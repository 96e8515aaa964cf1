//! Which of our payments a Razorpay payment or link belongs to (`docs/architecture.md` §3.2,
//! "correlation"): by fact, never by note alone.
//!
//! Notes can be written by whoever makes a payment on the account (Checkout notes come from the
//! payer's browser), so a note only *proposes* one of our payments. It counts when Razorpay's
//! own facts agree:
//! - a link event names its link: it must be the very link our payment made;
//! - a payment names its order: it must be our link's order, known from a confirmed link event
//!   or asked of Razorpay (`GET /v1/payment_links/{id}`) when not known yet, then remembered
//!   (`ORDER#`), so each link is asked at most once;
//! - a payment on a Razorpay invoice names the invoice: it must be mapped to one of our syncs
//!   (an unmapped invoice whose notes name this tenant is retried: its mapping is on its way).
//!
//! Whatever names another tenant or environment, or a payment flexrzp never made (another
//! integration on the same account), is not ours: acknowledged and left alone, never parked.

use crate::adapters::aws::Adapters;
use crate::adapters::aws::records::{self, PaymentRef};
use crate::adapters::razorpay::events::EventLink;
use crate::adapters::razorpay::wire::{Notes, Payment as EventPayment};
use crate::domain::error::Failure;
use crate::domain::keys::{Key, TenantScope};
use crate::domain::payment::{Payment, PaymentMethod};
use crate::services::connection;

/// Whose a Razorpay payment or link is.
#[derive(Debug)]
pub(crate) enum Found {
    /// One of our payments, confirmed by Razorpay's facts.
    Ours(Key, Box<Payment>),
    /// Not flexrzp's (why, for the log).
    NotOurs(String),
}

/// The link payment a Razorpay payment belongs to: the payment mapped to its order, or the one
/// its notes (or its link event) propose, once the order is confirmed to be that link's.
pub(crate) async fn link_payment(
    adapters: &Adapters,
    scope: &TenantScope,
    razorpay: &EventPayment,
    link: Option<&EventLink>,
) -> Result<Found, Failure> {
    let order_id = razorpay.order_id.as_deref();
    if let Some(order_id) = order_id
        && let Some(found) = mapped_order(adapters, scope, order_id).await?
    {
        return Ok(found);
    }
    let proposed = match link {
        Some(link) => linked_payment(adapters, scope, link).await?,
        None => proposed(adapters, scope, &razorpay.notes, None).await?,
    };
    let Found::Ours(key, payment) = proposed else {
        return Ok(proposed);
    };
    let Some(order_id) = order_id else {
        return Ok(not_ours(format!(
            "Razorpay payment {} names no order",
            razorpay.id
        )));
    };
    let link_order = link_order(adapters, scope, &payment, link).await?;
    if link_order.as_deref() != Some(order_id) {
        return Ok(not_ours(format!(
            "Razorpay payment {} is on order {order_id}, not on the order of payment {}'s link",
            razorpay.id, payment.id
        )));
    }
    // A link event's order was mapped by `linked_payment` already.
    if link.is_none() {
        map_order(adapters, scope, order_id, &payment.id).await;
    }
    Ok(Found::Ours(key, payment))
}

/// The payment a link event is about: the one its notes or `reference_id` propose, if that
/// payment's link is this very link. Its order, when the event carries one, is remembered.
pub(crate) async fn linked_payment(
    adapters: &Adapters,
    scope: &TenantScope,
    link: &EventLink,
) -> Result<Found, Failure> {
    let proposed = proposed(adapters, scope, &link.notes, link.reference_id.as_deref()).await?;
    let Found::Ours(_, payment) = &proposed else {
        return Ok(proposed);
    };
    match payment.gateway_tracking_id.as_deref() {
        Some(ours) if ours == link.id => {
            if let Some(order_id) = &link.order_id {
                map_order(adapters, scope, order_id, &payment.id).await;
            }
            Ok(proposed)
        }
        // The link was made but its id is not written on the payment yet (the creating request
        // is still running, or died and will be taken over): worth retrying.
        None if payment.method == PaymentMethod::PaymentLink => Err(Failure::Retryable(format!(
            "payment {} has no link recorded yet; {} may be it",
            payment.id, link.id
        ))),
        _ => Ok(not_ours(format!(
            "link {} is not the link of payment {}",
            link.id, payment.id
        ))),
    }
}

/// The order of our payment's link: from the event's own link once confirmed, else asked of
/// Razorpay. `None`: the link has no order yet (nobody tried to pay it).
async fn link_order(
    adapters: &Adapters,
    scope: &TenantScope,
    payment: &Payment,
    link: Option<&EventLink>,
) -> Result<Option<String>, Failure> {
    if let Some(link) = link {
        // `linked_payment` confirmed this link is the payment's.
        return Ok(link.order_id.clone());
    }
    if payment.method != PaymentMethod::PaymentLink {
        return Ok(None);
    }
    let Some(link_id) = payment.gateway_tracking_id.as_deref() else {
        return Err(Failure::Retryable(format!(
            "payment {} has no link recorded yet",
            payment.id
        )));
    };
    let clients = connection::job_clients(adapters, scope).await?;
    let fetched = clients
        .razorpay
        .get_payment_link(link_id)
        .await
        .map_err(|e| Failure::classed(&e))?;
    Ok(fetched.order_id)
}

/// The payment an order was mapped to (only ever from confirmed facts).
async fn mapped_order(
    adapters: &Adapters,
    scope: &TenantScope,
    order_id: &str,
) -> Result<Option<Found>, Failure> {
    let table = adapters.store.as_ref();
    let Some(mapped) = records::read::<PaymentRef>(table, &records::order_key(scope, order_id))
        .await
        .map_err(Failure::retryable)?
    else {
        return Ok(None);
    };
    let key = records::payment_key(scope, &mapped.payment_id);
    let payment = records::read::<Payment>(table, &key)
        .await
        .map_err(Failure::retryable)?
        .ok_or_else(|| Failure::Permanent(format!("no payment {}", mapped.payment_id)))?;
    Ok(Some(Found::Ours(key, Box::new(payment))))
}

/// Remembers which payment a link's order belongs to (best effort: without it the link is
/// asked again next time).
async fn map_order(adapters: &Adapters, scope: &TenantScope, order_id: &str, payment_id: &str) {
    let mapping = PaymentRef {
        payment_id: payment_id.to_owned(),
    };
    let key = records::order_key(scope, order_id);
    if let Err(e) = records::create_once(adapters.store.as_ref(), &key, &mapping).await {
        tracing::warn!(error = %e, order_id, "could not map the link's order");
    }
}

/// The payment that notes (or a link's `reference_id`) propose, in `scope`. Anything that
/// names another tenant or environment, nothing, or a payment we do not have, is not ours.
async fn proposed(
    adapters: &Adapters,
    scope: &TenantScope,
    notes: &Notes,
    reference_id: Option<&str>,
) -> Result<Found, Failure> {
    if let Some(other) = other_scope(scope, notes) {
        return Ok(not_ours(other));
    }
    let Some(payment_id) = notes.get("flexprice_payment_id").or(reference_id) else {
        return Ok(not_ours("nothing names a payment of ours".to_owned()));
    };
    let key = records::payment_key(scope, payment_id);
    let payment = records::read::<Payment>(adapters.store.as_ref(), &key)
        .await
        .map_err(Failure::retryable)?;
    Ok(match payment {
        Some(payment) => Found::Ours(key, Box::new(payment)),
        None => not_ours(format!("no payment {payment_id} in this scope")),
    })
}

/// Why notes are about another tenant or environment, if they are.
pub(crate) fn other_scope(scope: &TenantScope, notes: &Notes) -> Option<String> {
    let tenant = notes.get("tenant_id");
    let environment = notes.get("environment_id");
    let other = tenant.is_some_and(|t| t != scope.tenant_id())
        || environment.is_some_and(|e| e != scope.environment_id());
    other.then(|| {
        format!(
            "named for tenant {} / environment {}",
            tenant.unwrap_or("-"),
            environment.unwrap_or("-")
        )
    })
}

/// Notes that say they are ours: this tenant and environment, and a Flexprice invoice.
pub(crate) fn names_this_scope(scope: &TenantScope, notes: &Notes) -> bool {
    notes.get("tenant_id") == Some(scope.tenant_id())
        && notes.get("environment_id") == Some(scope.environment_id())
        && notes.get("flexprice_invoice_id").is_some()
}

fn not_ours(why: String) -> Found {
    Found::NotOurs(why)
}
