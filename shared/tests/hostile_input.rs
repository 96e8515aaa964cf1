//! Hostile input at the edges the internet reaches: signature headers, webhook bodies and the
//! `notes` Razorpay sends in many shapes. Nothing panics, nothing ambiguous is accepted.

use proptest::prelude::*;
use shared::adapters::razorpay::wire::Notes;
use shared::domain::secret::Secret;
use shared::domain::signature::{SvixHeaders, SvixSecret, razorpay_sign, verify_razorpay_webhook};
use shared::services::intake::Envelope;

fn secret() -> Secret<String> {
    Secret::new("hostile_input_secret".to_owned())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any body and any header: an answer, never a panic; a match only for the true signature.
    #[test]
    fn razorpay_verification_never_panics_and_never_accepts_a_forgery(
        body in proptest::collection::vec(any::<u8>(), 0..512),
        header in "\\PC{0,80}",
    ) {
        let secret = secret();
        let genuine = razorpay_sign(&secret, &body);
        let result = verify_razorpay_webhook(&body, Some(&header), &[&secret]);
        prop_assert_eq!(result.is_ok(), header.trim() == genuine);
    }

    /// A signature made for one body never verifies another.
    #[test]
    fn a_signature_never_carries_over_to_another_body(
        a in proptest::collection::vec(any::<u8>(), 0..256),
        b in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        prop_assume!(a != b);
        let secret = secret();
        let signature = razorpay_sign(&secret, &a);
        prop_assert!(verify_razorpay_webhook(&b, Some(&signature), &[&secret]).is_err());
    }

    /// Svix headers of any shape: an answer, never a panic.
    #[test]
    fn svix_verification_never_panics(
        id in "\\PC{0,40}", timestamp in "\\PC{0,20}", signature in "\\PC{0,120}",
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let secret = SvixSecret::parse(&Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned())).unwrap();
        let headers = SvixHeaders { id: Some(&id), timestamp: Some(&timestamp), signature: Some(&signature) };
        let _ = secret.verify(headers, &body, 1_795_600_805);
    }

    /// Any bytes as a body: parsed or refused, never a panic.
    #[test]
    fn envelope_parsing_never_panics(body in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let _ = Envelope::parse(&body);
    }
}

#[test]
fn deeply_nested_bodies_never_overflow_the_stack() {
    // The intake reads two fields and skips the rest without recursing: 100,000 levels of
    // nesting cost it nothing. (Only a signed body gets this far.)
    let depth = 100_000;
    let body = format!(
        r#"{{"event":"payment.captured","payload":{}{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let envelope = Envelope::parse(body.as_bytes()).unwrap();
    assert_eq!(envelope.event, "payment.captured");
    // A whole-document parse refuses it (serde_json's recursion limit), rather than crash.
    assert!(serde_json::from_str::<serde_json::Value>(&body).is_err());
}

#[test]
fn a_body_naming_two_events_is_refused_not_read_one_way() {
    // Another parser might take the first `event`, serde the last: refuse the ambiguity.
    let body = br#"{"event":"payment.failed","account_id":"acc_1","event":"payment.captured"}"#;
    assert!(Envelope::parse(body).is_err());
}

#[test]
fn bodies_that_are_not_utf8_are_refused() {
    let body = b"{\"event\":\"payment.captured\xff\"}";
    assert!(Envelope::parse(body).is_err());
}

#[test]
fn notes_in_every_shape_razorpay_sends_are_read() {
    for empty in ["[]", "null", "{}"] {
        let notes: Notes = serde_json::from_str(empty).unwrap();
        assert!(notes.is_empty(), "{empty}");
    }
    let many: serde_json::Map<String, serde_json::Value> = (0..200)
        .map(|i| {
            (
                format!("key_{i}"),
                serde_json::Value::from(format!("value {i}")),
            )
        })
        .collect();
    let notes: Notes = serde_json::from_value(serde_json::Value::Object(many)).unwrap();
    assert_eq!(notes.len(), 200);
    assert_eq!(notes.get("key_199"), Some("value 199"));
    // The docs' PATCH example: a list of key/value objects.
    let listed: Notes =
        serde_json::from_str(r#"[{"key":"policy_name","value":"Jeevan Saral"}]"#).unwrap();
    assert_eq!(listed.get("policy_name"), Some("Jeevan Saral"));
    // Numbers and booleans as values are read as their text.
    let mixed: Notes = serde_json::from_str(r#"{"n": 12, "b": true}"#).unwrap();
    assert_eq!((mixed.get("n"), mixed.get("b")), (Some("12"), Some("true")));
}
