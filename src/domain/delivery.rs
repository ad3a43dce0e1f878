//! An IDnow result webhook, read from its raw body.
//!
//! Only the few `identificationprocess` fields the service needs are read; the rest of the
//! body is checked for syntax and kept as it was sent. Nothing here copies a payload value into
//! an error: error details reach clients and logs, and payloads hold personal data.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use super::{IdError, TransactionNumber};

/// A webhook body that is JSON and carries what an attempt needs.
#[derive(Debug)]
pub struct Delivery<'a> {
    pub transaction_number: TransactionNumber,
    /// `identificationprocess.id`, IDnow's own ident code.
    pub ident_id: Option<String>,
    /// Stored as sent: IDnow adds result values over time.
    pub result: String,
    pub reason: Option<String>,
    /// `identificationprocess.identificationtime`, when it is RFC 3339.
    pub identified_at: Option<DateTime<Utc>>,
    /// Identity of the IDnow event, equal across redeliveries. See the `attempts` migration.
    pub dedup_key: [u8; 32],
    /// The body as received, to be stored and served back unchanged.
    pub payload: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The body is not a JSON document (400).
    #[error("the body is not valid JSON")]
    NotJson(#[source] Option<serde_json::Error>),
    /// The body is JSON, but not an attempt the store can hold (422).
    #[error("{0}")]
    Unprocessable(Cow<'static, str>),
}

fn unprocessable(detail: impl Into<Cow<'static, str>>) -> DeliveryError {
    DeliveryError::Unprocessable(detail.into())
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    identificationprocess: Option<&'a RawValue>,
}

/// Every field as raw JSON, so that a value of the wrong type is ours to report (without
/// echoing it), and a key sent twice is a clean error rather than a silent choice of one.
#[derive(Deserialize)]
struct Process<'a> {
    #[serde(borrow, default)]
    result: Option<&'a RawValue>,
    #[serde(borrow, default)]
    transactionnumber: Option<&'a RawValue>,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    reason: Option<&'a RawValue>,
    #[serde(borrow, default)]
    identificationtime: Option<&'a RawValue>,
}

impl<'a> Delivery<'a> {
    pub fn parse(body: &'a [u8]) -> Result<Self, DeliveryError> {
        let text = std::str::from_utf8(body).map_err(|_| DeliveryError::NotJson(None))?;
        // One pass in the common case: serde_json reads the whole document to find the
        // envelope, so success also proves the body is JSON. Only a refused body pays for the
        // passes that tell "not JSON" (400) from "JSON of the wrong shape" (422).
        let envelope: Envelope<'a> = serde_json::from_str(text).map_err(|_| refusal(text))?;
        check_shape(text)?;
        let process = envelope
            .identificationprocess
            .filter(|raw| is_object(raw.get()))
            .ok_or_else(|| unprocessable("identificationprocess is missing or not an object"))?;
        let process: Process<'a> = serde_json::from_str(process.get())
            .map_err(|_| unprocessable("identificationprocess has a key more than once"))?;

        let result = stored_text_field(process.result, "result")?
            .filter(|result| !result.is_empty())
            .ok_or_else(|| unprocessable("identificationprocess.result is missing"))?;
        let transaction_number = text_field(process.transactionnumber, "transactionnumber")?
            .ok_or_else(|| unprocessable("identificationprocess.transactionnumber is missing"))?;
        let transaction_number =
            TransactionNumber::parse(&transaction_number).map_err(|e| match e {
                IdError::Empty => {
                    unprocessable("identificationprocess.transactionnumber is missing")
                }
                _ => unprocessable(
                    "identificationprocess.transactionnumber is not a valid transaction number",
                ),
            })?;
        let ident_id = stored_text_field(process.id, "id")?;
        let reason = stored_text_field(process.reason, "reason")?;
        let identification_time = text_field(process.identificationtime, "identificationtime")?;

        // An unreadable time is not a reason to lose the attempt: it sorts where it arrived.
        let identified_at = identification_time
            .as_deref()
            .and_then(|time| DateTime::parse_from_rfc3339(time).ok())
            .map(|time| time.with_timezone(&Utc));
        let dedup_key = dedup_key([
            Some(transaction_number.as_str()),
            ident_id.as_deref(),
            Some(result.as_str()),
            identification_time.as_deref(),
        ]);

        Ok(Self {
            transaction_number,
            ident_id,
            result,
            reason,
            identified_at,
            dedup_key,
            payload: text,
        })
    }
}

/// IDnow's payloads nest four levels deep. Far deeper is valid JSON, but nothing a sender of
/// results has a reason to send, and every later reader (PostgreSQL, our clients' parsers)
/// would pay for it; serde_json skips such values without a depth limit of its own.
const MAX_NESTING: usize = 32;

/// What the syntax check does not limit, measured in one pass over valid JSON.
#[derive(Debug, PartialEq, Eq)]
struct Shape {
    depth: usize,
}

impl Shape {
    fn of(json: &str) -> Self {
        let mut shape = Self { depth: 0 };
        let bytes = json.as_bytes();
        let mut depth = 0_usize;
        let mut at = 0;
        while let Some(&byte) = bytes.get(at) {
            if byte == b'"' {
                // Strings are most of a payload: jump past them at once.
                let Some(end) = string_end(bytes, at) else {
                    // Unterminated: not JSON, which the syntax check refuses first.
                    return shape;
                };
                at = end;
                continue;
            }
            at += 1;
            match byte {
                b'[' | b'{' => {
                    depth += 1;
                    shape.depth = shape.depth.max(depth);
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        shape
    }
}

/// Where the JSON string literal whose opening quote is at `at` ends: past its closing quote;
/// `None` when it has none. Jumps from quote or backslash to the next, so that a payload's
/// strings, most of its bytes, are passed over at memchr's pace.
pub(super) fn string_end(bytes: &[u8], at: usize) -> Option<usize> {
    let mut next = at + 1;
    loop {
        let offset = memchr::memchr2(b'"', b'\\', bytes.get(next..)?)?;
        if bytes[next + offset] == b'"' {
            return Some(next + offset + 1);
        }
        // Past the backslash and the character it escapes.
        next += offset + 2;
    }
}

/// Limits serde_json does not apply, and an object at the top: a derived `Deserialize`
/// also reads a struct from an array.
fn check_shape(json: &str) -> Result<(), DeliveryError> {
    let shape = Shape::of(json);
    if shape.depth > MAX_NESTING {
        return Err(unprocessable("the body is nested more than 32 levels deep"));
    }
    if !is_object(json) {
        return Err(unprocessable("the body must be a JSON object"));
    }
    Ok(())
}

/// Why the envelope could not be read from `json`: the syntax first, whatever the order in
/// which the fields come; then the shape; what is left is a key sent twice.
fn refusal(json: &str) -> DeliveryError {
    if let Err(error) = serde_json::from_str::<IgnoredAny>(json) {
        return DeliveryError::NotJson(Some(error));
    }
    match check_shape(json) {
        Err(error) => error,
        Ok(()) => unprocessable("the body has the key identificationprocess twice"),
    }
}

fn is_object(json: &str) -> bool {
    json.trim_start().starts_with('{')
}

/// `identificationprocess.{name}` as text: `None` when absent or `null`, refused when it is
/// not a string.
fn text_field(raw: Option<&RawValue>, name: &str) -> Result<Option<String>, DeliveryError> {
    let Some(raw) = raw else { return Ok(None) };
    serde_json::from_str(raw.get())
        .map_err(|_| unprocessable(format!("identificationprocess.{name} must be a string")))
}

/// As [`text_field`], for a value stored in a `text` column: refused too when it holds what
/// `text` cannot (a NUL character), so that no delivery reaches the store with a value that
/// would fail its statement. (The payload itself keeps `\u0000` as sent.)
fn stored_text_field(raw: Option<&RawValue>, name: &str) -> Result<Option<String>, DeliveryError> {
    let text = text_field(raw, name)?;
    if text.as_deref().is_some_and(|text| text.contains('\0')) {
        return Err(unprocessable(format!(
            "identificationprocess.{name} holds a NUL character, which cannot be stored"
        )));
    }
    Ok(text)
}

/// Length-prefixed, with presence marked, so that no two different tuples hash alike.
fn dedup_key(parts: [Option<&str>; 4]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        match part {
            None => hasher.update([0]),
            Some(part) => {
                hasher.update([1]);
                hasher.update((part.len() as u64).to_be_bytes());
                hasher.update(part.as_bytes());
            }
        }
    }
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SUCCESS: &str = include_str!("../../tests/fixtures/success.json");
    const ABORTED: &str = include_str!("../../tests/fixtures/lifecycle/1_aborted.json");

    fn refused(body: &str) -> String {
        match Delivery::parse(body.as_bytes()) {
            Err(DeliveryError::Unprocessable(detail)) => detail.into_owned(),
            other => panic!("expected 422 for {body}, got {other:?}"),
        }
    }

    #[test]
    fn nesting_is_measured_outside_strings_only() {
        assert_eq!(Shape::of(SUCCESS).depth, 4);
        assert_eq!(Shape::of(r#"{"a":"[[[{{{\"]]]"}"#).depth, 1);
        assert_eq!(Shape::of("[[],[[]]]").depth, 3);
        assert_eq!(Shape::of(r#""\\""#).depth, 0);
        // A number literal of any length is JSON, and is kept as sent (schemathesis found
        // the 422 this once was, which the contract does not name).
        let long = format!(
            r#"{{"identificationprocess":{{"result":"SUCCESS","transactionnumber":"t","n":{}}}}}"#,
            "9".repeat(1_000)
        );
        assert!(Delivery::parse(long.as_bytes()).is_ok(), "1,000 digits");
        let deep = format!(
            r#"{{"identificationprocess":{{"result":"SUCCESS","transactionnumber":"t","x":{}{}}}}}"#,
            "[".repeat(31),
            "]".repeat(31)
        );
        assert!(Delivery::parse(deep.as_bytes()).is_err(), "33 levels");
        let allowed = deep.replacen('[', "", 1).replacen(']', "", 1);
        assert!(Delivery::parse(allowed.as_bytes()).is_ok(), "32 levels");
    }

    #[test]
    fn reads_the_attempt_fields_of_the_upstream_example() {
        let delivery = Delivery::parse(SUCCESS.as_bytes()).expect("valid fixture");
        assert_eq!(
            delivery.transaction_number.as_str(),
            "b2d949eb12ecd6798fa8e2ae66fc4a5acidt"
        );
        assert_eq!(delivery.result, "SUCCESS");
        assert_eq!(delivery.reason, None);
        assert_eq!(delivery.ident_id.as_deref(), Some("TST-EABTZ"));
        assert_eq!(
            delivery.identified_at.map(|t| t.to_rfc3339()),
            Some("2019-03-27T15:47:59+00:00".to_owned())
        );
        assert_eq!(delivery.payload, SUCCESS);
    }

    #[test]
    fn reads_the_abort_reason() {
        let delivery = Delivery::parse(ABORTED.as_bytes()).expect("valid fixture");
        assert_eq!(delivery.result, "ABORTED");
        assert_eq!(delivery.reason.as_deref(), Some("TECH_LIGHTING"));
    }

    #[test]
    fn not_json_is_told_apart_from_the_wrong_json() {
        for body in ["", "{", "{\"a\":1}x", "\u{1}", "{'a':1}"] {
            assert!(
                matches!(
                    Delivery::parse(body.as_bytes()),
                    Err(DeliveryError::NotJson(_))
                ),
                "{body:?}"
            );
        }
        assert!(matches!(
            Delivery::parse(b"{\"a\":\"\xff\"}"),
            Err(DeliveryError::NotJson(_))
        ));
        // A shape error early in the body does not hide a syntax error later on.
        assert!(matches!(
            Delivery::parse(br#"{"identificationprocess": 1, "x": }"#),
            Err(DeliveryError::NotJson(_))
        ));
    }

    #[test]
    fn json_that_is_not_an_attempt_is_unprocessable() {
        assert_eq!(refused("[]"), "the body must be a JSON object");
        assert_eq!(
            refused(r#"[{"identificationprocess":{"result":"SUCCESS","transactionnumber":"t"}}]"#),
            "the body must be a JSON object"
        );
        assert_eq!(
            refused("{}"),
            "identificationprocess is missing or not an object"
        );
        assert_eq!(
            refused(r#"{"identificationprocess":"SUCCESS"}"#),
            "identificationprocess is missing or not an object"
        );
        assert_eq!(
            refused(r#"{"identificationprocess":{"transactionnumber":"t"}}"#),
            "identificationprocess.result is missing"
        );
        assert_eq!(
            refused(r#"{"identificationprocess":{"result":"","transactionnumber":"t"}}"#),
            "identificationprocess.result is missing"
        );
        assert_eq!(
            refused(r#"{"identificationprocess":{"result":7,"transactionnumber":"t"}}"#),
            "identificationprocess.result must be a string"
        );
        assert_eq!(
            refused(r#"{"identificationprocess":{"result":"SUCCESS"}}"#),
            "identificationprocess.transactionnumber is missing"
        );
        assert_eq!(
            refused(
                r#"{"identificationprocess":{"result":"SUCCESS","transactionnumber":"t","result":"FRAUD_SUSPICION_CONFIRMED"}}"#
            ),
            "identificationprocess has a key more than once"
        );
    }

    #[test]
    fn values_the_store_cannot_hold_are_unprocessable() {
        for field in ["result", "reason", "id"] {
            let body = format!(
                r#"{{"identificationprocess":{{"transactionnumber":"t","result":"SUCCESS","{field}":"a\u0000b"}}}}"#
            )
            .replace(r#""result":"SUCCESS","result""#, r#""result""#);
            assert_eq!(
                refused(&body),
                format!(
                    "identificationprocess.{field} holds a NUL character, which cannot be stored"
                )
            );
        }
        assert_eq!(
            refused(
                r#"{"identificationprocess":{"result":"SUCCESS","transactionnumber":"t\u0000"}}"#
            ),
            "identificationprocess.transactionnumber is not a valid transaction number"
        );
        // A lone surrogate is no Unicode text to store.
        assert_eq!(
            refused(r#"{"identificationprocess":{"result":"\ud800","transactionnumber":"t"}}"#),
            "identificationprocess.result must be a string"
        );
        // Elsewhere in the payload, both are valid JSON that the `json` column keeps as sent;
        // an identification time is only read, never stored as text.
        let kept = r#"{"identificationprocess":{"result":"SUCCESS","transactionnumber":"t","identificationtime":"\u0000"},"userdata":{"x":"\u0000\ud800"}}"#;
        assert_eq!(
            Delivery::parse(kept.as_bytes())
                .ok()
                .map(|delivery| delivery.payload),
            Some(kept)
        );
    }

    #[test]
    fn unknown_results_and_odd_times_are_kept() {
        let delivery = Delivery::parse(
            br#"{"identificationprocess":{"result":"CHECK_PENDING","transactionnumber":"t","identificationtime":"yesterday"}}"#,
        )
        .expect("an unknown result is an attempt");
        assert_eq!(delivery.result, "CHECK_PENDING");
        assert_eq!(delivery.identified_at, None);
    }

    #[test]
    fn the_dedup_key_ignores_everything_but_the_event_identity() {
        let a = Delivery::parse(SUCCESS.as_bytes()).expect("valid");
        let pretty = serde_json::to_string_pretty(
            &serde_json::from_str::<serde_json::Value>(SUCCESS).expect("valid"),
        )
        .expect("serialises");
        let b = Delivery::parse(pretty.as_bytes()).expect("valid");
        assert_eq!(a.dedup_key, b.dedup_key);

        let other_result = SUCCESS.replace("\"result\":\"SUCCESS\"", "\"result\":\"CANCELED\"");
        let c = Delivery::parse(other_result.as_bytes()).expect("valid");
        assert_ne!(a.dedup_key, c.dedup_key);
    }

    /// Documents whose strings and keys hold quotes, backslashes, brackets and digits.
    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let text = r#"[\\"\[\]{}0-9a-zé ]{0,12}"#;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            text.prop_map(Value::from),
        ];
        leaf.prop_recursive(6, 64, 4, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::btree_map(text, inner, 0..4)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    fn depth(value: &serde_json::Value) -> usize {
        match value {
            serde_json::Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
            serde_json::Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
            _ => 0,
        }
    }

    proptest! {
        #[test]
        fn dedup_keys_do_not_collide_across_field_boundaries(
            a in proptest::option::of("[a-z]{0,4}"),
            b in proptest::option::of("[a-z]{0,4}"),
            c in proptest::option::of("[a-z]{0,4}"),
            d in proptest::option::of("[a-z]{0,4}"),
            e in proptest::option::of("[a-z]{0,4}"),
            f in proptest::option::of("[a-z]{0,4}"),
            g in proptest::option::of("[a-z]{0,4}"),
            h in proptest::option::of("[a-z]{0,4}"),
        ) {
            let left = [a.as_deref(), b.as_deref(), c.as_deref(), d.as_deref()];
            let right = [e.as_deref(), f.as_deref(), g.as_deref(), h.as_deref()];
            prop_assert_eq!(left == right, dedup_key(left) == dedup_key(right));
        }

        #[test]
        fn shape_agrees_with_the_parsed_document(value in json_value()) {
            let text = serde_json::to_string(&value).expect("serialises");
            let shape = Shape::of(&text);
            prop_assert_eq!(shape.depth, depth(&value), "{}", text);
        }

        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Delivery::parse(&body);
        }
    }
}
