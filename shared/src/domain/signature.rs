//! Webhook and callback signatures: Razorpay (hex HMAC-SHA256 of the raw body) and Svix
//! (Flexprice's outbound webhooks). Every comparison is constant time; nothing here parses the
//! body before it is verified.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use thiserror::Error;

use super::secret::Secret;

type HmacSha256 = Hmac<Sha256>;

/// Why a signature was not accepted. The variants say what was wrong with the request, never
/// anything about the secret.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignatureError {
    #[error("the signature header is missing")]
    Missing,
    #[error("the signature header is malformed")]
    Malformed,
    #[error("the signature does not match")]
    Mismatch,
    #[error("the webhook timestamp is outside the {tolerance_secs} s tolerance")]
    Stale { tolerance_secs: u64 },
    #[error("no signing secret is configured")]
    NoSecret,
    #[error("the signing secret is not valid")]
    BadSecret,
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this never fails.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

fn decode_lower_hex_32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// Which of the configured secrets verified a signature (0 = current, 1 = previous, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretIndex(pub usize);

/// Razorpay's signature of a body: lowercase hex HMAC-SHA256 keyed with the webhook secret.
pub fn razorpay_sign(secret: &Secret<String>, body: &[u8]) -> String {
    hex::encode(hmac_sha256(secret.expose().as_bytes(), &[body]))
}

/// Verifies `X-Razorpay-Signature` over the raw body against each configured secret (current
/// first, then the previous one during a rotation). Never give it the API key secret.
pub fn verify_razorpay_webhook(
    body: &[u8],
    header: Option<&str>,
    secrets: &[&Secret<String>],
) -> Result<SecretIndex, SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    if secrets.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let given = decode_lower_hex_32(header.trim()).ok_or(SignatureError::Malformed)?;
    // Each comparison is constant time. Stopping at the first match only tells which secret
    // matched (current or previous), which is no secret.
    secrets
        .iter()
        .position(|secret| {
            let expected = hmac_sha256(secret.expose().as_bytes(), &[body]);
            bool::from(expected.ct_eq(&given))
        })
        .map(SecretIndex)
        .ok_or(SignatureError::Mismatch)
}

/// The query parameters Razorpay appends to a payment link's `callback_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentLinkCallback<'a> {
    pub payment_link_id: &'a str,
    /// Empty when the link had no `reference_id`.
    pub reference_id: &'a str,
    pub status: &'a str,
    pub payment_id: &'a str,
    pub signature: &'a str,
}

/// Verifies a payment-link callback redirect. Keyed with the **API key secret** over
/// `"{plink_id}|{reference_id}|{status}|{payment_id}"`.
pub fn verify_payment_link_callback(
    key_secret: &Secret<String>,
    callback: &PaymentLinkCallback<'_>,
) -> Result<(), SignatureError> {
    let given = decode_lower_hex_32(callback.signature).ok_or(SignatureError::Malformed)?;
    let expected = hmac_sha256(
        key_secret.expose().as_bytes(),
        &[
            callback.payment_link_id.as_bytes(),
            b"|",
            callback.reference_id.as_bytes(),
            b"|",
            callback.status.as_bytes(),
            b"|",
            callback.payment_id.as_bytes(),
        ],
    );
    if bool::from(expected.ct_eq(&given)) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Svix allows five minutes of clock skew either way.
pub const SVIX_TOLERANCE_SECS: u64 = 5 * 60;

/// The three Svix headers of a Flexprice webhook.
#[derive(Debug, Clone, Copy)]
pub struct SvixHeaders<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// A Svix signing secret (`whsec_` followed by base64), decoded once.
pub struct SvixSecret {
    key: Secret<Vec<u8>>,
}

impl SvixSecret {
    pub fn parse(secret: &Secret<String>) -> Result<SvixSecret, SignatureError> {
        let text = secret.expose();
        let encoded = text.strip_prefix("whsec_").unwrap_or(text);
        let key = BASE64
            .decode(encoded)
            .map_err(|_| SignatureError::BadSecret)?;
        if key.is_empty() {
            return Err(SignatureError::BadSecret);
        }
        Ok(SvixSecret {
            key: Secret::new(key),
        })
    }

    fn mac(&self, id: &str, timestamp: &str, body: &[u8]) -> [u8; 32] {
        hmac_sha256(
            self.key.expose(),
            &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body],
        )
    }

    /// The `svix-signature` header value for a message (used by the Flexprice simulator).
    pub fn sign(&self, id: &str, timestamp: u64, body: &[u8]) -> String {
        format!(
            "v1,{}",
            BASE64.encode(self.mac(id, &timestamp.to_string(), body))
        )
    }

    /// Verifies a Svix-signed webhook: any one of the space-separated `v1,` signatures must
    /// match, and the timestamp must be within [`SVIX_TOLERANCE_SECS`] of `now_unix`.
    pub fn verify(
        &self,
        headers: SvixHeaders<'_>,
        body: &[u8],
        now_unix: u64,
    ) -> Result<(), SignatureError> {
        let (id, timestamp, signatures) = match (headers.id, headers.timestamp, headers.signature) {
            (Some(i), Some(t), Some(s)) => (i, t, s),
            _ => return Err(SignatureError::Missing),
        };
        let sent: u64 = timestamp.parse().map_err(|_| SignatureError::Malformed)?;
        if sent.abs_diff(now_unix) > SVIX_TOLERANCE_SECS {
            return Err(SignatureError::Stale {
                tolerance_secs: SVIX_TOLERANCE_SECS,
            });
        }
        let expected = self.mac(id, timestamp, body);
        let mut any_v1 = false;
        let mut matched = false;
        for candidate in signatures.split_whitespace() {
            let Some(encoded) = candidate.strip_prefix("v1,") else {
                continue;
            };
            any_v1 = true;
            if let Ok(given) = BASE64.decode(encoded) {
                matched |= bool::from(expected.as_slice().ct_eq(&given));
            }
        }
        match (any_v1, matched) {
            (_, true) => Ok(()),
            (false, false) => Err(SignatureError::Malformed),
            (true, false) => Err(SignatureError::Mismatch),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// razorpay-python `tests/mocks/fake_payment_authorized_webhook.json`, byte for byte
    /// (pretty JSON ending in a newline).
    const FAKE_AUTHORIZED: &[u8] =
        include_bytes!("../../tests/data/fake_payment_authorized_webhook.json");

    fn s(v: &str) -> Secret<String> {
        Secret::new(v.to_owned())
    }

    #[test]
    fn official_razorpay_webhook_vectors() {
        let v1 = "d60e67fd884556c045e9be7dad57903e33efc7172c17c6e3ef77db42d2b366e9";
        let v2 = "dda9ca344c56ccbd90167b1be0fd99dfa92fe2b827020f27e2a46024e31c7c99";
        assert_eq!(FAKE_AUTHORIZED.len(), 971);
        assert_eq!(razorpay_sign(&s("key_secret"), FAKE_AUTHORIZED), v1);
        assert_eq!(
            verify_razorpay_webhook(FAKE_AUTHORIZED, Some(v1), &[&s("key_secret")]),
            Ok(SecretIndex(0))
        );
        assert_eq!(
            verify_razorpay_webhook(FAKE_AUTHORIZED, Some(v2), &[&s("chosen_webhook_secret")]),
            Ok(SecretIndex(0))
        );
        let v3 = "2fe04e22977002e6c7cb553adab8b460cb9e2a4970d5953cb27a8472752e3bbc";
        assert_eq!(
            verify_razorpay_webhook(br#"{"a":1,"b":2,"c":{"d":3}}"#, Some(v3), &[&s("123456")]),
            Ok(SecretIndex(0))
        );
    }

    #[test]
    fn a_stripped_trailing_newline_breaks_the_signature() {
        let v1 = "d60e67fd884556c045e9be7dad57903e33efc7172c17c6e3ef77db42d2b366e9";
        let stripped = &FAKE_AUTHORIZED[..FAKE_AUTHORIZED.len() - 1];
        assert_eq!(
            razorpay_sign(&s("key_secret"), stripped),
            "0971cde1d9216765d9aa72c766aef4a913fedfd2d36cc05cbca5de1ef90c12e4"
        );
        assert_eq!(
            verify_razorpay_webhook(stripped, Some(v1), &[&s("key_secret")]),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn previous_secret_is_accepted_during_rotation() {
        let body = br#"{"event":"payment.captured"}"#;
        let old = s("old-secret");
        let new = s("new-secret");
        let sig_old = razorpay_sign(&old, body);
        let sig_new = razorpay_sign(&new, body);
        assert_eq!(
            verify_razorpay_webhook(body, Some(&sig_new), &[&new, &old]),
            Ok(SecretIndex(0))
        );
        assert_eq!(
            verify_razorpay_webhook(body, Some(&sig_old), &[&new, &old]),
            Ok(SecretIndex(1))
        );
        assert_eq!(
            verify_razorpay_webhook(body, Some(&sig_old), &[&new]),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn bad_razorpay_headers_are_refused() {
        let body = b"{}";
        let secret = s("k");
        let good = razorpay_sign(&secret, body);
        let check = |h: Option<&str>| verify_razorpay_webhook(body, h, &[&secret]);
        assert_eq!(check(None), Err(SignatureError::Missing));
        assert_eq!(check(Some("")), Err(SignatureError::Malformed));
        assert_eq!(check(Some(&good[..63])), Err(SignatureError::Malformed));
        assert_eq!(
            check(Some(&good.to_uppercase())),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            check(Some(&format!("sha256={good}"))),
            Err(SignatureError::Malformed)
        );
        assert_eq!(check(Some(&"0".repeat(64))), Err(SignatureError::Mismatch));
        assert_eq!(
            verify_razorpay_webhook(body, Some(&good), &[]),
            Err(SignatureError::NoSecret)
        );
        assert_eq!(check(Some(&good)), Ok(SecretIndex(0)));
    }

    #[test]
    fn official_payment_link_callback_vectors() {
        let cases = [
            (
                "EnLs21M47BllR3X8PSFtjtbd",
                (
                    "plink_IH3cNucfVEgV68",
                    "TSsd1989",
                    "paid",
                    "pay_IH3d0ara9bSsjQ",
                ),
                "07ae18789e35093e51d0a491eb9922646f3f82773547e5b0f67ee3f2d3bf7d5b",
            ),
            (
                "key_secret",
                (
                    "fake_razorpay_payment_link_id",
                    "fake_reference_id",
                    "paid",
                    "pay_IH3d0ara9bSsjQ",
                ),
                "b8a6acda585c9b74e9da393c7354c7e685e37e69d30ae654730f042e674e0283",
            ),
        ];
        for (secret, (plink, reference, status, payment), signature) in cases {
            let mut callback = PaymentLinkCallback {
                payment_link_id: plink,
                reference_id: reference,
                status,
                payment_id: payment,
                signature,
            };
            assert_eq!(verify_payment_link_callback(&s(secret), &callback), Ok(()));
            callback.status = "cancelled";
            assert_eq!(
                verify_payment_link_callback(&s(secret), &callback),
                Err(SignatureError::Mismatch)
            );
        }
    }

    const SVIX_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SVIX_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SVIX_TS: u64 = 1614265330;
    const SVIX_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn svix_secret() -> SvixSecret {
        SvixSecret::parse(&s("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")).unwrap()
    }

    fn headers(sig: &str) -> SvixHeaders<'_> {
        SvixHeaders {
            id: Some(SVIX_ID),
            timestamp: Some("1614265330"),
            signature: Some(sig),
        }
    }

    #[test]
    fn svix_published_example_verifies() {
        let secret = svix_secret();
        assert_eq!(secret.sign(SVIX_ID, SVIX_TS, SVIX_BODY), SVIX_SIG);
        assert_eq!(secret.verify(headers(SVIX_SIG), SVIX_BODY, SVIX_TS), Ok(()));
        // Several signatures (secret rotation) and unknown versions: any v1 match wins.
        let several = format!("v2,abc v1,AAAA {SVIX_SIG}");
        assert_eq!(
            secret.verify(headers(&several), SVIX_BODY, SVIX_TS + 10),
            Ok(())
        );
        // The bare base64 secret (no whsec_ prefix) is the same key.
        let bare = SvixSecret::parse(&s("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")).unwrap();
        assert_eq!(bare.verify(headers(SVIX_SIG), SVIX_BODY, SVIX_TS), Ok(()));
    }

    #[test]
    fn svix_refuses_tampering_staleness_and_garbage() {
        let secret = svix_secret();
        let tampered = br#"{"test": 2432232315}"#;
        assert_eq!(
            secret.verify(headers(SVIX_SIG), tampered, SVIX_TS),
            Err(SignatureError::Mismatch)
        );
        let stale = Err(SignatureError::Stale {
            tolerance_secs: 300,
        });
        assert_eq!(
            secret.verify(headers(SVIX_SIG), SVIX_BODY, SVIX_TS + 301),
            stale
        );
        assert_eq!(
            secret.verify(headers(SVIX_SIG), SVIX_BODY, SVIX_TS - 301),
            stale
        );
        assert_eq!(
            secret.verify(headers(SVIX_SIG), SVIX_BODY, SVIX_TS + 300),
            Ok(())
        );
        assert_eq!(
            secret.verify(headers("v2,xyz"), SVIX_BODY, SVIX_TS),
            Err(SignatureError::Malformed)
        );
        let mut missing = headers(SVIX_SIG);
        missing.id = None;
        assert_eq!(
            secret.verify(missing, SVIX_BODY, SVIX_TS),
            Err(SignatureError::Missing)
        );
        let mut bad_ts = headers(SVIX_SIG);
        bad_ts.timestamp = Some("yesterday");
        assert_eq!(
            secret.verify(bad_ts, SVIX_BODY, SVIX_TS),
            Err(SignatureError::Malformed)
        );
        // A different id under the same signature fails: the id is signed.
        let mut other_id = headers(SVIX_SIG);
        other_id.id = Some("msg_other");
        assert_eq!(
            secret.verify(other_id, SVIX_BODY, SVIX_TS),
            Err(SignatureError::Mismatch)
        );
        assert!(SvixSecret::parse(&s("whsec_%%%")).is_err());
        assert!(SvixSecret::parse(&s("whsec_")).is_err());
    }
}
