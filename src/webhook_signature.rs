//! Verification of IDnow webhook signatures.
//!
//! Two schemes are accepted (see CONTRACT.md):
//! 1. Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature` headers, the
//!    HMAC-SHA256 of `{id}.{timestamp}.{body}`, base64, `v1,`-prefixed, space-separated.
//! 2. Plain HMAC: `X-Idnow-Signature: sha256=<hex HMAC-SHA256 of the body>`.
//!
//! Every configured secret is tried (rotation). Digests are compared in constant time and only
//! at full length, so an empty or truncated signature never matches.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

const DIGEST_LEN: usize = 32;
const STANDARD_SECRET_PREFIX: &str = "whsec_";
const PLAIN_SIGNATURE_PREFIX: &str = "sha256=";

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

    fn digest(&self, parts: &[&[u8]]) -> [u8; DIGEST_LEN] {
        let mut mac = self.0.clone();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// `X-Idnow-Signature` value for `body`. Used by senders, tests and the quickstart.
    pub fn plain_signature(&self, body: &[u8]) -> String {
        format!(
            "{PLAIN_SIGNATURE_PREFIX}{}",
            hex::encode(self.digest(&[body]))
        )
    }

    /// `webhook-signature` value (one `v1` signature) for a Standard Webhooks delivery.
    pub fn standard_signature(
        &self,
        webhook_id: impl AsRef<[u8]>,
        timestamp: i64,
        body: &[u8],
    ) -> String {
        let timestamp = timestamp.to_string();
        let digest = self.digest(&[webhook_id.as_ref(), b".", timestamp.as_bytes(), b".", body]);
        format!("v1,{}", BASE64.encode(digest))
    }
}

/// The signature headers of a delivery, as sent. A header sent more than once is
/// [`HeaderValue::Unusable`], which never verifies.
#[derive(Debug, Default, Clone, Copy)]
pub struct SignatureHeaders<'a> {
    pub webhook_id: HeaderValue<'a>,
    pub webhook_timestamp: HeaderValue<'a>,
    pub webhook_signature: HeaderValue<'a>,
    pub idnow_signature: HeaderValue<'a>,
}

/// A header's bytes as they arrived: the `webhook-id` is signed as sent, whatever its
/// characters, and only judged once the signature is known to be the sender's.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum HeaderValue<'a> {
    #[default]
    Absent,
    One(&'a [u8]),
    /// Sent more than once: ambiguous, so refused.
    Unusable,
}

impl<'a> HeaderValue<'a> {
    fn required(self, missing: Failure) -> Result<&'a [u8], Failure> {
        match self {
            Self::Absent => Err(missing),
            Self::One(value) => Ok(value),
            Self::Unusable => Err(Failure::Malformed),
        }
    }

    /// The value as text, for headers whose syntax is ASCII (timestamps, signatures).
    fn required_text(self, missing: Failure) -> Result<&'a str, Failure> {
        std::str::from_utf8(self.required(missing)?).map_err(|_| Failure::Malformed)
    }
}

/// Why a delivery was not accepted as authentic; a metric label, never shown in detail to the
/// sender beyond "invalid signature".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("no signature header")]
    Missing,
    #[error("a signature header is malformed")]
    Malformed,
    #[error("the webhook timestamp is outside the accepted tolerance")]
    Stale,
    #[error("no signature matches any configured secret")]
    Mismatch,
}

impl Failure {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::Stale => "stale",
            Self::Mismatch => "mismatch",
        }
    }
}

/// What a verified delivery tells us about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified<'a> {
    /// The Standard Webhooks message id as sent: authentic, but not yet judged fit to store
    /// (see `domain::WebhookId`).
    pub webhook_id: Option<&'a [u8]>,
}

#[derive(Debug, Clone)]
pub struct Verifier {
    keys: Vec<SigningKey>,
    tolerance: Duration,
}

impl Verifier {
    pub fn new(keys: Vec<SigningKey>, tolerance: Duration) -> Self {
        Self { keys, tolerance }
    }

    pub fn verify<'a>(
        &self,
        headers: SignatureHeaders<'a>,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Verified<'a>, Failure> {
        // Either scheme suffices (CONTRACT.md): a delivery that carries both is authentic when
        // one verifies. Only a verified Standard Webhooks signature vouches for its id.
        let standard = (headers.webhook_signature != HeaderValue::Absent)
            .then(|| self.verify_standard(headers, body, now));
        match standard {
            Some(Ok(verified)) => Ok(verified),
            Some(Err(failure)) if headers.idnow_signature == HeaderValue::Absent => Err(failure),
            Some(Err(failure)) => self
                .verify_plain(headers.idnow_signature, body)
                .map(|()| Verified { webhook_id: None })
                // Both failed: the Standard Webhooks reason, which the sender chose first.
                .map_err(|_| failure),
            None => {
                self.verify_plain(headers.idnow_signature, body)?;
                Ok(Verified { webhook_id: None })
            }
        }
    }

    fn verify_standard<'a>(
        &self,
        headers: SignatureHeaders<'a>,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Verified<'a>, Failure> {
        // The id's length and characters are not checked here: a correctly signed delivery
        // is authentic whatever its id, and an id unfit to store is the handler's 400.
        let id = headers.webhook_id.required(Failure::Malformed)?;
        let timestamp = headers
            .webhook_timestamp
            .required_text(Failure::Malformed)?;
        let signatures = headers.webhook_signature.required_text(Failure::Missing)?;
        let sent_at = parse_timestamp(timestamp).ok_or(Failure::Malformed)?;
        if !self.within_tolerance(sent_at, now) {
            return Err(Failure::Stale);
        }

        let candidates: Vec<[u8; DIGEST_LEN]> = signatures
            .split(' ')
            .filter_map(|entry| entry.strip_prefix("v1,"))
            .filter_map(|encoded| BASE64.decode(encoded).ok())
            .filter_map(|digest| <[u8; DIGEST_LEN]>::try_from(digest).ok())
            .collect();
        if candidates.is_empty() {
            return Err(Failure::Malformed);
        }
        let signed = [id, b".", timestamp.as_bytes(), b".", body];
        if self.any_key_matches(&signed, &candidates) {
            Ok(Verified {
                webhook_id: Some(id),
            })
        } else {
            Err(Failure::Mismatch)
        }
    }

    fn verify_plain(&self, header: HeaderValue<'_>, body: &[u8]) -> Result<(), Failure> {
        let header = header.required_text(Failure::Missing)?;
        let mut digest = [0; DIGEST_LEN];
        header
            .strip_prefix(PLAIN_SIGNATURE_PREFIX)
            .and_then(|encoded| hex::decode_to_slice(encoded, &mut digest).ok())
            .ok_or(Failure::Malformed)?;
        if self.any_key_matches(&[body], &[digest]) {
            Ok(())
        } else {
            Err(Failure::Mismatch)
        }
    }

    fn any_key_matches(&self, signed: &[&[u8]], candidates: &[[u8; DIGEST_LEN]]) -> bool {
        self.keys.iter().any(|key| {
            let expected = key.digest(signed);
            candidates
                .iter()
                .any(|candidate| bool::from(expected.ct_eq(candidate)))
        })
    }

    fn within_tolerance(&self, sent_at: SystemTime, now: SystemTime) -> bool {
        let skew = now
            .duration_since(sent_at)
            .unwrap_or_else(|early| early.duration());
        skew <= self.tolerance
    }
}

/// Unix seconds, plain digits: what Standard Webhooks senders write.
fn parse_timestamp(raw: &str) -> Option<SystemTime> {
    if raw.is_empty() || raw.len() > 12 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    UNIX_EPOCH.checked_add(Duration::from_secs(raw.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BODY: &[u8] = br#"{"identificationprocess":{"result":"SUCCESS"}}"#;
    const NOW: u64 = 1_790_000_000;

    fn key(secret: &str) -> SigningKey {
        SigningKey::parse(&SecretString::from(secret)).expect("valid secret")
    }

    fn verifier(secrets: &[&str]) -> Verifier {
        Verifier::new(
            secrets.iter().map(|s| key(s)).collect(),
            Duration::from_secs(300),
        )
    }

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW)
    }

    fn plain(signature: &str) -> SignatureHeaders<'_> {
        SignatureHeaders {
            idnow_signature: HeaderValue::One(signature.as_bytes()),
            ..Default::default()
        }
    }

    fn standard<'a>(id: &'a str, timestamp: &'a str, signature: &'a str) -> SignatureHeaders<'a> {
        SignatureHeaders {
            webhook_id: HeaderValue::One(id.as_bytes()),
            webhook_timestamp: HeaderValue::One(timestamp.as_bytes()),
            webhook_signature: HeaderValue::One(signature.as_bytes()),
            ..Default::default()
        }
    }

    #[test]
    fn plain_signatures_verify_with_any_secret_of_the_rotation() {
        let verifier = verifier(&["new-secret", "old-secret"]);
        for secret in ["new-secret", "old-secret"] {
            let signature = key(secret).plain_signature(BODY);
            assert_eq!(
                verifier.verify(plain(&signature), BODY, now()),
                Ok(Verified { webhook_id: None })
            );
        }
        let foreign = key("someone-else").plain_signature(BODY);
        assert_eq!(
            verifier.verify(plain(&foreign), BODY, now()),
            Err(Failure::Mismatch)
        );
    }

    #[test]
    fn plain_signatures_must_be_whole() {
        let verifier = verifier(&["secret"]);
        let signature = key("secret").plain_signature(BODY);
        for bad in [
            "",
            "sha256=",
            &signature[..signature.len() - 2],
            &signature["sha256=".len()..],
            &signature.replace("sha256=", "sha1="),
            &format!("{signature}00"),
        ] {
            assert!(verifier.verify(plain(bad), BODY, now()).is_err(), "{bad:?}");
        }
        assert_eq!(
            verifier.verify(SignatureHeaders::default(), BODY, now()),
            Err(Failure::Missing)
        );
        let repeated = SignatureHeaders {
            idnow_signature: HeaderValue::Unusable,
            ..Default::default()
        };
        assert_eq!(
            verifier.verify(repeated, BODY, now()),
            Err(Failure::Malformed)
        );
    }

    #[test]
    fn standard_webhooks_verify_and_yield_the_message_id() {
        let verifier = verifier(&["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]);
        let signature = key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .standard_signature("msg_1", NOW as i64, BODY);
        let timestamp = NOW.to_string();
        // Several signatures, of other versions too, may be listed; one match is enough.
        let listed = format!("v1a,abc v1,AAAA {signature}");
        assert_eq!(
            verifier.verify(standard("msg_1", &timestamp, &listed), BODY, now()),
            Ok(Verified {
                webhook_id: Some(&b"msg_1"[..])
            })
        );
        // The id and timestamp are signed too.
        assert_eq!(
            verifier.verify(standard("msg_2", &timestamp, &signature), BODY, now()),
            Err(Failure::Mismatch)
        );
    }

    #[test]
    fn any_signed_webhook_id_is_authentic_whatever_its_length_or_bytes() {
        // Judging the id is the handler's (400, kept); a wrong 401 would lose the delivery.
        let verifier = verifier(&["secret"]);
        let timestamp = NOW.to_string();
        for id in [
            "x".repeat(5_000).into_bytes(),
            b"caf\xc3\xa9 \x01".to_vec(),
            Vec::new(),
        ] {
            let signature = key("secret").standard_signature(&id, NOW as i64, BODY);
            let headers = SignatureHeaders {
                webhook_id: HeaderValue::One(&id),
                webhook_timestamp: HeaderValue::One(timestamp.as_bytes()),
                webhook_signature: HeaderValue::One(signature.as_bytes()),
                ..Default::default()
            };
            assert_eq!(
                verifier.verify(headers, BODY, now()),
                Ok(Verified {
                    webhook_id: Some(&id[..])
                })
            );
        }
    }

    #[test]
    fn either_scheme_suffices_when_both_are_sent() {
        fn both<'a>(
            timestamp: &'a str,
            signature: &'a str,
            plain: &'a str,
        ) -> SignatureHeaders<'a> {
            SignatureHeaders {
                webhook_id: HeaderValue::One(b"msg"),
                webhook_timestamp: HeaderValue::One(timestamp.as_bytes()),
                webhook_signature: HeaderValue::One(signature.as_bytes()),
                idnow_signature: HeaderValue::One(plain.as_bytes()),
            }
        }
        let verifier = verifier(&["secret"]);
        let plain = key("secret").plain_signature(BODY);
        let (timestamp, stale) = (NOW.to_string(), (NOW - 3_600).to_string());
        let standard = key("secret").standard_signature("msg", NOW as i64, BODY);
        let stale_signature = key("secret").standard_signature("msg", NOW as i64 - 3_600, BODY);
        // A valid HMAC beside a failing Standard Webhooks signature: authentic, without an id.
        for (timestamp, signature) in [(&timestamp, "v1,AAAA"), (&stale, &stale_signature)] {
            assert_eq!(
                verifier.verify(both(timestamp, signature, &plain), BODY, now()),
                Ok(Verified { webhook_id: None })
            );
        }
        // A valid Standard Webhooks signature beside a wrong HMAC: authentic, with its id.
        assert_eq!(
            verifier.verify(both(&timestamp, &standard, "sha256=00"), BODY, now()),
            Ok(Verified {
                webhook_id: Some(&b"msg"[..])
            })
        );
        // Both wrong: the Standard Webhooks reason.
        assert_eq!(
            verifier.verify(both(&stale, &stale_signature, "sha256=00"), BODY, now()),
            Err(Failure::Stale)
        );
    }

    #[test]
    fn whsec_secrets_sign_with_their_decoded_bytes() {
        // The Standard Webhooks reference vector.
        let key = key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        assert_eq!(
            key.standard_signature(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn stale_and_future_timestamps_are_refused() {
        let verifier = verifier(&["secret"]);
        for offset in [-301_i64, 301] {
            let sent = NOW as i64 + offset;
            let signature = key("secret").standard_signature("msg", sent, BODY);
            assert_eq!(
                verifier.verify(standard("msg", &sent.to_string(), &signature), BODY, now()),
                Err(Failure::Stale),
                "{offset}"
            );
        }
        for offset in [-300_i64, 300] {
            let sent = NOW as i64 + offset;
            let signature = key("secret").standard_signature("msg", sent, BODY);
            assert!(verifier
                .verify(standard("msg", &sent.to_string(), &signature), BODY, now())
                .is_ok());
        }
    }

    #[test]
    fn standard_webhooks_need_all_three_headers() {
        let verifier = verifier(&["secret"]);
        let timestamp = NOW.to_string();
        let signature = key("secret").standard_signature("msg", NOW as i64, BODY);
        let mut headers = standard("msg", &timestamp, &signature);
        headers.webhook_id = HeaderValue::Absent;
        assert_eq!(
            verifier.verify(headers, BODY, now()),
            Err(Failure::Malformed)
        );
        for bad_timestamp in ["", "-1", "1.5", "abc", "99999999999999999999"] {
            assert_eq!(
                verifier.verify(standard("msg", bad_timestamp, &signature), BODY, now()),
                Err(Failure::Malformed)
            );
        }
        assert_eq!(
            verifier.verify(standard("msg", &timestamp, "v1,"), BODY, now()),
            Err(Failure::Malformed)
        );
    }

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
        assert_eq!(format!("{:?}", key("hunter2")), "SigningKey([REDACTED])");
    }

    proptest! {
        #[test]
        fn only_the_exact_digest_verifies(
            body in proptest::collection::vec(any::<u8>(), 0..512),
            tamper in proptest::collection::vec(any::<u8>(), 1..512),
            cut in 0usize..64,
        ) {
            let verifier = verifier(&["secret"]);
            let signature = key("secret").plain_signature(&body);
            prop_assert!(verifier.verify(plain(&signature), &body, now()).is_ok());
            prop_assert!(verifier.verify(plain(&signature[..7 + cut]), &body, now()).is_err());
            if tamper != body {
                prop_assert_eq!(
                    verifier.verify(plain(&signature), &tamper, now()),
                    Err(Failure::Mismatch)
                );
            }
        }

        #[test]
        fn arbitrary_headers_never_verify_or_panic(
            id in "\\PC{0,40}",
            timestamp in "\\PC{0,20}",
            signature in "\\PC{0,120}",
        ) {
            let verifier = verifier(&["secret"]);
            prop_assert!(verifier.verify(standard(&id, &timestamp, &signature), BODY, now()).is_err());
            prop_assert!(verifier.verify(plain(&signature), BODY, now()).is_err());
        }
    }
}
