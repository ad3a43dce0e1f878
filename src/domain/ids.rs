//! Identifiers that cross the API boundary. Each can only hold a value that passed `parse`.

use std::fmt;

use uuid::Uuid;

/// Why an identifier was refused. Never carries the offending value: it may be anything a
/// client sent, personal data included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {max} characters long")]
    TooLong { max: usize },
    #[error("may contain only ASCII letters, digits, '-' and '_'")]
    InvalidCharacter,
    #[error("may not contain whitespace or control characters")]
    ControlOrWhitespace,
    #[error("may contain only visible ASCII characters")]
    NotVisibleAscii,
}

/// The longest resource id accepted in a path. Upstream ids are 36 characters; the margin is
/// for other id schemes without letting a client make us store or echo kilobytes.
const MAX_RESOURCE_ID_LEN: usize = 128;

/// Resource ids go back out in `Link` headers, so they are restricted to characters that
/// need no escaping in a URL path segment.
fn parse_resource_id(raw: &str) -> Result<&str, IdError> {
    if raw.is_empty() {
        return Err(IdError::Empty);
    }
    if raw.len() > MAX_RESOURCE_ID_LEN {
        return Err(IdError::TooLong {
            max: MAX_RESOURCE_ID_LEN,
        });
    }
    if !raw
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(IdError::InvalidCharacter);
    }
    Ok(raw)
}

macro_rules! resource_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn parse(raw: &str) -> Result<Self, IdError> {
                parse_resource_id(raw).map(|id| Self(id.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

resource_id!(
    /// The id of the person resource a signing belongs to, e.g. `dc1a6812a14f6cc338cd084208535bcdcper`.
    PersonId
);
resource_id!(
    /// The id of a signing.
    SigningId
);

/// IDnow's transaction number: the only link from a webhook to our domain. It is chosen by the
/// backend that creates the identification, so only what would break storage or logging is
/// refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TransactionNumber(String);

impl TransactionNumber {
    pub const MAX_LEN: usize = 255;

    pub fn parse(raw: &str) -> Result<Self, IdError> {
        if raw.is_empty() {
            return Err(IdError::Empty);
        }
        if raw.chars().count() > Self::MAX_LEN {
            return Err(IdError::TooLong { max: Self::MAX_LEN });
        }
        if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(IdError::ControlOrWhitespace);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// SHA-256 of the transaction number: how an erased identification is remembered, so
    /// that a late webhook is recognised without the number itself being kept.
    pub fn digest(&self) -> [u8; 32] {
        use sha2::{Digest as _, Sha256};
        Sha256::digest(self.0.as_bytes()).into()
    }
}

impl fmt::Display for TransactionNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Standard Webhooks `webhook-id`: the sender's id of one delivery, unique among stored
/// attempts. The contract accepts any visible-ASCII id of up to 1,024 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WebhookId(String);

impl WebhookId {
    /// Far below PostgreSQL's btree limit of about 2,700 bytes per index row, which the
    /// unique index on `attempts.webhook_id` must respect (1 byte a character here).
    pub const MAX_LEN: usize = 1024;

    pub fn parse(raw: &[u8]) -> Result<Self, IdError> {
        if raw.is_empty() {
            return Err(IdError::Empty);
        }
        if raw.len() > Self::MAX_LEN {
            return Err(IdError::TooLong { max: Self::MAX_LEN });
        }
        if !raw.iter().all(u8::is_ascii_graphic) {
            return Err(IdError::NotVisibleAscii);
        }
        // Visible ASCII is UTF-8.
        String::from_utf8(raw.to_vec())
            .map(Self)
            .map_err(|_| IdError::NotVisibleAscii)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The id of a stored attempt: 32 lowercase hex characters followed by `cida`, as upstream.
/// Stored as a `uuid`, rendered with the suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AttemptId(Uuid);

impl AttemptId {
    const SUFFIX: &'static str = "cida";

    /// A new id, in order of creation (UUIDv7: the Unix time in milliseconds, then a counter
    /// and random bits), so that new rows' primary-key entries go to one narrow, recent range
    /// of the index (its end, in a table that began with such ids), pages PostgreSQL has at
    /// hand, rather than to random pages of an index that outgrows its buffers.
    /// `bench/bigtable`, open-loop ingest into 2,000,000 attempts with durable commits,
    /// medians of 5 runs against random (v4) ids: p99 3.00 ms against 3.25 ms, p99.9 12.9 ms
    /// against 21.3 ms, 15 % fewer full-page images in the WAL (bench/RESULTS.md).
    /// The id tells when it was made: for the sender, who is answered with it, nothing new;
    /// for an API client, about when the attempt was stored.
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn parse(raw: &str) -> Option<Self> {
        let hex = raw.strip_suffix(Self::SUFFIX)?;
        if hex.len() != 32 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        Uuid::try_parse(hex).ok().map(Self)
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl From<Uuid> for AttemptId {
    fn from(uuid: Uuid) -> Self {
        Self(uuid)
    }
}

impl AttemptId {
    /// The id as shown, written without the formatting machinery: a listing shows one per
    /// attempt, and `collect_str` through `Display` cost 700 instructions each (callgrind).
    fn encode<'b>(&self, buffer: &'b mut [u8; 36]) -> &'b str {
        let (hex, suffix) = buffer.split_at_mut(32);
        suffix.copy_from_slice(Self::SUFFIX.as_bytes());
        self.0.simple().encode_lower(hex);
        std::str::from_utf8(buffer).unwrap_or_else(|_| unreachable!("hex and `cida` are ASCII"))
    }
}

impl fmt::Display for AttemptId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.encode(&mut [0; 36]))
    }
}

impl serde::Serialize for AttemptId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.encode(&mut [0; 36]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn attempt_ids_come_in_order_of_creation() {
        // Within one millisecond too: UUIDv7's counter orders ids made in the same one.
        let ids: Vec<Uuid> = (0..10_000)
            .map(|_| AttemptId::generate().as_uuid())
            .collect();
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
        // What the index orders by is the uuid, and the ids as shown sort the same way.
        let shown: Vec<String> = ids.iter().map(|&id| AttemptId(id).to_string()).collect();
        assert!(shown.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn attempt_ids_have_the_upstream_shape() {
        let id = AttemptId::generate().to_string();
        assert_eq!(id.len(), 36);
        assert!(id.ends_with("cida"));
        assert!(id[..32]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert_eq!(
            AttemptId::parse(&id).map(|a| a.to_string()),
            Some(id.clone())
        );
        let parsed = AttemptId::parse(&id).expect("valid");
        assert_eq!(
            serde_json::to_string(&parsed).ok(),
            Some(format!("\"{id}\""))
        );
    }

    #[test]
    fn attempt_id_parse_refuses_other_shapes() {
        for raw in [
            "",
            "cida",
            "E1EEB07262B695DC0EE5D4AB9350C12Dcida",
            "e1eeb07262b695dc0ee5d4ab9350c12d",
            "e1eeb07262b695dc0ee5d4ab9350c12dcidt",
            "e1eeb07262b695dc0ee5d4ab9350c12cida",
        ] {
            assert_eq!(AttemptId::parse(raw), None, "{raw}");
        }
    }

    #[test]
    fn resource_ids_refuse_what_a_path_could_smuggle() {
        assert_eq!(PersonId::parse(""), Err(IdError::Empty));
        assert_eq!(PersonId::parse("a/b"), Err(IdError::InvalidCharacter));
        assert_eq!(PersonId::parse("a\0b"), Err(IdError::InvalidCharacter));
        assert_eq!(SigningId::parse("sïgning"), Err(IdError::InvalidCharacter));
        assert_eq!(
            SigningId::parse(&"a".repeat(10_000)),
            Err(IdError::TooLong { max: 128 })
        );
        assert!(PersonId::parse("dc1a6812a14f6cc338cd084208535bcdcper").is_ok());
    }

    #[test]
    fn transaction_numbers_refuse_only_what_cannot_be_stored_or_logged() {
        assert!(TransactionNumber::parse("b2d949eb12ecd6798fa8e2ae66fc4a5acidt").is_ok());
        assert!(TransactionNumber::parse("TX.2026/17+ä").is_ok());
        assert_eq!(TransactionNumber::parse(""), Err(IdError::Empty));
        assert_eq!(
            TransactionNumber::parse("a b"),
            Err(IdError::ControlOrWhitespace)
        );
        assert_eq!(
            TransactionNumber::parse("a\u{0}"),
            Err(IdError::ControlOrWhitespace)
        );
    }

    #[test]
    fn webhook_ids_are_visible_ascii_up_to_1024_characters() {
        let longest = "~".repeat(WebhookId::MAX_LEN);
        assert_eq!(
            WebhookId::parse(longest.as_bytes()).map(|id| id.as_str().len()),
            Ok(1024)
        );
        assert!(
            WebhookId::parse(b"msg_2mDBfrlLzUJ3nPfpFq1RbnXgmbU!#$%&'()*+,-./:;<=>?@[]^`{|}")
                .is_ok()
        );
        assert_eq!(
            WebhookId::parse(format!("{longest}~").as_bytes()),
            Err(IdError::TooLong { max: 1024 })
        );
        assert_eq!(WebhookId::parse(b""), Err(IdError::Empty));
        for raw in [
            &b"msg 1"[..],
            b"msg\t1",
            b"msg\x001",
            b"caf\xc3\xa9",
            b"\x7f",
        ] {
            assert_eq!(
                WebhookId::parse(raw),
                Err(IdError::NotVisibleAscii),
                "{raw:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn parsed_resource_ids_are_url_safe(raw in "\\PC{0,200}") {
            if let Ok(id) = SigningId::parse(&raw) {
                prop_assert!(id.as_str().len() <= MAX_RESOURCE_ID_LEN);
                let encoded = percent_encoding::utf8_percent_encode(
                    id.as_str(),
                    percent_encoding::NON_ALPHANUMERIC,
                )
                .to_string()
                .replace("%2D", "-")
                .replace("%5F", "_");
                prop_assert_eq!(encoded, raw);
            }
        }
    }
}
