//! Authentication of webhook deliveries (CONTRACT.md "Webhook authentication"): one file per
//! method, and here the policy that combines them.
//!
//! The methods are those the contract's `WEBHOOK_AUTH` enables by default: `standard-webhooks`
//! and `hmac`, both over the secrets of `IDNOW_WEBHOOK_SECRETS`, any of which may sign
//! (rotation). Any one enabled method suffices.

mod headers;
mod hmac;
mod signing_key;
mod standard_webhooks;

use std::time::{Duration, SystemTime};

pub use self::headers::{DeliveryHeaders, SentHeader};
use self::hmac::HmacSignature;
pub use self::signing_key::{SecretError, SigningKey};
use self::standard_webhooks::StandardWebhooks;

/// Why a delivery was not accepted as authentic: a metric label, never told to the sender
/// beyond 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No credentials of an enabled method.
    Missing,
    /// A credential header is malformed, or sent twice.
    Malformed,
    /// The webhook timestamp is outside the accepted tolerance.
    Stale,
    /// No credential matches a configured one.
    Mismatch,
}

impl AuthFailure {
    pub const ALL: [Self; 4] = [Self::Missing, Self::Malformed, Self::Stale, Self::Mismatch];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::Stale => "stale",
            Self::Mismatch => "mismatch",
        }
    }
}

/// What an authentic delivery tells us about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified<'a> {
    /// The Standard Webhooks message id as sent: authentic, but not yet judged fit to store
    /// (see `domain::WebhookId`).
    pub webhook_id: Option<&'a [u8]>,
}

/// One enabled method.
#[derive(Debug, Clone)]
enum Method {
    StandardWebhooks(StandardWebhooks),
    Hmac(HmacSignature),
}

impl Method {
    /// Whether the delivery carries this method's credentials at all.
    fn is_attempted(&self, headers: &DeliveryHeaders<'_>) -> bool {
        match self {
            Self::StandardWebhooks(_) => StandardWebhooks::is_attempted(headers),
            Self::Hmac(_) => HmacSignature::is_attempted(headers),
        }
    }

    fn verify<'a>(
        &self,
        headers: &DeliveryHeaders<'a>,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Verified<'a>, AuthFailure> {
        match self {
            Self::StandardWebhooks(method) => method.verify(headers, body, now),
            Self::Hmac(method) => method.verify(headers, body),
        }
    }
}

/// The enabled methods, in the order they are tried.
#[derive(Debug, Clone)]
pub struct WebhookAuth {
    methods: Vec<Method>,
}

impl WebhookAuth {
    /// `standard-webhooks` then `hmac`, over `keys`.
    pub fn new(keys: Vec<SigningKey>, tolerance: Duration) -> Self {
        Self {
            methods: vec![
                Method::StandardWebhooks(StandardWebhooks {
                    keys: keys.clone(),
                    tolerance,
                }),
                Method::Hmac(HmacSignature { keys }),
            ],
        }
    }

    /// Any one method the delivery attempts suffices. When none accepts it, the failure of
    /// the first it attempted, which the sender chose first; [`AuthFailure::Missing`] when it
    /// attempted none. Only a verified Standard Webhooks signature vouches for its id.
    pub fn verify<'a>(
        &self,
        headers: DeliveryHeaders<'a>,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Verified<'a>, AuthFailure> {
        let mut first_failure = None;
        for method in &self.methods {
            if !method.is_attempted(&headers) {
                continue;
            }
            match method.verify(&headers, body, now) {
                Ok(verified) => return Ok(verified),
                Err(failure) => {
                    first_failure.get_or_insert(failure);
                }
            }
        }
        Err(first_failure.unwrap_or(AuthFailure::Missing))
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use proptest::prelude::*;
    use secrecy::SecretString;

    use super::*;

    const BODY: &[u8] = br#"{"identificationprocess":{"result":"SUCCESS"}}"#;
    const NOW: u64 = 1_790_000_000;

    fn key(secret: &str) -> SigningKey {
        SigningKey::parse(&SecretString::from(secret)).expect("valid secret")
    }

    fn webhook_auth(secrets: &[&str]) -> WebhookAuth {
        WebhookAuth::new(
            secrets.iter().map(|s| key(s)).collect(),
            Duration::from_secs(300),
        )
    }

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW)
    }

    fn plain(signature: &str) -> DeliveryHeaders<'_> {
        DeliveryHeaders {
            idnow_signature: SentHeader::One(signature.as_bytes()),
            ..Default::default()
        }
    }

    fn standard<'a>(id: &'a str, timestamp: &'a str, signature: &'a str) -> DeliveryHeaders<'a> {
        DeliveryHeaders {
            webhook_id: SentHeader::One(id.as_bytes()),
            webhook_timestamp: SentHeader::One(timestamp.as_bytes()),
            webhook_signature: SentHeader::One(signature.as_bytes()),
            ..Default::default()
        }
    }

    #[test]
    fn hmac_signatures_verify_with_any_secret_of_the_rotation() {
        let auth = webhook_auth(&["new-secret", "old-secret"]);
        for secret in ["new-secret", "old-secret"] {
            let signature = key(secret).hmac_signature(BODY);
            assert_eq!(
                auth.verify(plain(&signature), BODY, now()),
                Ok(Verified { webhook_id: None })
            );
        }
        let foreign = key("someone-else").hmac_signature(BODY);
        assert_eq!(
            auth.verify(plain(&foreign), BODY, now()),
            Err(AuthFailure::Mismatch)
        );
    }

    #[test]
    fn hmac_signatures_must_be_whole() {
        let auth = webhook_auth(&["secret"]);
        let signature = key("secret").hmac_signature(BODY);
        for bad in [
            "",
            "sha256=",
            &signature[..signature.len() - 2],
            &signature["sha256=".len()..],
            &signature.replace("sha256=", "sha1="),
            &format!("{signature}00"),
        ] {
            assert!(auth.verify(plain(bad), BODY, now()).is_err(), "{bad:?}");
        }
        assert_eq!(
            auth.verify(DeliveryHeaders::default(), BODY, now()),
            Err(AuthFailure::Missing)
        );
        let repeated = DeliveryHeaders {
            idnow_signature: SentHeader::Repeated,
            ..Default::default()
        };
        assert_eq!(
            auth.verify(repeated, BODY, now()),
            Err(AuthFailure::Malformed)
        );
    }

    #[test]
    fn standard_webhooks_verify_and_yield_the_message_id() {
        let auth = webhook_auth(&["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]);
        let signature = key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .standard_signature("msg_1", NOW as i64, BODY);
        let timestamp = NOW.to_string();
        // Several signatures, of other versions too, may be listed; one match is enough.
        let listed = format!("v1a,abc v1,AAAA {signature}");
        assert_eq!(
            auth.verify(standard("msg_1", &timestamp, &listed), BODY, now()),
            Ok(Verified {
                webhook_id: Some(&b"msg_1"[..])
            })
        );
        // The id and timestamp are signed too.
        assert_eq!(
            auth.verify(standard("msg_2", &timestamp, &signature), BODY, now()),
            Err(AuthFailure::Mismatch)
        );
    }

    #[test]
    fn any_signed_webhook_id_is_authentic_whatever_its_length_or_bytes() {
        // Judging the id is the handler's (400, kept); a wrong 401 would lose the delivery.
        let auth = webhook_auth(&["secret"]);
        let timestamp = NOW.to_string();
        for id in [
            "x".repeat(5_000).into_bytes(),
            b"caf\xc3\xa9 \x01".to_vec(),
            Vec::new(),
        ] {
            let signature = key("secret").standard_signature(&id, NOW as i64, BODY);
            let headers = DeliveryHeaders {
                webhook_id: SentHeader::One(&id),
                webhook_timestamp: SentHeader::One(timestamp.as_bytes()),
                webhook_signature: SentHeader::One(signature.as_bytes()),
                ..Default::default()
            };
            assert_eq!(
                auth.verify(headers, BODY, now()),
                Ok(Verified {
                    webhook_id: Some(&id[..])
                })
            );
        }
    }

    #[test]
    fn either_scheme_suffices_when_both_are_sent() {
        fn both<'a>(timestamp: &'a str, signature: &'a str, plain: &'a str) -> DeliveryHeaders<'a> {
            DeliveryHeaders {
                webhook_id: SentHeader::One(b"msg"),
                webhook_timestamp: SentHeader::One(timestamp.as_bytes()),
                webhook_signature: SentHeader::One(signature.as_bytes()),
                idnow_signature: SentHeader::One(plain.as_bytes()),
            }
        }
        let auth = webhook_auth(&["secret"]);
        let plain = key("secret").hmac_signature(BODY);
        let (timestamp, stale) = (NOW.to_string(), (NOW - 3_600).to_string());
        let standard = key("secret").standard_signature("msg", NOW as i64, BODY);
        let stale_signature = key("secret").standard_signature("msg", NOW as i64 - 3_600, BODY);
        // A valid HMAC beside a failing Standard Webhooks signature: authentic, without an id.
        for (timestamp, signature) in [(&timestamp, "v1,AAAA"), (&stale, &stale_signature)] {
            assert_eq!(
                auth.verify(both(timestamp, signature, &plain), BODY, now()),
                Ok(Verified { webhook_id: None })
            );
        }
        // A valid Standard Webhooks signature beside a wrong HMAC: authentic, with its id.
        assert_eq!(
            auth.verify(both(&timestamp, &standard, "sha256=00"), BODY, now()),
            Ok(Verified {
                webhook_id: Some(&b"msg"[..])
            })
        );
        // Both wrong: the Standard Webhooks reason.
        assert_eq!(
            auth.verify(both(&stale, &stale_signature, "sha256=00"), BODY, now()),
            Err(AuthFailure::Stale)
        );
    }

    #[test]
    fn stale_and_future_timestamps_are_refused() {
        let auth = webhook_auth(&["secret"]);
        for offset in [-301_i64, 301] {
            let sent = NOW as i64 + offset;
            let signature = key("secret").standard_signature("msg", sent, BODY);
            assert_eq!(
                auth.verify(standard("msg", &sent.to_string(), &signature), BODY, now()),
                Err(AuthFailure::Stale),
                "{offset}"
            );
        }
        for offset in [-300_i64, 300] {
            let sent = NOW as i64 + offset;
            let signature = key("secret").standard_signature("msg", sent, BODY);
            assert!(auth
                .verify(standard("msg", &sent.to_string(), &signature), BODY, now())
                .is_ok());
        }
    }

    #[test]
    fn standard_webhooks_need_all_three_headers() {
        let auth = webhook_auth(&["secret"]);
        let timestamp = NOW.to_string();
        let signature = key("secret").standard_signature("msg", NOW as i64, BODY);
        let mut headers = standard("msg", &timestamp, &signature);
        headers.webhook_id = SentHeader::Absent;
        assert_eq!(
            auth.verify(headers, BODY, now()),
            Err(AuthFailure::Malformed)
        );
        for bad_timestamp in ["", "-1", "1.5", "abc", "99999999999999999999"] {
            assert_eq!(
                auth.verify(standard("msg", bad_timestamp, &signature), BODY, now()),
                Err(AuthFailure::Malformed)
            );
        }
        assert_eq!(
            auth.verify(standard("msg", &timestamp, "v1,"), BODY, now()),
            Err(AuthFailure::Malformed)
        );
    }

    proptest! {
        #[test]
        fn only_the_exact_digest_verifies(
            body in proptest::collection::vec(any::<u8>(), 0..512),
            tamper in proptest::collection::vec(any::<u8>(), 1..512),
            cut in 0usize..64,
        ) {
            let auth = webhook_auth(&["secret"]);
            let signature = key("secret").hmac_signature(&body);
            prop_assert!(auth.verify(plain(&signature), &body, now()).is_ok());
            prop_assert!(auth.verify(plain(&signature[..7 + cut]), &body, now()).is_err());
            if tamper != body {
                prop_assert_eq!(
                    auth.verify(plain(&signature), &tamper, now()),
                    Err(AuthFailure::Mismatch)
                );
            }
        }

        #[test]
        fn arbitrary_headers_never_verify_or_panic(
            id in "\\PC{0,40}",
            timestamp in "\\PC{0,20}",
            signature in "\\PC{0,120}",
        ) {
            let auth = webhook_auth(&["secret"]);
            prop_assert!(auth.verify(standard(&id, &timestamp, &signature), BODY, now()).is_err());
            prop_assert!(auth.verify(plain(&signature), BODY, now()).is_err());
        }
    }
}
