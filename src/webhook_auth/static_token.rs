//! `token`: a fixed token in the header `WEBHOOK_TOKEN_HEADER` names (default `X-Auth-Token`),
//! as IDnow sends with every call where the account is set up with a custom header. Only the
//! tokens' SHA-256 digests are configured (`WEBHOOK_TOKENS`).

use super::{AuthFailure, DeliveryHeaders, SentHeader, VouchedId};
use crate::digest::{matches_any, SecretDigest};

#[derive(Debug, Clone)]
pub(super) struct StaticToken {
    pub(super) digests: Vec<SecretDigest>,
}

impl StaticToken {
    pub(super) fn is_attempted(headers: &DeliveryHeaders<'_>) -> bool {
        headers.token != SentHeader::Absent
    }

    pub(super) fn verify<'a>(
        &self,
        headers: &DeliveryHeaders<'a>,
    ) -> Result<VouchedId<'a>, AuthFailure> {
        let token = headers.token.bytes(AuthFailure::Missing)?;
        if token.is_empty() {
            return Err(AuthFailure::Malformed);
        }
        let presented = SecretDigest::of(token);
        if matches_any(&self.digests, |digest| digest.ct_matches(&presented)) {
            Ok(None)
        } else {
            Err(AuthFailure::Mismatch)
        }
    }
}
