//! A Flexprice customer's name, email and contact, made to fit Razorpay's customer rules
//! before they are sent: a name of 3 to 50 characters of letters, digits, spaces and
//! `. ' / @ ( )`; a contact of at most 15 characters, digits with an optional leading `+`, at
//! least 8 digits; an email of at most 64 characters. What had to change is said, so it can be
//! logged; nothing is silently invented beyond a name made from the customer's id.

/// The longest name Razorpay takes.
pub const MAX_NAME: usize = 50;
/// The shortest name Razorpay takes.
pub const MIN_NAME: usize = 3;
/// The longest contact, country code included.
pub const MAX_CONTACT: usize = 15;
/// The fewest digits in a contact.
pub const MIN_CONTACT_DIGITS: usize = 8;
/// The longest email.
pub const MAX_EMAIL: usize = 64;

/// What is sent to Razorpay for a customer, and what was changed to make it fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerFields {
    pub name: String,
    pub email: Option<String>,
    pub contact: Option<String>,
    /// One line per field that was changed or left out, e.g. `contact: "+1 (415) 555-0100"
    /// sent as "+14155550100"`.
    pub changes: Vec<String>,
}

fn given(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

/// The customer's fields as Razorpay takes them.
pub fn for_razorpay(
    customer_id: &str,
    name: Option<&str>,
    email: Option<&str>,
    contact: Option<&str>,
) -> CustomerFields {
    let mut changes = Vec::new();
    let name = fit_name(customer_id, given(name), &mut changes);
    let email = given(email).and_then(|e| fit_email(e, &mut changes));
    let contact = given(contact).and_then(|c| fit_contact(c, &mut changes));
    CustomerFields {
        name,
        email,
        contact,
        changes,
    }
}

fn allowed_in_name(c: char) -> bool {
    c.is_alphanumeric() || c == ' ' || ".'/@()".contains(c)
}

/// Allowed characters kept, `&` spelt out, other separators made spaces, the rest dropped,
/// spaces collapsed, cut to [`MAX_NAME`]; too short (or none): `Customer {id}`.
fn fit_name(customer_id: &str, name: Option<&str>, changes: &mut Vec<String>) -> String {
    let fallback = || cut(&format!("Customer {customer_id}"), MAX_NAME);
    let Some(given) = name else {
        let made = fallback();
        changes.push(format!("name: none given, sent as {made:?}"));
        return made;
    };
    let mut spelt = String::new();
    for c in given.chars() {
        match c {
            '&' => spelt.push_str(" and "),
            c if allowed_in_name(c) => spelt.push(c),
            c if c.is_whitespace() || "-_,;:|+".contains(c) => spelt.push(' '),
            _ => {}
        }
    }
    let collapsed = spelt.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut fitted = cut(&collapsed, MAX_NAME);
    if fitted.chars().count() < MIN_NAME {
        fitted = fallback();
    }
    if fitted != given {
        changes.push(format!("name: {given:?} sent as {fitted:?}"));
    }
    fitted
}

/// The first `max` characters, without trailing spaces.
fn cut(text: &str, max: usize) -> String {
    text.chars()
        .take(max)
        .collect::<String>()
        .trim_end()
        .to_owned()
}

/// Digits kept, with a leading `+` when given; left out when it still breaks a rule.
fn fit_contact(given: &str, changes: &mut Vec<String>) -> Option<String> {
    let digits: String = given.chars().filter(char::is_ascii_digit).collect();
    let fitted = if given.starts_with('+') {
        format!("+{digits}")
    } else {
        digits.clone()
    };
    if digits.len() < MIN_CONTACT_DIGITS || fitted.len() > MAX_CONTACT {
        changes.push(format!(
            "contact: {given:?} left out (Razorpay takes {MIN_CONTACT_DIGITS} to {MAX_CONTACT} characters of digits)"
        ));
        return None;
    }
    if fitted != given {
        changes.push(format!("contact: {given:?} sent as {fitted:?}"));
    }
    Some(fitted)
}

/// Kept when it fits Razorpay's length and looks like an address; left out otherwise.
fn fit_email(given: &str, changes: &mut Vec<String>) -> Option<String> {
    let fits = given.len() <= MAX_EMAIL
        && given.split_once('@').is_some_and(|(user, host)| {
            !user.is_empty() && host.contains('.') && !given.contains(char::is_whitespace)
        });
    if !fits {
        changes.push(format!(
            "email: {given:?} left out (not an address of at most {MAX_EMAIL} characters)"
        ));
        return None;
    }
    Some(given.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_made_to_fit_and_the_change_is_said() {
        for (given, sent) in [
            ("Acme & Sons, Inc.", "Acme and Sons Inc."),
            ("Jean-Luc O'Neil", "Jean Luc O'Neil"),
            ("Zoë Müller (Berlin)", "Zoë Müller (Berlin)"),
            ("  Ada   Lovelace ", "Ada Lovelace"),
            ("#1 Café™", "1 Café"),
        ] {
            let fields = for_razorpay("cust_1", Some(given), Some("a@b.co"), None);
            assert_eq!(fields.name, sent, "{given}");
            assert_eq!(fields.changes.is_empty(), given.trim() == sent, "{given}");
        }
        let long = "A".repeat(80);
        assert_eq!(
            for_razorpay("c", Some(&long), None, None).name.len(),
            MAX_NAME
        );
        for short in [None, Some("Al"), Some("!!")] {
            let fields = for_razorpay("cust_9", short, None, None);
            assert_eq!(fields.name, "Customer cust_9", "{short:?}");
            assert!(fields.changes[0].starts_with("name:"), "{fields:?}");
        }
    }

    #[test]
    fn contacts_keep_their_digits_and_a_leading_plus_or_are_left_out() {
        for (given, sent) in [
            ("+1 (415) 555-0100", Some("+14155550100")),
            ("9123456780", Some("9123456780")),
            ("+91 98765 43210", Some("+919876543210")),
            ("12345", None),
            ("+1234567890123456", None),
        ] {
            let fields = for_razorpay("c", Some("Ada"), None, Some(given));
            assert_eq!(fields.contact.as_deref(), sent, "{given}");
            assert_eq!(fields.changes.is_empty(), sent == Some(given), "{given}");
        }
    }

    #[test]
    fn emails_that_razorpay_would_refuse_are_left_out() {
        let long = format!("{}@example.com", "a".repeat(60));
        for (given, kept) in [
            ("billing@acme.test", true),
            (long.as_str(), false),
            ("not-an-address", false),
            ("a b@c.de", false),
        ] {
            let fields = for_razorpay("c", Some("Ada"), Some(given), None);
            assert_eq!(fields.email.is_some(), kept, "{given}");
        }
    }
}
