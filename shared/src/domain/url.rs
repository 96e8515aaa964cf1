//! A URL we hand to Razorpay for the customer's browser (`callback_url`): absolute `http` or
//! `https`, with a host, at most 2,048 characters, printable ASCII only. Parsed once at the
//! edge and never repaired: a space, a control character, a user-info part (`https://bank@evil`)
//! or another scheme (`javascript:`) is refused.

use std::fmt;

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UrlError {
    #[error("must be at most {max} characters")]
    TooLong { max: usize },
    #[error("may hold only printable ASCII characters, no spaces (percent-encode the rest)")]
    Charset,
    #[error("must be an absolute http:// or https:// URL")]
    Scheme,
    #[error("must name a host (letters, digits, '-' and '.', optionally a port)")]
    Host,
}

impl UrlError {
    /// A stable rule name for problem+json answers.
    pub fn rule(&self) -> &'static str {
        match self {
            UrlError::TooLong { .. } => "max_length",
            UrlError::Charset => "charset",
            UrlError::Scheme => "http_url",
            UrlError::Host => "http_url_host",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl(String);

impl HttpUrl {
    pub const MAX_LEN: usize = 2048;

    pub fn parse(text: &str) -> Result<HttpUrl, UrlError> {
        if text.len() > Self::MAX_LEN {
            return Err(UrlError::TooLong { max: Self::MAX_LEN });
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(UrlError::Charset);
        }
        let lower = text.to_ascii_lowercase();
        let rest = lower
            .strip_prefix("https://")
            .or_else(|| lower.strip_prefix("http://"))
            .ok_or(UrlError::Scheme)?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if !valid_authority(authority) {
            return Err(UrlError::Host);
        }
        Ok(HttpUrl(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `host` or `host:port`; no user info.
fn valid_authority(authority: &str) -> bool {
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_http_urls_with_a_host_are_taken_as_given() {
        for good in [
            "https://example.com/paid",
            "http://localhost:8080/cb?x=1&y=%20z#top",
            "HTTPS://Shop.Example.com",
            "https://example.com",
        ] {
            assert_eq!(HttpUrl::parse(good).unwrap().as_str(), good);
        }
    }

    #[test]
    fn anything_else_is_refused_with_its_rule() {
        let rule = |text: &str| HttpUrl::parse(text).unwrap_err().rule();
        assert_eq!(rule("http://"), "http_url_host");
        assert_eq!(rule("https://exa mple.com/"), "charset");
        assert_eq!(rule("https://example.com/\0"), "charset");
        assert_eq!(rule("https://example.com/\n"), "charset");
        assert_eq!(rule("javascript:alert(1)"), "http_url");
        assert_eq!(rule("ftp://example.com/"), "http_url");
        assert_eq!(rule("//example.com/"), "http_url");
        assert_eq!(rule("https://bank.com@evil.example/"), "http_url_host");
        assert_eq!(rule("https://example.com:port/"), "http_url_host");
        assert_eq!(rule("https://exämple.com/"), "charset");
        assert_eq!(
            rule(&format!("https://example.com/{}", "a".repeat(2048))),
            "max_length"
        );
    }
}
