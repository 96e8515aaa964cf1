//! What happens when a customer pays, fails to pay, or a link or invoice runs out: the state
//! changes and the webhook events Razorpay would send, in the order it would send them.

use serde_json::{Value, json};

use super::state::{Account, ApiError, Payment, PaymentLink, new_id, now};

/// One webhook event: its name and what its `payload` contains.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub name: String,
    pub payload: Vec<(&'static str, Value)>,
}

impl Event {
    pub(super) fn new(name: &str, payload: Vec<(&'static str, Value)>) -> Event {
        Event {
            name: name.to_owned(),
            payload,
        }
    }

    /// The envelope Razorpay posts.
    pub fn envelope(&self, account_id: &str) -> Value {
        let contains: Vec<&str> = self.payload.iter().map(|(k, _)| *k).collect();
        let payload: serde_json::Map<String, Value> = self
            .payload
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!({ "entity": v })))
            .collect();
        json!({"entity": "event", "account_id": account_id, "event": self.name,
            "contains": contains, "payload": payload, "created_at": now()})
    }
}

/// The internal order entity embedded in link events: its id has no `order_` prefix.
fn link_order_json(
    order_id: &str,
    amount: u64,
    amount_paid: u64,
    reference_id: &str,
    link_id: &str,
) -> Value {
    json!({"id": order_id.trim_start_matches("order_"), "entity": "order", "amount": amount,
        "amount_paid": amount_paid, "amount_due": amount - amount_paid, "currency": "INR",
        "receipt": reference_id, "product_id": link_id.trim_start_matches("plink_"),
        "product_type": "payment_link_v2", "status": if amount_paid >= amount { "paid" } else { "attempted" },
        "notes": [], "created_at": now()})
}

fn authorized_snapshot(payment: &Payment) -> Value {
    let mut snapshot = payment.json();
    snapshot["status"] = json!("authorized");
    snapshot["captured"] = json!(false);
    snapshot
}

impl Account {
    fn new_payment(
        &mut self,
        amount: u64,
        currency: shared::domain::money::Currency,
        order_id: &str,
        method: &str,
        notes: std::collections::BTreeMap<String, String>,
        description: String,
    ) -> Payment {
        let payment = Payment {
            id: new_id("pay_"),
            amount,
            currency,
            status: "captured".to_owned(),
            order_id: order_id.to_owned(),
            invoice_id: None,
            method: method.to_owned(),
            notes,
            email: Some("customer@example.com".to_owned()),
            contact: Some("+919999999999".to_owned()),
            description,
            error: None,
            amount_refunded: 0,
            created_at: now(),
        };
        self.payments.insert(payment.id.clone(), payment.clone());
        payment
    }

    /// A customer pays a link: `amount` (default: all that remains) is captured.
    pub fn pay_link(
        &mut self,
        id: &str,
        amount: Option<u64>,
        method: &str,
    ) -> Result<Vec<Event>, ApiError> {
        let link = self.link(id)?.clone();
        if link.status != "created" && link.status != "partially_paid" {
            return Err(ApiError::bad_request(
                &format!("Payment Link is {} and cannot be paid", link.status),
                None,
            ));
        }
        let amount = payable_amount(amount, link.amount - link.amount_paid, link.accept_partial)?;
        let order_id = link.order_id.clone().unwrap_or_else(|| new_id("order_"));
        let description = format!("#{}", link.id.trim_start_matches("plink_"));
        let payment = self.new_payment(
            amount,
            link.currency,
            &order_id,
            method,
            link.notes.clone(),
            description,
        );
        let link_mut = self.link_mut(id)?;
        link_mut.order_id = Some(order_id.clone());
        link_mut.payments.push(payment.id.clone());
        paid_with(link_mut, amount);
        let link = link_mut.clone();
        let order = link_order_json(
            &order_id,
            link.amount,
            link.amount_paid,
            &link.reference_id,
            &link.id,
        );
        let link_event = if link.status == "paid" {
            "payment_link.paid"
        } else {
            "payment_link.partially_paid"
        };
        let entities = vec![
            ("payment_link", self.link_json(&link)),
            ("order", order),
            ("payment", payment.json()),
        ];
        Ok(captured_events(&payment, link_event, entities))
    }

    /// A customer opens a link to pay it: Razorpay makes the link's order (once; every
    /// payment on the link is on it). Returns the link.
    pub fn open_link(&mut self, id: &str, order_id: Option<String>) -> Result<Value, ApiError> {
        let link = self.link_mut(id)?;
        if link.order_id.is_none() {
            link.order_id = Some(order_id.unwrap_or_else(|| new_id("order_")));
        }
        let link = link.clone();
        Ok(self.link_json(&link))
    }

    /// A customer's attempt on a link fails; the link stays open.
    pub fn fail_link_payment(&mut self, id: &str, method: &str) -> Result<Vec<Event>, ApiError> {
        let link = self.link(id)?.clone();
        if link.status != "created" && link.status != "partially_paid" {
            return Err(ApiError::bad_request(
                &format!("Payment Link is {}", link.status),
                None,
            ));
        }
        let order_id = link.order_id.clone().unwrap_or_else(|| new_id("order_"));
        let description = format!("#{}", link.id.trim_start_matches("plink_"));
        let mut payment = self.new_payment(
            link.amount - link.amount_paid,
            link.currency,
            &order_id,
            method,
            link.notes.clone(),
            description,
        );
        payment.status = "failed".to_owned();
        payment.error = Some((
            "BAD_REQUEST_ERROR".into(),
            "Payment failed".into(),
            "payment_failed".into(),
        ));
        self.payments.insert(payment.id.clone(), payment.clone());
        let link_mut = self.link_mut(id)?;
        link_mut.order_id = Some(order_id);
        link_mut.payments.push(payment.id.clone());
        Ok(vec![Event::new(
            "payment.failed",
            vec![("payment", payment.json())],
        )])
    }

    /// A payment Razorpay reported failed is captured after all (late authorisation: the bank
    /// confirmed it later). Its link is paid with it when it was still open.
    pub fn capture_late(&mut self, id: &str) -> Result<Vec<Event>, ApiError> {
        let payment = self
            .payments
            .get_mut(id)
            .ok_or_else(|| ApiError::not_found(id))?;
        if payment.status != "failed" {
            return Err(ApiError::bad_request(
                &format!("Payment is {} and cannot be captured late", payment.status),
                None,
            ));
        }
        payment.status = "captured".to_owned();
        payment.error = None;
        let payment = payment.clone();
        let order_id = payment.order_id.clone();
        let mut events = vec![Event::new(
            "payment.captured",
            vec![("payment", payment.json())],
        )];
        if let Some(link) = self
            .links
            .values_mut()
            .find(|l| l.order_id.as_deref() == Some(order_id.as_str()))
            && (link.status == "created" || link.status == "partially_paid")
        {
            paid_with(link, payment.amount);
            let link = link.clone();
            let name = if link.status == "paid" {
                "payment_link.paid"
            } else {
                "payment_link.partially_paid"
            };
            events.push(Event::new(
                name,
                vec![
                    ("payment_link", self.link_json(&link)),
                    ("payment", payment.json()),
                ],
            ));
        }
        Ok(events)
    }

    /// A link passes its `expire_by` unpaid.
    pub fn expire_link(&mut self, id: &str) -> Result<Vec<Event>, ApiError> {
        let link = self.link_mut(id)?;
        if link.status != "created" && link.status != "partially_paid" {
            return Err(ApiError::bad_request(
                &format!("Payment Link is {}", link.status),
                None,
            ));
        }
        link.status = "expired".to_owned();
        link.expired_at = now();
        let link = link.clone();
        Ok(vec![Event::new(
            "payment_link.expired",
            vec![("payment_link", self.link_json(&link))],
        )])
    }

    /// The merchant cancels a link (as `POST /v1/payment_links/{id}/cancel`), with its event.
    pub fn cancel_link_with_event(&mut self, id: &str) -> Result<Vec<Event>, ApiError> {
        let link = self.cancel_link(id)?;
        Ok(vec![Event::new(
            "payment_link.cancelled",
            vec![("payment_link", link)],
        )])
    }

    /// A customer pays an invoice: `amount` (default: all that is due) is captured.
    pub fn pay_invoice(
        &mut self,
        id: &str,
        amount: Option<u64>,
        method: &str,
    ) -> Result<Vec<Event>, ApiError> {
        let invoice = self.invoice(id)?.clone();
        if invoice.status != "issued" && invoice.status != "partially_paid" {
            return Err(ApiError::bad_request(
                &format!("Invoice is {} and cannot be paid", invoice.status),
                None,
            ));
        }
        let due = invoice.amount - invoice.amount_paid;
        let amount = payable_amount(amount, due, invoice.partial_payment)?;
        let description = format!("#{}", invoice.id.trim_start_matches("inv_"));
        let mut payment = self.new_payment(
            amount,
            invoice.currency,
            &invoice.order_id,
            method,
            Default::default(),
            description,
        );
        payment.invoice_id = Some(invoice.id.clone());
        self.payments.insert(payment.id.clone(), payment.clone());
        let inv = self
            .invoices
            .get_mut(id)
            .ok_or_else(|| ApiError::not_found(id))?;
        inv.amount_paid += amount;
        if inv.amount_paid >= inv.amount {
            inv.status = "paid".to_owned();
            inv.paid_at = Some(now());
            inv.payment_id = Some(payment.id.clone());
        } else {
            inv.status = "partially_paid".to_owned();
        }
        let inv = inv.clone();
        let order = json!({"id": inv.order_id, "entity": "order", "amount": inv.amount,
            "amount_paid": inv.amount_paid, "amount_due": inv.amount - inv.amount_paid,
            "currency": inv.currency.code(), "receipt": inv.receipt,
            "status": if inv.status == "paid" { "paid" } else { "attempted" }, "notes": [],
            "created_at": inv.created_at});
        let event = if inv.status == "paid" {
            "invoice.paid"
        } else {
            "invoice.partially_paid"
        };
        let entities = vec![
            ("payment", payment.json()),
            ("order", order),
            ("invoice", self.invoice_json(&inv)),
        ];
        Ok(captured_events(&payment, event, entities))
    }

    /// An invoice passes its `expire_by` unpaid.
    pub fn expire_invoice(&mut self, id: &str) -> Result<Vec<Event>, ApiError> {
        let inv = self
            .invoices
            .get_mut(id)
            .ok_or_else(|| ApiError::not_found(id))?;
        if inv.status != "issued" && inv.status != "partially_paid" {
            return Err(ApiError::bad_request(
                &format!("Invoice is {}", inv.status),
                None,
            ));
        }
        inv.status = "expired".to_owned();
        inv.expired_at = Some(now());
        let inv = inv.clone();
        Ok(vec![Event::new(
            "invoice.expired",
            vec![("invoice", self.invoice_json(&inv))],
        )])
    }
}

/// What a customer may pay: `requested` (default: all that `remaining` is), never more, and less
/// only where partial payments are allowed.
fn payable_amount(requested: Option<u64>, remaining: u64, partial: bool) -> Result<u64, ApiError> {
    let amount = requested.unwrap_or(remaining);
    if amount == 0 || amount > remaining || (amount < remaining && !partial) {
        return Err(ApiError::bad_request(
            "The amount is invalid",
            Some("amount"),
        ));
    }
    Ok(amount)
}

/// The events of a captured payment, in Razorpay's order: authorized, captured, then the
/// event of what it paid (`entities`: that event's payload).
/// `amount` more paid on a link: paid once it has all it asks, partially paid before.
fn paid_with(link: &mut PaymentLink, amount: u64) {
    link.amount_paid += amount;
    link.status = if link.amount_paid >= link.amount {
        "paid"
    } else {
        "partially_paid"
    }
    .to_owned();
}

fn captured_events(
    payment: &Payment,
    event: &str,
    entities: Vec<(&'static str, Value)>,
) -> Vec<Event> {
    vec![
        Event::new(
            "payment.authorized",
            vec![("payment", authorized_snapshot(payment))],
        ),
        Event::new("payment.captured", vec![("payment", payment.json())]),
        Event::new(event, entities),
    ]
}
