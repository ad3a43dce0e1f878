//! The identifications a refused webhook body names: what a kept rejected delivery is erased
//! by, and what a late one is checked against before it is kept.
//!
//! A refused body is often not readable as a whole: a key or an `identificationprocess` sent
//! twice, a body cut short, a raw control character in a free-text field, bytes after its
//! end, a value of the wrong type. Erasure must still find it, so its bytes are searched:
//! every value of a key spelled `transactionnumber`, in any case and anywhere in the body, is
//! taken, whatever surrounds it: a string (raw control characters in it taken as they are,
//! escapes JSON does not know and bytes that are not UTF-8 passed over, and the text between
//! them taken on its own too),
//! a number as written, or every string and number of an array or object given as the value;
//! each as it is and trimmed. A string the body ends in, without its closing quote, is taken
//! as far as it goes. IDnow's `filename` and `href` name the identification too, ahead of
//! `transactionnumber` (`…/<transaction number>.zip`): the last segment of their path without
//! its extension is taken, so that a body cut short before its `transactionnumber` is found
//! all the same. A structured read adds `identificationprocess.transactionnumber` written with
//! escapes (`transaction\u006eumber`) as a string or number, as far as the body is readable.
//! All of it errs towards naming too much, which only ever erases more, or refuses to keep
//! more. What is not seen: a key written with escapes anywhere else, a body inside a JSON
//! string (its quotes escaped), a body in UTF-16 or UTF-32, a body cut short within the first
//! transaction number it holds.

use std::collections::HashSet;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::delivery::string_end;
use super::TransactionNumber;

/// The most identifications one body may name and be kept. IDnow's name one; each named one
/// costs the kept row an index entry and a lookup among the erased, and a review measured a
/// 1 MiB body naming 165,000 at 0.3 to 0.9 s of the database's time.
pub const MAX_NAMED: usize = 256;

/// The valid transaction numbers `body` names, each once, in the order the search finds them
/// (those only the structured read finds after them); `None` when it names more than
/// [`MAX_NAMED`] (the search stops there).
pub fn transaction_numbers_of(body: &[u8]) -> Option<Vec<TransactionNumber>> {
    let mut named = Named::default();
    named.search(body);
    let mut reader = serde_json::Deserializer::from_slice(body);
    // An error is where the body stops being readable; what came before it is taken.
    let _ = Walk::Body(&mut named).deserialize(&mut reader);
    (named.numbers.len() <= MAX_NAMED).then_some(named.numbers)
}

#[derive(Default)]
struct Named {
    numbers: Vec<TransactionNumber>,
    seen: HashSet<TransactionNumber>,
}

impl Named {
    fn full(&self) -> bool {
        self.numbers.len() > MAX_NAMED
    }

    /// `value` as it is and trimmed of white space, controls and quotes (a value encoded
    /// twice), where either is a valid transaction number.
    fn add(&mut self, value: &str) {
        let trimmed = value.trim_matches(|c: char| c.is_whitespace() || c.is_control() || c == '"');
        for value in [value, trimmed] {
            if self.full() {
                return;
            }
            if let Ok(number) = TransactionNumber::parse(value) {
                if self.seen.insert(number.clone()) {
                    self.numbers.push(number);
                }
            }
        }
    }

    /// The string literal `literal` (quotes included), decoded as [`decode_literal`] does.
    fn add_literal(&mut self, literal: &[u8]) {
        for text in decode_literal(literal) {
            self.add(&text);
        }
    }

    /// As [`Named::add_literal`], for a `filename` or `href`: the last segment of its path,
    /// without its extension (`/api/v1/…/identifications/<number>.zip`).
    fn add_file_stem(&mut self, literal: &[u8]) {
        for text in decode_literal(literal) {
            let file = text.rsplit('/').next().unwrap_or_default();
            let stem = file
                .rsplit_once('.')
                .map_or(file, |(stem, _extension)| stem);
            self.add(stem);
        }
    }

    /// The values of every `"transactionnumber":` in `body`'s bytes, in any case, then the
    /// file stems of every `"filename":` and `"href":` string. Linear: a key found inside a
    /// value already taken (an array holding more keys) is not taken again.
    fn search(&mut self, body: &[u8]) {
        const KEY: &[u8] = b"\"transactionnumber\"";
        const FILE_KEYS: [&[u8]; 2] = [b"\"filename\"", b"\"href\""];
        let lower = body.to_ascii_lowercase();
        let mut taken_to = 0;
        for (at, start) in values_of(&lower, body, KEY) {
            if self.full() {
                return;
            }
            if at >= taken_to {
                taken_to = self.value(body, start);
            }
        }
        for key in FILE_KEYS {
            for (_, start) in values_of(&lower, body, key) {
                if self.full() {
                    return;
                }
                if body.get(start) == Some(&b'"') {
                    let end = string_end(body, start).unwrap_or(body.len());
                    self.add_file_stem(&body[start..end]);
                }
            }
        }
    }

    /// Takes the value at `start` (a string, a number, or the strings and numbers of an array
    /// or object); returns where it ends.
    fn value(&mut self, body: &[u8], start: usize) -> usize {
        let mut at = start;
        let mut depth = 0_usize;
        while let Some(&byte) = body.get(at) {
            at = match byte {
                b'"' => {
                    // One without its closing quote runs to the end of the body.
                    let end = string_end(body, at).unwrap_or(body.len());
                    // An object's keys are not values.
                    let key = depth > 0 && body.get(skip_space(body, end)) == Some(&b':');
                    if !key {
                        self.add_literal(&body[at..end]);
                    }
                    end
                }
                b'-' | b'0'..=b'9' => {
                    let end = at
                        + body[at..]
                            .iter()
                            .take_while(|b| {
                                matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                            })
                            .count();
                    self.add(&String::from_utf8_lossy(&body[at..end]));
                    end
                }
                b'[' | b'{' => {
                    depth += 1;
                    at + 1
                }
                b']' | b'}' if depth > 0 => {
                    depth -= 1;
                    at + 1
                }
                // Anything else inside an array or object is passed over.
                _ if depth > 0 => at + 1,
                _ => return at,
            };
            if depth == 0 {
                return at;
            }
        }
        at
    }
}

/// The string literal `literal` decoded: from its opening quote to its closing one, or to the
/// end of the body when it has none (a body cut short). As JSON reads it, and where JSON would
/// not read it, as far as it can: a raw control character, which JSON forbids and careless
/// senders write, is taken as it is; an escape JSON does not know (`\x`, a `\u` without four
/// hex digits, a surrogate without its pair) and bytes that are not UTF-8 are passed over, and
/// each piece of text between them is a candidate of its own besides the whole, so that a
/// transaction number beside one is still named (`"<number>\ud800"`, `"<number>\x41"`).
/// The whole first, then the pieces when there are several.
fn decode_literal(literal: &[u8]) -> Vec<String> {
    let inner = match string_end(literal, 0) {
        Some(end) => &literal[1..end - 1],
        None => literal.get(1..).unwrap_or_default(),
    };
    let mut text = Vec::with_capacity(inner.len());
    // Where `text` was broken by what could not be decoded.
    let mut breaks = Vec::new();
    let mut rest = inner;
    while let Some((&byte, after)) = rest.split_first() {
        rest = after;
        if byte != b'\\' {
            text.push(byte);
            continue;
        }
        // A lone backslash where a body was cut short escapes nothing.
        let Some((&escape, after)) = rest.split_first() else {
            break;
        };
        rest = after;
        let decoded = match escape {
            b'"' | b'\\' | b'/' => Some(char::from(escape)),
            b'b' => Some('\u{8}'),
            b'f' => Some('\u{c}'),
            b'n' => Some('\n'),
            b'r' => Some('\r'),
            b't' => Some('\t'),
            b'u' => {
                let (unit, after) = code_unit(rest);
                rest = after;
                match unit {
                    Some(high @ 0xD800..=0xDBFF) => {
                        match rest.strip_prefix(b"\\u").map(code_unit) {
                            Some((Some(low @ 0xDC00..=0xDFFF), after)) => {
                                rest = after;
                                char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
                            }
                            _ => None,
                        }
                    }
                    // A low surrogate alone is no character: `from_u32` says so.
                    Some(unit) => char::from_u32(unit),
                    None => None,
                }
            }
            _ => None,
        };
        match decoded {
            Some(decoded) => text.extend_from_slice(decoded.encode_utf8(&mut [0; 4]).as_bytes()),
            None => breaks.push(text.len()),
        }
    }
    let whole = String::from_utf8_lossy(&text).into_owned();
    let mut pieces = Vec::new();
    let mut from = 0;
    for end in breaks.into_iter().chain([text.len()]) {
        for chunk in text[from..end].utf8_chunks() {
            pieces.push(chunk.valid().to_owned());
        }
        from = end;
    }
    pieces.retain(|piece| !piece.is_empty() && *piece != whole);
    pieces.insert(0, whole);
    pieces
}

/// The four hex digits of a `\u` escape at the start of `bytes`, and what follows them; where
/// there are fewer, `None`, and what follows the hex digits there are.
fn code_unit(bytes: &[u8]) -> (Option<u32>, &[u8]) {
    let digits = bytes
        .iter()
        .take(4)
        .take_while(|byte| byte.is_ascii_hexdigit())
        .count();
    let (hex, rest) = bytes.split_at(digits);
    let unit = std::str::from_utf8(hex)
        .ok()
        .filter(|_| digits == 4)
        .and_then(|hex| u32::from_str_radix(hex, 16).ok());
    (unit, rest)
}

/// Where `key` (quotes included, in lower case) stands in `lower`, `body` in lower case, and
/// where the value after its `:` starts in `body`, for each time it is followed by one.
fn values_of<'a>(
    lower: &'a [u8],
    body: &'a [u8],
    key: &'a [u8],
) -> impl Iterator<Item = (usize, usize)> + 'a {
    memchr::memmem::find_iter(lower, key).filter_map(move |at| {
        let colon = skip_space(body, at + key.len());
        (body.get(colon) == Some(&b':')).then(|| (at, skip_space(body, colon + 1)))
    })
}

/// The first position at or after `at` that is not JSON white space.
fn skip_space(body: &[u8], at: usize) -> usize {
    at + body
        .get(at..)
        .unwrap_or_default()
        .iter()
        .take_while(|byte| matches!(byte, b' ' | b'\t' | b'\n' | b'\r'))
        .count()
}

/// The structured read: the body's object, its `identificationprocess` objects and their
/// `transactionnumber` strings and numbers, keys matched after their escapes are decoded and
/// in any case. Each `identificationprocess` is taken as raw JSON and read on its own, so that
/// one that is not an object, or holds a key serde cannot read, ends only itself; a syntax
/// error ends the read (the search has taken what is after it).
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
        let (named, in_process) = match self {
            Self::Body(named) => (named, false),
            Self::Process(named) => (named, true),
        };
        let key = if in_process {
            "transactionnumber"
        } else {
            "identificationprocess"
        };
        while let Some(wanted) = map.next_key_seed(KeyIs(key))? {
            if !wanted {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let value: &RawValue = map.next_value()?;
            if in_process {
                match serde_json::from_str::<serde_json::Value>(value.get()) {
                    Ok(serde_json::Value::String(number)) => named.add(&number),
                    Ok(serde_json::Value::Number(_)) => named.add(value.get()),
                    _ => {}
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
        Ok(key.eq_ignore_ascii_case(self.0))
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
            .expect("no more than MAX_NAMED")
            .into_iter()
            .map(|number| number.as_str().to_owned())
            .collect()
    }

    #[test]
    fn a_refused_body_names_what_it_says_however_unreadable() {
        assert_each_names(
            &[
                // A key sent twice, inside identificationprocess or of it.
                r#"{"identificationprocess":{"result":"A","result":"A","transactionnumber":"tn-1"}}"#,
                r#"{"identificationprocess":{"transactionnumber":"tn-1"},"identificationprocess":{}}"#,
                // Cut short after the number, or followed by bytes after its end.
                r#"{"identificationprocess":{"transactionnumber":"tn-1","result":"SUCC"#,
                r#"{"identificationprocess":{"transactionnumber":"tn-1"}} and more"#,
                // A raw line break in a free-text field, as careless senders write them.
                "{\"identificationprocess\":{\"agentname\":\"A\nB\",\"transactionnumber\":\"tn-1\"}}",
                // Not JSON before the number.
                r#"{"identificationprocess":{"x":01,"transactionnumber":"tn-1"}}"#,
                r#"{"identificationprocess":{"x":NaN,"transactionnumber":"tn-1"}}"#,
                r#"{"a":1,,"identificationprocess":{"transactionnumber":"tn-1"}}"#,
                // A key serde cannot read before it (a review found it hid the number).
                r#"{"identificationprocess":{"\ud800":1,"transactionnumber":"tn-1"}}"#,
                // Not an object where one belongs, before the one that is.
                r#"{"identificationprocess":null,"identificationprocess":{"transactionnumber":"tn-1"}}"#,
                r#"[{"identificationprocess":{"transactionnumber":"tn-1"}}]"#,
                // Escapes, white space, a trailing comma, an escaped quote in a value before.
                r#"{"identificationprocess":{"transaction\u006eumber":"tn-1"}}"#,
                "{\"identificationprocess\":{\"reason\":\"say \\\"hi\\\"\",\"transactionnumber\" :\n \"tn-1\",}}",
                // The same number twice counts once.
                r#"{"identificationprocess":{"transactionnumber":"tn-1","transactionnumber":"tn-1"}}"#,
                // Wherever, in whatever case, of whatever shape (a red-team session's).
                r#"{"x":{"transactionnumber":"tn-1"}}"#,
                r#"{"identificationprocess":"x","transactionnumber":"tn-1"}"#,
                r#"{"IdentificationProcess":{"TransactionNumber":"tn-1"}}"#,
                r#"{"identificationprocess":[{"transactionnumber":"tn-1"}],"identificationprocess":{}}"#,
                r#"{"identificationprocess":{"transactionnumber":["tn-1"]}}"#,
                r#"{"identificationprocess":{"transactionnumber":{"value":["tn-1"]}}}"#,
                r#"{"identificationprocess":{"transactionnumber":" tn-1 "}}"#,
                // Cut short after the number, within its string (a red-team session's).
                r#"{"identificationprocess":{"transactionnumber":"tn-1"#,
                r#"{"identificationprocess":{"transactionnumber":"tn-1\"#,
                // Named by IDnow's file name or link alone.
                r#"{"identificationprocess":{"filename":"tn-1.zip","href":"/api/v1/x/identifications/tn-1.z"#,
                r#"{"identificationprocess":{"href":"/api/v1/x/identifications/tn-1.zip","#,
                r#"{"identificationprocess":{"filename":"tn-1"#,
                // Raw controls in the value itself (a review's), an escaped NUL after it.
                "{\"identificationprocess\":{\"transactionnumber\":\"tn-1\n\"}}",
                "{\"identificationprocess\":{\"transactionnumber\":\"\ttn-1\r\n\"}}",
                r#"{"identificationprocess":{"transactionnumber":"tn-1\u0000"}}"#,
                // Escapes JSON does not know around it, which failed the whole string (a
                // red-team session's): lone surrogates, an unknown letter, a short `\u`.
                r#"{"identificationprocess":{"transactionnumber":"tn-1\ud800"}}"#,
                r#"{"identificationprocess":{"transactionnumber":"tn-1\uDBFF"}}"#,
                r#"{"identificationprocess":{"transactionnumber":"\udc00tn-1"}}"#,
                r#"{"identificationprocess":{"transactionnumber":"\ud800\ud800tn-1"}}"#,
                r#"{"identificationprocess":{"transactionnumber":"tn-1\x"}}"#,
                r#"{"identificationprocess":{"transactionnumber":"tn-1\u12"}}"#,
                r#"{"identificationprocess":{"transactionnumber":"tn-1\u12"#,
                r#"{"identificationprocess":{"filename":"tn-1\ud800.zip"}}"#,
            ],
            &["tn-1"],
        );
        // Text beside such an escape, or beside bytes that are not UTF-8 (a review's): the
        // pieces are named besides the whole.
        for body in [
            r#"{"identificationprocess":{"transactionnumber":"tn-1\x41"}}"#,
            r#"{"identificationprocess":{"transactionnumber":"tn-1\ud800x"}}"#,
            r#"{"identificationprocess":{"transactionnumber":"x\qtn-1"}}"#,
        ] {
            assert!(
                named(body.as_bytes()).contains(&"tn-1".to_owned()),
                "{body}"
            );
        }
        let mut raw = br#"{"identificationprocess":{"transactionnumber":"tn-1"#.to_vec();
        raw.extend_from_slice(b"\xff\xfeab\"}}");
        assert!(
            named(&raw).contains(&"tn-1".to_owned()),
            "bytes that are not UTF-8 after the number"
        );
        // A pair of surrogates is one character, as JSON reads it.
        assert_each_names(
            &[r#"{"identificationprocess":{"transactionnumber":"tn-\ud83d\ude00"}}"#],
            &["tn-\u{1f600}"],
        );
        // Encoded twice: as written, and without its quotes.
        assert!(
            named(br#"{"identificationprocess":{"transactionnumber":"\"tn-1\""}}"#)
                .contains(&"tn-1".to_owned())
        );
        let mut cut = br#"{"identificationprocess":{"transactionnumber":"tn-1","id":""#.to_vec();
        cut.extend_from_slice(b"\xff\xfe");
        assert_eq!(named(&cut), ["tn-1"], "invalid UTF-8 after the number");
        let mut bad_key = br#"{"identificationprocess":{""#.to_vec();
        bad_key.extend_from_slice(b"\xff\": 1, \"transactionnumber\":\"tn-1\"}}");
        assert_eq!(named(&bad_key), ["tn-1"], "invalid UTF-8 in a key before");

        // Every number named, in order: which one a reader believes is not ours to guess.
        assert_each_names(
            &[
                r#"{"identificationprocess":{"transactionnumber":"tn-2","transactionnumber":"tn-1"}}"#,
                r#"{"identificationprocess":{"transactionnumber":"tn-2"},"identificationprocess":{"transactionnumber":"tn-1"}}"#,
                r#"{"identificationprocess":{"transactionnumber":["tn-2","tn-1"]}}x"#,
                "{\"identificationprocess\":{\"transactionnumber\":[\"tn-2\",\"tn-1\n\"]}}",
            ],
            &["tn-2", "tn-1"],
        );
        // A number as written: registration takes any text, digits too.
        assert_each_names(
            &[r#"{"identificationprocess":{"transactionnumber":1234567890123456}}x"#],
            &["1234567890123456"],
        );
        assert_each_names(
            &[
                r#"{"identificationprocess":{"transactionnumber":1e999,"transactionnumber":"tn-1"}}"#,
            ],
            &["1e999", "tn-1"],
        );
        assert_eq!(
            named(SUCCESS.as_bytes()),
            ["b2d949eb12ecd6798fa8e2ae66fc4a5acidt"]
        );
    }

    /// A body cut short anywhere after IDnow's first mention of the number, in its
    /// `filename`, ahead of `transactionnumber` (a red-team session found 240 of the success
    /// fixture's cuts that erasure missed).
    #[test]
    fn a_fixture_cut_short_anywhere_names_its_number_once_it_holds_it() {
        for fixture in [
            SUCCESS,
            include_str!("../../tests/fixtures/canceled_after_review.json"),
            include_str!("../../tests/fixtures/fraud_suspicion_pending.json"),
            include_str!("../../tests/fixtures/lifecycle/2_review_pending.json"),
        ] {
            let number = serde_json::from_str::<serde_json::Value>(fixture).expect("JSON")
                ["identificationprocess"]["transactionnumber"]
                .as_str()
                .expect("a number")
                .to_owned();
            for cut in 0..=fixture.len() {
                let body = &fixture.as_bytes()[..cut];
                if memchr::memmem::find(body, number.as_bytes()).is_some() {
                    assert!(
                        named(body).contains(&number),
                        "{:?}",
                        String::from_utf8_lossy(body)
                    );
                }
            }
        }
    }

    #[test]
    fn only_valid_numbers_as_values_of_the_key_are_identifications() {
        assert_each_names(
            &[
                "not json",
                r#"{"identificationprocess":{"transactionnumber":""}}"#,
                r#"{"identificationprocess":{"transactionnumber":"tn 1"}}"#,
                r#"{"identificationprocess":{"transactionnumber":null}}"#,
                r#"{"identificationprocess":{"transactionnumber" "tn-1"}}"#,
                r#"{"identificationprocess":{"transactionnumbers":"tn-1"}}"#,
                // Words of a text, not a key.
                r#"{"note":"\"transactionnumber\":\"tn-1\""}"#,
            ],
            &[],
        );
    }

    #[test]
    fn a_body_naming_more_than_the_most_is_told_at_once() {
        let numbers = |count: usize| {
            let values: Vec<String> = (0..count).map(|n| format!(r#""tn-{n}""#)).collect();
            format!(
                r#"{{"identificationprocess":{{"transactionnumber":[{}]}}}}"#,
                values.join(",")
            )
        };
        assert_eq!(named(numbers(MAX_NAMED).as_bytes()).len(), MAX_NAMED);
        assert!(transaction_numbers_of(numbers(MAX_NAMED + 1).as_bytes()).is_none());
        // A review's: a megabyte of bare numbers named 165,665 of them.
        let bare = format!(
            r#"{{"transactionnumber":[{}]}}"#,
            (0..165_000)
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        assert!(transaction_numbers_of(bare.as_bytes()).is_none());
    }

    #[test]
    fn a_megabyte_of_keys_is_searched_in_linear_time() {
        // Distinct numbers, readable or not; then keys nested inside each other's values,
        // each of which a naive search would read to the end again.
        let mut distinct = String::from(r#"{"identificationprocess":{"#);
        let mut count = 0_usize;
        while distinct.len() < 1 << 20 {
            distinct.push_str(&format!(r#""transactionnumber":"tn-{count}","#));
            count += 1;
        }
        let nested = r#"{"transactionnumber":["#.repeat((1 << 20) / 22) + r#""tn-1""#;
        for (body, expected) in [
            (distinct.clone() + r#""x":0}}"#, None),
            (distinct + ",,}}", None),
            (nested, Some(1)),
        ] {
            let started = std::time::Instant::now();
            let named = transaction_numbers_of(body.as_bytes()).map(|numbers| numbers.len());
            assert_eq!(named, expected);
            // Measured: about 0.1 s each in a debug build.
            assert!(
                started.elapsed() < std::time::Duration::from_secs(5),
                "{:?}",
                started.elapsed()
            );
        }
    }
}
