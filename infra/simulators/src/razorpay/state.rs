//! The simulator's in-memory Razorpay account: customers, payment links, invoices, orders and
//! payments, with Razorpay's rules and its error texts (as Razorpay's API documentation gives them).

use std::collections::BTreeMap;

use serde_json::{Value, json};
use shared::domain::money::{Currency, Money};

pub use crate::common::{new_id, now};

/// A Razorpay error: HTTP status and the `{"error":{...}}` body.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub body: Value,
}

impl ApiError {
    pub fn bad_request(description: &str, field: Option<&str>) -> ApiError {
        let mut error = json!({
            "code": "BAD_REQUEST_ERROR",
            "description": description,
            "source": "business",
            "step": "payment_initiation",
            "reason": "input_validation_failed",
            "metadata": {},
        });
        if let Some(field) = field {
            error["field"] = json!(field);
        }
        ApiError {
            status: 400,
            body: json!({ "error": error }),
        }
    }

    pub fn unauthorized() -> ApiError {
        ApiError {
            status: 401,
            body: json!({"error": {"code": "BAD_REQUEST_ERROR", "description": "Authentication failed"}}),
        }
    }

    pub fn not_found(id: &str) -> ApiError {
        ApiError {
            status: 400,
            body: json!({"error": {"code": "BAD_REQUEST_ERROR",
                "description": format!("{id} is not a valid id"),
                "source": "business", "step": "payment_initiation",
                "reason": "input_validation_failed", "metadata": {}}}),
        }
    }
}

type Notes = BTreeMap<String, String>;

/// Razorpay renders empty notes as `[]`.
pub(super) fn notes_json(notes: &Notes) -> Value {
    if notes.is_empty() {
        json!([])
    } else {
        json!(notes)
    }
}

pub(super) fn parse_notes(body: &Value) -> Result<Notes, ApiError> {
    let notes = match body.get("notes") {
        None | Some(Value::Null) => return Ok(Notes::new()),
        Some(Value::Array(a)) if a.is_empty() => return Ok(Notes::new()),
        Some(Value::Object(map)) => map,
        Some(_) => {
            return Err(ApiError::bad_request(
                "notes should be an object",
                Some("notes"),
            ));
        }
    };
    if notes.len() > 15 {
        return Err(ApiError::bad_request(
            "notes: the number of keys must not be greater than 15.",
            Some("notes"),
        ));
    }
    notes
        .iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if text.chars().count() > 255 {
                return Err(ApiError::bad_request(
                    "value: the length must not be greater than 255.",
                    Some("notes"),
                ));
            }
            Ok((k.clone(), text))
        })
        .collect()
}

pub(super) fn string_field(body: &Value, name: &str) -> Option<String> {
    body.get(name).and_then(Value::as_str).map(str::to_owned)
}

pub(super) fn amount_field(body: &Value, name: &str) -> Result<u64, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Err(ApiError::bad_request(
            &format!("The {name} field is required."),
            Some(name),
        )),
        Some(v) => v.as_u64().ok_or_else(|| {
            ApiError::bad_request(&format!("The {name} must be an integer."), Some(name))
        }),
    }
}

fn currency_field(body: &Value) -> Result<Currency, ApiError> {
    let code = string_field(body, "currency").unwrap_or_else(|| "INR".to_owned());
    Currency::from_code(&code)
        .map_err(|_| ApiError::bad_request("The currency is invalid.", Some("currency")))
}

/// Orders (and so links and invoices) need at least 1.00 INR and one subunit elsewhere; a
/// three-decimal amount must end in 0.
fn check_amount(amount: u64, currency: Currency) -> Result<(), ApiError> {
    Money::from_minor(amount, currency)
        .check_collectable()
        .map_err(|_| {
            let minimum = Money::from_minor(currency.minimum_minor(), currency);
            if amount < currency.minimum_minor() {
                let shown = if currency.code() == "INR" {
                    "INR 1.00".to_owned()
                } else {
                    format!("{} {}", currency.code(), minimum.to_decimal_string())
                };
                ApiError::bad_request(
                    &format!("The amount must be at least {shown}"),
                    Some("amount"),
                )
            } else {
                ApiError::bad_request(
                    "The last decimal of three decimal currency amounts must be 0",
                    Some("amount"),
                )
            }
        })
}

/// `expire_by` at least 15 minutes ahead (documented) and at most 180 days (Razorpay's "six
/// months"; the exact bound is not documented, so the stricter reading).
fn check_expire_by(body: &Value, error: &str) -> Result<Option<u64>, ApiError> {
    match body.get("expire_by").and_then(Value::as_u64) {
        Some(t) if t < now() + 15 * 60 => Err(ApiError::bad_request(error, Some("expire_by"))),
        Some(t) if t > now() + 180 * 24 * 3600 => Err(ApiError::bad_request(
            "expire_by must be within 6 months from now",
            Some("expire_by"),
        )),
        other => Ok(other),
    }
}

#[derive(Debug, Clone)]
pub struct Customer {
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub contact: Option<String>,
    pub notes: Notes,
    pub created_at: u64,
}

impl Customer {
    pub fn json(&self) -> Value {
        json!({"id": self.id, "entity": "customer", "name": self.name, "email": self.email,
            "contact": self.contact, "gstin": null, "notes": notes_json(&self.notes),
            "created_at": self.created_at})
    }
}

#[derive(Debug, Clone)]
pub struct Payment {
    pub id: String,
    pub amount: u64,
    pub currency: Currency,
    pub status: String,
    pub order_id: String,
    pub invoice_id: Option<String>,
    pub method: String,
    pub notes: Notes,
    pub email: Option<String>,
    pub contact: Option<String>,
    pub description: String,
    pub error: Option<(String, String, String)>,
    /// What went back (pending and processed refunds).
    pub amount_refunded: u64,
    pub created_at: u64,
}

impl Payment {
    pub fn json(&self) -> Value {
        let captured = self.status == "captured" || self.status == "refunded";
        let refund_status = match self.amount_refunded {
            0 => Value::Null,
            r if r >= self.amount => json!("full"),
            _ => json!("partial"),
        };
        let (code, description, reason) = match &self.error {
            Some((c, d, r)) => (json!(c), json!(d), json!(r)),
            None => (Value::Null, Value::Null, Value::Null),
        };
        json!({"id": self.id, "entity": "payment", "amount": self.amount,
            "currency": self.currency.code(), "status": self.status, "order_id": self.order_id,
            "invoice_id": self.invoice_id, "international": self.currency.code() != "INR",
            "method": self.method, "amount_refunded": self.amount_refunded,
            "refund_status": refund_status,
            "captured": captured, "description": self.description, "bank": null, "wallet": null,
            "vpa": if self.method == "upi" { json!("customer@upi") } else { Value::Null },
            "email": self.email, "contact": self.contact, "notes": notes_json(&self.notes),
            "fee": if captured { json!(self.amount * 2 / 100) } else { Value::Null },
            "tax": if captured { json!(self.amount * 2 / 100 * 18 / 118) } else { Value::Null },
            "error_code": code, "error_description": description,
            "error_source": if self.error.is_some() { json!("bank") } else { Value::Null },
            "error_step": if self.error.is_some() { json!("payment_authorization") } else { Value::Null },
            "error_reason": reason, "created_at": self.created_at})
    }
}

#[derive(Debug, Clone)]
pub struct PaymentLink {
    pub id: String,
    pub amount: u64,
    pub amount_paid: u64,
    pub currency: Currency,
    pub status: String,
    pub reference_id: String,
    pub description: String,
    pub customer: Value,
    pub notes: Notes,
    pub callback_url: String,
    pub callback_method: String,
    pub accept_partial: bool,
    pub expire_by: u64,
    pub expired_at: u64,
    pub cancelled_at: u64,
    pub order_id: Option<String>,
    pub payments: Vec<String>,
    pub short_url: String,
    pub created_at: u64,
}

#[derive(Debug, Clone)]
pub struct LineItem {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub amount: u64,
    pub quantity: u64,
}

#[derive(Debug, Clone)]
pub struct Invoice {
    pub id: String,
    pub receipt: String,
    pub customer_id: String,
    pub currency: Currency,
    pub line_items: Vec<LineItem>,
    pub amount: u64,
    pub amount_paid: u64,
    pub status: String,
    pub order_id: String,
    pub payment_id: Option<String>,
    pub short_url: String,
    pub expire_by: Option<u64>,
    pub partial_payment: bool,
    pub description: Option<String>,
    pub notes: Notes,
    pub created_at: u64,
    pub paid_at: Option<u64>,
    pub cancelled_at: Option<u64>,
    pub expired_at: Option<u64>,
}

/// The account: every entity, by id.
#[derive(Debug, Default)]
pub struct Account {
    /// Refusals scripted for the next customer creates: (field, description), as Razorpay's
    /// validation would answer for data it finds wrong (`/_sim/refuse-customer`).
    pub customer_refusals: Vec<(String, String)>,
    pub customers: BTreeMap<String, Customer>,
    pub links: BTreeMap<String, PaymentLink>,
    pub invoices: BTreeMap<String, Invoice>,
    pub payments: BTreeMap<String, Payment>,
    pub refunds: BTreeMap<String, super::refunds::Refund>,
    pub disputes: BTreeMap<String, super::disputes::Dispute>,
    /// `X-Refund-Idempotency` keys: the body first sent under each, and its refund.
    pub refund_keys: BTreeMap<String, (Value, String)>,
}

fn short_url() -> String {
    let code = new_id("");
    format!("https://rzp.io/rzp/{}", &code[..7])
}

/// What an invoice's lines add up to, in subunits.
fn invoice_total(line_items: &[LineItem]) -> Result<u64, ApiError> {
    line_items
        .iter()
        .try_fold(0u64, |sum, li| {
            li.amount
                .checked_mul(li.quantity)
                .and_then(|t| sum.checked_add(t))
        })
        .ok_or_else(|| ApiError::bad_request("The amount is invalid", Some("amount")))
}

/// An invoice's `line_items`: 1 to 50, each named, in the invoice's currency.
fn invoice_lines(body: &Value, currency: Currency) -> Result<Vec<LineItem>, ApiError> {
    let items = body
        .get("line_items")
        .and_then(Value::as_array)
        .filter(|items| !items.is_empty())
        .ok_or_else(|| ApiError::bad_request("line_items is required.", Some("line_items")))?;
    if items.len() > 50 {
        return Err(ApiError::bad_request(
            "line_items: the number of items must not be greater than 50.",
            Some("line_items"),
        ));
    }
    items
        .iter()
        .map(|item| {
            let item_currency =
                string_field(item, "currency").unwrap_or_else(|| currency.code().to_owned());
            if !item_currency.eq_ignore_ascii_case(currency.code()) {
                return Err(ApiError::bad_request(
                    "Currency of all items should be the same as of the invoice.",
                    Some("currency"),
                ));
            }
            Ok(LineItem {
                id: new_id("li_"),
                name: string_field(item, "name").ok_or_else(|| {
                    ApiError::bad_request("The name field is required.", Some("name"))
                })?,
                description: string_field(item, "description"),
                amount: amount_field(item, "amount")?,
                quantity: item.get("quantity").and_then(Value::as_u64).unwrap_or(1),
            })
        })
        .collect()
}

impl Account {
    pub fn link_json(&self, link: &PaymentLink) -> Value {
        let payments: Vec<Value> = link
            .payments
            .iter()
            .filter_map(|id| self.payments.get(id))
            .map(|p| {
                json!({"payment_id": p.id, "amount": p.amount, "status": p.status,
                "method": p.method, "created_at": p.created_at})
            })
            .collect();
        let mut value = json!({"id": link.id, "amount": link.amount, "amount_paid": link.amount_paid,
            "currency": link.currency.code(), "status": link.status, "reference_id": link.reference_id,
            "description": link.description, "customer": link.customer,
            "notes": if link.notes.is_empty() { Value::Null } else { json!(link.notes) },
            "notify": {"sms": false, "email": false}, "reminder_enable": false, "reminders": [],
            "callback_url": link.callback_url, "callback_method": link.callback_method,
            "accept_partial": link.accept_partial, "first_min_partial_amount": 0,
            "expire_by": link.expire_by, "expired_at": link.expired_at,
            "cancelled_at": link.cancelled_at,
            "payments": if payments.is_empty() { Value::Null } else { json!(payments) },
            "short_url": link.short_url, "upi_link": false, "user_id": "",
            "created_at": link.created_at, "updated_at": link.created_at});
        if let Some(order_id) = &link.order_id {
            value["order_id"] = json!(order_id);
        }
        value
    }

    pub fn invoice_json(&self, invoice: &Invoice) -> Value {
        let customer = self.customers.get(&invoice.customer_id);
        let items: Vec<Value> = invoice
            .line_items
            .iter()
            .map(|li| {
                let total = li.amount * li.quantity;
                json!({"id": li.id, "item_id": null, "name": li.name, "description": li.description,
                    "amount": li.amount, "unit_amount": li.amount, "gross_amount": total,
                    "tax_amount": 0, "taxable_amount": total, "net_amount": total,
                    "currency": invoice.currency.code(), "type": "invoice", "tax_inclusive": false,
                    "unit": null, "quantity": li.quantity, "taxes": []})
            })
            .collect();
        let cancelled = invoice.status == "cancelled";
        let draft = invoice.status == "draft";
        let unless_draft = |value: Value| if draft { Value::Null } else { value };
        json!({"id": invoice.id, "entity": "invoice", "receipt": invoice.receipt,
            "invoice_number": invoice.receipt, "customer_id": invoice.customer_id,
            "customer_details": customer.map(Customer::json),
            "order_id": unless_draft(json!(invoice.order_id)),
            "line_items": items, "payment_id": invoice.payment_id, "status": invoice.status,
            "expire_by": invoice.expire_by, "issued_at": unless_draft(json!(invoice.created_at)),
            "paid_at": invoice.paid_at, "cancelled_at": invoice.cancelled_at,
            "expired_at": invoice.expired_at, "sms_status": "pending", "email_status": "pending",
            "date": invoice.created_at, "terms": null, "partial_payment": invoice.partial_payment,
            "gross_amount": invoice.amount, "tax_amount": 0, "taxable_amount": invoice.amount,
            "amount": invoice.amount,
            "amount_paid": if cancelled { Value::Null } else { json!(invoice.amount_paid) },
            "amount_due": if cancelled { Value::Null } else { json!(invoice.amount - invoice.amount_paid) },
            "currency": invoice.currency.code(), "description": invoice.description,
            "notes": notes_json(&invoice.notes), "comment": null,
            "short_url": unless_draft(json!(invoice.short_url)),
            "type": "invoice", "created_at": invoice.created_at})
    }

    /// `POST /v1/customers`: the documented field rules (name 3–50 characters of letters,
    /// digits and `. ' / @ ( )` — spaces too, as the docs' own example has one; contact at most
    /// 15 characters with at least 8 digits; email at most 64 characters). Where the docs say
    /// nothing (a hyphen in a name, punctuation in a contact) this refuses: the stricter of the
    /// plausible readings.
    pub fn create_customer(&mut self, body: &Value) -> Result<Value, ApiError> {
        if !self.customer_refusals.is_empty() {
            let (field, description) = self.customer_refusals.remove(0);
            return Err(ApiError::bad_request(&description, Some(&field)));
        }
        let email = string_field(body, "email").filter(|e| !e.is_empty());
        let contact = string_field(body, "contact").filter(|c| !c.is_empty());
        check_customer_fields(body, email.as_deref(), contact.as_deref())?;
        let notes = parse_notes(body)?;
        let existing = self.customers.values().find(|c| {
            (email.is_some() || contact.is_some()) && c.email == email && c.contact == contact
        });
        if let Some(existing) = existing {
            // `fail_existing` is a string; "0" returns the existing customer.
            return match body.get("fail_existing") {
                Some(Value::String(s)) if s == "0" => Ok(existing.json()),
                _ => Err(ApiError::bad_request(
                    "Customer already exists for the merchant",
                    None,
                )),
            };
        }
        let customer = Customer {
            id: new_id("cust_"),
            name: string_field(body, "name"),
            email,
            contact,
            notes,
            created_at: now(),
        };
        let json = customer.json();
        self.customers.insert(customer.id.clone(), customer);
        Ok(json)
    }

    /// `POST /v1/payment_links`.
    pub fn create_link(&mut self, body: &Value) -> Result<Value, ApiError> {
        let amount = amount_field(body, "amount")?;
        let currency = currency_field(body)?;
        check_amount(amount, currency)?;
        let reference_id = string_field(body, "reference_id").unwrap_or_default();
        if reference_id.chars().count() > 40 {
            return Err(ApiError::bad_request(
                "reference_id: the length must not be greater than 40.",
                Some("reference_id"),
            ));
        }
        if !reference_id.is_empty() && self.links.values().any(|l| l.reference_id == reference_id) {
            return Err(ApiError::bad_request(
                "payment link creation with reference ID already attempted",
                Some("reference_id"),
            ));
        }
        let notes = parse_notes(body)?;
        let expire_by = check_expire_by(body, "timestamp must be atleast 15 minutes in future")?;
        let callback_url = string_field(body, "callback_url").unwrap_or_default();
        let callback_method = string_field(body, "callback_method").unwrap_or_default();
        if !callback_url.is_empty() && callback_method != "get" {
            return Err(ApiError::bad_request(
                "callback_method should be get",
                Some("callback_method"),
            ));
        }
        let link = PaymentLink {
            id: new_id("plink_"),
            amount,
            amount_paid: 0,
            currency,
            status: "created".to_owned(),
            reference_id,
            description: string_field(body, "description").unwrap_or_default(),
            customer: body.get("customer").cloned().unwrap_or_else(|| json!([])),
            notes,
            callback_url,
            callback_method,
            accept_partial: body
                .get("accept_partial")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            expire_by: expire_by.unwrap_or(0),
            expired_at: 0,
            cancelled_at: 0,
            order_id: None,
            payments: Vec::new(),
            short_url: short_url(),
            created_at: now(),
        };
        let json = self.link_json(&link);
        self.links.insert(link.id.clone(), link);
        Ok(json)
    }

    pub fn link(&self, id: &str) -> Result<&PaymentLink, ApiError> {
        self.links.get(id).ok_or_else(|| ApiError::not_found(id))
    }

    pub fn link_mut(&mut self, id: &str) -> Result<&mut PaymentLink, ApiError> {
        self.links
            .get_mut(id)
            .ok_or_else(|| ApiError::not_found(id))
    }

    /// `POST /v1/payment_links/{id}/cancel`.
    pub fn cancel_link(&mut self, id: &str) -> Result<Value, ApiError> {
        let link = self.link_mut(id)?;
        if link.status != "created" && link.status != "partially_paid" {
            return Err(ApiError::bad_request(
                &format!("Payment Link cannot be cancelled in {} state", link.status),
                None,
            ));
        }
        link.status = "cancelled".to_owned();
        link.cancelled_at = now();
        let link = link.clone();
        Ok(self.link_json(&link))
    }

    /// `POST /v1/invoices`.
    pub fn create_invoice(&mut self, body: &Value) -> Result<Value, ApiError> {
        if string_field(body, "type").as_deref() != Some("invoice") {
            return Err(ApiError::bad_request(
                "The type field is required.",
                Some("type"),
            ));
        }
        let customer_id = string_field(body, "customer_id")
            .ok_or_else(|| ApiError::bad_request("customer is required.", Some("customer_id")))?;
        if !self.customers.contains_key(&customer_id) {
            return Err(ApiError::not_found(&customer_id));
        }
        let currency = currency_field(body)?;
        let line_items = invoice_lines(body, currency)?;
        let amount = invoice_total(&line_items)?;
        check_amount(amount, currency)?;
        let receipt = self.unique_receipt(body)?;
        let notes = parse_notes(body)?;
        let expire_by = check_expire_by(
            body,
            "expire_by should be at least 15 minutes after current time.",
        )?;
        // A draft is not payable and has no order or URL until it is issued (the harsher
        // reading: the docs say only that the order is made on issue).
        let draft = string_field(body, "draft").as_deref() == Some("1");
        let invoice = Invoice {
            id: new_id("inv_"),
            receipt,
            customer_id,
            currency,
            line_items,
            amount,
            amount_paid: 0,
            status: if draft { "draft" } else { "issued" }.to_owned(),
            order_id: if draft {
                String::new()
            } else {
                new_id("order_")
            },
            payment_id: None,
            short_url: if draft { String::new() } else { short_url() },
            expire_by,
            partial_payment: body
                .get("partial_payment")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            description: string_field(body, "description"),
            notes,
            created_at: now(),
            paid_at: None,
            cancelled_at: None,
            expired_at: None,
        };
        let json = self.invoice_json(&invoice);
        self.invoices.insert(invoice.id.clone(), invoice);
        Ok(json)
    }

    /// `receipt`: at most 40 characters, and unique in the account (Razorpay's rules).
    fn unique_receipt(&self, body: &Value) -> Result<String, ApiError> {
        let receipt = string_field(body, "receipt").unwrap_or_default();
        if receipt.chars().count() > 40 {
            return Err(ApiError::bad_request(
                "receipt: the length must not be greater than 40.",
                Some("receipt"),
            ));
        }
        if !receipt.is_empty() && self.invoices.values().any(|i| i.receipt == receipt) {
            return Err(ApiError::bad_request(
                "Invoice receipt should be unique.",
                Some("receipt"),
            ));
        }
        Ok(receipt)
    }

    pub fn invoice(&self, id: &str) -> Result<&Invoice, ApiError> {
        self.invoices.get(id).ok_or_else(|| ApiError::not_found(id))
    }

    /// `POST /v1/invoices/{id}/issue`: only a draft; it gets its order and URL.
    pub fn issue_invoice(&mut self, id: &str) -> Result<Value, ApiError> {
        let invoice = self
            .invoices
            .get_mut(id)
            .ok_or_else(|| ApiError::not_found(id))?;
        if invoice.status != "draft" {
            return Err(ApiError::bad_request(
                &format!(
                    "Operation not allowed for Invoice in {} status.",
                    invoice.status
                ),
                None,
            ));
        }
        invoice.status = "issued".to_owned();
        invoice.order_id = new_id("order_");
        invoice.short_url = short_url();
        let invoice = invoice.clone();
        Ok(self.invoice_json(&invoice))
    }

    /// `POST /v1/invoices/{id}/cancel`.
    pub fn cancel_invoice(&mut self, id: &str) -> Result<Value, ApiError> {
        let invoice = self
            .invoices
            .get_mut(id)
            .ok_or_else(|| ApiError::not_found(id))?;
        if invoice.status != "issued"
            && invoice.status != "draft"
            && invoice.status != "partially_paid"
        {
            return Err(ApiError::bad_request(
                &format!(
                    "Operation not allowed for Invoice in {} status.",
                    invoice.status
                ),
                None,
            ));
        }
        invoice.status = "cancelled".to_owned();
        invoice.cancelled_at = Some(now());
        let invoice = invoice.clone();
        Ok(self.invoice_json(&invoice))
    }
}

/// Razorpay's rules for a customer's name, contact and email.
fn check_customer_fields(
    body: &Value,
    email: Option<&str>,
    contact: Option<&str>,
) -> Result<(), ApiError> {
    if let Some(name) = string_field(body, "name") {
        let length = name.chars().count();
        let allowed = name
            .chars()
            .all(|c| c.is_alphanumeric() || c == ' ' || ".'/@()".contains(c));
        if !(3..=50).contains(&length) || !allowed {
            return Err(ApiError::bad_request(
                "The name format is invalid.",
                Some("name"),
            ));
        }
    }
    if let Some(contact) = contact {
        let digits = contact.chars().filter(char::is_ascii_digit).count();
        let shape = contact
            .strip_prefix('+')
            .unwrap_or(contact)
            .chars()
            .all(|c| c.is_ascii_digit());
        if digits < 8 || contact.len() > 15 || !shape {
            return Err(ApiError::bad_request(
                "Contact number should be at least 8 digits, including country code",
                Some("contact"),
            ));
        }
    }
    if email.is_some_and(|e| e.len() > 64 || !e.contains('@')) {
        return Err(ApiError::bad_request(
            "The email must be a valid email address.",
            Some("email"),
        ));
    }
    Ok(())
}
