//! The signature headers and body of a delivery: never a panic, and never authentic without
//! the secret. Fields are separated by 0xFF: webhook-id, webhook-timestamp,
//! webhook-signature, x-idnow-signature, then the body.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use idnow_attempts::webhook_auth::{DeliveryHeaders, SentHeader, SigningKey, WebhookAuth};
use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;

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
    let mut fields = input.splitn(5, |byte| *byte == 0xff);
    let headers = DeliveryHeaders {
        webhook_id: header(fields.next()),
        webhook_timestamp: header(fields.next()),
        webhook_signature: header(fields.next()),
        idnow_signature: header(fields.next()),
    };
    let body = fields.next().unwrap_or_default();
    let key = SigningKey::parse(&SecretString::from("fuzz-secret-never-guessed"))
        .expect("a valid secret");
    let auth = WebhookAuth::new(vec![key], Duration::from_secs(300));
    let now = UNIX_EPOCH + Duration::from_secs(1_790_000_000);
    assert!(
        auth.verify(headers, body, now).is_err(),
        "a signature was forged without the secret"
    );
});
