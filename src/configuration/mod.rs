//! Layered, typed settings, validated once at start-up.
//!
//! Layers, each overriding the one before: built-in defaults, `config/default.toml`, the file
//! named by `APP_CONFIG`, then the environment variables of the contract, which always win.
//! File keys are the lower-cased names of those variables, plus `[database]`, `[http]` and
//! `[retention]` tables for tuning that has no variable.
//!
//! Every default is written once, in `config/default.toml`: the binary embeds it as its
//! built-in layer, `--help` quotes it, and a test holds the README's tables to it.

mod environment;

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use figment::providers::{Format, Toml};
use figment::Figment;

use self::environment::Environment;
pub use self::environment::{help, Variable, VARIABLES};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sqlx::postgres::PgConnectOptions;

use actix_web::http::header::HeaderName;

use crate::api_auth::{ApiKeyEntry, ApiKeys};
use crate::at_rest::PayloadKeys;
use crate::digest::SecretDigest;
use crate::networks::Networks;
use crate::webhook_auth::{
    BasicCredential, Credentials, MethodName, PolicyError, SigningKey, WebhookAuth,
};

/// The shipped defaults, relative to the working directory (the image's too).
pub const DEFAULT_CONFIG_FILE: &str = "config/default.toml";

/// The same file as built into the binary: the built-in layer, which holds every default.
const BUILT_IN_DEFAULTS: &str = include_str!("../../config/default.toml");

fn built_in_defaults() -> Figment {
    Figment::from(Toml::string(BUILT_IN_DEFAULTS))
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub http: HttpSettings,
    pub webhooks: WebhookSettings,
    pub api_keys: ApiKeys,
    /// `PAYLOAD_ENCRYPTION_KEYS`: the first seals, all open.
    pub payload_keys: Arc<PayloadKeys>,
    pub retention: RetentionSettings,
    pub migrate_on_start: bool,
    /// `RUST_LOG` syntax.
    pub log_filter: String,
}

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: SecretString,
    pub max_connections: u32,
    pub min_connections: u32,
    /// How long a request waits for a connection before it is answered 503.
    pub acquire_timeout: Duration,
    pub statement_timeout: Duration,
    pub idle_timeout: Duration,
    /// Batches of webhooks stored at once, each on one pooled connection. Default: one per
    /// HTTP worker.
    pub write_concurrency: usize,
}

#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub host: IpAddr,
    pub port: u16,
    /// Largest accepted request body.
    pub body_limit: usize,
    /// Request body bytes the whole process holds at once, at most (503 beyond).
    pub body_budget: usize,
    /// Of [`HttpSettings::body_budget`], what the bodies of one client address may hold at
    /// once (503 beyond), so that no one sender keeps the others' bodies out.
    pub body_budget_per_client: usize,
    /// Answer bytes the listings of the whole process hold at once, at most (503 beyond; a
    /// page larger than all of it is refused).
    pub page_budget: usize,
    /// Connections the whole process holds at once; further ones wait in the listen
    /// backlog until one closes.
    pub max_connections: usize,
    /// One per core unless configured; never more than `database.max_connections`, since
    /// each worker owns a share of the connections.
    pub workers: NonZeroUsize,
    pub keep_alive: Duration,
    /// Time a client has to send its request head.
    pub client_request_timeout: Duration,
    /// Largest total of header names and values a request may carry (431 beyond).
    pub max_header_bytes: usize,
    /// Time a client has to send its body, once the head has arrived (408 beyond).
    pub body_read_timeout: Duration,
    /// Time a client may leave its answers unread before its connection is closed.
    pub send_timeout: Duration,
    /// Time a request may take from its head to its answer (503 with Retry-After beyond).
    pub request_timeout: Duration,
    /// Time between SIGTERM (readiness fails at once) and the listener closing.
    pub shutdown_delay: Duration,
    /// Time in-flight requests get to finish once the listener is closed.
    pub shutdown_timeout: Duration,
}

/// What retention deletes, and how `serve` paces it (see `crate::retention`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionSettings {
    /// `RETENTION_UNREGISTERED_DAYS`.
    pub unregistered_days: u32,
    /// `RETENTION_REJECTED_DAYS`.
    pub rejected_days: u32,
    /// Time between passes of `serve`'s background task.
    pub interval: Duration,
    /// Rows per batch, each batch one transaction.
    pub batch_size: u32,
}

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// `WEBHOOK_AUTH`, its methods' credentials and the source gate, checked together.
    pub auth: WebhookAuth,
    /// `TRUSTED_PROXIES`.
    pub trusted_proxies: Networks,
    /// Settings that are valid but have no effect, for the log once it is set up: most
    /// likely a method an operator meant to enable.
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is required")]
    Missing(&'static str),
    #[error("{name} is required: WEBHOOK_AUTH enables `{method}`")]
    RequiredBy {
        name: &'static str,
        method: &'static str,
    },
    #[error("{name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error("APP_CONFIG names {0}, which is not a file")]
    MissingFile(PathBuf),
    /// A configuration file that is not TOML: where, never the line's text, which may hold a
    /// credential.
    #[error("{file} is not valid TOML{at}")]
    NotToml { file: String, at: String },
    /// A setting of a file, named by its key and file; the value is never repeated, since a
    /// file may hold credentials.
    #[error("{key} in {file} is invalid: {reason}")]
    FileSetting {
        key: String,
        file: String,
        reason: String,
    },
    #[error("cannot read the configuration files")]
    File(#[from] Box<figment::Error>),
}

impl ConfigError {
    fn invalid(name: &'static str, reason: impl ToString) -> Self {
        Self::Invalid {
            name,
            reason: reason.to_string(),
        }
    }
}

/// What the configuration layers hold together. Every field without a `serde(default)` has its
/// default in the built-in layer. Not `Debug`: it holds credentials as plain text.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    #[serde(default)]
    database_url: Option<SecretString>,
    port: u16,
    webhook_auth: Vec<String>,
    #[serde(default)]
    idnow_webhook_secrets: Vec<SecretString>,
    #[serde(default)]
    webhook_tokens: Vec<String>,
    webhook_token_header: String,
    #[serde(default)]
    webhook_basic_credentials: Vec<String>,
    /// Unset admits any address; set, even to nothing, it is a gate.
    #[serde(default)]
    webhook_allowed_sources: Option<Vec<String>>,
    #[serde(default)]
    trusted_proxies: Vec<String>,
    webhook_tolerance_seconds: u64,
    api_keys: Vec<ApiKeyEntry>,
    #[serde(default)]
    payload_encryption_keys: Vec<SecretString>,
    retention_unregistered_days: u32,
    retention_rejected_days: u32,
    migrate_on_start: bool,
    rust_log: String,
    host: IpAddr,
    database: DatabaseFile,
    http: HttpFile,
    retention: RetentionFile,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetentionFile {
    interval_seconds: u64,
    batch_size: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DatabaseFile {
    max_connections: u32,
    min_connections: u32,
    acquire_timeout_ms: u64,
    statement_timeout_ms: u64,
    idle_timeout_seconds: u64,
    /// Default: half of `max_connections`, at least one per HTTP worker.
    #[serde(default)]
    write_concurrency: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpFile {
    body_limit_bytes: usize,
    body_budget_bytes: usize,
    /// Default: half of `body_budget_bytes`, at least `body_limit_bytes`.
    #[serde(default)]
    body_budget_per_client_bytes: Option<usize>,
    /// Default: 32 MiB, at least twenty times `body_limit_bytes`.
    #[serde(default)]
    page_budget_bytes: Option<usize>,
    max_connections: usize,
    /// Default: one per core.
    #[serde(default)]
    workers: Option<NonZeroUsize>,
    keep_alive_seconds: u64,
    client_request_timeout_ms: u64,
    body_read_timeout_ms: u64,
    send_timeout_ms: u64,
    request_timeout_ms: u64,
    max_header_bytes: usize,
    shutdown_delay_seconds: u64,
    shutdown_timeout_seconds: u64,
}

impl Settings {
    /// Loads the settings of this process: `config/default.toml`, `APP_CONFIG`, environment.
    pub fn load() -> Result<Self, ConfigError> {
        Self::load_from(Some(Path::new(DEFAULT_CONFIG_FILE)), |name| {
            std::env::var(name).ok()
        })
    }

    /// Loads with an explicit default file and environment, so that layering can be tested
    /// without touching the process environment.
    pub fn load_from(
        default_file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        // The shipped file is optional (the binary runs from anywhere); a file the operator
        // named explicitly is not.
        let mut figment = built_in_defaults();
        if let Some(default_file) = default_file {
            figment = figment.merge(Toml::file(default_file));
        }
        if let Some(path) = env("APP_CONFIG").filter(|path| !path.is_empty()) {
            let path = PathBuf::from(path);
            if !path.is_file() {
                return Err(ConfigError::MissingFile(path));
            }
            figment = figment.merge(Toml::file(path));
        }
        let file: FileSettings =
            figment
                .merge(Environment::read(&env)?)
                .extract()
                .map_err(|error| {
                    Environment::refusal(&error)
                        .or_else(|| file_refusal(&error))
                        .unwrap_or_else(|| ConfigError::File(Box::new(error)))
                })?;
        file.try_into()
    }

    /// Settings from these variables alone (no `config/default.toml` from the working
    /// directory), every other knob at its built-in default.
    pub fn from_env_map(env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        Self::load_from(None, |name| env.get(name).cloned())
    }
}

impl TryFrom<FileSettings> for Settings {
    type Error = ConfigError;

    fn try_from(mut file: FileSettings) -> Result<Self, ConfigError> {
        let url = file
            .database_url
            .take()
            .filter(|url| !url.expose_secret().trim().is_empty())
            .ok_or(ConfigError::Missing("DATABASE_URL"))?;
        // Checked now so that a typo fails at start-up; the message never repeats the URL,
        // which may hold a password.
        let is_postgres = ["postgres://", "postgresql://"]
            .iter()
            .any(|scheme| url.expose_secret().starts_with(scheme));
        if !is_postgres || PgConnectOptions::from_str(url.expose_secret()).is_err() {
            return Err(ConfigError::invalid(
                "DATABASE_URL",
                "not a postgres:// or postgresql:// connection URL",
            ));
        }

        let webhooks = file.webhook_settings()?;
        let api_keys = ApiKeys::from_entries(&file.api_keys)
            .map_err(|e| ConfigError::invalid("API_KEYS", e))?;
        if file.payload_encryption_keys.is_empty() {
            return Err(ConfigError::Missing("PAYLOAD_ENCRYPTION_KEYS"));
        }
        let payload_keys = PayloadKeys::parse(
            &file
                .payload_encryption_keys
                .iter()
                .map(ExposeSecret::expose_secret)
                .collect::<Vec<_>>(),
        )
        .map_err(|e| ConfigError::invalid("PAYLOAD_ENCRYPTION_KEYS", e))?;
        // Beyond a century, days stop meaning retention (and overflow the interval maths).
        for (name, days) in [
            (
                "RETENTION_UNREGISTERED_DAYS",
                file.retention_unregistered_days,
            ),
            ("RETENTION_REJECTED_DAYS", file.retention_rejected_days),
        ] {
            if !(1..=36_500).contains(&days) {
                return Err(ConfigError::invalid(name, "must be 1 to 36500 days"));
            }
        }
        if file.retention.interval_seconds == 0 || file.retention.batch_size == 0 {
            return Err(ConfigError::invalid(
                "retention",
                "interval_seconds and batch_size must be at least 1",
            ));
        }

        let database = &file.database;
        if database.max_connections == 0 || database.min_connections > database.max_connections {
            return Err(ConfigError::invalid(
                "database.max_connections",
                "must be at least 1 and at least database.min_connections",
            ));
        }
        if file.http.body_limit_bytes == 0 {
            return Err(ConfigError::invalid(
                "http.body_limit_bytes",
                "must be at least 1",
            ));
        }
        if file.http.body_budget_bytes < file.http.body_limit_bytes {
            return Err(ConfigError::invalid(
                "http.body_budget_bytes",
                "must be at least http.body_limit_bytes, or no body of the largest size fits",
            ));
        }

        let body_budget_per_client = file
            .http
            .body_budget_per_client_bytes
            .unwrap_or((file.http.body_budget_bytes / 2).max(file.http.body_limit_bytes));
        if body_budget_per_client < file.http.body_limit_bytes
            || body_budget_per_client > file.http.body_budget_bytes
        {
            return Err(ConfigError::invalid(
                "http.body_budget_per_client_bytes",
                "must be from http.body_limit_bytes to http.body_budget_bytes",
            ));
        }

        // An attempt's answer holds its body and its result and reason once more: twice the
        // body limit at most, short of escapes. So the default page of ten always fits.
        let page_budget = file.http.page_budget_bytes.unwrap_or(
            (32 << 20_usize)
                .max(file.http.body_limit_bytes.saturating_mul(20))
                .min(u32::MAX as usize),
        );
        if page_budget / 20 < file.http.body_limit_bytes || u32::try_from(page_budget).is_err() {
            return Err(ConfigError::invalid(
                "http.page_budget_bytes",
                "must be from twenty times http.body_limit_bytes (the default page of ten \
                 attempts of the largest size) to 4 GiB - 1",
            ));
        }

        let workers = file
            .http
            .workers
            .or_else(|| std::thread::available_parallelism().ok())
            .map_or(1, NonZeroUsize::get)
            .min(database.max_connections as usize);
        let workers = NonZeroUsize::new(workers).unwrap_or(NonZeroUsize::MIN);
        if file.http.max_connections < workers.get() {
            return Err(ConfigError::invalid(
                "http.max_connections",
                "must be at least one per HTTP worker",
            ));
        }

        Ok(Self {
            database: DatabaseSettings {
                url,
                max_connections: database.max_connections,
                min_connections: database.min_connections,
                acquire_timeout: Duration::from_millis(database.acquire_timeout_ms),
                statement_timeout: Duration::from_millis(database.statement_timeout_ms),
                idle_timeout: Duration::from_secs(database.idle_timeout_seconds),
                // Up to half the connections (the other half kept for reads: listings,
                // registrations, readiness): batches in flight follow the queue
                // (persistence::writer), so more slots cost nothing while one batch at a
                // time keeps up, and let commits overlap when the database's commit latency,
                // not its CPU, limits ingest.
                write_concurrency: database
                    .write_concurrency
                    .unwrap_or_else(|| {
                        usize::try_from(database.max_connections).unwrap_or(usize::MAX) / 2
                    })
                    .max(workers.get()),
            },
            http: HttpSettings {
                host: file.host,
                port: file.port,
                body_limit: file.http.body_limit_bytes,
                body_budget: file.http.body_budget_bytes,
                body_budget_per_client,
                page_budget,
                max_connections: file.http.max_connections,
                workers,
                keep_alive: Duration::from_secs(file.http.keep_alive_seconds),
                client_request_timeout: Duration::from_millis(file.http.client_request_timeout_ms),
                body_read_timeout: Duration::from_millis(file.http.body_read_timeout_ms),
                send_timeout: Duration::from_millis(file.http.send_timeout_ms),
                max_header_bytes: file.http.max_header_bytes,
                request_timeout: Duration::from_millis(file.http.request_timeout_ms),
                shutdown_delay: Duration::from_secs(file.http.shutdown_delay_seconds),
                shutdown_timeout: Duration::from_secs(file.http.shutdown_timeout_seconds),
            },
            webhooks,
            api_keys,
            payload_keys: Arc::new(payload_keys),
            retention: RetentionSettings {
                unregistered_days: file.retention_unregistered_days,
                rejected_days: file.retention_rejected_days,
                interval: Duration::from_secs(file.retention.interval_seconds),
                batch_size: file.retention.batch_size,
            },
            migrate_on_start: file.migrate_on_start,
            log_filter: file.rust_log,
        })
    }
}

impl FileSettings {
    /// The webhook authentication policy. Every value is checked here, so that a typo stops
    /// the start (exit 2) with the variable named; no message repeats a value, which may be a
    /// credential or its digest.
    fn webhook_settings(&self) -> Result<WebhookSettings, ConfigError> {
        let methods = each("WEBHOOK_AUTH", &self.webhook_auth, |name| {
            MethodName::parse(name).ok_or_else(|| {
                let known: Vec<_> = MethodName::ALL.iter().map(|m| m.as_str()).collect();
                format!("not one of {}", known.join(", "))
            })
        })?;
        let keys = self
            .idnow_webhook_secrets
            .iter()
            .map(SigningKey::parse)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ConfigError::invalid("IDNOW_WEBHOOK_SECRETS", e))?;
        let tokens = each("WEBHOOK_TOKENS", &self.webhook_tokens, |digest| {
            SecretDigest::from_hex(digest).ok_or("not 64 hex digits of a SHA-256")
        })?;
        let token_header = HeaderName::from_bytes(self.webhook_token_header.trim().as_bytes())
            .map_err(|_| ConfigError::invalid("WEBHOOK_TOKEN_HEADER", "not a header name"))?;
        let basic = each(
            "WEBHOOK_BASIC_CREDENTIALS",
            &self.webhook_basic_credentials,
            BasicCredential::parse,
        )?;
        let networks = |name, list: &[String]| {
            Networks::parse(list).map_err(|e| ConfigError::invalid(name, e))
        };
        let allowed_sources = self
            .webhook_allowed_sources
            .as_deref()
            .map(|list| networks("WEBHOOK_ALLOWED_SOURCES", list))
            .transpose()?;
        let trusted_proxies = networks("TRUSTED_PROXIES", &self.trusted_proxies)?;
        if trusted_proxies.has_everything() {
            // Every peer a proxy: any client could name its own address.
            return Err(ConfigError::invalid(
                "TRUSTED_PROXIES",
                "it covers every address, so any client could forward any address",
            ));
        }

        let auth = WebhookAuth::new(Credentials {
            methods,
            keys,
            tolerance: Duration::from_secs(self.webhook_tolerance_seconds),
            token_header,
            tokens,
            basic,
            allowed_sources,
        })
        .map_err(|error| match error {
            PolicyError::NoCredentials { method, variable } => ConfigError::RequiredBy {
                name: variable,
                method,
            },
            PolicyError::TokenHeaderTaken => ConfigError::invalid("WEBHOOK_TOKEN_HEADER", error),
            PolicyError::NoAllowedSource => ConfigError::invalid("WEBHOOK_ALLOWED_SOURCES", error),
            PolicyError::NoMethod | PolicyError::SourceFromAnywhere => {
                ConfigError::invalid("WEBHOOK_AUTH", error)
            }
        })?;
        let enabled: Vec<_> = auth.methods().collect();
        let unused = [
            (
                "IDNOW_WEBHOOK_SECRETS",
                !self.idnow_webhook_secrets.is_empty(),
                [MethodName::StandardWebhooks, MethodName::Hmac].as_slice(),
            ),
            (
                "WEBHOOK_TOKENS",
                !self.webhook_tokens.is_empty(),
                &[MethodName::Token],
            ),
            (
                "WEBHOOK_BASIC_CREDENTIALS",
                !self.webhook_basic_credentials.is_empty(),
                &[MethodName::Basic],
            ),
        ];
        let warnings = unused
            .into_iter()
            .filter(|(_, set, methods)| *set && !methods.iter().any(|m| enabled.contains(m)))
            .map(|(name, _, methods)| {
                let names: Vec<_> = methods.iter().map(|m| m.as_str()).collect();
                format!(
                    "{name} is set, but WEBHOOK_AUTH enables none of {}: it is not used",
                    names.join(", ")
                )
            })
            .collect();
        Ok(WebhookSettings {
            auth,
            trusted_proxies,
            warnings,
        })
    }
}

/// The error for a value of a configuration file: the key and the file, and what the key
/// expects, in words that never hold the value. `None` for an error that names no key (a
/// file that is not TOML).
fn file_refusal(error: &figment::Error) -> Option<ConfigError> {
    use figment::error::Kind;

    let file = error.metadata.as_ref()?.source.as_ref()?.to_string();
    let key = error.path.join(".");
    let reason = match &error.kind {
        Kind::InvalidType(_, expected) | Kind::InvalidValue(_, expected) => {
            format!("expected {expected}")
        }
        // These say names of keys, never values.
        kind @ (Kind::UnknownField(..)
        | Kind::MissingField(_)
        | Kind::DuplicateField(_)
        | Kind::InvalidLength(..)
        | Kind::UnknownVariant(..)) => kind.to_string(),
        _ => "not a valid value".to_owned(),
    };
    if key.is_empty() && !matches!(error.kind, Kind::UnknownField(..) | Kind::MissingField(_)) {
        // The parser's message quotes the line; its first line says only where it is.
        let Kind::Message(message) = &error.kind else {
            return None;
        };
        let at = message
            .lines()
            .next()
            .and_then(|first| first.strip_prefix("TOML parse error "))
            .map(|place| format!(" ({place})"))
            .unwrap_or_default();
        return Some(ConfigError::NotToml { file, at });
    }
    let key = if key.is_empty() {
        "a key".to_owned()
    } else {
        key
    };
    Some(ConfigError::FileSetting { key, file, reason })
}

/// Every entry of the list variable `name`, parsed; a refusal names the entry by its place,
/// since its text may be a credential.
fn each<T, E: std::fmt::Display>(
    name: &'static str,
    list: &[String],
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<Vec<T>, ConfigError> {
    list.iter()
        .enumerate()
        .map(|(index, entry)| {
            parse(entry).map_err(|e| ConfigError::invalid(name, format!("entry {index}: {e}")))
        })
        .collect()
}

impl DatabaseSettings {
    pub fn connect_options(&self) -> PgConnectOptions {
        PgConnectOptions::from_str(self.url.expose_secret())
            .expect("DATABASE_URL was validated when the settings were loaded")
    }

    /// The part of these settings that one of `of` HTTP workers owns (`part` counts from 0):
    /// connections and write batches divided as evenly as they go, the first parts taking
    /// the remainder, so that the shares add up to the configured totals. Every share has at
    /// least one connection and one batch.
    pub fn share(&self, part: usize, of: usize) -> Self {
        let of = of.max(1);
        let split = |total: usize| total / of + usize::from(part % of < total % of);
        let split_u32 = |total: u32| {
            u32::try_from(split(usize::try_from(total).unwrap_or(usize::MAX))).unwrap_or(total)
        };
        Self {
            max_connections: split_u32(self.max_connections).max(1),
            min_connections: split_u32(self.min_connections),
            write_concurrency: split(self.write_concurrency).max(1),
            ..self.clone()
        }
    }

    /// One connection, opened when first needed: for work that runs a statement at a time
    /// beside the server (retention).
    pub fn single_connection(&self) -> Self {
        Self {
            max_connections: 1,
            min_connections: 0,
            ..self.clone()
        }
    }

    /// The longest a write's transaction may run, as a key's unregistering must allow for
    /// (`persistence::keys::forget_unused`): its statement timeout, and a minute more for
    /// clocks and commits.
    pub fn writes_last(&self) -> Duration {
        self.statement_timeout + Duration::from_secs(60)
    }

    /// As [`DatabaseSettings::single_connection`], without a statement timeout: for
    /// migrations and operator commands, whose statements may read a whole table.
    pub fn maintenance(&self) -> Self {
        Self {
            statement_timeout: Duration::ZERO,
            ..self.single_connection()
        }
    }
}

#[cfg(test)]
impl DatabaseSettings {
    /// The defaults, for unit tests that build pools. Their URL reaches nothing (port 1):
    /// tests that need a database connect with their own options.
    pub(crate) fn for_tests() -> Self {
        let environment = [
            ("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none"),
            ("IDNOW_WEBHOOK_SECRETS", "secret"),
            ("PAYLOAD_ENCRYPTION_KEYS", crate::at_rest::TEST_KEYS),
            ("API_KEYS", "[]"),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
        Settings::from_env_map(&environment)
            .expect("valid settings")
            .database
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::net::Ipv6Addr;

    use super::*;

    #[test]
    fn worker_shares_add_up_to_the_configured_totals() {
        let mut settings = Settings::from_env_map(&env(&[
            ("DATABASE_URL", "postgres://u@h/d"),
            ("IDNOW_WEBHOOK_SECRETS", "s"),
            ("API_KEYS", "[]"),
        ]))
        .expect("valid settings")
        .database;
        settings.max_connections = 16;
        settings.min_connections = 3;
        settings.write_concurrency = 5;
        let shares: Vec<_> = (0..3).map(|part| settings.share(part, 3)).collect();
        let max: Vec<u32> = shares.iter().map(|s| s.max_connections).collect();
        let min: Vec<u32> = shares.iter().map(|s| s.min_connections).collect();
        let writes: Vec<usize> = shares.iter().map(|s| s.write_concurrency).collect();
        assert_eq!(max, [6, 5, 5]);
        assert_eq!(min, [1, 1, 1]);
        assert_eq!(writes, [2, 2, 1]);
        assert_eq!(shares[2].acquire_timeout, settings.acquire_timeout);

        // One worker owns everything; a share never drops to no connection or no batch.
        assert_eq!(settings.share(0, 1).max_connections, 16);
        settings.write_concurrency = 1;
        assert_eq!(settings.share(1, 2).write_concurrency, 1);
    }

    /// The variables `pairs`, with a valid PAYLOAD_ENCRYPTION_KEYS unless they set it: every
    /// test but the ones about keys needs one, and none is about it.
    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        let mut vars: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        vars.entry("PAYLOAD_ENCRYPTION_KEYS".to_owned())
            .or_insert_with(|| crate::at_rest::TEST_KEYS.to_owned());
        vars
    }

    const REQUIRED: [(&str, &str); 2] = [
        ("DATABASE_URL", "postgres://app:pw@db:5432/idnow"),
        ("IDNOW_WEBHOOK_SECRETS", "one"),
    ];

    #[test]
    fn contract_defaults_apply() {
        let settings = Settings::from_env_map(&env(&REQUIRED)).expect("valid");
        assert_eq!(settings.http.port, 8080);
        assert_eq!(settings.http.host, IpAddr::V6(Ipv6Addr::UNSPECIFIED));
        let methods: Vec<_> = settings.webhooks.auth.methods().collect();
        assert_eq!(methods, [MethodName::StandardWebhooks, MethodName::Hmac]);
        assert!(!settings.webhooks.auth.checks_sources());
        assert!(settings.webhooks.trusted_proxies.is_empty());
        assert!(settings.api_keys.is_empty());
        assert!(settings.migrate_on_start);
        assert_eq!(settings.log_filter, "info");
        assert_eq!(settings.http.body_limit, 1024 * 1024);
    }

    /// What the Kubernetes deployment gives the process: the image's defaults, the mounted
    /// file of `deploy/base/`, the ConfigMap's variables as each overlay merges them, and the
    /// Secret's, as `deploy/secret.example.yaml` shapes it.
    #[test]
    fn the_kubernetes_configuration_is_valid() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        // `- NAME=value` items of a kustomization's configMapGenerator literals.
        let literals = |file: &str| -> Vec<(String, String)> {
            std::fs::read_to_string(root.join(file))
                .expect("a kustomization")
                .lines()
                .filter_map(|line| line.trim().strip_prefix("- ")?.split_once('='))
                .filter(|(name, _)| name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                .collect()
        };
        for overlay in ["production", "staging"] {
            let mut vars = env(&[
                ("DATABASE_URL", REQUIRED[0].1),
                ("WEBHOOK_TOKENS", &"ab".repeat(32)),
                ("API_KEYS", "[]"),
            ]);
            vars.extend(literals("deploy/base/kustomization.yaml"));
            vars.extend(literals(&format!(
                "deploy/overlays/{overlay}/kustomization.yaml"
            )));
            assert_eq!(vars["WEBHOOK_AUTH"], "token");
            let settings = Settings::load_from(Some(&root.join(DEFAULT_CONFIG_FILE)), |name| {
                let value = vars.get(name).cloned();
                // Relative to the repository, as the image's working directory.
                match (name, value) {
                    ("APP_CONFIG", Some(_)) => Some(
                        root.join("deploy/base/idnow-attempts.toml")
                            .display()
                            .to_string(),
                    ),
                    (_, value) => value,
                }
            })
            .expect("the deployed files and variables are valid");
            assert_eq!(settings.http.shutdown_delay, Duration::from_secs(5));
            assert_eq!(settings.http.shutdown_timeout, Duration::from_secs(20));
            assert!(!settings.migrate_on_start);
            assert!(settings.webhooks.auth.checks_sources(), "{overlay}");
            assert!(!settings.webhooks.trusted_proxies.is_empty(), "{overlay}");
        }
    }

    #[test]
    fn required_variables_are_named_when_missing() {
        let error = Settings::from_env_map(&env(&REQUIRED[1..])).expect_err("no url");
        assert_eq!(error.to_string(), "DATABASE_URL is required");
        let error = Settings::from_env_map(&env(&REQUIRED[..1])).expect_err("no secrets");
        assert_eq!(
            error.to_string(),
            "IDNOW_WEBHOOK_SECRETS is required: WEBHOOK_AUTH enables `standard-webhooks`"
        );
        let mut vars = env(&REQUIRED);
        vars.remove("PAYLOAD_ENCRYPTION_KEYS");
        let error = Settings::from_env_map(&vars).expect_err("no keys");
        assert_eq!(error.to_string(), "PAYLOAD_ENCRYPTION_KEYS is required");
    }

    #[test]
    fn payload_keys_and_retention_are_read_and_refused_without_quoting_keys() {
        let key = "q83vEjRWeJASNFZ4kBI0VniQEjRWeJASNFZ4kBI0Vng=";
        let vars = env(&[
            REQUIRED[0],
            REQUIRED[1],
            ("PAYLOAD_ENCRYPTION_KEYS", &format!("k2:{key}, k1:{key}")),
            ("RETENTION_UNREGISTERED_DAYS", "120"),
        ]);
        let settings = Settings::from_env_map(&vars).expect("valid");
        let ids: Vec<_> = settings.payload_keys.ids().map(|id| id.as_str()).collect();
        assert_eq!(ids, ["k2", "k1"]);
        assert_eq!(settings.retention.unregistered_days, 120);
        assert_eq!(settings.retention.rejected_days, 30);
        assert_eq!(settings.retention.interval, Duration::from_secs(3600));
        assert!(!format!("{settings:?}").contains(key));
        for (name, value) in [
            ("PAYLOAD_ENCRYPTION_KEYS", format!("k1:{}", &key[..20])),
            ("PAYLOAD_ENCRYPTION_KEYS", format!("k1 {key}")),
            ("PAYLOAD_ENCRYPTION_KEYS", format!("k1:{key},k1:{key}")),
            ("PAYLOAD_ENCRYPTION_KEYS", " ".to_owned()),
            ("RETENTION_REJECTED_DAYS", "0".to_owned()),
            ("RETENTION_UNREGISTERED_DAYS", "-3".to_owned()),
        ] {
            let vars = env(&[REQUIRED[0], REQUIRED[1], (name, &value)]);
            let error = Settings::from_env_map(&vars).expect_err(name).to_string();
            assert!(error.contains(name), "{error}");
            assert!(!error.contains(&key[..20]), "{error}");
        }
    }

    #[test]
    fn webhook_authentication_is_configured_as_the_contract_says() {
        let token_digest = "ab".repeat(32);
        let basic = format!("idnow:{}", "cd".repeat(32));
        let vars = env(&[
            ("DATABASE_URL", REQUIRED[0].1),
            ("WEBHOOK_AUTH", "source, basic,token,token"),
            (
                "WEBHOOK_TOKENS",
                &format!("{token_digest}, {}", "ef".repeat(32)),
            ),
            ("WEBHOOK_TOKEN_HEADER", "X-IDnow-Token"),
            ("WEBHOOK_BASIC_CREDENTIALS", &basic),
            ("WEBHOOK_ALLOWED_SOURCES", "192.0.2.0/24, 2001:db8::/32"),
            ("TRUSTED_PROXIES", "10.0.0.0/8"),
        ]);
        // No IDNOW_WEBHOOK_SECRETS: no signature method is enabled.
        let settings = Settings::from_env_map(&vars).expect("valid");
        let auth = &settings.webhooks.auth;
        let methods: Vec<_> = auth.methods().collect();
        assert_eq!(
            methods,
            [MethodName::Token, MethodName::Basic, MethodName::Source]
        );
        assert!(auth.checks_sources() && auth.challenges_basic());
        assert!(settings
            .webhooks
            .trusted_proxies
            .contains("10.1.2.3".parse().expect("ip")));
        assert!(settings.webhooks.warnings.is_empty());
        // A blank list is no list: a ConfigMap key may be set and empty.
        let mut blank = vars.clone();
        blank.insert("TRUSTED_PROXIES".into(), " ".into());
        let settings = Settings::from_env_map(&blank).expect("valid");
        assert!(settings.webhooks.trusted_proxies.is_empty());
    }

    #[test]
    fn credentials_of_a_method_that_is_not_enabled_are_reported_as_unused() {
        let mut vars = env(&REQUIRED);
        vars.extend(env(&[
            ("WEBHOOK_AUTH", "basic"),
            (
                "WEBHOOK_BASIC_CREDENTIALS",
                &format!("idnow:{}", "cd".repeat(32)),
            ),
            ("WEBHOOK_TOKENS", &"ab".repeat(32)),
        ]));
        let settings = Settings::from_env_map(&vars).expect("valid");
        assert_eq!(
            settings.webhooks.warnings,
            [
                "IDNOW_WEBHOOK_SECRETS is set, but WEBHOOK_AUTH enables none of \
                 standard-webhooks, hmac: it is not used",
                "WEBHOOK_TOKENS is set, but WEBHOOK_AUTH enables none of token: it is not used",
            ]
        );
    }

    #[test]
    fn a_webhook_policy_that_cannot_work_refuses_to_start() {
        let digest = "ab".repeat(32);
        for (vars, message) in [
            (
                &[("WEBHOOK_AUTH", "source")][..],
                "WEBHOOK_AUTH is invalid: `source` is enabled but WEBHOOK_ALLOWED_SOURCES is \
                 not set or covers every address: it would accept anonymous deliveries from anywhere",
            ),
            (
                &[
                    ("WEBHOOK_AUTH", "source"),
                    ("WEBHOOK_ALLOWED_SOURCES", "192.0.2.0/24,0.0.0.0/0"),
                ],
                "WEBHOOK_AUTH is invalid: `source` is enabled but WEBHOOK_ALLOWED_SOURCES is \
                 not set or covers every address: it would accept anonymous deliveries from anywhere",
            ),
            // Set but blank, as a ConfigMap key may be: a gate nobody passes is a mistake,
            // and taking it for "unset" would open the gate.
            (
                &[
                    ("WEBHOOK_AUTH", "token"),
                    ("WEBHOOK_TOKENS", &digest),
                    ("WEBHOOK_ALLOWED_SOURCES", " "),
                ],
                "WEBHOOK_ALLOWED_SOURCES is invalid: it is set but lists no address; leave it \
                 unset to admit any address",
            ),
            (
                &[("WEBHOOK_AUTH", "token")],
                "WEBHOOK_TOKENS is required: WEBHOOK_AUTH enables `token`",
            ),
            (
                &[("WEBHOOK_AUTH", "hmac"), ("IDNOW_WEBHOOK_SECRETS", "")],
                "IDNOW_WEBHOOK_SECRETS is required: WEBHOOK_AUTH enables `hmac`",
            ),
            (
                &[("WEBHOOK_AUTH", "hmac,basic")],
                "WEBHOOK_BASIC_CREDENTIALS is required: WEBHOOK_AUTH enables `basic`",
            ),
            (
                &[("WEBHOOK_AUTH", "")],
                "WEBHOOK_AUTH is invalid: no authentication method is enabled",
            ),
            (
                &[
                    ("WEBHOOK_AUTH", "token"),
                    ("WEBHOOK_TOKENS", &digest),
                    ("WEBHOOK_TOKEN_HEADER", "Webhook-Signature"),
                ],
                "WEBHOOK_TOKEN_HEADER is invalid: it names a header that HTTP, proxies or \
                 another method use",
            ),
        ] {
            let mut all = env(&REQUIRED);
            all.extend(env(vars));
            let error = Settings::from_env_map(&all).expect_err(message);
            assert_eq!(error.to_string(), message);
        }
    }

    #[test]
    fn invalid_webhook_credentials_are_named_without_echoing_them() {
        let digest = "ab".repeat(32);
        for (name, value) in [
            ("WEBHOOK_AUTH", "hmac,hunter2"),
            ("WEBHOOK_TOKENS", "hunter2"),
            ("WEBHOOK_TOKENS", &format!("{digest},")),
            ("WEBHOOK_TOKEN_HEADER", "hunter2 header"),
            ("WEBHOOK_BASIC_CREDENTIALS", "idnow:hunter2"),
            (
                "WEBHOOK_BASIC_CREDENTIALS",
                &format!("hunter2:{digest}, :{digest}"),
            ),
            ("WEBHOOK_ALLOWED_SOURCES", "10.0.0.0/8,hunter2"),
            ("WEBHOOK_ALLOWED_SOURCES", "10.0.0.0/8,,10.1.0.0/16"),
            ("TRUSTED_PROXIES", "hunter2/8"),
            ("TRUSTED_PROXIES", "10.0.0.0/8, 0.0.0.0/1, 128.0.0.0/1"),
        ] {
            let mut vars = env(&REQUIRED);
            vars.insert(name.to_owned(), value.to_owned());
            let error = Settings::from_env_map(&vars).expect_err(name).to_string();
            assert!(error.starts_with(&format!("{name} is invalid")), "{error}");
            assert!(
                !error.contains("hunter2") && !error.contains(&digest),
                "{error}"
            );
        }
    }

    #[test]
    fn environment_variables_parse_as_the_contract_says() {
        let digest = "ab".repeat(32);
        let api_keys = format!(
            r#"[{{"name":"loan-backend","sha256":"{digest}","scopes":["idnow_attempts:read","signings:write"]}}]"#
        );
        let mut vars = env(&REQUIRED);
        vars.extend(env(&[
            ("PORT", "9090"),
            (
                "IDNOW_WEBHOOK_SECRETS",
                "new, whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            ),
            ("WEBHOOK_TOLERANCE_SECONDS", "60"),
            ("API_KEYS", &api_keys),
            ("MIGRATE_ON_START", "false"),
            ("RUST_LOG", "debug"),
        ]));
        let settings = Settings::from_env_map(&vars).expect("valid");
        assert_eq!(settings.http.port, 9090);
        assert_eq!(settings.api_keys.len(), 1);
        assert!(!settings.migrate_on_start);
        assert_eq!(settings.log_filter, "debug");

        // Booleans as operators write them.
        for (text, value) in [("yes", true), ("on", true), ("0", false), ("FALSE", false)] {
            vars.insert("MIGRATE_ON_START".into(), text.into());
            let settings = Settings::from_env_map(&vars).expect(text);
            assert_eq!(settings.migrate_on_start, value, "{text}");
        }
    }

    #[test]
    fn invalid_values_are_refused_without_echoing_secrets() {
        for (name, value) in [
            ("PORT", "http"),
            ("PORT", "70000"),
            ("WEBHOOK_TOLERANCE_SECONDS", "-1"),
            ("API_KEYS", "{}"),
            ("MIGRATE_ON_START", "maybe"),
            ("IDNOW_WEBHOOK_SECRETS", "good,,also-good"),
            ("IDNOW_WEBHOOK_SECRETS", "whsec_not*base64"),
            ("DATABASE_URL", "mysql://user:hunter2@db/x"),
        ] {
            let mut vars = env(&REQUIRED);
            vars.insert(name.to_owned(), value.to_owned());
            let error = Settings::from_env_map(&vars).expect_err(name).to_string();
            assert!(error.starts_with(name), "{error}");
            assert!(
                !error.contains("hunter2") && !error.contains("not*base64"),
                "{error}"
            );
        }
    }

    #[test]
    fn settings_never_print_secrets() {
        let mut vars = env(&REQUIRED);
        vars.insert(
            "IDNOW_WEBHOOK_SECRETS".into(),
            "topsecret-webhook-key".into(),
        );
        let settings = Settings::from_env_map(&vars).expect("valid");
        let printed = format!("{settings:?}");
        assert!(!printed.contains("topsecret-webhook-key"), "{printed}");
        assert!(!printed.contains("pw@db"), "{printed}");
    }

    #[test]
    fn files_layer_under_the_environment() {
        let dir =
            std::env::temp_dir().join(format!("idnow-attempts-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let default_file = dir.join("default.toml");
        let app_config = dir.join("app.toml");
        let write = |path: &Path, text: &str| {
            std::fs::File::create(path)
                .and_then(|mut f| f.write_all(text.as_bytes()))
                .expect("write config");
        };
        write(
            &default_file,
            "port = 1000\nrust_log = \"warn\"\n[http]\nbody_limit_bytes = 10\n",
        );
        write(
            &app_config,
            "port = 2000\n[database]\nmax_connections = 3\n",
        );

        let mut vars = env(&REQUIRED);
        vars.insert("APP_CONFIG".into(), app_config.display().to_string());
        let load = |vars: &HashMap<String, String>| {
            Settings::load_from(Some(&default_file), |name| vars.get(name).cloned())
        };

        let settings = load(&vars).expect("valid");
        assert_eq!(
            settings.http.port, 2000,
            "APP_CONFIG overrides default.toml"
        );
        assert_eq!(
            settings.log_filter, "warn",
            "default.toml overrides built-ins"
        );
        assert_eq!(settings.http.body_limit, 10);
        assert_eq!(settings.database.max_connections, 3);

        vars.insert("PORT".into(), "3000".into());
        assert_eq!(
            load(&vars).expect("valid").http.port,
            3000,
            "the environment wins"
        );

        vars.insert(
            "APP_CONFIG".into(),
            dir.join("absent.toml").display().to_string(),
        );
        assert!(matches!(load(&vars), Err(ConfigError::MissingFile(_))));

        write(&app_config, "prot = 1\n");
        vars.insert("APP_CONFIG".into(), app_config.display().to_string());
        let typo = load(&vars).expect_err("typos are not ignored").to_string();
        assert!(
            typo.contains("unknown field: found `prot`") && typo.contains("app.toml"),
            "{typo}"
        );
        // The key and the file named, the value never: a file may hold credentials.
        for (text, key) in [
            ("webhook_auth = \"hunter2\"\n", "webhook_auth"),
            (
                "[http]\nmax_header_bytes = \"hunter2\"\n",
                "http.max_header_bytes",
            ),
            ("webhook_token_header = 5\n", "webhook_token_header"),
        ] {
            write(&app_config, text);
            let error = load(&vars).expect_err(text).to_string();
            assert!(error.starts_with(&format!("{key} in ")), "{error}");
            assert!(
                error.contains("app.toml") && !error.contains("hunter2"),
                "{error}"
            );
        }
        // Not TOML: the file and the place named, the line's text never.
        write(&app_config, "api_keys = [\"hunter2\"\n");
        let error = load(&vars).expect_err("not TOML").to_string();
        assert!(
            error.contains("app.toml is not valid TOML (at line 1, column")
                && !error.contains("hunter2"),
            "{error}"
        );
        // A directory is no file.
        vars.insert("APP_CONFIG".into(), dir.display().to_string());
        let error = load(&vars).expect_err("a directory").to_string();
        assert!(error.ends_with("which is not a file"), "{error}");
        vars.insert("APP_CONFIG".into(), app_config.display().to_string());

        // Workers own shares of the connections: never more workers than connections. By
        // default batches of webhooks may take half the connections, at least one a worker.
        for (file, workers, write_concurrency) in [
            (
                "[database]\nmax_connections = 3\n[http]\nworkers = 8\n",
                3,
                3,
            ),
            (
                "[database]\nmax_connections = 16\n[http]\nworkers = 2\n",
                2,
                8,
            ),
            (
                "[database]\nwrite_concurrency = 5\n[http]\nworkers = 2\n",
                2,
                5,
            ),
        ] {
            write(&app_config, file);
            let settings = load(&vars).expect("valid");
            assert_eq!(settings.http.workers.get(), workers, "{file}");
            assert_eq!(settings.database.write_concurrency, write_concurrency);
        }

        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn a_clients_share_of_the_body_budget_lies_within_it() {
        let dir =
            std::env::temp_dir().join(format!("idnow-attempts-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("share.toml");
        let vars = env(&REQUIRED);
        let load = |text: &str| {
            std::fs::write(&file, text).expect("write config");
            Settings::load_from(Some(&file), |name| vars.get(name).cloned())
                .map(|settings| settings.http.body_budget_per_client)
        };
        const MIB: usize = 1 << 20;
        // Half the budget by default, at least the largest body.
        assert_eq!(load("").expect("valid"), 8 * MIB);
        assert_eq!(
            load("[http]\nbody_budget_bytes = 1572864\n").expect("valid"),
            MIB
        );
        assert_eq!(
            load("[http]\nbody_budget_per_client_bytes = 2097152\n").expect("valid"),
            2 * MIB
        );
        for beyond in ["1048575", "16777217"] {
            let error = load(&format!(
                "[http]\nbody_budget_per_client_bytes = {beyond}\n"
            ))
            .expect_err(beyond)
            .to_string();
            assert!(
                error.starts_with("http.body_budget_per_client_bytes"),
                "{error}"
            );
        }
        std::fs::remove_dir_all(&dir).expect("temp dir removed");
    }

    /// The page budget holds the default page of attempts of the largest size, and is
    /// counted in `u32` permits.
    #[test]
    fn the_page_budget_holds_an_attempt_of_the_largest_size() {
        let dir =
            std::env::temp_dir().join(format!("idnow-attempts-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("pages.toml");
        let vars = env(&REQUIRED);
        let load = |text: &str| {
            std::fs::write(&file, text).expect("write config");
            Settings::load_from(Some(&file), |name| vars.get(name).cloned())
                .map(|settings| settings.http.page_budget)
        };
        assert_eq!(load("").expect("valid"), 32 << 20);
        // Twenty bodies of the largest size by default.
        assert_eq!(
            load("[http]\nbody_limit_bytes = 4194304\n").expect("valid"),
            80 << 20
        );
        assert_eq!(
            load("[http]\npage_budget_bytes = 20971520\n").expect("valid"),
            20 << 20
        );
        for refused in ["20971519", "4294967296"] {
            let error = load(&format!("[http]\npage_budget_bytes = {refused}\n"))
                .expect_err(refused)
                .to_string();
            assert!(error.starts_with("http.page_budget_bytes"), "{error}");
        }
        std::fs::remove_dir_all(&dir).expect("temp dir removed");
    }

    /// The README's configuration tables are written by hand: they must state every variable
    /// and every key of config/default.toml with the default written there, and nothing else.
    #[test]
    fn the_readme_states_every_default() {
        use figment::value::Value;

        let readme =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
                .expect("README.md");
        let section = readme
            .split("\n## ")
            .find(|section| section.starts_with("Configuration\n"))
            .expect("a Configuration section");
        let mut rows: HashMap<&str, &str> = section
            .lines()
            .filter_map(|line| {
                let name = line.strip_prefix("| `")?.split('`').next()?;
                Some((name, line))
            })
            .collect();
        let mut take = |name: &str| {
            rows.remove(name)
                .unwrap_or_else(|| panic!("the README has no row for {name}"))
        };
        let shown = |value: &Value| match value {
            Value::String(_, text) => format!("`{text}`"),
            other => format!("`{}`", serde_json::to_string(other).expect("serialises")),
        };
        for variable in &VARIABLES {
            let row = take(variable.name);
            if let Some(default) = variable.default_value() {
                assert!(row.contains(&format!("`{default}`")), "{row}");
            }
        }
        let defaults: figment::value::Dict = built_in_defaults().extract().expect("valid TOML");
        let variable_keys: Vec<String> = VARIABLES.iter().map(Variable::key).collect();
        for (key, value) in &defaults {
            match value {
                Value::Dict(_, table) => {
                    for (name, value) in table {
                        let row = take(&format!("{key}.{name}"));
                        assert!(row.contains(&shown(value)), "{row}");
                    }
                }
                value if !variable_keys.contains(key) => {
                    let row = take(key);
                    assert!(row.contains(&shown(value)), "{row}");
                }
                _ => {}
            }
        }
        // Computed at start when not set, so commented out in the file.
        for computed in [
            "database.write_concurrency",
            "http.workers",
            "http.body_budget_per_client_bytes",
            "http.page_budget_bytes",
        ] {
            take(computed);
        }
        assert!(rows.is_empty(), "rows for no setting: {:?}", rows.keys());
    }

    #[test]
    fn the_shipped_default_file_is_valid() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_CONFIG_FILE);
        let vars = env(&REQUIRED);
        Settings::load_from(Some(&file), |name| vars.get(name).cloned())
            .expect("valid default.toml");
    }
}
