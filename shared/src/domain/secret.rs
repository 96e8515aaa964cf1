//! A wrapper for secret values whose `Debug` and `Display` never show the value, and which
//! deliberately has no `Serialize`, so a secret cannot end up in a response or a log by accident.

use std::fmt;

use serde::{Deserialize, Deserializer};

#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Secret<T> {
        Secret(value)
    }

    /// The value itself. Call it only where the secret is used (signing, an auth header).
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Credentials {
        key_id: String,
        key_secret: Secret<String>,
    }

    #[test]
    fn debug_and_display_never_show_the_value() {
        let secret = Secret::new("rzp_very_secret".to_owned());
        assert_eq!(format!("{secret:?}"), "Secret([REDACTED])");
        assert_eq!(format!("{secret}"), "[REDACTED]");
        assert_eq!(format!("{secret:#?}"), "Secret([REDACTED])");
        assert_eq!(secret.expose(), "rzp_very_secret");
    }

    #[test]
    fn a_struct_holding_a_secret_debugs_without_it() {
        let creds: Credentials =
            serde_json::from_str(r#"{"key_id":"rzp_test_1","key_secret":"hush-hush"}"#).unwrap();
        let shown = format!("{creds:?} {creds:#?}");
        assert!(shown.contains("rzp_test_1"));
        assert!(!shown.contains("hush-hush"));
        assert_eq!(creds.key_secret.expose(), "hush-hush");
    }
}
