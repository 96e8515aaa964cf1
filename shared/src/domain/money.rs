//! Exact money: integer subunits with Razorpay's per-currency exponents (`docs/architecture.md` §5).
//!
//! Flexprice sends decimal strings ("1120.50"), callers may send JSON numbers; Razorpay wants
//! integers in the smallest unit. Parsing is done on the decimal text itself: no floats, no
//! `* 100`, no truncation. Anything that is not exactly representable is refused with a typed
//! error that names the rule it broke.

use std::fmt;

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use thiserror::Error;

/// Currencies with no minor unit at Razorpay.
const EXPONENT_0: &[&str] = &[
    "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND", "VUV",
    "XAF", "XOF", "XPF",
];
/// Three-decimal currencies; Razorpay requires the last digit to be 0.
const EXPONENT_3: &[&str] = &["BHD", "IQD", "JOD", "KWD", "OMR", "TND"];
/// Every other currency Razorpay accepts has two decimals (HUF, IDR and TWD included).
const EXPONENT_2: &[&str] = &[
    "AED", "ALL", "AMD", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BGN", "BMD", "BND",
    "BOB", "BRL", "BSD", "BTN", "BWP", "BZD", "CAD", "CHF", "CNY", "COP", "CRC", "CUP", "CVE",
    "CZK", "DKK", "DOP", "DZD", "EGP", "ETB", "EUR", "FJD", "GBP", "GHS", "GIP", "GMD", "GTQ",
    "GYD", "HKD", "HNL", "HRK", "HTG", "HUF", "IDR", "ILS", "INR", "JMD", "KES", "KGS", "KHR",
    "KYD", "KZT", "LAK", "LKR", "LRD", "LSL", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP",
    "MUR", "MVR", "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "PEN",
    "PGK", "PHP", "PKR", "PLN", "QAR", "RON", "RSD", "RUB", "SAR", "SCR", "SEK", "SGD", "SLL",
    "SOS", "SSP", "SVC", "SZL", "THB", "TRY", "TTD", "TWD", "TZS", "UAH", "USD", "UYU", "UZS",
    "XCD", "YER", "ZAR", "ZMW",
];

/// A currency Razorpay accepts, with its exponent (number of decimal places).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    code: &'static str,
    exponent: u8,
}

impl Currency {
    pub const INR: Currency = Currency {
        code: "INR",
        exponent: 2,
    };
    pub const USD: Currency = Currency {
        code: "USD",
        exponent: 2,
    };

    /// Looks a code up case-insensitively ("inr" and "INR" are the same currency).
    pub fn from_code(code: &str) -> Result<Currency, MoneyError> {
        Currency::all()
            .find(|c| c.code.eq_ignore_ascii_case(code))
            .ok_or_else(|| MoneyError::UnsupportedCurrency {
                code: code.to_owned(),
            })
    }

    /// Every currency in the table.
    pub fn all() -> impl Iterator<Item = Currency> {
        let tables: [(&'static [&'static str], u8); 3] =
            [(EXPONENT_0, 0), (EXPONENT_2, 2), (EXPONENT_3, 3)];
        tables
            .into_iter()
            .flat_map(|(table, exponent)| table.iter().map(move |code| Currency { code, exponent }))
    }

    pub fn code(self) -> &'static str {
        self.code
    }

    pub fn exponent(self) -> u8 {
        self.exponent
    }

    /// The smallest amount we accept: INR 100 paise and USD 1 cent as the spec says, otherwise
    /// one subunit (Razorpay's answer is the final word for those).
    pub fn minimum_minor(self) -> u64 {
        match self.code {
            "INR" => 100,
            _ => 1,
        }
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

/// An exact amount: integer subunits of one currency.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    minor: u64,
    currency: Currency,
}

impl Money {
    pub fn from_minor(minor: u64, currency: Currency) -> Money {
        Money { minor, currency }
    }

    /// Parses a decimal string such as "1120.50" exactly. Trailing zeros beyond the currency's
    /// exponent are accepted ("1120.500" is exactly 1120.50); any other extra digit is refused.
    pub fn parse(text: &str, currency: Currency) -> Result<Money, MoneyError> {
        let minor = parse_minor(text, currency)?;
        Ok(Money { minor, currency })
    }

    pub fn minor(self) -> u64 {
        self.minor
    }

    pub fn currency(self) -> Currency {
        self.currency
    }

    pub fn is_zero(self) -> bool {
        self.minor == 0
    }

    /// `self - other`, refusing a currency mismatch and a negative result.
    pub fn checked_sub(self, other: Money) -> Option<Money> {
        if self.currency != other.currency {
            return None;
        }
        self.minor.checked_sub(other.minor).map(|minor| Money {
            minor,
            currency: self.currency,
        })
    }

    /// `self + other`, refusing a currency mismatch and overflow.
    pub fn checked_add(self, other: Money) -> Option<Money> {
        if self.currency != other.currency {
            return None;
        }
        self.minor.checked_add(other.minor).map(|minor| Money {
            minor,
            currency: self.currency,
        })
    }

    /// Checks what Razorpay needs of an amount it is asked to collect: at least the currency
    /// minimum and, for three-decimal currencies, a last digit of 0.
    pub fn check_collectable(self) -> Result<(), MoneyError> {
        let minimum = Money::from_minor(self.currency.minimum_minor(), self.currency);
        if self.minor < minimum.minor {
            return Err(MoneyError::BelowMinimum {
                amount: self.to_string(),
                minimum: minimum.to_string(),
            });
        }
        if self.currency.exponent == 3 && !self.minor.is_multiple_of(10) {
            return Err(MoneyError::ThreeDecimalLastDigit {
                amount: self.to_string(),
            });
        }
        Ok(())
    }

    /// The amount as a decimal string with exactly the currency's number of decimals.
    pub fn to_decimal_string(self) -> String {
        let exponent = u32::from(self.currency.exponent);
        if exponent == 0 {
            return self.minor.to_string();
        }
        let scale = 10u64.pow(exponent);
        format!(
            "{}.{:0width$}",
            self.minor / scale,
            self.minor % scale,
            width = exponent as usize
        )
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.to_decimal_string(), self.currency.code)
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// An amount as the caller wrote it: a JSON string or a JSON number, kept as its exact text
/// so that no float ever touches it. Turn it into [`Money`] once the currency is known.
#[derive(Clone, PartialEq, Eq)]
pub struct DecimalText(String);

impl DecimalText {
    pub fn new(text: impl Into<String>) -> DecimalText {
        DecimalText(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn to_money(&self, currency: Currency) -> Result<Money, MoneyError> {
        Money::parse(&self.0, currency)
    }

    /// The same amount written one way (`"0100.50"`, `100.5` and `"100.500"` are all
    /// `"100.5"`), so that two requests for one amount compare equal before the currency is
    /// known. Text that is not a plain decimal is kept as it is.
    pub fn canonical(&self) -> String {
        let text = self.0.as_str();
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let plain = !whole.is_empty()
            && whole.bytes().all(|b| b.is_ascii_digit())
            && fraction.bytes().all(|b| b.is_ascii_digit());
        if !plain {
            return text.to_owned();
        }
        let whole = whole.trim_start_matches('0');
        let whole = if whole.is_empty() { "0" } else { whole };
        match fraction.trim_end_matches('0') {
            "" => whole.to_owned(),
            fraction => format!("{whole}.{fraction}"),
        }
    }
}

impl fmt::Debug for DecimalText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl<'de> Deserialize<'de> for DecimalText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        let text = raw.get();
        if text.starts_with('"') {
            let s: String = serde_json::from_str(text).map_err(D::Error::custom)?;
            Ok(DecimalText(s))
        } else if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
            // A JSON number: its literal text, exactly as sent.
            Ok(DecimalText(text.to_owned()))
        } else {
            Err(D::Error::custom(
                "an amount must be a JSON number or a decimal string",
            ))
        }
    }
}

/// Why an amount was refused. Each variant names one rule; [`MoneyError::rule`] gives a stable
/// identifier for problem+json responses.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MoneyError {
    #[error("currency {code:?} is not one Razorpay accepts")]
    UnsupportedCurrency { code: String },
    #[error("amount {text:?} is not a decimal number (digits, optionally '.' and more digits)")]
    Malformed { text: String },
    #[error("amount {text:?} is not a number")]
    NotANumber { text: String },
    #[error("amount {text:?} uses exponent notation; send plain decimal digits")]
    ExponentNotation { text: String },
    #[error("amount {text:?} is negative; amounts must be zero or more")]
    Negative { text: String },
    #[error("amount {text:?} has more than {exponent} decimal places, the precision of {currency}")]
    TooPrecise {
        text: String,
        currency: &'static str,
        exponent: u8,
    },
    #[error("amount {text:?} is too large")]
    Overflow { text: String },
    #[error("amount {amount} is below the minimum {minimum}")]
    BelowMinimum { amount: String, minimum: String },
    #[error("amount {amount} must end in 0: Razorpay needs the last of three decimals to be 0")]
    ThreeDecimalLastDigit { amount: String },
}

impl MoneyError {
    /// A stable, machine-readable name of the rule that was broken.
    pub fn rule(&self) -> &'static str {
        match self {
            MoneyError::UnsupportedCurrency { .. } => "supported_currency",
            MoneyError::Malformed { .. } => "decimal_format",
            MoneyError::NotANumber { .. } => "finite_number",
            MoneyError::ExponentNotation { .. } => "no_exponent_notation",
            MoneyError::Negative { .. } => "non_negative",
            MoneyError::TooPrecise { .. } => "currency_precision",
            MoneyError::Overflow { .. } => "max_amount",
            MoneyError::BelowMinimum { .. } => "currency_minimum",
            MoneyError::ThreeDecimalLastDigit { .. } => "three_decimal_last_digit_zero",
        }
    }
}

fn parse_minor(text: &str, currency: Currency) -> Result<u64, MoneyError> {
    let owned = || text.to_owned();
    let lower = text.to_ascii_lowercase();
    let unsigned = lower.strip_prefix(['-', '+']).unwrap_or(&lower);
    if ["nan", "inf", "infinity"].contains(&unsigned) {
        return Err(MoneyError::NotANumber { text: owned() });
    }
    if text.starts_with('-') {
        return Err(MoneyError::Negative { text: owned() });
    }
    let (int_part, frac_part) = match text.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (text, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int_part) || !frac_part.is_none_or(digits) {
        if text.contains(['e', 'E']) && text.bytes().any(|b| b.is_ascii_digit()) {
            return Err(MoneyError::ExponentNotation { text: owned() });
        }
        return Err(MoneyError::Malformed { text: owned() });
    }
    let exponent = usize::from(currency.exponent);
    let frac = frac_part.unwrap_or("");
    let (kept, extra) = frac.split_at(frac.len().min(exponent));
    if extra.bytes().any(|b| b != b'0') {
        return Err(MoneyError::TooPrecise {
            text: owned(),
            currency: currency.code,
            exponent: currency.exponent,
        });
    }
    let overflow = || MoneyError::Overflow { text: owned() };
    let mut minor: u64 = 0;
    let padding = std::iter::repeat_n(b'0', exponent - kept.len());
    for b in int_part.bytes().chain(kept.bytes()).chain(padding) {
        minor = minor
            .checked_mul(10)
            .and_then(|m| m.checked_add(u64::from(b - b'0')))
            .ok_or_else(overflow)?;
    }
    Ok(minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_amount_is_written_one_way() {
        for (text, canonical) in [
            ("100.50", "100.5"),
            ("0100.500", "100.5"),
            ("100", "100"),
            ("100.", "100"),
            ("100.00", "100"),
            ("0.05", "0.05"),
            ("000", "0"),
            ("1e3", "1e3"),
            ("-5.0", "-5.0"),
            (".5", ".5"),
        ] {
            assert_eq!(DecimalText::new(text).canonical(), canonical, "{text}");
        }
    }
    use proptest::prelude::*;

    fn cur(code: &str) -> Currency {
        Currency::from_code(code).unwrap()
    }

    #[test]
    fn exponents_follow_razorpay() {
        assert_eq!(cur("INR").exponent(), 2);
        assert_eq!(cur("jpy").exponent(), 0);
        assert_eq!(cur("KWD").exponent(), 3);
        assert_eq!(cur("HUF").exponent(), 2);
        assert_eq!(cur("usd"), Currency::USD);
        for code in EXPONENT_0.iter().chain(EXPONENT_3).chain(EXPONENT_2) {
            assert_eq!(cur(code).code(), *code);
        }
        assert_eq!(Currency::all().count(), 16 + 6 + EXPONENT_2.len());
    }

    #[test]
    fn unknown_currency_is_refused() {
        let err = Currency::from_code("XXX").unwrap_err();
        assert_eq!(err.rule(), "supported_currency");
        assert!(Currency::from_code("").is_err());
        assert!(Currency::from_code("INRR").is_err());
    }

    #[test]
    fn parses_exact_decimals() {
        let inr = Currency::INR;
        assert_eq!(Money::parse("1120.50", inr).unwrap().minor(), 112050);
        assert_eq!(Money::parse("1120.5", inr).unwrap().minor(), 112050);
        assert_eq!(Money::parse("1120", inr).unwrap().minor(), 112000);
        assert_eq!(Money::parse("1120.500000", inr).unwrap().minor(), 112050);
        assert_eq!(Money::parse("0.01", inr).unwrap().minor(), 1);
        assert_eq!(Money::parse("007.10", inr).unwrap().minor(), 710);
        assert_eq!(Money::parse("1500", cur("JPY")).unwrap().minor(), 1500);
        assert_eq!(Money::parse("1500.000", cur("JPY")).unwrap().minor(), 1500);
        assert_eq!(Money::parse("99.99", cur("KWD")).unwrap().minor(), 99990);
        assert_eq!(Money::parse("0.001", cur("KWD")).unwrap().minor(), 1);
    }

    #[test]
    fn refuses_what_is_not_exact() {
        let inr = Currency::INR;
        let rule = |s: &str, c: Currency| Money::parse(s, c).unwrap_err().rule();
        assert_eq!(rule("1120.505", inr), "currency_precision");
        assert_eq!(rule("0.001", inr), "currency_precision");
        assert_eq!(rule("1.5", cur("JPY")), "currency_precision");
        assert_eq!(rule("-1.00", inr), "non_negative");
        assert_eq!(rule("-0", inr), "non_negative");
        assert_eq!(rule("1e3", inr), "no_exponent_notation");
        assert_eq!(rule("1.5E2", inr), "no_exponent_notation");
        assert_eq!(rule("NaN", inr), "finite_number");
        assert_eq!(rule("-inf", inr), "finite_number");
        assert_eq!(rule("Infinity", inr), "finite_number");
        assert_eq!(rule("", inr), "decimal_format");
        assert_eq!(rule(".5", inr), "decimal_format");
        assert_eq!(rule("5.", inr), "decimal_format");
        assert_eq!(rule("+5", inr), "decimal_format");
        assert_eq!(rule(" 5", inr), "decimal_format");
        assert_eq!(rule("1,000.00", inr), "decimal_format");
        assert_eq!(rule("1.2.3", inr), "decimal_format");
        assert_eq!(rule("0x10", inr), "decimal_format");
        assert_eq!(rule("٣", inr), "decimal_format");
        assert_eq!(rule("184467440737095516.16", inr), "max_amount");
        assert_eq!(rule("99999999999999999999999", cur("JPY")), "max_amount");
    }

    #[test]
    fn largest_amount_parses() {
        let max = Money::parse("184467440737095516.15", Currency::INR).unwrap();
        assert_eq!(max.minor(), u64::MAX);
    }

    #[test]
    fn formats_with_the_currency_exponent() {
        assert_eq!(
            Money::from_minor(112050, Currency::INR).to_decimal_string(),
            "1120.50"
        );
        assert_eq!(
            Money::from_minor(5, Currency::INR).to_decimal_string(),
            "0.05"
        );
        assert_eq!(
            Money::from_minor(1500, cur("JPY")).to_decimal_string(),
            "1500"
        );
        assert_eq!(
            Money::from_minor(99990, cur("KWD")).to_decimal_string(),
            "99.990"
        );
        assert_eq!(
            Money::from_minor(112050, Currency::INR).to_string(),
            "1120.50 INR"
        );
    }

    #[test]
    fn minimums_and_the_three_decimal_rule() {
        let check = |s: &str, c: &str| Money::parse(s, cur(c)).unwrap().check_collectable();
        assert!(check("1.00", "INR").is_ok());
        let err = check("0.50", "INR").unwrap_err();
        assert_eq!(err.rule(), "currency_minimum");
        assert_eq!(
            err.to_string(),
            "amount 0.50 INR is below the minimum 1.00 INR"
        );
        assert!(check("0.01", "USD").is_ok());
        assert_eq!(check("0.00", "USD").unwrap_err().rule(), "currency_minimum");
        assert!(check("1", "JPY").is_ok());
        assert_eq!(check("0", "JPY").unwrap_err().rule(), "currency_minimum");
        assert!(check("99.990", "KWD").is_ok());
        assert_eq!(
            check("99.991", "KWD").unwrap_err().rule(),
            "three_decimal_last_digit_zero"
        );
    }

    #[test]
    fn arithmetic_refuses_mixed_currencies_and_negatives() {
        let a = Money::from_minor(500, Currency::INR);
        let b = Money::from_minor(200, Currency::INR);
        assert_eq!(a.checked_sub(b).unwrap().minor(), 300);
        assert!(b.checked_sub(a).is_none());
        assert!(a.checked_sub(Money::from_minor(1, Currency::USD)).is_none());
        assert_eq!(a.checked_add(b).unwrap().minor(), 700);
        assert!(
            Money::from_minor(u64::MAX, Currency::INR)
                .checked_add(b)
                .is_none()
        );
    }

    #[derive(Deserialize)]
    struct Body {
        amount: DecimalText,
    }

    fn amount_of(json: &str) -> Result<DecimalText, serde_json::Error> {
        serde_json::from_str::<Body>(json).map(|b| b.amount)
    }

    #[test]
    fn json_numbers_and_strings_keep_their_exact_text() {
        assert_eq!(
            amount_of(r#"{"amount": 1120.50}"#).unwrap().as_str(),
            "1120.50"
        );
        assert_eq!(
            amount_of(r#"{"amount": "1120.50"}"#).unwrap().as_str(),
            "1120.50"
        );
        assert_eq!(amount_of(r#"{"amount": 100}"#).unwrap().as_str(), "100");
        // A float would round 0.1 + 0.2 style values; the text is taken as sent.
        let big = amount_of(r#"{"amount": 12345678901234567.89}"#).unwrap();
        assert_eq!(
            big.to_money(Currency::INR).unwrap().minor(),
            1234567890123456789
        );
        let exp = amount_of(r#"{"amount": 1.5e2}"#).unwrap();
        assert_eq!(
            exp.to_money(Currency::INR).unwrap_err().rule(),
            "no_exponent_notation"
        );
        let neg = amount_of(r#"{"amount": -5}"#).unwrap();
        assert_eq!(
            neg.to_money(Currency::INR).unwrap_err().rule(),
            "non_negative"
        );
        assert!(amount_of(r#"{"amount": true}"#).is_err());
        assert!(amount_of(r#"{"amount": null}"#).is_err());
        assert!(amount_of(r#"{"amount": {"v": 1}}"#).is_err());
    }

    fn any_currency() -> impl Strategy<Value = Currency> {
        let all: Vec<Currency> = Currency::all().collect();
        proptest::sample::select(all)
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(currency in any_currency(), minor in any::<u64>()) {
            let money = Money::from_minor(minor, currency);
            let text = money.to_decimal_string();
            prop_assert_eq!(Money::parse(&text, currency).unwrap(), money);
        }

        #[test]
        fn trailing_zeros_never_change_the_value(
            currency in any_currency(), minor in 0u64..1_000_000_000_000, zeros in 1usize..6
        ) {
            let text = Money::from_minor(minor, currency).to_decimal_string();
            let padded = if currency.exponent() == 0 {
                format!("{text}.{}", "0".repeat(zeros))
            } else {
                format!("{text}{}", "0".repeat(zeros))
            };
            prop_assert_eq!(Money::parse(&padded, currency).unwrap().minor(), minor);
        }

        #[test]
        fn one_more_significant_digit_is_refused(
            currency in any_currency(), minor in 0u64..1_000_000_000_000, digit in 1u8..=9
        ) {
            let text = Money::from_minor(minor, currency).to_decimal_string();
            let sep = if currency.exponent() == 0 { "." } else { "" };
            let longer = format!("{text}{sep}{digit}");
            prop_assert_eq!(
                Money::parse(&longer, currency).unwrap_err().rule(), "currency_precision"
            );
        }

        #[test]
        fn negatives_and_exponents_are_refused(currency in any_currency(), n in 1u64..1_000_000) {
            let neg = format!("-{n}");
            let exp = format!("{n}e2");
            prop_assert_eq!(Money::parse(&neg, currency).unwrap_err().rule(), "non_negative");
            prop_assert_eq!(
                Money::parse(&exp, currency).unwrap_err().rule(), "no_exponent_notation"
            );
        }

        #[test]
        fn parsing_never_panics(currency in any_currency(), text in "\\PC{0,40}") {
            let _ = Money::parse(&text, currency);
        }

        #[test]
        fn collectable_means_minimum_and_last_digit(currency in any_currency(), minor in any::<u64>()) {
            let money = Money::from_minor(minor, currency);
            let ok = minor >= currency.minimum_minor()
                && (currency.exponent() != 3 || minor.is_multiple_of(10));
            prop_assert_eq!(money.check_collectable().is_ok(), ok);
        }
    }
}
