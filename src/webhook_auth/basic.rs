//! `basic`: `Authorization: Basic <base64 of user:password>` (RFC 7617), as IDnow sends where
//! the account is set up with HTTP Basic credentials. Only the passwords' SHA-256 digests are
//! configured (`WEBHOOK_BASIC_CREDENTIALS`, `user:<hex digest>` pairs).

use std::fmt;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use subtle::ConstantTimeEq;

use super::{AuthFailure, DeliveryHeaders, SentHeader, VouchedId};
use crate::digest::{matches_any, SecretDigest};

/// The challenge of a failed `basic` answer.
pub const CHALLENGE: &str = r#"Basic realm="idnow-webhooks""#;

/// Senders differ on padding; the credentials are the same either way.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// One `user:<hex SHA-256 of the password>` pair of `WEBHOOK_BASIC_CREDENTIALS`. A user may
/// be listed more than once, with the old and the new password while they rotate.
#[derive(Clone)]
pub struct BasicCredential {
    user: Box<[u8]>,
    password: SecretDigest,
}

impl fmt::Debug for BasicCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicCredential")
            .field("user", &String::from_utf8_lossy(&self.user))
            .finish_non_exhaustive()
    }
}

/// Why a configured pair was refused; never its text.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BasicCredentialError {
    #[error("expected user:<64 hex digits of the password's SHA-256>")]
    Shape,
    #[error("the user is empty or holds a colon, which Basic credentials cannot carry")]
    User,
}

impl BasicCredential {
    pub fn parse(pair: &str) -> Result<Self, BasicCredentialError> {
        let (user, digest) = pair
            .trim()
            .rsplit_once(':')
            .ok_or(BasicCredentialError::Shape)?;
        let password = SecretDigest::from_hex(digest).ok_or(BasicCredentialError::Shape)?;
        // Blanks around the user are the list's, as around any entry.
        let user = user.trim();
        if user.is_empty() || user.contains(':') {
            return Err(BasicCredentialError::User);
        }
        Ok(Self {
            user: user.as_bytes().into(),
            password,
        })
    }
}

#[derive(Debug, Clone)]
pub(super) struct BasicCredentials {
    pub(super) accepted: Vec<BasicCredential>,
}

impl BasicCredentials {
    /// Whether the delivery sends Basic credentials; another scheme is not this method's.
    pub(super) fn is_attempted(headers: &DeliveryHeaders<'_>) -> bool {
        match headers.authorization {
            SentHeader::Absent => false,
            SentHeader::Repeated => true,
            SentHeader::One(value) => basic_credentials(value).is_some(),
        }
    }

    pub(super) fn verify<'a>(
        &self,
        headers: &DeliveryHeaders<'a>,
    ) -> Result<VouchedId<'a>, AuthFailure> {
        let value = headers.authorization.bytes(AuthFailure::Missing)?;
        let encoded = basic_credentials(value).ok_or(AuthFailure::Missing)?;
        let decoded = BASE64.decode(encoded).map_err(|_| AuthFailure::Malformed)?;
        let (user, password) = decoded
            .iter()
            .position(|&byte| byte == b':')
            .map(|colon| (&decoded[..colon], &decoded[colon + 1..]))
            .ok_or(AuthFailure::Malformed)?;
        if user.is_empty() || password.is_empty() {
            return Err(AuthFailure::Malformed);
        }
        let presented = SecretDigest::of(password);
        // A user name's length may show in the time taken; user names are not secrets.
        let matched = matches_any(&self.accepted, |credential| {
            credential.user.ct_eq(user) & credential.password.ct_matches(&presented)
        });
        if matched {
            Ok(None)
        } else {
            Err(AuthFailure::Mismatch)
        }
    }
}

/// The base64 part of a `Basic` authorization value; the scheme is case-insensitive.
fn basic_credentials(value: &[u8]) -> Option<&[u8]> {
    const SCHEME: &[u8] = b"basic";
    let (scheme, rest) = value.split_at_checked(SCHEME.len())?;
    if !scheme.eq_ignore_ascii_case(SCHEME) {
        return None;
    }
    Some(rest.strip_prefix(b" ")?.trim_ascii())
}

#[cfg(test)]
mod tests {
    use sha2::Digest as _;

    use super::*;

    fn credentials(pairs: &[(&str, &str)]) -> BasicCredentials {
        BasicCredentials {
            accepted: pairs
                .iter()
                .map(|(user, password)| {
                    let digest = hex::encode(sha2::Sha256::digest(password.as_bytes()));
                    BasicCredential::parse(&format!("{user}:{digest}")).expect("valid pair")
                })
                .collect(),
        }
    }

    fn sent(value: &str) -> DeliveryHeaders<'_> {
        DeliveryHeaders {
            authorization: SentHeader::One(value.as_bytes()),
            ..Default::default()
        }
    }

    fn basic(user_and_password: &str) -> String {
        format!("Basic {}", BASE64.encode(user_and_password))
    }

    #[test]
    fn listed_users_with_their_passwords_pass_and_rotation_lists_a_user_twice() {
        let accepted = credentials(&[("idnow", "old password"), ("idnow", "new:password")]);
        for password in ["old password", "new:password"] {
            let value = basic(&format!("idnow:{password}"));
            assert_eq!(accepted.verify(&sent(&value)), Ok(None), "{password}");
        }
        let lowercase = basic("idnow:old password").replace("Basic", "bAsIc");
        assert_eq!(accepted.verify(&sent(&lowercase)), Ok(None));
        let unpadded = basic("idnow:old password").trim_end_matches('=').to_owned();
        assert_eq!(accepted.verify(&sent(&unpadded)), Ok(None));
    }

    #[test]
    fn wrong_empty_or_truncated_credentials_never_pass() {
        let accepted = credentials(&[("idnow", "password"), ("other", "secret")]);
        for (value, failure) in [
            (basic("idnow:secret"), AuthFailure::Mismatch),
            (basic("other:password"), AuthFailure::Mismatch),
            (basic("idnow:passwor"), AuthFailure::Mismatch),
            (basic("idno:password"), AuthFailure::Mismatch),
            (basic("IDNOW:password"), AuthFailure::Mismatch),
            (basic("idnow:"), AuthFailure::Malformed),
            (basic(":password"), AuthFailure::Malformed),
            (basic("idnow"), AuthFailure::Malformed),
            ("Basic ".to_owned(), AuthFailure::Malformed),
            ("Basic !!!".to_owned(), AuthFailure::Malformed),
        ] {
            assert_eq!(accepted.verify(&sent(&value)), Err(failure), "{value}");
        }
    }

    #[test]
    fn other_schemes_are_not_basic_attempts() {
        for value in ["Bearer abc", "Basicabc", "Digest x", ""] {
            assert!(!BasicCredentials::is_attempted(&sent(value)), "{value}");
        }
        assert!(BasicCredentials::is_attempted(&sent("Basic abc")));
        let repeated = DeliveryHeaders {
            authorization: SentHeader::Repeated,
            ..Default::default()
        };
        let accepted = credentials(&[("idnow", "password")]);
        assert!(BasicCredentials::is_attempted(&repeated));
        assert_eq!(accepted.verify(&repeated), Err(AuthFailure::Malformed));
    }

    #[test]
    fn configured_pairs_are_checked_without_echoing_them() {
        let digest = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8";
        for pair in [format!("idnow:{digest}"), format!(" idnow : {digest} ")] {
            let parsed = BasicCredential::parse(&pair).expect("a valid pair");
            assert_eq!(&*parsed.user, b"idnow");
        }
        for (pair, error) in [
            ("idnow", BasicCredentialError::Shape),
            ("idnow:password", BasicCredentialError::Shape),
            (&format!(":{digest}"), BasicCredentialError::User),
            (&format!("a:b:{digest}"), BasicCredentialError::User),
        ] {
            let refused = BasicCredential::parse(pair).expect_err("refused");
            assert_eq!(refused, error, "{pair}");
            assert!(!refused.to_string().contains("idnow"));
        }
    }
}
