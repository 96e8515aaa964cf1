//! Whether a Flexprice invoice can be collected: the one rule both ways to pay (a payment link,
//! a synced Razorpay invoice) ask before they ask the customer for money.

use std::fmt;

/// Why an invoice cannot be collected now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotPayable {
    Voided,
    /// Not finalized yet (a draft), or in a status this rule does not know.
    NotFinalized {
        status: String,
    },
    /// Paid already (in full, or more).
    Paid,
}

impl NotPayable {
    /// A stable rule name for problem+json answers.
    pub fn rule(&self) -> &'static str {
        match self {
            NotPayable::Voided => "invoice_not_voided",
            NotPayable::NotFinalized { .. } => "invoice_finalized",
            NotPayable::Paid => "invoice_unpaid",
        }
    }
}

impl fmt::Display for NotPayable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotPayable::Voided => f.write_str("the invoice is voided"),
            NotPayable::NotFinalized { status } => {
                write!(f, "the invoice is {status}, not FINALIZED")
            }
            NotPayable::Paid => f.write_str("the invoice is paid"),
        }
    }
}

/// Flexprice's `invoice_status` and `payment_status`: FINALIZED and not paid, or why not.
pub fn payable(invoice_status: &str, payment_status: &str) -> Result<(), NotPayable> {
    match invoice_status {
        "FINALIZED" => {}
        "VOIDED" => return Err(NotPayable::Voided),
        other => {
            return Err(NotPayable::NotFinalized {
                status: other.to_owned(),
            });
        }
    }
    if matches!(payment_status, "SUCCEEDED" | "OVERPAID") {
        return Err(NotPayable::Paid);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_finalized_unpaid_invoice_is_payable() {
        let cases = [
            ("FINALIZED", "PENDING", Ok(())),
            ("FINALIZED", "FAILED", Ok(())),
            ("FINALIZED", "PARTIALLY_PAID", Ok(())),
            ("FINALIZED", "SUCCEEDED", Err(NotPayable::Paid)),
            ("FINALIZED", "OVERPAID", Err(NotPayable::Paid)),
            ("VOIDED", "PENDING", Err(NotPayable::Voided)),
            ("VOIDED", "SUCCEEDED", Err(NotPayable::Voided)),
            (
                "DRAFT",
                "PENDING",
                Err(NotPayable::NotFinalized {
                    status: "DRAFT".into(),
                }),
            ),
        ];
        for (invoice, payment, expected) in cases {
            assert_eq!(payable(invoice, payment), expected, "{invoice} {payment}");
        }
        assert_eq!(NotPayable::Paid.rule(), "invoice_unpaid");
        assert_eq!(
            NotPayable::NotFinalized {
                status: "DRAFT".into()
            }
            .to_string(),
            "the invoice is DRAFT, not FINALIZED"
        );
    }
}
