//! Authentication of webhook deliveries (CONTRACT.md "Webhook authentication"): one file per
//! method, and here the policy that combines them.
//!
//! A delivery first passes the source gate (`WEBHOOK_ALLOWED_SOURCES`, when set), then any one
//! of the methods `WEBHOOK_AUTH` enables: `standard-webhooks` and `hmac` over the secrets of
//! `IDNOW_WEBHOOK_SECRETS`, `token` and `basic` over digests of fixed credentials, and
//! `source`, which asks nothing beyond the gate. [`WebhookAuth::admit`] returns the only value
//! that can verify a delivery, so no path verifies one that the gate has not seen.

mod basic;
mod headers;
mod hmac;
mod signing_key;
mod standard_webhooks;
mod static_token;

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use actix_web::http::header::{HeaderMap, HeaderName};

use self::basic::BasicCredentials;
pub use self::basic::{BasicCredential, BasicCredentialError, CHALLENGE as BASIC_CHALLENGE};
pub use self::headers::{DeliveryHeaders, SentHeader};
use self::hmac::HmacSignature;
pub use self::signing_key::{SecretError, SigningKey};
use self::standard_webhooks::StandardWebhooks;
use self::static_token::StaticToken;
use crate::digest::SecretDigest;
use crate::networks::Networks;

/// Why a delivery was not accepted as authentic: a metric label, never told to the sender
/// beyond 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No credentials of an enabled method.
    Missing,
    /// A credential header is malformed, empty, or sent twice.
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

/// A method of `WEBHOOK_AUTH`. They are tried in this order, whatever the configured one:
/// the signatures first, since only a verified Standard Webhooks signature vouches for its
/// `webhook-id`, and `source`, which accepts whatever the gate let in, last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MethodName {
    StandardWebhooks,
    Hmac,
    Token,
    Basic,
    Source,
}

impl MethodName {
    pub const ALL: [Self; 5] = [
        Self::StandardWebhooks,
        Self::Hmac,
        Self::Token,
        Self::Basic,
        Self::Source,
    ];

    /// As `WEBHOOK_AUTH` names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StandardWebhooks => "standard-webhooks",
            Self::Hmac => "hmac",
            Self::Token => "token",
            Self::Basic => "basic",
            Self::Source => "source",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|method| method.as_str() == name.trim())
    }
}

/// The `webhook-id` a method vouches for, as sent: authentic, but not yet judged fit to store
/// (see `domain::WebhookId`). Only Standard Webhooks signs one.
pub type VouchedId<'a> = Option<&'a [u8]>;

/// How an authentic delivery was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified<'a> {
    pub method: MethodName,
    pub webhook_id: VouchedId<'a>,
}

/// Why a delivery that passed the gate was not accepted: the failure of the first method, in
/// the order they are tried, whose credentials it sent; or [`AuthFailure::Missing`] with no
/// method when it sent none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub method: Option<MethodName>,
    pub failure: AuthFailure,
}

/// A delivery the source gate refused: 403, whatever it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForbiddenSource {
    /// From this client address, outside `WEBHOOK_ALLOWED_SOURCES`.
    Outside(IpAddr),
    /// From a client whose address cannot be told: a trusted proxy forwarded an
    /// `X-Forwarded-For` that does not parse. Refused with or without allowed sources.
    UnknownClient,
}

impl ForbiddenSource {
    /// The `reason` label of the refusal's metric.
    pub const REASONS: [&'static str; 2] = ["outside_allowed_sources", "unknown_client"];

    pub fn reason(self) -> &'static str {
        match self {
            Self::Outside(_) => Self::REASONS[0],
            Self::UnknownClient => Self::REASONS[1],
        }
    }

    /// The refused client's address, when it could be told.
    pub fn client(self) -> Option<IpAddr> {
        match self {
            Self::Outside(address) => Some(address),
            Self::UnknownClient => None,
        }
    }
}

/// One enabled method.
#[derive(Debug, Clone)]
enum Method {
    StandardWebhooks(StandardWebhooks),
    Hmac(HmacSignature),
    Token(StaticToken),
    Basic(BasicCredentials),
    /// Passes whatever the source gate let in.
    Source,
}

impl Method {
    fn name(&self) -> MethodName {
        match self {
            Self::StandardWebhooks(_) => MethodName::StandardWebhooks,
            Self::Hmac(_) => MethodName::Hmac,
            Self::Token(_) => MethodName::Token,
            Self::Basic(_) => MethodName::Basic,
            Self::Source => MethodName::Source,
        }
    }

    /// Whether the delivery carries this method's credentials at all.
    fn is_attempted(&self, headers: &DeliveryHeaders<'_>) -> bool {
        match self {
            Self::StandardWebhooks(_) => StandardWebhooks::is_attempted(headers),
            Self::Hmac(_) => HmacSignature::is_attempted(headers),
            Self::Token(_) => StaticToken::is_attempted(headers),
            Self::Basic(_) => BasicCredentials::is_attempted(headers),
            Self::Source => true,
        }
    }

    /// The verdict the headers alone give: `Some` unless it depends on the body, as a
    /// signature's does once its headers are well formed and, for Standard Webhooks, recent.
    fn verify_headers<'a>(
        &self,
        headers: &DeliveryHeaders<'a>,
        now: SystemTime,
    ) -> Option<Result<VouchedId<'a>, AuthFailure>> {
        match self {
            Self::StandardWebhooks(method) => method.read(headers, now).err().map(Err),
            Self::Hmac(_) => HmacSignature::read(headers).err().map(Err),
            Self::Token(_) | Self::Basic(_) | Self::Source => Some(self.verify(headers, &[], now)),
        }
    }

    fn verify<'a>(
        &self,
        headers: &DeliveryHeaders<'a>,
        body: &[u8],
        now: SystemTime,
    ) -> Result<VouchedId<'a>, AuthFailure> {
        match self {
            Self::StandardWebhooks(method) => method.verify(headers, body, now),
            Self::Hmac(method) => method.verify(headers, body),
            Self::Token(method) => method.verify(headers),
            Self::Basic(method) => method.verify(headers),
            Self::Source => Ok(None),
        }
    }
}

/// What `WEBHOOK_AUTH` and the variables of its methods configure.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// `WEBHOOK_AUTH`, in any order, repeats ignored.
    pub methods: Vec<MethodName>,
    /// `IDNOW_WEBHOOK_SECRETS`.
    pub keys: Vec<SigningKey>,
    /// `WEBHOOK_TOLERANCE_SECONDS`.
    pub tolerance: Duration,
    /// `WEBHOOK_TOKEN_HEADER`.
    pub token_header: HeaderName,
    /// `WEBHOOK_TOKENS`.
    pub tokens: Vec<SecretDigest>,
    /// `WEBHOOK_BASIC_CREDENTIALS`.
    pub basic: Vec<BasicCredential>,
    /// `WEBHOOK_ALLOWED_SOURCES`; `None` lets any address in.
    pub allowed_sources: Option<Networks>,
}

/// A policy that cannot work as configured: each names what is missing, never a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("no authentication method is enabled")]
    NoMethod,
    /// A method is enabled without the credentials it checks, kept in `variable`.
    #[error("`{method}` is enabled but {variable} lists nothing to check")]
    NoCredentials {
        method: &'static str,
        variable: &'static str,
    },
    #[error(
        "`source` is enabled but WEBHOOK_ALLOWED_SOURCES is not set or covers every address: \
         it would accept anonymous deliveries from anywhere"
    )]
    SourceFromAnywhere,
    /// A gate that lets nobody in is a mistake, never a setting: unset admits any address.
    #[error("it is set but lists no address; leave it unset to admit any address")]
    NoAllowedSource,
    #[error("it names a header that HTTP, proxies or another method use")]
    TokenHeaderTaken,
}

/// The enabled methods, in the order they are tried, behind the source gate.
#[derive(Debug, Clone)]
pub struct WebhookAuth {
    allowed_sources: Option<Networks>,
    methods: Vec<Method>,
    token_header: HeaderName,
}

impl WebhookAuth {
    pub fn new(credentials: Credentials) -> Result<Self, PolicyError> {
        let Credentials {
            mut methods,
            keys,
            tolerance,
            token_header,
            tokens,
            basic,
            allowed_sources,
        } = credentials;
        methods.sort_unstable();
        methods.dedup();
        if methods.is_empty() {
            return Err(PolicyError::NoMethod);
        }
        if allowed_sources.as_ref().is_some_and(Networks::is_empty) {
            return Err(PolicyError::NoAllowedSource);
        }
        if headers::is_read_by_others(&token_header, &methods) {
            return Err(PolicyError::TokenHeaderTaken);
        }
        let methods = methods
            .into_iter()
            .map(|name| {
                let needs = |held: bool, variable| {
                    held.then_some(()).ok_or(PolicyError::NoCredentials {
                        method: name.as_str(),
                        variable,
                    })
                };
                Ok(match name {
                    MethodName::StandardWebhooks => {
                        needs(!keys.is_empty(), "IDNOW_WEBHOOK_SECRETS")?;
                        Method::StandardWebhooks(StandardWebhooks {
                            keys: keys.clone(),
                            tolerance,
                        })
                    }
                    MethodName::Hmac => {
                        needs(!keys.is_empty(), "IDNOW_WEBHOOK_SECRETS")?;
                        Method::Hmac(HmacSignature { keys: keys.clone() })
                    }
                    MethodName::Token => {
                        needs(!tokens.is_empty(), "WEBHOOK_TOKENS")?;
                        Method::Token(StaticToken {
                            digests: tokens.clone(),
                        })
                    }
                    MethodName::Basic => {
                        needs(!basic.is_empty(), "WEBHOOK_BASIC_CREDENTIALS")?;
                        Method::Basic(BasicCredentials {
                            accepted: basic.clone(),
                        })
                    }
                    MethodName::Source => {
                        // Unset, or a range of every address: either would take anonymous
                        // deliveries from anywhere.
                        if allowed_sources
                            .as_ref()
                            .is_none_or(Networks::has_everything)
                        {
                            return Err(PolicyError::SourceFromAnywhere);
                        }
                        Method::Source
                    }
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            allowed_sources,
            methods,
            token_header,
        })
    }

    /// The enabled methods, in the order they are tried.
    pub fn methods(&self) -> impl Iterator<Item = MethodName> + '_ {
        self.methods.iter().map(Method::name)
    }

    /// The header the `token` method reads (`WEBHOOK_TOKEN_HEADER`).
    pub fn token_header(&self) -> &HeaderName {
        &self.token_header
    }

    /// Whether the source gate is set.
    pub fn checks_sources(&self) -> bool {
        self.allowed_sources.is_some()
    }

    /// Whether a 401 challenges the sender to Basic credentials.
    pub fn challenges_basic(&self) -> bool {
        self.methods().any(|method| method == MethodName::Basic)
    }

    /// The source gate, before anything else of the delivery is read. `client` is `None`
    /// when the client's address cannot be told, which is refused like an outside source
    /// whether `WEBHOOK_ALLOWED_SOURCES` is set or not: an unreadable forwarding chain is a
    /// proxy's fault or a forgery, never a delivery to take.
    pub fn admit(&self, client: Option<IpAddr>) -> Result<Admitted<'_>, ForbiddenSource> {
        let client = client.ok_or(ForbiddenSource::UnknownClient)?;
        match &self.allowed_sources {
            Some(allowed) if !allowed.contains(client) => Err(ForbiddenSource::Outside(client)),
            _ => Ok(Admitted(self)),
        }
    }

    /// The headers the enabled methods read, taken from the request once.
    pub fn headers<'a>(&self, headers: &'a HeaderMap) -> DeliveryHeaders<'a> {
        DeliveryHeaders::of(headers, &self.token_header)
    }
}

/// A delivery the source gate let in, whose credentials are still to be verified.
#[derive(Debug, Clone, Copy)]
pub struct Admitted<'p>(&'p WebhookAuth);

impl Admitted<'_> {
    /// The verdict on a delivery before its body is read, when its headers give it: so that
    /// a sender with no credentials, wrong static ones or signature headers that could
    /// never verify (malformed, or a stale timestamp) costs no body's memory and is not
    /// told to send one (`100 Continue`). `None` when a signature could verify: then
    /// [`Admitted::verify`] decides with the body. Methods are tried in the same order, so
    /// the verdict is the one `verify` gives.
    pub fn verify_before_body<'a>(
        self,
        headers: DeliveryHeaders<'a>,
        now: SystemTime,
    ) -> Option<Result<Verified<'a>, Refused>> {
        self.decide(&headers, |method| method.verify_headers(&headers, now))
    }

    /// Any one method the delivery attempts suffices. Only a verified Standard Webhooks
    /// signature vouches for its id.
    pub fn verify<'a>(
        self,
        headers: DeliveryHeaders<'a>,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Verified<'a>, Refused> {
        self.decide(&headers, |method| Some(method.verify(&headers, body, now)))
            .unwrap_or_else(|| unreachable!("with the body, every method decides"))
    }

    /// The first attempted method, in order, that `verdict` passes; else the first refusal
    /// (`Missing` when nothing was attempted). `None` as soon as a verdict is `None`: that
    /// method cannot decide yet, and the methods after it may not decide in its place.
    fn decide<'a>(
        self,
        headers: &DeliveryHeaders<'a>,
        mut verdict: impl FnMut(&Method) -> Option<Result<VouchedId<'a>, AuthFailure>>,
    ) -> Option<Result<Verified<'a>, Refused>> {
        let mut first_refusal = None;
        for method in &self.0.methods {
            if !method.is_attempted(headers) {
                continue;
            }
            match verdict(method)? {
                Ok(webhook_id) => {
                    return Some(Ok(Verified {
                        method: method.name(),
                        webhook_id,
                    }))
                }
                Err(failure) => {
                    first_refusal.get_or_insert(Refused {
                        method: Some(method.name()),
                        failure,
                    });
                }
            }
        }
        Some(Err(first_refusal.unwrap_or(Refused {
            method: None,
            failure: AuthFailure::Missing,
        })))
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use base64::Engine as _;
    use proptest::prelude::*;
    use secrecy::SecretString;
    use sha2::Digest as _;

    use super::*;

    const BODY: &[u8] = br#"{"identificationprocess":{"result":"SUCCESS"}}"#;
    const NOW: u64 = 1_790_000_000;
    const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const TOKEN: &str = "static-token-from-idnow";
    const PASSWORD: &str = "basic password";

    fn key(secret: &str) -> SigningKey {
        SigningKey::parse(&SecretString::from(secret)).expect("valid secret")
    }

    fn credentials(methods: &[MethodName]) -> Credentials {
        Credentials {
            methods: methods.to_vec(),
            keys: vec![key("secret")],
            tolerance: Duration::from_secs(300),
            token_header: HeaderName::from_static("x-auth-token"),
            tokens: vec![SecretDigest::of(TOKEN.as_bytes())],
            basic: vec![BasicCredential::parse(&format!(
                "idnow:{}",
                hex::encode(sha2::Sha256::digest(PASSWORD))
            ))
            .expect("a valid pair")],
            allowed_sources: None,
        }
    }

    /// The default policy, `standard-webhooks,hmac`, over `secrets`.
    fn webhook_auth(secrets: &[&str]) -> WebhookAuth {
        WebhookAuth::new(Credentials {
            keys: secrets.iter().map(|s| key(s)).collect(),
            ..credentials(&[MethodName::StandardWebhooks, MethodName::Hmac])
        })
        .expect("a valid policy")
    }

    /// Through a gate that lets anyone in: the failure alone, as the signature tests need.
    fn verify<'a>(
        auth: &WebhookAuth,
        headers: DeliveryHeaders<'a>,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Verified<'a>, AuthFailure> {
        auth.admit(Some(CLIENT))
            .expect("no gate")
            .verify(headers, body, now)
            .map_err(|refused| refused.failure)
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
                verify(&auth, plain(&signature), BODY, now()),
                Ok(Verified {
                    method: MethodName::Hmac,
                    webhook_id: None
                })
            );
        }
        let foreign = key("someone-else").hmac_signature(BODY);
        assert_eq!(
            verify(&auth, plain(&foreign), BODY, now()),
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
            assert!(verify(&auth, plain(bad), BODY, now()).is_err(), "{bad:?}");
        }
        assert_eq!(
            verify(&auth, DeliveryHeaders::default(), BODY, now()),
            Err(AuthFailure::Missing)
        );
        let repeated = DeliveryHeaders {
            idnow_signature: SentHeader::Repeated,
            ..Default::default()
        };
        assert_eq!(
            verify(&auth, repeated, BODY, now()),
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
            verify(&auth, standard("msg_1", &timestamp, &listed), BODY, now()),
            Ok(Verified {
                method: MethodName::StandardWebhooks,
                webhook_id: Some(&b"msg_1"[..])
            })
        );
        // The id and timestamp are signed too.
        assert_eq!(
            verify(
                &auth,
                standard("msg_2", &timestamp, &signature),
                BODY,
                now()
            ),
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
                verify(&auth, headers, BODY, now()),
                Ok(Verified {
                    method: MethodName::StandardWebhooks,
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
                ..Default::default()
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
                verify(&auth, both(timestamp, signature, &plain), BODY, now()),
                Ok(Verified {
                    method: MethodName::Hmac,
                    webhook_id: None
                })
            );
        }
        // A valid Standard Webhooks signature beside a wrong HMAC: authentic, with its id.
        assert_eq!(
            verify(&auth, both(&timestamp, &standard, "sha256=00"), BODY, now()),
            Ok(Verified {
                method: MethodName::StandardWebhooks,
                webhook_id: Some(&b"msg"[..])
            })
        );
        // Both wrong: the Standard Webhooks reason.
        assert_eq!(
            verify(
                &auth,
                both(&stale, &stale_signature, "sha256=00"),
                BODY,
                now()
            ),
            Err(AuthFailure::Stale)
        );
    }

    /// The window is the same whole seconds both ways, at any fraction of the current second
    /// (a clock read at x.999 s once refused a timestamp 300 s old and took one 300 s ahead).
    #[test]
    fn stale_and_future_timestamps_are_refused() {
        let auth = webhook_auth(&["secret"]);
        for fraction in [0, 1, 500, 999] {
            let now = now() + Duration::from_millis(fraction);
            for offset in [-301_i64, 301] {
                let sent = NOW as i64 + offset;
                let signature = key("secret").standard_signature("msg", sent, BODY);
                assert_eq!(
                    verify(
                        &auth,
                        standard("msg", &sent.to_string(), &signature),
                        BODY,
                        now
                    ),
                    Err(AuthFailure::Stale),
                    "{offset} at +{fraction} ms"
                );
            }
            for offset in [-300_i64, 0, 300] {
                let sent = NOW as i64 + offset;
                let signature = key("secret").standard_signature("msg", sent, BODY);
                assert!(
                    verify(
                        &auth,
                        standard("msg", &sent.to_string(), &signature),
                        BODY,
                        now
                    )
                    .is_ok(),
                    "{offset} at +{fraction} ms"
                );
            }
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
            verify(&auth, headers, BODY, now()),
            Err(AuthFailure::Malformed)
        );
        for bad_timestamp in ["", "-1", "1.5", "abc", "99999999999999999999"] {
            assert_eq!(
                verify(
                    &auth,
                    standard("msg", bad_timestamp, &signature),
                    BODY,
                    now()
                ),
                Err(AuthFailure::Malformed)
            );
        }
        assert_eq!(
            verify(&auth, standard("msg", &timestamp, "v1,"), BODY, now()),
            Err(AuthFailure::Malformed)
        );
    }

    fn policy(
        methods: &[MethodName],
        allowed: Option<&[&str]>,
    ) -> Result<WebhookAuth, PolicyError> {
        WebhookAuth::new(Credentials {
            allowed_sources: allowed.map(|list| Networks::parse(list).expect("valid networks")),
            ..credentials(methods)
        })
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    fn token_sent(value: &str) -> DeliveryHeaders<'_> {
        DeliveryHeaders {
            token: SentHeader::One(value.as_bytes()),
            ..Default::default()
        }
    }

    /// The `Authorization` value of the listed Basic user, with its password.
    fn basic_authorization() -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("idnow:{PASSWORD}"))
        )
    }

    fn authorization_sent(value: &str) -> DeliveryHeaders<'_> {
        DeliveryHeaders {
            authorization: SentHeader::One(value.as_bytes()),
            ..Default::default()
        }
    }

    #[test]
    fn the_gate_admits_only_allowed_clients_and_never_an_unknown_one() {
        let gated = policy(&[MethodName::Token], Some(&["192.0.2.0/24"])).expect("valid");
        assert!(gated.admit(Some(ip("192.0.2.77"))).is_ok());
        assert!(gated.admit(Some(ip("::ffff:192.0.2.77"))).is_ok());
        assert_eq!(
            gated.admit(Some(ip("198.51.100.1"))).err(),
            Some(ForbiddenSource::Outside(ip("198.51.100.1")))
        );
        assert_eq!(
            gated.admit(None).err(),
            Some(ForbiddenSource::UnknownClient)
        );
        // Without allowed sources any known address passes; an unknown one still does not.
        let open = policy(&[MethodName::Token], None).expect("valid");
        assert!(open.admit(Some(ip("198.51.100.1"))).is_ok());
        assert_eq!(open.admit(None).err(), Some(ForbiddenSource::UnknownClient));
    }

    #[test]
    fn token_basic_and_source_verify_behind_the_gate() {
        let all = [MethodName::Token, MethodName::Basic];
        let auth = policy(&all, None).expect("valid");
        let admitted = auth.admit(Some(CLIENT)).expect("admitted");
        assert_eq!(
            admitted.verify(token_sent(TOKEN), BODY, now()),
            Ok(Verified {
                method: MethodName::Token,
                webhook_id: None
            })
        );
        assert_eq!(
            admitted.verify(token_sent("wrong"), BODY, now()),
            Err(Refused {
                method: Some(MethodName::Token),
                failure: AuthFailure::Mismatch
            })
        );
        let basic = basic_authorization();
        let headers = authorization_sent(&basic);
        assert_eq!(
            admitted.verify(headers, BODY, now()).map(|v| v.method),
            Ok(MethodName::Basic)
        );
        assert_eq!(
            admitted.verify(DeliveryHeaders::default(), BODY, now()),
            Err(Refused {
                method: None,
                failure: AuthFailure::Missing
            })
        );
    }

    #[test]
    fn with_source_enabled_any_delivery_the_gate_admits_passes_and_signatures_still_vouch() {
        let methods = [
            MethodName::Source,
            MethodName::Token,
            MethodName::StandardWebhooks,
        ];
        let auth = policy(&methods, Some(&["192.0.2.0/24"])).expect("valid");
        let admitted = auth.admit(Some(CLIENT)).expect("admitted");
        // A wrong token: `source` suffices, as any one method does.
        assert_eq!(
            admitted
                .verify(token_sent("wrong"), BODY, now())
                .map(|v| v.method),
            Ok(MethodName::Source)
        );
        // A valid Standard Webhooks signature is tried first, so its id is kept.
        let signature = key("secret").standard_signature("msg", NOW as i64, BODY);
        let timestamp = NOW.to_string();
        assert_eq!(
            admitted.verify(standard("msg", &timestamp, &signature), BODY, now()),
            Ok(Verified {
                method: MethodName::StandardWebhooks,
                webhook_id: Some(&b"msg"[..])
            })
        );
    }

    #[test]
    fn unsigned_deliveries_are_decided_before_their_body_and_signed_ones_after() {
        let all = [
            MethodName::StandardWebhooks,
            MethodName::Hmac,
            MethodName::Token,
        ];
        let auth = policy(&all, None).expect("valid");
        let admitted = auth.admit(Some(CLIENT)).expect("admitted");
        let early = |headers| admitted.verify_before_body(headers, now());
        assert_eq!(
            early(DeliveryHeaders::default()),
            Some(Err(Refused {
                method: None,
                failure: AuthFailure::Missing
            }))
        );
        assert_eq!(
            early(token_sent("wrong")),
            Some(Err(Refused {
                method: Some(MethodName::Token),
                failure: AuthFailure::Mismatch
            }))
        );
        assert_eq!(
            early(token_sent(TOKEN)).map(|verdict| verdict.map(|v| v.method)),
            Some(Ok(MethodName::Token))
        );
        // A signature beside a token, right or wrong: the body decides, and a Standard
        // Webhooks signature that verifies still vouches for its id.
        let signature = key("secret").standard_signature("msg", NOW as i64, BODY);
        let timestamp = NOW.to_string();
        let both = DeliveryHeaders {
            token: SentHeader::One(TOKEN.as_bytes()),
            ..standard("msg", &timestamp, &signature)
        };
        assert_eq!(early(both), None);
        assert_eq!(
            admitted.verify(both, BODY, now()).map(|v| v.webhook_id),
            Ok(Some(&b"msg"[..]))
        );
        // A signature that may match waits for the body; one whose headers alone cannot
        // (malformed, stale) does not, and is refused as `verify` would refuse it.
        let forged = format!("sha256={}", "0".repeat(64));
        assert_eq!(early(plain(&forged)), None);
        let stale = (NOW - 3_600).to_string();
        for (headers, failure, method) in [
            (plain("sha256=00"), AuthFailure::Malformed, MethodName::Hmac),
            (
                standard("msg", &stale, &signature),
                AuthFailure::Stale,
                MethodName::StandardWebhooks,
            ),
            (
                standard("msg", &timestamp, "v1,not-base64"),
                AuthFailure::Malformed,
                MethodName::StandardWebhooks,
            ),
        ] {
            let refused = Refused {
                method: Some(method),
                failure,
            };
            assert_eq!(early(headers), Some(Err(refused)));
            assert_eq!(admitted.verify(headers, BODY, now()), Err(refused));
        }
        // A malformed signature beside a valid token: the token passes, before the body.
        let token_beside = DeliveryHeaders {
            token: SentHeader::One(TOKEN.as_bytes()),
            ..plain("sha256=00")
        };
        assert_eq!(
            early(token_beside).map(|verdict| verdict.map(|v| v.method)),
            Some(Ok(MethodName::Token))
        );

        // Basic is read off its header; with `source` enabled, a delivery without credentials
        // passes before its body, as it passes with it.
        let methods = [MethodName::Hmac, MethodName::Basic, MethodName::Source];
        let auth = policy(&methods, Some(&["192.0.2.0/24"])).expect("valid");
        let admitted = auth.admit(Some(CLIENT)).expect("admitted");
        let basic = basic_authorization();
        for (headers, method) in [
            (authorization_sent(&basic), MethodName::Basic),
            (DeliveryHeaders::default(), MethodName::Source),
        ] {
            assert_eq!(
                admitted
                    .verify_before_body(headers, now())
                    .map(|verdict| verdict.map(|v| v.method)),
                Some(Ok(method))
            );
        }
        assert_eq!(admitted.verify_before_body(plain(&forged), now()), None);
    }

    #[test]
    fn policies_that_cannot_work_are_refused() {
        for everything in [
            None,
            Some(&["192.0.2.0/24", "0.0.0.0/0"][..]),
            Some(&["::/0"]),
            Some(&["0.0.0.0/1", "128.0.0.0/1"]),
        ] {
            assert_eq!(
                policy(&[MethodName::Source], everything).err(),
                Some(PolicyError::SourceFromAnywhere),
                "{everything:?}"
            );
        }
        // As a gate in front of credentials, every address is what unset means anyway.
        assert!(policy(&[MethodName::Token], Some(&["0.0.0.0/0", "::/0"])).is_ok());
        assert_eq!(
            policy(&[MethodName::Token], Some(&[])).err(),
            Some(PolicyError::NoAllowedSource)
        );
        assert_eq!(policy(&[], None).err(), Some(PolicyError::NoMethod));
        let without_tokens = WebhookAuth::new(Credentials {
            tokens: Vec::new(),
            ..credentials(&[MethodName::Token])
        });
        assert_eq!(
            without_tokens.err(),
            Some(PolicyError::NoCredentials {
                method: "token",
                variable: "WEBHOOK_TOKENS"
            })
        );
        for (header, methods) in [
            ("webhook-signature", &[MethodName::Token][..]),
            ("authorization", &[MethodName::Token, MethodName::Basic]),
            ("x-forwarded-for", &[MethodName::Token]),
            ("connection", &[MethodName::Token]),
            ("keep-alive", &[MethodName::Token]),
            ("content-type", &[MethodName::Token]),
            // Logged or echoed: a red-team session had the token in the log and the answer.
            ("x-request-id", &[MethodName::Token]),
            ("traceparent", &[MethodName::Token]),
            ("tracestate", &[MethodName::Token]),
            ("baggage", &[MethodName::Token]),
            ("x-b3-traceid", &[MethodName::Token]),
            ("x-datadog-trace-id", &[MethodName::Token]),
            ("x-envoy-original-path", &[MethodName::Token]),
            ("x-amzn-trace-id", &[MethodName::Token]),
            ("expect", &[MethodName::Token]),
            ("proxy-authorization", &[MethodName::Token]),
            // Set or overwritten by proxies on the way in (a red-team session).
            ("x-real-ip", &[MethodName::Token]),
            ("x-forwarded-proto", &[MethodName::Token]),
            ("x-forwarded-host", &[MethodName::Token]),
            ("via", &[MethodName::Token]),
            ("true-client-ip", &[MethodName::Token]),
            ("cf-connecting-ip", &[MethodName::Token]),
            ("cookie", &[MethodName::Token]),
        ] {
            let taken = WebhookAuth::new(Credentials {
                token_header: HeaderName::from_static(header),
                ..credentials(methods)
            });
            assert_eq!(taken.err(), Some(PolicyError::TokenHeaderTaken), "{header}");
        }
        // `Authorization` may carry a token where `basic` does not read it.
        let authorization = WebhookAuth::new(Credentials {
            token_header: HeaderName::from_static("authorization"),
            ..credentials(&[MethodName::Token])
        });
        assert!(authorization.is_ok());
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
            prop_assert!(verify(&auth, plain(&signature), &body, now()).is_ok());
            prop_assert!(verify(&auth, plain(&signature[..7 + cut]), &body, now()).is_err());
            if tamper != body {
                prop_assert_eq!(
                    verify(&auth, plain(&signature), &tamper, now()),
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
            prop_assert!(verify(&auth, standard(&id, &timestamp, &signature), BODY, now()).is_err());
            prop_assert!(verify(&auth, plain(&signature), BODY, now()).is_err());
        }

        #[test]
        fn arbitrary_tokens_and_authorizations_never_verify_or_panic(
            sent in proptest::collection::vec(any::<u8>(), 0..200),
            base64_of in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let auth = policy(&[MethodName::Token, MethodName::Basic], None).expect("valid");
            let admitted = auth.admit(Some(CLIENT)).expect("admitted");
            let encoded = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(&base64_of)
            );
            for authorization in [&sent[..], encoded.as_bytes()] {
                let headers = DeliveryHeaders {
                    token: SentHeader::One(&sent),
                    authorization: SentHeader::One(authorization),
                    ..Default::default()
                };
                prop_assert!(admitted.verify(headers, BODY, now()).is_err());
            }
        }
    }
}
