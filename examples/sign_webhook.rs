//! Prints the `X-Idnow-Signature` header value for a webhook body, signed with the first secret
//! of `IDNOW_WEBHOOK_SECRETS`, as IDnow would send it. For trying the service by hand:
//!
//! ```sh
//! IDNOW_WEBHOOK_SECRETS=dev-webhook-secret cargo run --example sign_webhook -- body.json
//! ```
//!
//! The secret comes from the environment, not the command line, where other users could read it.

use std::process::ExitCode;

use idnow_attempts::webhook_auth::SigningKey;
use secrecy::SecretString;

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: sign_webhook BODY_FILE   (secret: first of IDNOW_WEBHOOK_SECRETS)");
        return ExitCode::from(2);
    };
    let secret = std::env::var("IDNOW_WEBHOOK_SECRETS").unwrap_or_default();
    let secret = secret.split(',').next().unwrap_or_default().trim();
    let key = match SigningKey::parse(&SecretString::from(secret)) {
        Ok(key) => key,
        Err(error) => {
            eprintln!("sign_webhook: IDNOW_WEBHOOK_SECRETS: {error}");
            return ExitCode::from(2);
        }
    };
    match std::fs::read(&path) {
        Ok(body) => {
            #[allow(clippy::print_stdout)] // printing the header is this tool's whole job
            {
                println!("{}", key.hmac_signature(&body));
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!(
                "sign_webhook: cannot read {}: {error}",
                path.to_string_lossy()
            );
            ExitCode::FAILURE
        }
    }
}
