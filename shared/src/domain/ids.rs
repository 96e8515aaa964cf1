//! Identifiers that come from outside, parsed once at the edge: only these types reach the
//! services, and every one of them is safe in a URL path, a DynamoDB key and a log line.
//! Nothing is trimmed or repaired: an id with a space, a slash, a `#`, a NUL or a newline is
//! refused, never quietly turned into another id.

use std::fmt;

use thiserror::Error;

/// Why a text is not an identifier of its kind.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {max} characters")]
    TooLong { max: usize },
    #[error("may hold only {allowed}")]
    Charset { allowed: &'static str },
    #[error("must start with {prefix}")]
    Prefix { prefix: &'static str },
}

impl IdError {
    /// A stable rule name for problem+json answers.
    pub fn rule(&self) -> &'static str {
        match self {
            IdError::Empty => "required",
            IdError::TooLong { .. } => "max_length",
            IdError::Charset { .. } => "charset",
            IdError::Prefix { .. } => "prefix",
        }
    }
}

const ID_CHARS: &str = "letters, digits, '_' and '-'";
const ALNUM: &str = "letters and digits";

fn check(
    text: &str,
    max: usize,
    allowed: &'static str,
    ok: impl Fn(u8) -> bool,
) -> Result<(), IdError> {
    if text.is_empty() {
        return Err(IdError::Empty);
    }
    if text.len() > max {
        return Err(IdError::TooLong { max });
    }
    if !text.bytes().all(ok) {
        return Err(IdError::Charset { allowed });
    }
    Ok(())
}

fn id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// A Flexprice object id (an invoice, a customer): 1 to 64 letters, digits, `_` or `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlexpriceId(String);

impl FlexpriceId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(text: &str) -> Result<FlexpriceId, IdError> {
        check(text, Self::MAX_LEN, ID_CHARS, id_byte)?;
        Ok(FlexpriceId(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FlexpriceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `{prefix}` followed by 1 to `max` letters and digits.
fn prefixed(text: &str, prefix: &'static str, max: usize) -> Result<(), IdError> {
    if text.is_empty() {
        return Err(IdError::Empty);
    }
    let rest = text
        .strip_prefix(prefix)
        .ok_or(IdError::Prefix { prefix })?;
    check(rest, max, ALNUM, |b| b.is_ascii_alphanumeric())
}

/// A Razorpay API key id: `rzp_test_` or `rzp_live_`, then letters and digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RazorpayKeyId(String);

impl RazorpayKeyId {
    pub fn parse(text: &str) -> Result<RazorpayKeyId, IdError> {
        let prefix = if text.starts_with("rzp_live_") {
            "rzp_live_"
        } else {
            "rzp_test_"
        };
        prefixed(text, prefix, 40).map_err(|e| match e {
            IdError::Prefix { .. } => IdError::Prefix {
                prefix: "rzp_test_ or rzp_live_",
            },
            other => other,
        })?;
        Ok(RazorpayKeyId(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A Razorpay account id: `acc_`, then letters and digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RazorpayAccountId(String);

impl RazorpayAccountId {
    pub fn parse(text: &str) -> Result<RazorpayAccountId, IdError> {
        prefixed(text, "acc_", 40)?;
        Ok(RazorpayAccountId(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flexprice_ids_are_refused_rather_than_repaired() {
        assert_eq!(
            FlexpriceId::parse("inv_local_inr_0001").unwrap().as_str(),
            "inv_local_inr_0001"
        );
        assert!(FlexpriceId::parse("0b5c9d1e-7a2f-4c3b-9e8d-1a2b3c4d5e6f").is_ok());
        for bad in [
            "inv_nope/../inv_local_inr_0001",
            "inv_local_inr_0001#frag",
            "inv_local_inr_0001?x=1",
            "inv_local_inr_0001\0",
            " inv_local_inr_0001",
            "inv_local_inr_0001 ",
            "inv_local_inr_0001\n",
            "inv_local_inr_0001\t",
            "inv_local_inr_0001/finalize",
            "inv_%2e%2e",
            "ínv_1",
        ] {
            assert_eq!(
                FlexpriceId::parse(bad),
                Err(IdError::Charset { allowed: ID_CHARS }),
                "{bad:?}"
            );
        }
        assert_eq!(FlexpriceId::parse(""), Err(IdError::Empty));
        assert_eq!(
            FlexpriceId::parse(&"a".repeat(65)),
            Err(IdError::TooLong { max: 64 })
        );
    }

    #[test]
    fn razorpay_key_and_account_ids_have_their_prefix_and_nothing_else() {
        assert!(RazorpayKeyId::parse("rzp_test_1DP5mmOlF5G5ag").is_ok());
        assert!(RazorpayKeyId::parse("rzp_live_localdemo").is_ok());
        for bad in [
            "rzp_test_abc\0",
            "rzp_test_abc\r\n",
            "rzp_test_",
            "rzp_test_a b",
        ] {
            assert!(RazorpayKeyId::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            RazorpayKeyId::parse("key_123").unwrap_err().rule(),
            "prefix"
        );
        assert!(RazorpayAccountId::parse("acc_FlexrzpLocal01").is_ok());
        assert!(RazorpayAccountId::parse("acc_x\n").is_err());
        assert!(RazorpayAccountId::parse("account").is_err());
    }
}
