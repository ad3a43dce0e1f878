//! SHA-256 digests of the secrets clients present: bearer tokens (`API_KEYS`), webhook tokens
//! (`WEBHOOK_TOKENS`) and Basic passwords (`WEBHOOK_BASIC_CREDENTIALS`). The service holds
//! only digests, and compares them in constant time.

use std::fmt;

use sha2::{Digest as _, Sha256};
use subtle::{Choice, ConstantTimeEq};

/// The SHA-256 of a secret.
#[derive(Clone, Copy)]
pub struct SecretDigest([u8; 32]);

impl SecretDigest {
    /// 64 hex digits, as configured.
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut digest = [0; 32];
        hex::decode_to_slice(text.trim(), &mut digest).ok()?;
        Some(Self(digest))
    }

    /// The digest of a secret as presented.
    pub fn of(secret: &[u8]) -> Self {
        Self(Sha256::digest(secret).into())
    }

    /// Equality in constant time: how long it takes tells nothing of where digests differ.
    pub fn ct_matches(&self, other: &Self) -> Choice {
        self.0.ct_eq(&other.0)
    }
}

/// Whether `matches` holds for any of `candidates`. Every candidate is tested, so the time
/// taken does not tell which one matched.
pub fn matches_any<T>(candidates: &[T], matches: impl Fn(&T) -> Choice) -> bool {
    let found = candidates.iter().fold(Choice::from(0), |found, candidate| {
        found | matches(candidate)
    });
    bool::from(found)
}

/// A digest is not the secret, but it would let anyone who sees it test guesses offline.
impl fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretDigest([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_sha256sum_prints_and_nothing_else() {
        let printed = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b";
        let secret = SecretDigest::of(b"secret");
        for text in [printed.to_owned(), printed.to_uppercase()] {
            let parsed = SecretDigest::from_hex(&text).expect("64 hex digits");
            assert!(bool::from(parsed.ct_matches(&secret)));
        }
        for bad in ["", &printed[..62], &format!("{printed}00"), "zz"] {
            assert!(SecretDigest::from_hex(bad).is_none(), "{bad}");
        }
        assert_eq!(
            format!("{:?}", SecretDigest::of(b"secret")),
            "SecretDigest([REDACTED])"
        );
    }

    #[test]
    fn matches_only_the_same_digest() {
        let digest = SecretDigest::of(b"secret");
        assert!(bool::from(digest.ct_matches(&SecretDigest::of(b"secret"))));
        assert!(!bool::from(digest.ct_matches(&SecretDigest::of(b"secreT"))));
    }
}
