//! `standard-webhooks`: the `webhook-id`, `webhook-timestamp` and `webhook-signature` headers
//! of the Standard Webhooks specification; `v1,<base64 HMAC-SHA256>` of
//! `{id}.{timestamp}.{body}`, space-separated, any of which may match.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use super::signing_key::{any_key_matches, SigningKey, DIGEST_LEN};
use super::{AuthFailure, DeliveryHeaders, SentHeader, VouchedId};

/// A delivery's Standard Webhooks headers, read.
pub(super) struct Sent<'a> {
    id: &'a [u8],
    timestamp: &'a str,
    candidates: Vec<[u8; DIGEST_LEN]>,
}

#[derive(Debug, Clone)]
pub(super) struct StandardWebhooks {
    pub(super) keys: Vec<SigningKey>,
    /// Accepted clock skew of `webhook-timestamp`, both ways.
    pub(super) tolerance: Duration,
}

impl StandardWebhooks {
    pub(super) fn is_attempted(headers: &DeliveryHeaders<'_>) -> bool {
        headers.webhook_signature != SentHeader::Absent
    }

    pub(super) fn verify<'a>(
        &self,
        headers: &DeliveryHeaders<'a>,
        body: &[u8],
        now: SystemTime,
    ) -> Result<VouchedId<'a>, AuthFailure> {
        let Sent {
            id,
            timestamp,
            candidates,
        } = self.read(headers, now)?;
        let signed = [id, b".", timestamp.as_bytes(), b".", body];
        if any_key_matches(&self.keys, &signed, &candidates) {
            Ok(Some(id))
        } else {
            Err(AuthFailure::Mismatch)
        }
    }

    /// What the headers say, and what they alone refuse: a missing or malformed header, a
    /// timestamp out of tolerance. Only the signatures' match needs the body.
    pub(super) fn read<'a>(
        &self,
        headers: &DeliveryHeaders<'a>,
        now: SystemTime,
    ) -> Result<Sent<'a>, AuthFailure> {
        // The id's length and characters are not checked here: a correctly signed delivery
        // is authentic whatever its id, and an id unfit to store is the handler's 400.
        let id = headers.webhook_id.bytes(AuthFailure::Malformed)?;
        let timestamp = headers.webhook_timestamp.text(AuthFailure::Malformed)?;
        let signatures = headers.webhook_signature.text(AuthFailure::Missing)?;
        let sent_at = parse_timestamp(timestamp).ok_or(AuthFailure::Malformed)?;
        if !self.within_tolerance(sent_at, now) {
            return Err(AuthFailure::Stale);
        }
        let candidates: Vec<[u8; DIGEST_LEN]> = signatures
            .split(' ')
            .filter_map(|entry| entry.strip_prefix("v1,"))
            .filter_map(|encoded| BASE64.decode(encoded).ok())
            .filter_map(|digest| <[u8; DIGEST_LEN]>::try_from(digest).ok())
            .collect();
        if candidates.is_empty() {
            return Err(AuthFailure::Malformed);
        }
        Ok(Sent {
            id,
            timestamp,
            candidates,
        })
    }

    /// In whole seconds, as the timestamp is: against the clock's fraction of a second the
    /// window reached up to a second less into the past than into the future.
    fn within_tolerance(&self, sent_at: SystemTime, now: SystemTime) -> bool {
        let seconds = |at: SystemTime| at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        seconds(now).abs_diff(seconds(sent_at)) <= self.tolerance.as_secs()
    }
}

/// Unix seconds, plain digits: what Standard Webhooks senders write.
fn parse_timestamp(raw: &str) -> Option<SystemTime> {
    if raw.is_empty() || raw.len() > 12 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    UNIX_EPOCH.checked_add(Duration::from_secs(raw.parse().ok()?))
}

impl SigningKey {
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

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;

    #[test]
    fn whsec_secrets_sign_with_their_decoded_bytes() {
        // The Standard Webhooks reference vector.
        let key = SigningKey::parse(&SecretString::from(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ))
        .expect("valid secret");
        assert_eq!(
            key.standard_signature(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }
}
