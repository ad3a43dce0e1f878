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

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(value: &[u8]) -> DeliveryHeaders<'_> {
        DeliveryHeaders {
            token: SentHeader::One(value),
            ..Default::default()
        }
    }

    #[test]
    fn any_listed_token_passes_and_nothing_else_does() {
        let method = StaticToken {
            digests: vec![SecretDigest::of(b"current"), SecretDigest::of(b"next")],
        };
        assert_eq!(method.verify(&sent(b"current")), Ok(None));
        assert_eq!(method.verify(&sent(b"next")), Ok(None));
        for (value, failure) in [
            (&b"curren"[..], AuthFailure::Mismatch),
            (b"current ", AuthFailure::Mismatch),
            (b"CURRENT", AuthFailure::Mismatch),
            (b"", AuthFailure::Malformed),
        ] {
            assert_eq!(method.verify(&sent(value)), Err(failure), "{value:?}");
        }
        let repeated = DeliveryHeaders {
            token: SentHeader::Repeated,
            ..Default::default()
        };
        assert_eq!(method.verify(&repeated), Err(AuthFailure::Malformed));
        assert!(!StaticToken::is_attempted(&DeliveryHeaders::default()));
        assert_eq!(
            method.verify(&DeliveryHeaders::default()),
            Err(AuthFailure::Missing)
        );
    }
}
