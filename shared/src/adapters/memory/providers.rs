//! Razorpay and Flexprice in memory, for service tests: they keep what they were asked to make
//! and answer later calls from it, with the rules a service decision depends on (a link's
//! `reference_id` and an invoice's `receipt` are unique, a customer with the same email and
//! contact is returned rather than made twice, a payment's `idempotency_key` records once).
//! Faults are scripted per call: a refusal that acts on nothing, or a timeout after the call
//! acted (the two-phase outcome a service must survive). The simulators remain the strict,
//! HTTP-level check; these pin single decisions down in milliseconds.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use serde_json::json;

use crate::adapters::flexprice::FlexpriceError;
use crate::adapters::flexprice::wire::{
    CreditNote, Customer as FlexpriceCustomer, Invoice as FlexpriceInvoice,
    Payment as FlexpricePayment, RecordPaymentRequest, UpdatePaymentRequest,
};
use crate::adapters::razorpay::wire::Notes;
use crate::adapters::razorpay::wire::{
    Customer, CustomerRequest, Dispute, Invoice, InvoiceRequest, InvoiceStatus, LinkStatus,
    Payment, PaymentLink, PaymentLinkRequest, PaymentStatus as RazorpayPaymentStatus, Refund,
    RefundRequest, RefundStatus,
};
use crate::adapters::razorpay::{PaymentsPage, RazorpayError};
use crate::domain::money::Money;
use crate::ports::{FlexpriceApi, PortFuture, RazorpayApi};

/// What a scripted call does instead of answering normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Refused with a 503 before acting.
    Unavailable,
    /// Acted, then the answer was lost (a timeout).
    TimeoutAfter,
    /// Refused with a 400 naming `field` (Razorpay's validation), before acting.
    Refused { field: &'static str },
    /// 409 before acting: another request holds the same idempotency key.
    Conflict,
    /// Flexprice's two phases split: the payment row is inserted (INITIATED) but not
    /// processed, and the answer is a 500.
    InsertedUnprocessed,
}

/// The faults scripted for the next calls, by call name, and every call made.
#[derive(Default)]
struct Script {
    faults: Vec<(&'static str, Fault)>,
    calls: Vec<&'static str>,
}

impl Script {
    /// Records the call and takes the first fault scripted for it.
    fn next(&mut self, call: &'static str) -> Option<Fault> {
        self.calls.push(call);
        let at = self.faults.iter().position(|(c, _)| *c == call)?;
        Some(self.faults.remove(at).1)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// How a provider's error says a scripted fault.
trait FaultError: Sized {
    /// The refusal a fault answers before the call acts (`None`: the call acts).
    fn before(fault: Fault) -> Option<Self>;
    /// The answer lost after the call acted.
    fn lost() -> Self;
    /// A 500 after the call acted (in part).
    fn failed_after() -> Self;
}

/// A fake's state and its script: every call is recorded and meets the fault scripted for it.
#[derive(Default)]
struct Scripted<S> {
    state: Mutex<S>,
    script: Mutex<Script>,
}

impl<S> Scripted<S> {
    fn state(&self) -> MutexGuard<'_, S> {
        lock(&self.state)
    }

    fn fail_next(&self, call: &'static str, fault: Fault) {
        lock(&self.script).faults.push((call, fault));
    }

    /// Whether the next fault scripted for `call` is `fault` (left in place for the call).
    fn next_is(&self, call: &str, fault: Fault) -> bool {
        lock(&self.script)
            .faults
            .iter()
            .find(|(c, _)| *c == call)
            .is_some_and(|(_, f)| *f == fault)
    }

    fn calls(&self, call: &str) -> usize {
        lock(&self.script)
            .calls
            .iter()
            .filter(|c| **c == call)
            .count()
    }

    /// Runs `act` under the script: a refusal before it, or a lost answer after it.
    fn call<T, E: FaultError>(
        &self,
        name: &'static str,
        act: impl FnOnce(&mut S) -> Result<T, E>,
    ) -> Result<T, E> {
        let fault = lock(&self.script).next(name);
        if let Some(refused) = fault.and_then(E::before) {
            return Err(refused);
        }
        let answer = act(&mut self.state())?;
        match fault {
            Some(Fault::TimeoutAfter) => Err(E::lost()),
            Some(Fault::InsertedUnprocessed) => Err(E::failed_after()),
            _ => Ok(answer),
        }
    }
}

impl FaultError for RazorpayError {
    fn before(fault: Fault) -> Option<RazorpayError> {
        match fault {
            Fault::Unavailable => Some(razorpay_refusal(503, "service unavailable")),
            Fault::Refused { field } => Some(RazorpayError::Api {
                status: 400,
                code: Some("BAD_REQUEST_ERROR".to_owned()),
                description: format!("The {field} is invalid."),
                field: Some(field.to_owned()),
                reason: Some("input_validation_failed".to_owned()),
            }),
            Fault::Conflict => Some(razorpay_refusal(409, "conflict")),
            Fault::TimeoutAfter | Fault::InsertedUnprocessed => None,
        }
    }

    fn lost() -> RazorpayError {
        RazorpayError::Timeout
    }

    fn failed_after() -> RazorpayError {
        razorpay_refusal(500, "internal server error")
    }
}

impl FaultError for FlexpriceError {
    fn before(fault: Fault) -> Option<FlexpriceError> {
        match fault {
            Fault::Unavailable => Some(flexprice_refusal(503, "service unavailable")),
            Fault::Refused { field } => {
                Some(flexprice_refusal(400, &format!("{field} is invalid")))
            }
            Fault::Conflict => Some(flexprice_refusal(409, "already_exists")),
            Fault::TimeoutAfter | Fault::InsertedUnprocessed => None,
        }
    }

    fn lost() -> FlexpriceError {
        FlexpriceError::Timeout
    }

    fn failed_after() -> FlexpriceError {
        flexprice_refusal(500, "internal server error")
    }
}

fn razorpay_refusal(status: u16, description: &str) -> RazorpayError {
    RazorpayError::Api {
        status,
        code: Some("BAD_REQUEST_ERROR".to_owned()),
        description: description.to_owned(),
        field: None,
        reason: None,
    }
}

/// A wire object from its JSON (the fakes build answers the way the client reads them).
fn wire<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).unwrap_or_else(|e| panic!("fake built a bad object: {e}"))
}

#[derive(Default)]
struct RazorpayState {
    customers: Vec<Customer>,
    links: Vec<PaymentLink>,
    invoices: Vec<Invoice>,
    payments: Vec<Payment>,
    refunds: Vec<Refund>,
    disputes: Vec<Dispute>,
    /// `X-Refund-Idempotency` keys: the body first sent under each, and the refund it made.
    refund_keys: HashMap<String, (RefundRequest, String)>,
    next_id: u64,
}

impl RazorpayState {
    /// Razorpay's refund: of a captured payment, at most what is left of it; the payment
    /// carries `amount_refunded` and is `refunded` once all of it is.
    fn refund(
        &mut self,
        payment_id: &str,
        amount: u64,
        notes: &Notes,
    ) -> Result<Refund, RazorpayError> {
        let id = self.id("rfnd");
        let payment = by_id(&mut self.payments, payment_id)?;
        let refundable = payment.amount.saturating_sub(payment.amount_refunded);
        if !matches!(payment.status, RazorpayPaymentStatus::Captured)
            || amount == 0
            || amount > refundable
        {
            return Err(razorpay_refusal(
                400,
                "The refund amount provided is greater than amount captured",
            ));
        }
        payment.amount_refunded += amount;
        if payment.amount_refunded == payment.amount {
            payment.status = RazorpayPaymentStatus::Refunded;
        }
        let refund: Refund = wire(json!({
            "id": id, "amount": amount, "currency": payment.currency, "payment_id": payment_id,
            "status": "pending", "notes": notes, "created_at": payment.created_at + 60,
        }));
        self.refunds.push(refund.clone());
        Ok(refund)
    }
}

impl RazorpayState {
    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}_Fake{:06}", self.next_id)
    }
}

/// Razorpay in memory.
#[derive(Default)]
pub struct FakeRazorpay {
    inner: Scripted<RazorpayState>,
}

impl FakeRazorpay {
    pub fn new() -> FakeRazorpay {
        FakeRazorpay::default()
    }

    /// The next `call` (a method name, e.g. `"create_payment_link"`) meets `fault`.
    pub fn fail_next(&self, call: &'static str, fault: Fault) {
        self.inner.fail_next(call, fault);
    }

    /// How many times `call` was made.
    pub fn calls(&self, call: &str) -> usize {
        self.inner.calls(call)
    }

    pub fn links(&self) -> Vec<PaymentLink> {
        self.inner.state().links.clone()
    }

    pub fn invoices(&self) -> Vec<Invoice> {
        self.inner.state().invoices.clone()
    }

    pub fn customers(&self) -> Vec<Customer> {
        self.inner.state().customers.clone()
    }

    /// Sets a link's status, as a payment or Razorpay's expiry would.
    pub fn set_link_status(&self, id: &str, status: LinkStatus) {
        if let Ok(link) = by_id(&mut self.inner.state().links, id) {
            link.status = status;
        }
    }

    /// A payment Razorpay has (given as Razorpay's JSON), for `get_payment` to answer.
    pub fn add_payment(&self, payment: serde_json::Value) {
        self.inner.state().payments.push(wire(payment));
    }

    /// A failed payment captured after all (late authorisation).
    pub fn capture(&self, id: &str) {
        if let Ok(payment) = by_id(&mut self.inner.state().payments, id) {
            payment.status = crate::adapters::razorpay::wire::PaymentStatus::Captured;
        }
    }

    /// A refund made in Razorpay's dashboard (no call of ours): pending until processed.
    pub fn dashboard_refund(&self, payment_id: &str, amount: u64) -> Refund {
        self.inner
            .state()
            .refund(payment_id, amount, &Notes::default())
            .unwrap_or_else(|e| panic!("fake refused a dashboard refund: {e}"))
    }

    /// A refund moves on: `processed` or `failed`.
    pub fn settle_refund(&self, id: &str, status: RefundStatus) -> Refund {
        let mut state = self.inner.state();
        let refund = by_id(&mut state.refunds, id).unwrap_or_else(|e| panic!("{e}"));
        refund.status = status;
        refund.clone()
    }

    pub fn refunds(&self) -> Vec<Refund> {
        self.inner.state().refunds.clone()
    }

    /// A dispute Razorpay has (given as Razorpay's JSON), or its newer state.
    pub fn put_dispute(&self, dispute: serde_json::Value) {
        let dispute: Dispute = wire(dispute);
        let mut state = self.inner.state();
        state.disputes.retain(|d| d.id != dispute.id);
        state.disputes.push(dispute);
    }

    /// A first try to pay a link: Razorpay makes the link's order (every payment on the link
    /// is on it). Returns the order id.
    pub fn attempt_link(&self, id: &str) -> String {
        let order_id = format!("order_of_{id}");
        if let Ok(link) = by_id(&mut self.inner.state().links, id) {
            link.order_id = Some(order_id.clone());
        }
        order_id
    }

    /// Sets an invoice's status, as a payment or Razorpay's expiry would.
    pub fn set_invoice_status(&self, id: &str, status: InvoiceStatus) {
        if let Ok(invoice) = by_id(&mut self.inner.state().invoices, id) {
            invoice.status = status;
        }
    }
}

/// A Razorpay entity, named by its id.
trait Entity {
    fn id(&self) -> &str;
}

impl Entity for PaymentLink {
    fn id(&self) -> &str {
        &self.id
    }
}

impl Entity for Payment {
    fn id(&self) -> &str {
        &self.id
    }
}

impl Entity for Invoice {
    fn id(&self) -> &str {
        &self.id
    }
}

impl Entity for Refund {
    fn id(&self) -> &str {
        &self.id
    }
}

/// The entity named `id` among `items`, to change, or Razorpay's 404.
fn by_id<'a, T: Entity>(items: &'a mut [T], id: &str) -> Result<&'a mut T, RazorpayError> {
    items
        .iter_mut()
        .find(|item| item.id() == id)
        .ok_or_else(|| razorpay_refusal(404, "The id provided does not exist"))
}

/// The answer, after one yield to the scheduler (as a network call would): concurrent callers
/// interleave, so races between them happen in tests as they would in production.
fn ready<'a, T: Send + 'a>(value: T) -> PortFuture<'a, T> {
    Box::pin(async move {
        tokio::task::yield_now().await;
        value
    })
}

impl RazorpayApi for FakeRazorpay {
    fn create_customer<'a>(
        &'a self,
        request: &'a CustomerRequest,
    ) -> PortFuture<'a, Result<Customer, RazorpayError>> {
        ready(self.inner.call("create_customer", |state| {
            let same = |c: &&Customer| c.email == request.email && c.contact == request.contact;
            if let Some(existing) = state.customers.iter().find(same) {
                return Ok(existing.clone());
            }
            let customer: Customer = wire(json!({
                "id": state.id("cust"), "name": request.name, "email": request.email,
                "contact": request.contact, "notes": request.notes, "created_at": 1_764_000_000,
            }));
            state.customers.push(customer.clone());
            Ok(customer)
        }))
    }

    fn create_payment_link<'a>(
        &'a self,
        request: &'a PaymentLinkRequest,
    ) -> PortFuture<'a, Result<PaymentLink, RazorpayError>> {
        ready(self.inner.call("create_payment_link", |state| {
            let reference = Some(request.reference_id.as_str());
            if state
                .links
                .iter()
                .any(|l| l.reference_id.as_deref() == reference)
            {
                return Err(razorpay_refusal(
                    400,
                    "Payment Link with this reference id already exists",
                ));
            }
            let id = state.id("plink");
            let link: PaymentLink = wire(json!({
                "id": id, "amount": request.amount, "currency": request.currency,
                "status": "created", "reference_id": request.reference_id,
                "short_url": format!("https://rzp.io/i/{id}"), "notes": request.notes,
                "description": request.description, "created_at": 1_764_000_000,
            }));
            state.links.push(link.clone());
            Ok(link)
        }))
    }

    fn find_payment_links_by_reference<'a>(
        &'a self,
        reference_id: &'a str,
    ) -> PortFuture<'a, Result<Vec<PaymentLink>, RazorpayError>> {
        ready(self.inner.call("find_payment_links_by_reference", |state| {
            Ok(state
                .links
                .iter()
                .filter(|l| l.reference_id.as_deref() == Some(reference_id))
                .cloned()
                .collect())
        }))
    }

    fn get_payment_link<'a>(
        &'a self,
        id: &'a str,
    ) -> PortFuture<'a, Result<PaymentLink, RazorpayError>> {
        ready(self.inner.call("get_payment_link", |state| {
            by_id(&mut state.links, id).map(|l| l.clone())
        }))
    }

    fn cancel_payment_link<'a>(
        &'a self,
        id: &'a str,
    ) -> PortFuture<'a, Result<PaymentLink, RazorpayError>> {
        ready(self.inner.call("cancel_payment_link", |state| {
            let link = by_id(&mut state.links, id)?;
            if link.status != LinkStatus::Created {
                return Err(razorpay_refusal(
                    400,
                    &format!("Payment Link cannot be cancelled in {} state", link.status),
                ));
            }
            link.status = LinkStatus::Cancelled;
            Ok(link.clone())
        }))
    }

    fn create_invoice<'a>(
        &'a self,
        request: &'a InvoiceRequest,
    ) -> PortFuture<'a, Result<Invoice, RazorpayError>> {
        ready(self.inner.call("create_invoice", |state| {
            let receipt = Some(request.receipt.as_str());
            if state
                .invoices
                .iter()
                .any(|i| i.receipt.as_deref() == receipt)
            {
                return Err(razorpay_refusal(400, "receipt already exists"));
            }
            let total: u64 = request
                .line_items
                .iter()
                .map(|l| l.amount * l.quantity)
                .sum();
            let id = state.id("inv");
            let draft = request.draft.as_deref() == Some("1");
            let invoice: Invoice = wire(json!({
                "id": id, "status": if draft { "draft" } else { "issued" },
                "receipt": request.receipt,
                "customer_id": request.customer_id, "amount": total, "amount_paid": 0,
                "amount_due": total, "currency": request.currency,
                "short_url": if draft { None } else { Some(format!("https://rzp.io/i/{id}")) },
                "notes": request.notes, "created_at": 1_764_000_000,
            }));
            state.invoices.push(invoice.clone());
            Ok(invoice)
        }))
    }

    fn list_payments<'a>(
        &'a self,
        page: &'a PaymentsPage,
    ) -> PortFuture<'a, Result<Vec<Payment>, RazorpayError>> {
        ready(self.inner.call("list_payments", |state| {
            let mut listed: Vec<Payment> = state
                .payments
                .iter()
                .filter(|p| (page.from..page.to).contains(&p.created_at))
                .cloned()
                .collect();
            listed.sort_by_key(|p| std::cmp::Reverse(p.created_at));
            let skip = page.skip as usize;
            Ok(listed
                .into_iter()
                .skip(skip)
                .take(page.count as usize)
                .collect())
        }))
    }

    fn list_invoices(
        &self,
        count: u32,
        skip: u32,
    ) -> PortFuture<'_, Result<Vec<Invoice>, RazorpayError>> {
        ready(self.inner.call("list_invoices", |state| {
            let newest_first = state.invoices.iter().rev();
            Ok(newest_first
                .skip(skip as usize)
                .take(count as usize)
                .cloned()
                .collect())
        }))
    }

    fn list_payment_links(&self) -> PortFuture<'_, Result<Vec<PaymentLink>, RazorpayError>> {
        ready(
            self.inner
                .call("list_payment_links", |state| Ok(state.links.clone())),
        )
    }

    fn create_refund<'a>(
        &'a self,
        payment_id: &'a str,
        idempotency_key: &'a str,
        request: &'a RefundRequest,
    ) -> PortFuture<'a, Result<Refund, RazorpayError>> {
        ready(self.inner.call("create_refund", |state| {
            if let Some((first, id)) = state.refund_keys.get(idempotency_key).cloned() {
                if first != *request {
                    return Err(razorpay_refusal(400, "Different request with the same idempotency key has already been processed."));
                }
                return by_id(&mut state.refunds, &id).map(|r| r.clone());
            }
            let refund = state.refund(payment_id, request.amount, &request.notes)?;
            state
                .refund_keys
                .insert(idempotency_key.to_owned(), (request.clone(), refund.id.clone()));
            Ok(refund)
        }))
    }

    fn list_payment_refunds<'a>(
        &'a self,
        payment_id: &'a str,
    ) -> PortFuture<'a, Result<Vec<Refund>, RazorpayError>> {
        ready(self.inner.call("list_payment_refunds", |state| {
            let of_payment = state.refunds.iter().filter(|r| r.payment_id == payment_id);
            Ok(of_payment.cloned().collect())
        }))
    }

    fn list_refunds<'a>(
        &'a self,
        page: &'a PaymentsPage,
    ) -> PortFuture<'a, Result<Vec<Refund>, RazorpayError>> {
        ready(self.inner.call("list_refunds", |state| {
            let mut listed: Vec<Refund> = state
                .refunds
                .iter()
                .filter(|r| (page.from..page.to).contains(&r.created_at))
                .cloned()
                .collect();
            listed.sort_by_key(|r| std::cmp::Reverse(r.created_at));
            let page_of = listed.into_iter().skip(page.skip as usize);
            Ok(page_of.take(page.count as usize).collect())
        }))
    }

    fn list_disputes<'a>(
        &'a self,
        page: &'a PaymentsPage,
    ) -> PortFuture<'a, Result<Vec<Dispute>, RazorpayError>> {
        ready(self.inner.call("list_disputes", |state| {
            let mut listed: Vec<Dispute> = state
                .disputes
                .iter()
                .filter(|d| (page.from..page.to).contains(&d.created_at))
                .cloned()
                .collect();
            listed.sort_by_key(|d| std::cmp::Reverse(d.created_at));
            let page_of = listed.into_iter().skip(page.skip as usize);
            Ok(page_of.take(page.count as usize).collect())
        }))
    }

    fn get_payment<'a>(&'a self, id: &'a str) -> PortFuture<'a, Result<Payment, RazorpayError>> {
        ready(self.inner.call("get_payment", |state| {
            by_id(&mut state.payments, id).map(|p| p.clone())
        }))
    }

    fn issue_invoice<'a>(&'a self, id: &'a str) -> PortFuture<'a, Result<Invoice, RazorpayError>> {
        ready(self.inner.call("issue_invoice", |state| {
            let invoice = by_id(&mut state.invoices, id)?;
            if invoice.status != InvoiceStatus::Draft {
                let status = invoice.status.as_str();
                let refusal = format!("Operation not allowed for Invoice in {status} status.");
                return Err(razorpay_refusal(400, &refusal));
            }
            invoice.status = InvoiceStatus::Issued;
            invoice.short_url = Some(format!("https://rzp.io/i/{id}"));
            Ok(invoice.clone())
        }))
    }

    fn get_invoice<'a>(&'a self, id: &'a str) -> PortFuture<'a, Result<Invoice, RazorpayError>> {
        ready(self.inner.call("get_invoice", |state| {
            by_id(&mut state.invoices, id).map(|i| i.clone())
        }))
    }

    fn find_invoices_by_receipt<'a>(
        &'a self,
        receipt: &'a str,
    ) -> PortFuture<'a, Result<Vec<Invoice>, RazorpayError>> {
        ready(self.inner.call("find_invoices_by_receipt", |state| {
            Ok(state
                .invoices
                .iter()
                .filter(|i| i.receipt.as_deref() == Some(receipt))
                .cloned()
                .collect())
        }))
    }

    fn cancel_invoice<'a>(&'a self, id: &'a str) -> PortFuture<'a, Result<Invoice, RazorpayError>> {
        ready(self.inner.call("cancel_invoice", |state| {
            let invoice = by_id(&mut state.invoices, id)?;
            let open = [
                InvoiceStatus::Draft,
                InvoiceStatus::Issued,
                InvoiceStatus::PartiallyPaid,
            ];
            if !open.contains(&invoice.status) {
                let status = invoice.status.as_str();
                let refusal = format!("Operation not allowed for Invoice in {status} status.");
                return Err(razorpay_refusal(400, &refusal));
            }
            invoice.status = InvoiceStatus::Cancelled;
            Ok(invoice.clone())
        }))
    }
}

#[derive(Default)]
struct FlexpriceState {
    invoices: HashMap<String, FlexpriceInvoice>,
    customers: HashMap<String, FlexpriceCustomer>,
    /// Recorded payments by idempotency key.
    payments: BTreeMap<String, FlexpricePayment>,
    credit_notes: HashMap<String, CreditNote>,
}

/// Flexprice in memory: the invoices and customers a test gives it, and the payments it is
/// asked to record (once per idempotency key).
#[derive(Default)]
pub struct FakeFlexprice {
    inner: Scripted<FlexpriceState>,
}

impl FakeFlexprice {
    pub fn new() -> FakeFlexprice {
        FakeFlexprice::default()
    }

    /// Adds an invoice, given as Flexprice's JSON.
    pub fn add_invoice(&self, invoice: serde_json::Value) {
        let invoice: FlexpriceInvoice = wire(invoice);
        self.inner
            .state()
            .invoices
            .insert(invoice.id.clone(), invoice);
    }

    /// Adds a customer, given as Flexprice's JSON.
    pub fn add_customer(&self, customer: serde_json::Value) {
        let customer: FlexpriceCustomer = wire(customer);
        self.inner
            .state()
            .customers
            .insert(customer.id.clone(), customer);
    }

    pub fn fail_next(&self, call: &'static str, fault: Fault) {
        self.inner.fail_next(call, fault);
    }

    pub fn calls(&self, call: &str) -> usize {
        self.inner.calls(call)
    }

    /// A credit note Flexprice has (given as Flexprice's JSON).
    pub fn add_credit_note(&self, note: serde_json::Value) {
        let note: CreditNote = wire(note);
        self.inner
            .state()
            .credit_notes
            .insert(note.id.clone(), note);
    }

    /// The payment recorded under `key`.
    pub fn payment(&self, key: &str) -> Option<FlexpricePayment> {
        self.inner.state().payments.get(key).cloned()
    }

    /// The payments recorded, by idempotency key.
    pub fn payments(&self) -> BTreeMap<String, FlexpricePayment> {
        self.inner.state().payments.clone()
    }

    pub fn customer(&self, id: &str) -> Option<FlexpriceCustomer> {
        self.inner.state().customers.get(id).cloned()
    }

    pub fn invoice(&self, id: &str) -> Option<FlexpriceInvoice> {
        self.inner.state().invoices.get(id).cloned()
    }
}

fn flexprice_refusal(status: u16, message: &str) -> FlexpriceError {
    FlexpriceError::Api {
        status,
        code: None,
        message: message.to_owned(),
    }
}

fn not_found(what: &str, id: &str) -> FlexpriceError {
    flexprice_refusal(404, &format!("{what} {id} not found"))
}

/// The `what` named `id`, to change, or Flexprice's 404.
fn stored_mut<'a, T>(
    items: &'a mut HashMap<String, T>,
    what: &str,
    id: &str,
) -> Result<&'a mut T, FlexpriceError> {
    items.get_mut(id).ok_or_else(|| not_found(what, id))
}

/// Flexprice's reconciliation of a recorded payment: paid up, remaining down (never below
/// zero: the excess makes the invoice OVERPAID).
fn reconcile(invoice: &mut FlexpriceInvoice, amount: &str) {
    let Ok(currency) = invoice.currency() else {
        return;
    };
    let parse = |text: &str| Money::parse(text, currency).map(Money::minor).unwrap_or(0);
    let paid = parse(&invoice.amount_paid) + parse(amount);
    let remaining = parse(&invoice.amount_remaining);
    let left = remaining.saturating_sub(parse(amount));
    invoice.amount_paid = Money::from_minor(paid, currency).to_decimal_string();
    invoice.amount_remaining = Money::from_minor(left, currency).to_decimal_string();
    invoice.payment_status = match (left, parse(amount) > remaining) {
        (0, true) => "OVERPAID",
        (0, false) => "SUCCEEDED",
        _ => "PENDING",
    }
    .to_owned();
}

impl FlexpriceState {
    /// Flexprice's second phase: an INITIATED payment becomes SUCCEEDED and moves its
    /// invoice; any other is refused (400), as processing twice would count it twice.
    fn process(&mut self, key: &str) -> Result<FlexpricePayment, FlexpriceError> {
        let payment = self
            .payments
            .get_mut(key)
            .ok_or_else(|| not_found("payment", key))?;
        if payment.payment_status != "INITIATED" {
            let status = &payment.payment_status;
            return Err(flexprice_refusal(400, &format!("payment is {status}")));
        }
        payment.payment_status = "SUCCEEDED".to_owned();
        let payment = payment.clone();
        if let Some(invoice) = self
            .invoices
            .get_mut(payment.destination_id.as_deref().unwrap_or_default())
        {
            reconcile(invoice, &payment.amount);
        }
        Ok(payment)
    }
}

/// Flexprice's payment transitions that a refund takes (`PUT /v1/payments/{id}`): from
/// SUCCEEDED or OVERPAID to PARTIALLY_REFUNDED or REFUNDED, from PARTIALLY_REFUNDED to
/// REFUNDED, and each to itself; REFUNDED is terminal.
fn refund_move_allowed(from: &str, to: &str) -> bool {
    matches!(
        (from, to),
        ("SUCCEEDED" | "OVERPAID", "PARTIALLY_REFUNDED" | "REFUNDED")
            | ("PARTIALLY_REFUNDED", "PARTIALLY_REFUNDED" | "REFUNDED")
            | ("REFUNDED", "REFUNDED")
    )
}

/// Adds `keys` to `metadata`, keeping the rest.
fn merge(metadata: &mut BTreeMap<String, String>, keys: &BTreeMap<String, String>) {
    metadata.extend(keys.iter().map(|(k, v)| (k.clone(), v.clone())));
}

/// The `what` named `id`, or Flexprice's 404.
fn stored<T: Clone>(items: &HashMap<String, T>, what: &str, id: &str) -> Result<T, FlexpriceError> {
    items.get(id).cloned().ok_or_else(|| not_found(what, id))
}

impl FlexpriceApi for FakeFlexprice {
    fn get_credit_note<'a>(
        &'a self,
        id: &'a str,
    ) -> PortFuture<'a, Result<CreditNote, FlexpriceError>> {
        ready(self.inner.call("get_credit_note", |state| {
            state
                .credit_notes
                .get(id)
                .cloned()
                .ok_or_else(|| not_found("credit note", id))
        }))
    }

    fn get_invoice<'a>(
        &'a self,
        id: &'a str,
    ) -> PortFuture<'a, Result<FlexpriceInvoice, FlexpriceError>> {
        ready(self.inner.call("get_invoice", |state| {
            stored(&state.invoices, "invoice", id)
        }))
    }

    fn get_customer<'a>(
        &'a self,
        id: &'a str,
    ) -> PortFuture<'a, Result<FlexpriceCustomer, FlexpriceError>> {
        ready(self.inner.call("get_customer", |state| {
            stored(&state.customers, "customer", id)
        }))
    }

    fn record_payment<'a>(
        &'a self,
        request: &'a RecordPaymentRequest,
    ) -> PortFuture<'a, Result<FlexpricePayment, FlexpriceError>> {
        let unprocessed = self
            .inner
            .next_is("record_payment", Fault::InsertedUnprocessed);
        let answer = self.inner.call("record_payment", |state| {
            if !state.invoices.contains_key(&request.destination_id) {
                return Err(not_found("invoice", &request.destination_id));
            }
            if let Some(recorded) = state.payments.get(&request.idempotency_key) {
                return Ok(Some(recorded.clone()));
            }
            let voided = state
                .invoices
                .get(&request.destination_id)
                .is_some_and(|i| i.invoice_status == "VOIDED");
            if voided {
                return Err(flexprice_refusal(400, "invoice is VOIDED"));
            }
            let id = format!("pay_fake_{}", state.payments.len() + 1);
            let payment: FlexpricePayment = wire(json!({
                "id": id, "idempotency_key": request.idempotency_key,
                "destination_id": request.destination_id, "amount": request.amount,
                "currency": request.currency, "payment_status": "INITIATED",
                "payment_method_type": request.payment_method_type,
                "metadata": request.metadata,
            }));
            state
                .payments
                .insert(request.idempotency_key.clone(), payment);
            if unprocessed {
                return Ok(None);
            }
            state.process(&request.idempotency_key).map(Some)
        });
        // An unprocessed insert answers the scripted 500 (`call` turns the fault into it).
        ready(answer.and_then(|p| p.ok_or_else(FlexpriceError::failed_after)))
    }

    fn process_payment<'a>(
        &'a self,
        id: &'a str,
    ) -> PortFuture<'a, Result<FlexpricePayment, FlexpriceError>> {
        ready(self.inner.call("process_payment", |state| {
            let key = state
                .payments
                .iter()
                .find(|(_, p)| p.id == id)
                .map(|(key, _)| key.clone())
                .ok_or_else(|| not_found("payment", id))?;
            state.process(&key)
        }))
    }

    fn update_payment<'a>(
        &'a self,
        id: &'a str,
        request: &'a UpdatePaymentRequest,
    ) -> PortFuture<'a, Result<FlexpricePayment, FlexpriceError>> {
        ready(self.inner.call("update_payment", |state| {
            let payment = state
                .payments
                .values_mut()
                .find(|p| p.id == id)
                .ok_or_else(|| not_found("payment", id))?;
            if !refund_move_allowed(&payment.payment_status, &request.payment_status) {
                let refusal = format!(
                    "invalid payment status transition from {} to {}",
                    payment.payment_status, request.payment_status
                );
                return Err(flexprice_refusal(400, &refusal));
            }
            payment.payment_status = request.payment_status.clone();
            payment.metadata = request.metadata.clone();
            Ok(payment.clone())
        }))
    }

    fn merge_customer_metadata<'a>(
        &'a self,
        customer: &'a FlexpriceCustomer,
        keys: &'a BTreeMap<String, String>,
    ) -> PortFuture<'a, Result<FlexpriceCustomer, FlexpriceError>> {
        ready(self.inner.call("merge_customer_metadata", |state| {
            let customer = stored_mut(&mut state.customers, "customer", &customer.id)?;
            merge(&mut customer.metadata, keys);
            Ok(customer.clone())
        }))
    }

    fn merge_invoice_metadata<'a>(
        &'a self,
        id: &'a str,
        keys: &'a BTreeMap<String, String>,
    ) -> PortFuture<'a, Result<FlexpriceInvoice, FlexpriceError>> {
        ready(self.inner.call("merge_invoice_metadata", |state| {
            let invoice = stored_mut(&mut state.invoices, "invoice", id)?;
            merge(&mut invoice.metadata, keys);
            Ok(invoice.clone())
        }))
    }
}
