//! Identity data at rest: every stored payload and kept body is sealed with AES-256-GCM under
//! the first key of `PAYLOAD_ENCRYPTION_KEYS`, and opened with whichever listed key sealed it.
//!
//! A sealed value is `0x01 ‖ nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes)`, stored beside the
//! id of its key. Each value gets a fresh random nonce: with 96-bit random nonces NIST SP
//! 800-38D allows 2^32 values per key, 136 years at a thousand attempts a second, and keys
//! rotate long before that. The associated data binds the value to its row ([`Binding`]), so
//! a ciphertext copied into another row, or a row moved to another identification, fails to
//! open instead of being served as someone else's data.
//!
//! ring's AEAD rather than RustCrypto's `aes-gcm`: ring is already in the tree (rustls), and
//! its assembly implementation seals and opens a 3 KB payload in about a microsecond.

use std::fmt;

use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::Sha256;
use uuid::Uuid;

/// What the key of [`PayloadKeys::fingerprint`] is derived with; changing it changes every
/// fingerprint.
const FINGERPRINT_LABEL: &[u8] = b"idnow-attempts fingerprint v1";

/// The first byte of every sealed value: the format above. Another algorithm would get
/// another byte, so that both can be read during a migration.
const FORMAT: u8 = 1;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + NONCE_LEN;

/// The name of a key as stored with each row and named in logs: never key material.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyId(String);

impl KeyId {
    pub const MAX_LEN: usize = 64;

    /// 1 to 64 of `A-Z a-z 0-9 . _ -`: safe to log, to put in a label and to type.
    pub fn parse(raw: &str) -> Option<Self> {
        let valid = (1..=Self::MAX_LEN).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        valid.then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The row a sealed value belongs to: its associated data.
#[derive(Debug, Clone, Copy)]
pub enum Binding<'a> {
    /// An attempt's payload, bound to the attempt and to its identification.
    Attempt {
        id: Uuid,
        transaction_number: &'a str,
    },
    /// A kept rejected delivery's body.
    Rejected { id: Uuid },
}

impl Binding<'_> {
    /// Distinct for every row of either table: a prefix per table, the 16 bytes of the id,
    /// then (attempts) the transaction number, whose length the prefix and id fix.
    fn associated_data(&self) -> Vec<u8> {
        let (table, id, rest): (&[u8], _, &[u8]) = match self {
            Self::Attempt {
                id,
                transaction_number,
            } => (
                b"idnow-attempts/attempt/1\0",
                id,
                transaction_number.as_bytes(),
            ),
            Self::Rejected { id } => (b"idnow-attempts/rejected/1\0", id, b""),
        };
        [table, id.as_bytes().as_slice(), rest].concat()
    }
}

/// `PAYLOAD_ENCRYPTION_KEYS`: the first key seals, every key opens. Its `Debug` shows the
/// ids only.
pub struct PayloadKeys {
    keys: Vec<(KeyId, LessSafeKey)>,
    /// [`PayloadKeys::fingerprint`]'s key, derived from the sealing key's material.
    fingerprints: Hmac<Sha256>,
    random: SystemRandom,
}

impl fmt::Debug for PayloadKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PayloadKeys")
            .field("ids", &self.ids().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Why `PAYLOAD_ENCRYPTION_KEYS` was refused; never quotes key material.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("lists no key")]
    Empty,
    #[error("entry {0}: not key_id:<base64 of 32 bytes>")]
    Shape(usize),
    #[error("entry {0}: the key id must be 1 to 64 of A-Z a-z 0-9 . _ -")]
    Id(usize),
    #[error("entry {0}: the key is not base64 of exactly 32 bytes")]
    Material(usize),
    #[error("entry {0}: key id {1} is listed twice")]
    Duplicate(usize, String),
}

/// Why a sealed value could not be opened. Says which key, never what the value held.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("sealed under key id {0}, which PAYLOAD_ENCRYPTION_KEYS does not list")]
    UnknownKey(String),
    /// Tampered with, truncated, or moved from another row.
    #[error("the sealed value does not authenticate (tampered with, or not this row's)")]
    Forged,
}

/// A value sealed under the first key.
#[derive(Debug)]
pub struct Sealed<'k> {
    pub key_id: &'k KeyId,
    pub bytes: Vec<u8>,
}

impl PayloadKeys {
    /// Parses `key_id:<base64>` entries (standard alphabet, padded or not).
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, KeyError> {
        let mut keys: Vec<(KeyId, LessSafeKey)> = Vec::with_capacity(entries.len());
        let mut fingerprints = None;
        for (index, entry) in entries.iter().enumerate() {
            let (id, material) = entry
                .as_ref()
                .split_once(':')
                .ok_or(KeyError::Shape(index))?;
            let id = KeyId::parse(id.trim()).ok_or(KeyError::Id(index))?;
            if keys.iter().any(|(known, _)| *known == id) {
                return Err(KeyError::Duplicate(index, id.0));
            }
            let material = base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(material.trim().trim_end_matches('='))
                .ok()
                .filter(|bytes| bytes.len() == AES_256_GCM.key_len())
                .ok_or(KeyError::Material(index))?;
            let key =
                UnboundKey::new(&AES_256_GCM, &material).map_err(|_| KeyError::Material(index))?;
            keys.push((id, LessSafeKey::new(key)));
            // A key of its own for fingerprints, so that no value is both sealed and hashed
            // under one key: HMAC-SHA256 of a fixed label, keyed with the sealing key.
            fingerprints.get_or_insert_with(|| {
                let mut derive = Hmac::<Sha256>::new_from_slice(&material)
                    .expect("HMAC takes keys of any length");
                derive.update(FINGERPRINT_LABEL);
                Hmac::<Sha256>::new_from_slice(&derive.finalize().into_bytes())
                    .expect("HMAC takes keys of any length")
            });
        }
        let fingerprints = fingerprints.ok_or(KeyError::Empty)?;
        Ok(Self {
            keys,
            fingerprints,
            random: SystemRandom::new(),
        })
    }

    /// A keyed digest of `parts` (HMAC-SHA256 under a key derived from the sealing key),
    /// each framed by its length so that no two lists run together: what tells equal
    /// identity data apart from other data without revealing it. Unlike a plain SHA-256, a
    /// copy of the database cannot confirm a guessed value by it. A new sealing key gives
    /// new fingerprints.
    pub fn fingerprint(&self, parts: &[Option<&[u8]>]) -> [u8; 32] {
        let mut mac = self.fingerprints.clone();
        for part in parts {
            match part {
                None => mac.update(&[0]),
                Some(bytes) => {
                    mac.update(&[1]);
                    mac.update(&(bytes.len() as u64).to_be_bytes());
                    mac.update(bytes);
                }
            }
        }
        mac.finalize().into_bytes().into()
    }

    /// The key that seals.
    pub fn current(&self) -> &KeyId {
        &self.keys[0].0
    }

    /// Every listed key id, the sealing one first.
    pub fn ids(&self) -> impl Iterator<Item = &KeyId> {
        self.keys.iter().map(|(id, _)| id)
    }

    /// Seals `plaintext` for `binding` under the first key.
    pub fn seal(&self, binding: Binding<'_>, plaintext: &[u8]) -> Sealed<'_> {
        let (id, key) = &self.keys[0];
        let mut nonce = [0; NONCE_LEN];
        // getrandom(2) on Linux, which does not fail once the kernel's pool is initialised.
        self.random
            .fill(&mut nonce)
            .expect("the operating system's random number generator is available");
        let mut bytes = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
        bytes.push(FORMAT);
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(plaintext);
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(binding.associated_data()),
                &mut bytes[HEADER_LEN..],
            )
            .expect("AES-GCM seals any value shorter than 64 GiB");
        bytes.extend_from_slice(tag.as_ref());
        Sealed { key_id: id, bytes }
    }

    /// Opens a value sealed under `key_id` for `binding`, in place: `sealed` becomes the
    /// plaintext.
    pub fn open(
        &self,
        key_id: &str,
        binding: Binding<'_>,
        mut sealed: Vec<u8>,
    ) -> Result<Vec<u8>, OpenError> {
        let length = self.open_where_it_lies(key_id, binding, &mut sealed)?.len();
        sealed.copy_within(HEADER_LEN..HEADER_LEN + length, 0);
        sealed.truncate(length);
        Ok(sealed)
    }

    /// As [`PayloadKeys::open`], leaving the plaintext where it was decrypted: a part of
    /// `sealed`, returned, for a caller that copies it on (the listing: no move to the front).
    pub fn open_where_it_lies<'s>(
        &self,
        key_id: &str,
        binding: Binding<'_>,
        sealed: &'s mut [u8],
    ) -> Result<&'s [u8], OpenError> {
        let (_, key) = self
            .keys
            .iter()
            .find(|(id, _)| id.as_str() == key_id)
            .ok_or_else(|| OpenError::UnknownKey(key_id.to_owned()))?;
        if sealed.len() < HEADER_LEN + TAG_LEN || sealed[0] != FORMAT {
            return Err(OpenError::Forged);
        }
        let (header, in_out) = sealed.split_at_mut(HEADER_LEN);
        let nonce =
            Nonce::try_assume_unique_for_key(&header[1..]).map_err(|_| OpenError::Forged)?;
        key.open_in_place(nonce, Aad::from(binding.associated_data()), in_out)
            .map(|plaintext| &*plaintext)
            .map_err(|_| OpenError::Forged)
    }
}

/// A `PAYLOAD_ENCRYPTION_KEYS` value for unit tests.
#[cfg(test)]
pub(crate) const TEST_KEYS: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const K1: &str = TEST_KEYS;
    const K2: &str = "k2:HxwdHBsaGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA=";

    fn attempt(id: Uuid, transaction_number: &str) -> Binding<'_> {
        Binding::Attempt {
            id,
            transaction_number,
        }
    }

    #[test]
    fn fingerprints_are_the_sealing_keys_and_tell_every_framing_apart() {
        let k1 = PayloadKeys::parse(&[K1]).expect("valid");
        let parts: [Option<&[u8]>; 2] = [Some(b"ab"), Some(b"c")];
        let print = k1.fingerprint(&parts);
        // Only the sealing key counts: the same with older keys listed after it.
        assert_eq!(
            PayloadKeys::parse(&[K1, K2])
                .expect("valid")
                .fingerprint(&parts),
            print
        );
        assert_ne!(
            PayloadKeys::parse(&[K2, K1])
                .expect("valid")
                .fingerprint(&parts),
            print
        );
        // Neither the plain SHA-256 of the parts, nor of their concatenation.
        use sha2::Digest as _;
        assert_ne!(<[u8; 32]>::from(Sha256::digest(b"abc")), print);
        for other in [
            [Some(&b"a"[..]), Some(&b"bc"[..])],
            [Some(&b"abc"[..]), None],
            [Some(&b"ab"[..]), Some(&b""[..])],
            [None, Some(&b"c"[..])],
        ] {
            assert_ne!(k1.fingerprint(&other), print, "{other:?}");
        }
        assert_ne!(
            k1.fingerprint(&[Some(b"abc")]),
            k1.fingerprint(&[Some(b"abc"), None])
        );
    }

    #[test]
    fn a_sealed_value_opens_with_any_listed_key_that_sealed_it() {
        let old = PayloadKeys::parse(&[K1]).expect("valid");
        let rotated = PayloadKeys::parse(&[K2, K1]).expect("valid");
        let id = Uuid::new_v4();
        let sealed = old.seal(attempt(id, "tn-1"), b"{\"a\":1}");
        assert_eq!(sealed.key_id.as_str(), "k1");
        assert_eq!(
            rotated.open("k1", attempt(id, "tn-1"), sealed.bytes),
            Ok(b"{\"a\":1}".to_vec())
        );
        assert_eq!(rotated.current().as_str(), "k2");
        assert_eq!(
            old.open(
                "k2",
                attempt(id, "tn-1"),
                rotated.seal(attempt(id, "tn-1"), b"x").bytes
            ),
            Err(OpenError::UnknownKey("k2".to_owned()))
        );
    }

    #[test]
    fn the_same_value_seals_differently_each_time() {
        let keys = PayloadKeys::parse(&[K1]).expect("valid");
        let id = Uuid::new_v4();
        let first = keys.seal(attempt(id, "tn"), b"same").bytes;
        let second = keys.seal(attempt(id, "tn"), b"same").bytes;
        assert_ne!(first, second);
    }

    #[test]
    fn a_value_moved_to_another_row_or_identification_does_not_open() {
        let keys = PayloadKeys::parse(&[K1]).expect("valid");
        let (id, other) = (Uuid::new_v4(), Uuid::new_v4());
        let sealed = || keys.seal(attempt(id, "tn-1"), b"payload").bytes;
        assert_eq!(
            keys.open("k1", attempt(other, "tn-1"), sealed()),
            Err(OpenError::Forged)
        );
        assert_eq!(
            keys.open("k1", attempt(id, "tn-2"), sealed()),
            Err(OpenError::Forged)
        );
        assert_eq!(
            keys.open("k1", Binding::Rejected { id }, sealed()),
            Err(OpenError::Forged)
        );
    }

    #[test]
    fn keys_are_refused_without_quoting_them() {
        let refused = |entries: &[&str]| PayloadKeys::parse(entries).err();
        assert_eq!(refused(&[]), Some(KeyError::Empty));
        assert_eq!(refused(&["nocolon"]), Some(KeyError::Shape(0)));
        assert_eq!(refused(&[K1, "bad id:AAAA"]), Some(KeyError::Id(1)));
        assert_eq!(refused(&["k:AAECAwQ="]), Some(KeyError::Material(0)));
        assert_eq!(refused(&["k:not base64!"]), Some(KeyError::Material(0)));
        assert_eq!(
            refused(&[K1, K1]),
            Some(KeyError::Duplicate(1, "k1".to_owned()))
        );
        let keys = PayloadKeys::parse(&[K1, K2]).expect("valid");
        assert_eq!(
            format!("{keys:?}"),
            r#"PayloadKeys { ids: [KeyId("k1"), KeyId("k2")], .. }"#
        );
    }

    proptest! {
        /// Whatever is flipped, cut or appended, a sealed value never opens to anything.
        #[test]
        fn a_tampered_value_never_opens(
            payload in proptest::collection::vec(any::<u8>(), 0..256),
            at in any::<prop::sample::Index>(),
            flip in 1..=255_u8,
            cut in any::<prop::sample::Index>(),
        ) {
            let keys = PayloadKeys::parse(&[K1]).expect("valid");
            let id = Uuid::new_v4();
            let sealed = keys.seal(attempt(id, "tn"), &payload).bytes;
            prop_assert_eq!(keys.open("k1", attempt(id, "tn"), sealed.clone()), Ok(payload));
            let mut flipped = sealed.clone();
            let at = at.index(flipped.len());
            flipped[at] ^= flip;
            prop_assert!(keys.open("k1", attempt(id, "tn"), flipped).is_err());
            let cut = cut.index(sealed.len());
            prop_assert!(keys.open("k1", attempt(id, "tn"), sealed[..cut].to_vec()).is_err());
        }
    }
}
