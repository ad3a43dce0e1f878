//! `hmac`: `X-Idnow-Signature: sha256=<lowercase hex HMAC-SHA256 of the raw body>`.

use super::signing_key::{any_key_matches, SigningKey, DIGEST_LEN};
use super::{AuthFailure, DeliveryHeaders, SentHeader, VouchedId};

const SIGNATURE_PREFIX: &str = "sha256=";

#[derive(Debug, Clone)]
pub(super) struct HmacSignature {
    pub(super) keys: Vec<SigningKey>,
}

impl HmacSignature {
    pub(super) fn is_attempted(headers: &DeliveryHeaders<'_>) -> bool {
        headers.idnow_signature != SentHeader::Absent
    }

    pub(super) fn verify<'a>(
        &self,
        headers: &DeliveryHeaders<'a>,
        body: &[u8],
    ) -> Result<VouchedId<'a>, AuthFailure> {
        let digest = Self::read(headers)?;
        if any_key_matches(&self.keys, &[body], &[digest]) {
            Ok(None)
        } else {
            Err(AuthFailure::Mismatch)
        }
    }
}

impl HmacSignature {
    /// The signature the header holds, or what the header alone refuses (missing, sent
    /// twice, malformed). Only its match needs the body.
    pub(super) fn read(headers: &DeliveryHeaders<'_>) -> Result<[u8; DIGEST_LEN], AuthFailure> {
        let header = headers.idnow_signature.text(AuthFailure::Missing)?;
        let mut digest = [0; DIGEST_LEN];
        header
            .strip_prefix(SIGNATURE_PREFIX)
            .and_then(|encoded| hex::decode_to_slice(encoded, &mut digest).ok())
            .ok_or(AuthFailure::Malformed)?;
        Ok(digest)
    }
}

impl SigningKey {
    /// `X-Idnow-Signature` value for `body`. Used by senders, tests and the quickstart.
    pub fn hmac_signature(&self, body: &[u8]) -> String {
        format!("{SIGNATURE_PREFIX}{}", hex::encode(self.digest(&[body])))
    }
}
