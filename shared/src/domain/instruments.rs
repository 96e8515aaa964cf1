//! An invoice's collection state: every Razorpay instrument that can take money for one
//! Flexprice invoice (its payment links and its synced Razorpay invoice), and the rule that
//! keeps them honest: **the sum a customer can still pay through open instruments never
//! exceeds what the invoice owes.** Pure; the services read the record, ask it, and write the
//! answer under the version they read (`docs/architecture.md` §3.4).
//!
//! An instrument is *reserved* (counted as payable) before Razorpay is asked to make it, so a
//! crash between the two can only overstate what is payable, never understate it; it becomes
//! *open* when it exists, *paid* when its money is counted, *closed* when it expired, was
//! cancelled or was never made. Paid and closed are final (a closed reservation may be taken
//! again by the same payment's retry, under the rule).

use serde::{Deserialize, Serialize};

use crate::domain::money::{Currency, Money};

/// What kind of Razorpay object collects the money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstrumentKind {
    /// A payment link made by `POST /api/v1/payments`.
    Link,
    /// The Razorpay invoice the Flexprice invoice was synced to.
    RazorpayInvoice,
}

/// Where an instrument stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstrumentState {
    /// Counted as payable; Razorpay is being asked to make it (or was, and the answer is not
    /// known yet).
    Reserved,
    /// It exists at Razorpay and can be paid.
    Open,
    /// Its money was counted.
    Paid,
    /// Expired, cancelled, or never made.
    Closed,
}

impl InstrumentState {
    /// Whether a customer may still pay through it (or may, as far as we know).
    pub fn is_payable(self) -> bool {
        matches!(self, InstrumentState::Reserved | InstrumentState::Open)
    }
}

/// One way to pay an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instrument {
    pub kind: InstrumentKind,
    /// What names it before Razorpay does: a link's payment id, a Razorpay invoice's receipt.
    pub key: String,
    /// What it asks, in the invoice currency's subunits.
    pub amount_minor: u64,
    pub state: InstrumentState,
    /// The Razorpay link or invoice id, once it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub razorpay_id: Option<String>,
    /// Our payment that collects through it (a link's own; for a Razorpay invoice, the payment
    /// a caller was answered with, if any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// When it was reserved (epoch ms).
    pub reserved_at_ms: u64,
    /// Why it closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Instrument {
    /// A reservation of `amount` for a new instrument named `key`.
    pub fn reserve(kind: InstrumentKind, key: &str, amount: Money, now_ms: u64) -> Instrument {
        Instrument {
            kind,
            key: key.to_owned(),
            amount_minor: amount.minor(),
            state: InstrumentState::Reserved,
            razorpay_id: None,
            payment_id: (kind == InstrumentKind::Link).then(|| key.to_owned()),
            url: None,
            reserved_at_ms: now_ms,
            reason: None,
        }
    }

    fn describe(&self, currency: Currency) -> String {
        let what = match self.kind {
            InstrumentKind::Link => "link",
            InstrumentKind::RazorpayInvoice => "Razorpay invoice",
        };
        let id = self.razorpay_id.as_deref().unwrap_or("(being made)");
        let payment = self
            .payment_id
            .as_deref()
            .map(|p| format!(", payment {p}"))
            .unwrap_or_default();
        format!(
            "{what} {id} for {}{payment}",
            Money::from_minor(self.amount_minor, currency).to_decimal_string()
        )
    }
}

/// Which instrument a change is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Which<'a> {
    /// By kind and key (before Razorpay named it).
    Key(InstrumentKind, &'a str),
    /// By the Razorpay link or invoice id.
    Razorpay(&'a str),
}

/// A change to one instrument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstrumentChange {
    /// Razorpay made it: open, at `url`.
    Opened { razorpay_id: String, url: String },
    /// Its money was counted.
    Paid,
    /// It expired, was cancelled, or was never made.
    Closed { reason: String },
    /// A caller's payment collects through it (a Razorpay invoice answered for a payment).
    Attached { payment_id: String },
}

/// Why a reservation is refused: it would let the customer pay more than the invoice owes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeds {
    pub asked: Money,
    pub owed: Money,
    /// What the open instruments already let the customer pay.
    pub payable: Money,
    /// Those instruments, described.
    pub open: Vec<String>,
}

impl std::fmt::Display for Exceeds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "amount {} and the {} already payable exceed the {} the invoice owes",
            self.asked.to_decimal_string(),
            self.payable.to_decimal_string(),
            self.owed.to_decimal_string()
        )?;
        if !self.open.is_empty() {
            write!(f, " (open: {})", self.open.join("; "))?;
        }
        Ok(())
    }
}

/// What a reservation found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reserve {
    /// Reserved: the collection to write.
    Reserved(Collection),
    /// This instrument is reserved, open or paid already: nothing to write.
    Already(Instrument),
    Refused(Exceeds),
}

/// One invoice's instruments, under a version every write checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collection {
    pub invoice_id: String,
    pub currency: Currency,
    pub instruments: Vec<Instrument>,
    /// Bumped by every write (0: not stored yet).
    pub version: u64,
    /// Epoch seconds of the last write.
    pub updated_at: u64,
}

impl Collection {
    /// An invoice with no instruments yet.
    pub fn new(invoice_id: &str, currency: Currency) -> Collection {
        Collection {
            invoice_id: invoice_id.to_owned(),
            currency,
            instruments: Vec::new(),
            version: 0,
            updated_at: 0,
        }
    }

    /// What the customer can still pay through reserved and open instruments.
    pub fn payable(&self) -> Money {
        self.payable_except(None)
    }

    /// [`Collection::payable`] without the instrument named by `except`.
    pub fn payable_except(&self, except: Option<(InstrumentKind, &str)>) -> Money {
        let minor = self
            .instruments
            .iter()
            .filter(|i| i.state.is_payable())
            .filter(|i| except.is_none_or(|(kind, key)| !(i.kind == kind && i.key == key)))
            .map(|i| i.amount_minor)
            .sum();
        Money::from_minor(minor, self.currency)
    }

    pub fn find(&self, which: &Which<'_>) -> Option<&Instrument> {
        self.instruments.iter().find(|i| i.is(which))
    }

    /// The synced Razorpay invoice, while it can be paid.
    pub fn live_invoice(&self) -> Option<&Instrument> {
        self.instruments
            .iter()
            .find(|i| i.kind == InstrumentKind::RazorpayInvoice && i.state.is_payable())
    }

    /// Reserves `offered` if the rule allows it against `owed` (what Flexprice says the
    /// invoice owes now): the payable sum with it stays within what is owed.
    pub fn reserve(&self, offered: Instrument, owed: Money) -> Reserve {
        let which = Which::Key(offered.kind, &offered.key);
        if let Some(existing) = self.find(&which)
            && existing.state != InstrumentState::Closed
        {
            return Reserve::Already(existing.clone());
        }
        let payable = self.payable();
        if payable.minor() + offered.amount_minor > owed.minor() {
            return Reserve::Refused(Exceeds {
                asked: Money::from_minor(offered.amount_minor, self.currency),
                owed,
                payable,
                open: self.described_payable(),
            });
        }
        let mut next = self.clone();
        next.instruments.retain(|i| !i.is(&which));
        next.instruments.push(offered);
        Reserve::Reserved(next)
    }

    /// The reserved and open instruments, described for a person.
    pub fn described_payable(&self) -> Vec<String> {
        self.instruments
            .iter()
            .filter(|i| i.state.is_payable())
            .map(|i| i.describe(self.currency))
            .collect()
    }

    /// The collection with `change` made to the instrument `which` names, or `None` when
    /// there is nothing to change (no such instrument, or the change would move it back:
    /// paid and closed are final, a paid instrument is never closed).
    pub fn with(&self, which: &Which<'_>, change: &InstrumentChange) -> Option<Collection> {
        let mut next = self.clone();
        let instrument = next.instruments.iter_mut().find(|i| i.is(which))?;
        let moved = instrument.apply(change);
        moved.then_some(next)
    }

    /// The open instruments to close so that what is payable fits `owed` again: all of them
    /// when nothing is owed (paid elsewhere, voided), else the synced Razorpay invoice first
    /// (it can be re-issued for what is left; a link cannot), then links newest first, until
    /// it fits. Reserved ones cannot be closed before Razorpay names them; they are settled
    /// first.
    pub fn to_close(&self, owed: Money) -> Vec<Instrument> {
        let mut payable = self.payable().minor();
        let mut open: Vec<&Instrument> = self
            .instruments
            .iter()
            .filter(|i| i.state == InstrumentState::Open)
            .collect();
        open.sort_by_key(|i| {
            (
                i.kind != InstrumentKind::RazorpayInvoice,
                std::cmp::Reverse(i.reserved_at_ms),
            )
        });
        let mut close = Vec::new();
        for instrument in open {
            if payable <= owed.minor() {
                break;
            }
            payable -= instrument.amount_minor;
            close.push(instrument.clone());
        }
        close
    }

    /// Reserved links older than `stale_ms` at `now_ms`: the request that reserved them is
    /// gone; Razorpay is asked whether it made them.
    pub fn stale_links(&self, now_ms: u64, stale_ms: u64) -> Vec<Instrument> {
        self.instruments
            .iter()
            .filter(|i| {
                i.kind == InstrumentKind::Link
                    && i.state == InstrumentState::Reserved
                    && i.reserved_at_ms + stale_ms <= now_ms
            })
            .cloned()
            .collect()
    }
}

impl Instrument {
    fn is(&self, which: &Which<'_>) -> bool {
        match which {
            Which::Key(kind, key) => self.kind == *kind && self.key == *key,
            Which::Razorpay(id) => self.razorpay_id.as_deref() == Some(id),
        }
    }

    /// Makes `change` if it moves the instrument forward; says whether it did.
    fn apply(&mut self, change: &InstrumentChange) -> bool {
        use InstrumentState::*;
        match (change, self.state) {
            (InstrumentChange::Opened { razorpay_id, url }, Reserved) => {
                self.razorpay_id = Some(razorpay_id.clone());
                self.url = Some(url.clone());
                self.state = Open;
                self.reason = None;
            }
            (InstrumentChange::Paid, Reserved | Open | Closed) => self.state = Paid,
            (InstrumentChange::Closed { reason }, Reserved | Open) => {
                self.state = Closed;
                self.reason = Some(reason.clone());
            }
            (InstrumentChange::Attached { payment_id }, Open) if self.payment_id.is_none() => {
                self.payment_id = Some(payment_id.clone());
            }
            _ => return false,
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inr(minor: u64) -> Money {
        Money::from_minor(minor, Currency::INR)
    }

    fn link(key: &str, minor: u64, at: u64) -> Instrument {
        Instrument::reserve(InstrumentKind::Link, key, inr(minor), at)
    }

    fn reserved(collection: &Collection, offered: Instrument, owed: u64) -> Collection {
        match collection.reserve(offered, inr(owed)) {
            Reserve::Reserved(next) => next,
            other => panic!("expected a reservation, got {other:?}"),
        }
    }

    fn opened(collection: &Collection, key: &str, id: &str) -> Collection {
        let change = InstrumentChange::Opened {
            razorpay_id: id.to_owned(),
            url: format!("https://rzp.io/i/{id}"),
        };
        collection
            .with(&Which::Key(InstrumentKind::Link, key), &change)
            .unwrap()
    }

    #[test]
    fn a_second_full_link_is_refused_naming_what_is_open() {
        let empty = Collection::new("inv_1", Currency::INR);
        let one = opened(
            &reserved(&empty, link("fxp_a", 100_000, 1), 100_000),
            "fxp_a",
            "plink_A",
        );
        let Reserve::Refused(exceeds) = one.reserve(link("fxp_b", 100_000, 2), inr(100_000)) else {
            panic!("a second full link must be refused");
        };
        let text = exceeds.to_string();
        assert!(
            text.contains("link plink_A for 1000.00, payment fxp_a"),
            "{text}"
        );
        assert_eq!(exceeds.payable, inr(100_000));
    }

    #[test]
    fn partial_links_reduce_what_may_be_asked_next() {
        let empty = Collection::new("inv_1", Currency::INR);
        let one = reserved(&empty, link("fxp_a", 40_000, 1), 100_000);
        let two = reserved(&one, link("fxp_b", 60_000, 2), 100_000);
        assert_eq!(two.payable(), inr(100_000));
        assert!(matches!(
            two.reserve(link("fxp_c", 1, 3), inr(100_000)),
            Reserve::Refused(_)
        ));
        // The same payment again is the reservation it has, not a second one.
        assert!(matches!(
            two.reserve(link("fxp_a", 40_000, 4), inr(100_000)),
            Reserve::Already(_)
        ));
    }

    #[test]
    fn closed_instruments_free_what_they_held_and_paid_ones_stay_paid() {
        let empty = Collection::new("inv_1", Currency::INR);
        let one = opened(
            &reserved(&empty, link("fxp_a", 100_000, 1), 100_000),
            "fxp_a",
            "plink_A",
        );
        let expired = one
            .with(
                &Which::Razorpay("plink_A"),
                &InstrumentChange::Closed {
                    reason: "expired".into(),
                },
            )
            .unwrap();
        assert_eq!(expired.payable(), inr(0));
        let again = reserved(&expired, link("fxp_b", 100_000, 2), 100_000);
        let paid = again
            .with(
                &Which::Key(InstrumentKind::Link, "fxp_b"),
                &InstrumentChange::Paid,
            )
            .unwrap();
        let close = InstrumentChange::Closed {
            reason: "late".into(),
        };
        assert_eq!(
            paid.with(&Which::Key(InstrumentKind::Link, "fxp_b"), &close),
            None
        );
        assert_eq!(
            paid.with(
                &Which::Key(InstrumentKind::Link, "fxp_b"),
                &InstrumentChange::Paid
            ),
            None
        );
    }

    #[test]
    fn what_to_close_when_the_invoice_owes_less() {
        let empty = Collection::new("inv_1", Currency::INR);
        let a = opened(
            &reserved(&empty, link("fxp_a", 30_000, 1), 100_000),
            "fxp_a",
            "plink_A",
        );
        let b = opened(
            &reserved(&a, link("fxp_b", 30_000, 2), 100_000),
            "fxp_b",
            "plink_B",
        );
        let c = reserved(&b, link("fxp_c", 40_000, 3), 100_000);
        let keys = |owed| {
            c.to_close(inr(owed))
                .into_iter()
                .map(|i| i.key)
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(100_000), Vec::<String>::new());
        // 40 000 reserved cannot be closed yet; the newest open one goes first.
        assert_eq!(keys(70_000), vec!["fxp_b"]);
        assert_eq!(keys(0), vec!["fxp_b", "fxp_a"]);
        assert_eq!(c.stale_links(3 + 60_000, 60_000).len(), 1);
        // A synced invoice, older than both links, is closed first: it can be re-issued.
        let offered = Instrument::reserve(InstrumentKind::RazorpayInvoice, "inv_1", inr(0), 0);
        let synced = reserved(&c, offered, 100_000)
            .with(
                &Which::Key(InstrumentKind::RazorpayInvoice, "inv_1"),
                &InstrumentChange::Opened {
                    razorpay_id: "inv_R".into(),
                    url: "u".into(),
                },
            )
            .unwrap();
        let first = synced.to_close(inr(70_000));
        assert_eq!(first[0].key, "inv_1");
        assert_eq!(c.stale_links(3 + 59_999, 60_000).len(), 0);
    }

    #[test]
    fn a_live_invoice_is_attached_once() {
        let empty = Collection::new("inv_1", Currency::INR);
        let offered =
            Instrument::reserve(InstrumentKind::RazorpayInvoice, "inv_1", inr(100_000), 1);
        assert_eq!(offered.payment_id, None);
        let synced = reserved(&empty, offered, 100_000);
        let which = Which::Key(InstrumentKind::RazorpayInvoice, "inv_1");
        let attach = |id: &str| InstrumentChange::Attached {
            payment_id: id.into(),
        };
        assert_eq!(synced.with(&which, &attach("fxp_a")), None, "not open yet");
        let open = synced
            .with(
                &which,
                &InstrumentChange::Opened {
                    razorpay_id: "inv_R".into(),
                    url: "u".into(),
                },
            )
            .unwrap();
        let attached = open.with(&which, &attach("fxp_a")).unwrap();
        assert_eq!(
            attached.live_invoice().unwrap().payment_id.as_deref(),
            Some("fxp_a")
        );
        assert_eq!(attached.with(&which, &attach("fxp_b")), None);
    }
}
