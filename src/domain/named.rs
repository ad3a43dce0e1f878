//! The identifications a refused webhook body names: what a kept rejected delivery is erased
//! by, and what a late one is checked against before it is kept.
//!
//! A refused body is often not readable as a whole: a key or an `identificationprocess` sent
//! twice, a body cut short, a raw control character in a free-text field, bytes after its
//! end. Erasure must still find it, so it is read as far as it is readable, and where it is
//! not readable to its end, its bytes are searched for the key too. Both err towards naming
//! too much (a `transactionnumber` key elsewhere in the body is taken as well), which only
//! ever erases or refuses to keep more, never keeps what should go.

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::TransactionNumber;

/// At most this many identifications are taken from one body: IDnow's name one, a body that
/// names more is nobody's delivery, and each one costs a comparison with every other.
pub const MAX_NAMED: usize = 16;

/// The valid transaction numbers `body` names as `identificationprocess.transactionnumber`,
/// each once, in the order they come (those found by searching the bytes after those read),
/// at most [`MAX_NAMED`]. Every occurrence counts, since which one a reader would believe is
/// not ours to guess.
pub fn transaction_numbers_of(body: &[u8]) -> Vec<TransactionNumber> {
    let mut named = Named::default();
    let mut reader = serde_json::Deserializer::from_slice(body);
    let read_whole =
        Walk::Body(&mut named).deserialize(&mut reader).is_ok() && reader.end().is_ok();
    if !read_whole {
        named.search(body);
    }
    named.0
}

#[derive(Default)]
struct Named(Vec<TransactionNumber>);

impl Named {
    fn add(&mut self, number: &str) {
        if self.0.len() == MAX_NAMED {
            return;
        }
        if let Ok(number) = TransactionNumber::parse(number) {
            if !self.0.contains(&number) {
                self.0.push(number);
            }
        }
    }

    /// Every `"transactionnumber": "…"` in `body`'s bytes, whatever surrounds it.
    fn search(&mut self, body: &[u8]) {
        const KEY: &[u8] = b"\"transactionnumber\"";
        for at in memchr::memmem::find_iter(body, KEY) {
            if self.0.len() == MAX_NAMED {
                return;
            }
            let rest = skip_space(&body[at + KEY.len()..]);
            let Some(rest) = rest.strip_prefix(b":") else {
                continue;
            };
            if let Some(literal) = string_literal(skip_space(rest)) {
                if let Ok(number) = serde_json::from_slice::<String>(literal) {
                    self.add(&number);
                }
            }
        }
    }
}

fn skip_space(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|byte| !matches!(byte, b' ' | b'\t' | b'\n' | b'\r'))
        .unwrap_or(bytes.len());
    &bytes[start..]
}

/// The JSON string literal `bytes` starts with, quotes included, escapes undecoded.
fn string_literal(bytes: &[u8]) -> Option<&[u8]> {
    if bytes.first() != Some(&b'"') {
        return None;
    }
    let mut at = 1;
    loop {
        let offset = memchr::memchr2(b'"', b'\\', bytes.get(at..)?)?;
        if bytes[at + offset] == b'"' {
            return Some(&bytes[..at + offset + 1]);
        }
        // Past the backslash and the character it escapes.
        at += offset + 2;
    }
}

/// The walk through the body's structure: its object, its `identificationprocess` objects and
/// their `transactionnumber` strings. Each `identificationprocess` and each number is taken
/// as raw JSON first and read on its own, so that what is wrong inside one (not an object, a
/// number out of range, a syntax error) ends only that one, not the walk.
enum Walk<'n> {
    Body(&'n mut Named),
    Process(&'n mut Named),
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, reader: D) -> Result<(), D::Error> {
        reader.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("an object")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<(), M::Error> {
        let (named, key) = match self {
            Self::Body(named) => (named, "identificationprocess"),
            Self::Process(named) => (named, "transactionnumber"),
        };
        while let Some(wanted) = map.next_key_seed(KeyIs(key))? {
            if !wanted {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let value: &RawValue = map.next_value()?;
            if key == "transactionnumber" {
                if let Ok(number) = serde_json::from_str::<String>(value.get()) {
                    named.add(&number);
                }
            } else {
                let mut process = serde_json::Deserializer::from_str(value.get());
                // A process that is not an object, or not readable, names nothing.
                let _ = Walk::Process(&mut *named).deserialize(&mut process);
            }
        }
        Ok(())
    }
}

/// Whether a key is the one sought, read without keeping it.
struct KeyIs(&'static str);

impl<'de> DeserializeSeed<'de> for KeyIs {
    type Value = bool;

    fn deserialize<D: serde::Deserializer<'de>>(self, reader: D) -> Result<bool, D::Error> {
        reader.deserialize_str(self)
    }
}

impl Visitor<'_> for KeyIs {
    type Value = bool;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a key")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<bool, E> {
        Ok(key == self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUCCESS: &str = include_str!("../../tests/fixtures/success.json");

    fn assert_each_names(bodies: &[&str], expected: &[&str]) {
        for body in bodies {
            assert_eq!(named(body.as_bytes()), expected, "{body}");
        }
    }

    fn named(body: &[u8]) -> Vec<String> {
        transaction_numbers_of(body)
            .into_iter()
            .map(|number| number.as_str().to_owned())
            .collect()
    }

    #[test]
    fn a_refused_body_is_read_for_its_identifications_as_far_as_it_is_readable() {
        assert_each_names(
            &[
                // A key sent twice, inside identificationprocess or of it.
                r#"{"identificationprocess":{"result":"A","result":"A","transactionnumber":"tn-1"}}"#,
                r#"{"identificationprocess":{"transactionnumber":"tn-1"},"identificationprocess":{}}"#,
                // Cut short after the number, or followed by bytes after its end.
                r#"{"identificationprocess":{"transactionnumber":"tn-1","result":"SUCC"#,
                r#"{"identificationprocess":{"transactionnumber":"tn-1"}} and more"#,
                // The key written with an escape reads as the key.
                r#"{"identificationprocess":{"transaction\u006eumber":"tn-1"}}"#,
                // The same number twice counts once.
                r#"{"identificationprocess":{"transactionnumber":"tn-1","transactionnumber":"tn-1"}}"#,
            ],
            &["tn-1"],
        );
        let mut cut = br#"{"identificationprocess":{"transactionnumber":"tn-1","id":""#.to_vec();
        cut.extend_from_slice(b"\xff\xfe");
        assert_eq!(named(&cut), ["tn-1"], "invalid UTF-8 after the number");

        // Every number named, in order: which one a reader believes is not ours to guess.
        assert_eq!(
            named(br#"{"identificationprocess":{"transactionnumber":"tn-2","transactionnumber":"tn-1"}}"#),
            ["tn-2", "tn-1"]
        );
        assert_eq!(
            named(br#"{"identificationprocess":{"transactionnumber":"tn-2"},"identificationprocess":{"transactionnumber":"tn-1"}}"#),
            ["tn-2", "tn-1"]
        );
    }

    #[test]
    fn only_valid_numbers_in_their_place_are_identifications() {
        assert_each_names(
            &[
                "not json",
                r#"{"x":{"identificationprocess":{"transactionnumber":"tn-1"}}}"#,
                r#"{"identificationprocess":{"x":{"transactionnumber":"tn-1"}}}"#,
                r#"{"identificationprocess":"tn-1","transactionnumber":"tn-1"}"#,
                r#"{"identificationprocess":{"transactionnumber":["tn-1"]}}"#,
                r#"{"identificationprocess":{"transactionnumber":""}}"#,
                r#"{"identificationprocess":{"transactionnumber":"tn 1"}}"#,
                r#"{"identificationprocess":{"transactionnumber":"tn-1"#,
                r#"{"identificationprocess":{"transactionnumber":"tn-1\"#,
            ],
            &[],
        );
        // Not an object at all: its bytes are searched, and name it.
        assert_eq!(
            named(br#"[{"identificationprocess":{"transactionnumber":"tn-1"}}]"#),
            ["tn-1"]
        );
        // A value that is no number does not hide the next one.
        assert_eq!(
            named(
                br#"{"identificationprocess":{"transactionnumber":7,"transactionnumber":"tn-1"}}"#
            ),
            ["tn-1"]
        );
        assert_eq!(
            named(SUCCESS.as_bytes()),
            ["b2d949eb12ecd6798fa8e2ae66fc4a5acidt"]
        );
    }

    #[test]
    fn what_stops_the_reading_does_not_hide_a_number_after_it() {
        assert_each_names(&[
            // A raw line break in a free-text field, as careless senders write them.
            "{\"identificationprocess\":{\"agentname\":\"A\nB\",\"transactionnumber\":\"tn-1\"}}",
            // Not JSON before the number.
            r#"{"identificationprocess":{"x":01,"transactionnumber":"tn-1"}}"#,
            r#"{"identificationprocess":{"x":NaN,"transactionnumber":"tn-1"}}"#,
            r#"{"a":1,,"identificationprocess":{"transactionnumber":"tn-1"}}"#,
            // An identificationprocess that is not an object before the one that is.
            r#"{"identificationprocess":null,"identificationprocess":{"transactionnumber":"tn-1"}}"#,
            // A number out of range, or not a string, before the one that is.
            r#"{"identificationprocess":{"transactionnumber":1e999,"transactionnumber":"tn-1"}}"#,
            // White space around the colon, an escaped quote in a value before.
            "{\"identificationprocess\":{\"reason\":\"say \\\"hi\\\"\",\"transactionnumber\" :\n \"tn-1\",}}",
        ], &["tn-1"]);
        let mut bad_key = br#"{"identificationprocess":{""#.to_vec();
        bad_key.extend_from_slice(b"\xff\": 1, \"transactionnumber\":\"tn-1\"}}");
        assert_eq!(named(&bad_key), ["tn-1"], "invalid UTF-8 in a key before");
    }

    #[test]
    fn a_body_names_at_most_sixteen_and_is_read_in_linear_time() {
        // 1 MiB of distinct numbers, readable and not: the first sixteen, at once.
        for end in ["}}", ",,}}"] {
            let mut body = String::from(r#"{"identificationprocess":{"#);
            let mut count = 0;
            while body.len() < 1 << 20 {
                body.push_str(&format!(r#""transactionnumber":"tn-{count}","#));
                count += 1;
            }
            body.push_str(r#""x":0"#);
            body.push_str(end);
            let started = std::time::Instant::now();
            let numbers = named(body.as_bytes());
            assert_eq!(numbers.len(), MAX_NAMED);
            assert_eq!(numbers[15], "tn-15");
            // Measured: under 10 ms each in a debug build; the first version, which compared
            // every number with every other, took 1 s in a release build.
            assert!(
                started.elapsed() < std::time::Duration::from_secs(1),
                "{:?}",
                started.elapsed()
            );
        }
    }
}
