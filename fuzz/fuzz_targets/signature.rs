//! The credential headers and body of a delivery: never a panic, and never authentic without
//! a configured secret, token or password; and the client address behind a trusted proxy,
//! never a panic whatever the forwarding chain. Fields are separated by 0xFF: webhook-id,
//! webhook-timestamp, webhook-signature, x-idnow-signature, the static token,
//! Authorization, X-Forwarded-For, then the body.
#![no_main]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::LazyLock;
use std::time::{Duration, UNIX_EPOCH};

use idnow_attempts::configuration::Settings;
use idnow_attempts::edge::client_address::TrustedProxies;
use idnow_attempts::networks::Networks;
use idnow_attempts::webhook_auth::{DeliveryHeaders, SentHeader, WebhookAuth};
use libfuzzer_sys::fuzz_target;

/// Every method with credentials enabled, each with secrets the fuzzer cannot guess.
static AUTH: LazyLock<WebhookAuth> = LazyLock::new(|| {
    let digest = "2f6b1e3c9a8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f";
    let environment: HashMap<String, String> = [
        ("DATABASE_URL", "postgres://fuzz@localhost/fuzz".to_owned()),
        ("WEBHOOK_AUTH", "standard-webhooks,hmac,token,basic".to_owned()),
        ("IDNOW_WEBHOOK_SECRETS", "fuzz-secret-never-guessed".to_owned()),
        ("WEBHOOK_TOKENS", digest.to_owned()),
        ("WEBHOOK_BASIC_CREDENTIALS", format!("idnow:{digest}")),
        (
            "PAYLOAD_ENCRYPTION_KEYS",
            "fuzz:ZnV6ei1rZXktMzItYnl0ZXMtbm90LXVzZWQtaGVyZS4=".to_owned(),
        ),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect();
    Settings::from_env_map(&environment)
        .expect("valid settings")
        .webhooks
        .auth
});

static PROXIES: LazyLock<TrustedProxies> = LazyLock::new(|| {
    TrustedProxies::new(Networks::parse(&["10.0.0.0/8", "fd00::/8"]).expect("valid networks"))
});

fn header(bytes: Option<&[u8]>) -> SentHeader<'_> {
    match bytes {
        None | Some([]) => SentHeader::Absent,
        // As the service passes headers on: the bytes of one value, whatever they are. A
        // leading 0xFE stands for a header sent twice.
        Some([0xfe, ..]) => SentHeader::Repeated,
        Some(bytes) => SentHeader::One(bytes),
    }
}

fuzz_target!(|input: &[u8]| {
    let mut fields = input.splitn(8, |byte| *byte == 0xff);
    let headers = DeliveryHeaders {
        webhook_id: header(fields.next()),
        webhook_timestamp: header(fields.next()),
        webhook_signature: header(fields.next()),
        idnow_signature: header(fields.next()),
        token: header(fields.next()),
        authorization: header(fields.next()),
    };
    let forwarded = fields.next().unwrap_or_default();
    let body = fields.next().unwrap_or_default();

    let proxy = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7));
    let chain = forwarded.split(|byte| *byte == b'\n');
    let client = PROXIES.client(proxy, chain);
    let admitted = AUTH.admit(client.or(Some(proxy))).expect("no allowed sources are set");
    let now = UNIX_EPOCH + Duration::from_secs(1_790_000_000);
    assert!(
        admitted.verify(headers, body, now).is_err(),
        "credentials were forged without a configured secret"
    );
});
