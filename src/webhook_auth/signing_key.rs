//! The secrets that `standard-webhooks` and `hmac` share (`IDNOW_WEBHOOK_SECRETS`).

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Length of an HMAC-SHA256 digest.
pub(super) const DIGEST_LEN: usize = 32;
const STANDARD_SECRET_PREFIX: &str = "whsec_";

/// One webhook signing secret, keyed into an HMAC once at start-up.
#[derive(Clone)]
pub struct SigningKey(HmacSha256);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey([REDACTED])")
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("a webhook secret is empty")]
    Empty,
    #[error("a webhook secret starts with `whsec_` but the rest is not base64")]
    NotBase64,
}

impl SigningKey {
    /// A secret that starts with `whsec_` is base64 after the prefix and its decoded bytes are
    /// the key; any other secret's UTF-8 bytes are the key.
    pub fn parse(secret: &SecretString) -> Result<Self, SecretError> {
        let secret = secret.expose_secret();
        let key = match secret.strip_prefix(STANDARD_SECRET_PREFIX) {
            Some(encoded) => BASE64.decode(encoded).map_err(|_| SecretError::NotBase64)?,
            None => secret.as_bytes().to_vec(),
        };
        if key.is_empty() {
            return Err(SecretError::Empty);
        }
        let mac = HmacSha256::new_from_slice(&key).expect("HMAC takes keys of any length");
        Ok(Self(mac))
    }

    /// The HMAC-SHA256 of `parts`, concatenated.
    pub(super) fn digest(&self, parts: &[&[u8]]) -> [u8; DIGEST_LEN] {
        let mut mac = self.0.clone();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

/// Whether any of `keys` (rotation) signs `signed` as any of `candidates` says. Digests are
/// compared in constant time and only at full length, so an empty or truncated signature
/// never matches.
pub(super) fn any_key_matches(
    keys: &[SigningKey],
    signed: &[&[u8]],
    candidates: &[[u8; DIGEST_LEN]],
) -> bool {
    keys.iter().any(|key| {
        let expected = key.digest(signed);
        candidates
            .iter()
            .any(|candidate| bool::from(expected.ct_eq(candidate)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_checked_and_never_printed() {
        assert_eq!(
            SigningKey::parse(&SecretString::from("")).err(),
            Some(SecretError::Empty)
        );
        assert_eq!(
            SigningKey::parse(&SecretString::from("whsec_!!!")).err(),
            Some(SecretError::NotBase64)
        );
        let key = SigningKey::parse(&SecretString::from("hunter2")).expect("valid");
        assert_eq!(format!("{key:?}"), "SigningKey([REDACTED])");
    }
}
