//! The environment variables of the contract, as data: each names the file key it sets, how
//! its text is read, and what `--help` says of it. Their defaults are the built-in ones of
//! `config/default.toml`, read from there for `--help` too.

use std::fmt::Write as _;

use figment::error::Kind;
use figment::value::{Dict, Map, Value};
use figment::{Metadata, Profile, Provider};

use super::{built_in_defaults, ConfigError};

/// How a variable's text becomes a configuration value.
#[derive(Debug, Clone, Copy)]
enum Syntax {
    /// The text as it is.
    Text,
    /// A whole number, surrounding blanks ignored.
    Number,
    /// `true`/`false`, `yes`/`no`, `on`/`off` or `1`/`0`, in any case.
    Boolean,
    /// Comma-separated values, each trimmed; a blank value is an empty list (the variable
    /// is set, as a ConfigMap key may be, but lists nothing).
    List,
    /// A JSON document.
    Json,
}

/// One environment variable of the contract. The file key it overrides is its name in lower
/// case.
#[derive(Debug)]
pub struct Variable {
    pub name: &'static str,
    syntax: Syntax,
    /// What a valid value is, for the error that names the variable; never the value itself.
    expected: &'static str,
    /// For `--help`.
    help: &'static str,
}

/// The name figment reports as the source of a value that came from the environment.
const SOURCE: &str = "environment variable";

pub const VARIABLES: [Variable; 16] = [
    Variable {
        name: "DATABASE_URL",
        syntax: Syntax::Text,
        expected: "a postgres:// or postgresql:// connection URL",
        help: "PostgreSQL connection URL (required)",
    },
    Variable {
        name: "PORT",
        syntax: Syntax::Number,
        expected: "a TCP port number",
        help: "TCP port to listen on, all interfaces",
    },
    Variable {
        name: "WEBHOOK_AUTH",
        syntax: Syntax::List,
        expected: "comma-separated methods of standard-webhooks, hmac, token, basic, source",
        help: "comma-separated authentication methods a delivery may use, any one of which \
               suffices: standard-webhooks, hmac, token, basic, source",
    },
    Variable {
        name: "IDNOW_WEBHOOK_SECRETS",
        syntax: Syntax::List,
        expected: "comma-separated secrets",
        help: "comma-separated webhook signing secrets of standard-webhooks and hmac, any of \
               which may sign a delivery (rotation); `whsec_<base64>` secrets are \
               base64-decoded, others used as UTF-8 bytes (required when either is enabled)",
    },
    Variable {
        name: "WEBHOOK_TOKENS",
        syntax: Syntax::List,
        expected: "comma-separated hex SHA-256 digests",
        help: "comma-separated lowercase hex SHA-256 digests of the static tokens `token` \
               accepts (required when `token` is enabled)",
    },
    Variable {
        name: "WEBHOOK_TOKEN_HEADER",
        syntax: Syntax::Text,
        expected: "a header name",
        help: "the header that carries the static token of `token`",
    },
    Variable {
        name: "WEBHOOK_BASIC_CREDENTIALS",
        syntax: Syntax::List,
        expected: "comma-separated user:<hex SHA-256 of the password> pairs",
        help: "comma-separated user:<hex SHA-256 of the password> pairs `basic` accepts; a user \
               listed twice has two valid passwords (rotation) (required when `basic` is \
               enabled)",
    },
    Variable {
        name: "WEBHOOK_ALLOWED_SOURCES",
        syntax: Syntax::List,
        expected: "comma-separated IPv4/IPv6 CIDRs or addresses",
        help: "comma-separated CIDRs (IPv4 and IPv6) deliveries may come from; when set, a \
               delivery from any other address is refused 403 whatever it carries [default: \
               unset, any address]",
    },
    Variable {
        name: "TRUSTED_PROXIES",
        syntax: Syntax::List,
        expected: "comma-separated IPv4/IPv6 CIDRs or addresses",
        help: "comma-separated CIDRs of the proxies (ingress, load balancer) whose \
               X-Forwarded-For is believed: the client is its right-most address that is not \
               itself a trusted proxy [default: unset, none]",
    },
    Variable {
        name: "PAYLOAD_ENCRYPTION_KEYS",
        syntax: Syntax::List,
        expected: "comma-separated key_id:<base64 of 32 bytes> entries",
        help: "comma-separated key_id:<base64 of 32 random bytes>; the first key encrypts \
               stored payloads and kept bodies (AES-256-GCM), every listed key decrypts \
               (rotation) (required)",
    },
    Variable {
        name: "RETENTION_UNREGISTERED_DAYS",
        syntax: Syntax::Number,
        expected: "whole days, 1 to 36500",
        help: "attempts whose transaction number no signing has claimed are deleted this \
               many days after arrival",
    },
    Variable {
        name: "RETENTION_REJECTED_DAYS",
        syntax: Syntax::Number,
        expected: "whole days, 1 to 36500",
        help: "kept rejected deliveries are deleted this many days after arrival",
    },
    Variable {
        name: "WEBHOOK_TOLERANCE_SECONDS",
        syntax: Syntax::Number,
        expected: "whole seconds",
        help: "accepted clock skew of Standard Webhooks timestamps",
    },
    Variable {
        name: "API_KEYS",
        syntax: Syntax::Json,
        expected: "a JSON array of {\"name\",\"sha256\",\"scopes\"}",
        help: "JSON array of API clients: [{\"name\":\"loan-backend\",\"sha256\":\
               \"<hex-sha256-of-the-token>\",\"scopes\":[\"idnow_attempts:read\",\
               \"signings:write\"]}]",
    },
    Variable {
        name: "MIGRATE_ON_START",
        syntax: Syntax::Boolean,
        expected: "true or false",
        help: "apply pending migrations when `serve` starts",
    },
    Variable {
        name: "RUST_LOG",
        syntax: Syntax::Text,
        expected: "a log filter",
        help: "log filter",
    },
];

/// The variables that are set, as a figment provider over the file keys they override.
#[derive(Debug)]
pub(super) struct Environment(Dict);

impl Environment {
    pub(super) fn read(env: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut values = Dict::new();
        for variable in &VARIABLES {
            if let Some(raw) = env(variable.name) {
                values.insert(variable.key(), variable.value(raw)?);
            }
        }
        Ok(Self(values))
    }

    /// The error for a value of the environment that the settings refused: the variable
    /// named, with what it expects, and never the value (it may be a secret).
    pub(super) fn refusal(error: &figment::Error) -> Option<ConfigError> {
        if error.metadata.as_ref()?.name != SOURCE {
            return None;
        }
        let key = error.path.first()?;
        let variable = VARIABLES.iter().find(|variable| variable.key() == *key)?;
        // What the kinds below say holds names of fields, never values.
        let detail = match &error.kind {
            Kind::UnknownField(..)
            | Kind::MissingField(_)
            | Kind::DuplicateField(_)
            | Kind::InvalidLength(..) => {
                format!(" ({}: {})", error.path[1..].join("."), error.kind)
            }
            _ => String::new(),
        };
        Some(ConfigError::invalid(
            variable.name,
            format!("{}{detail}", variable.expected_text()),
        ))
    }
}

impl Provider for Environment {
    fn metadata(&self) -> Metadata {
        Metadata::named(SOURCE)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.0.clone()))
    }
}

impl Variable {
    /// The file key the variable overrides.
    pub fn key(&self) -> String {
        self.name.to_ascii_lowercase()
    }

    /// The variable's text as a configuration value of its syntax.
    fn value(&self, raw: String) -> Result<Value, ConfigError> {
        let invalid = || ConfigError::invalid(self.name, self.expected_text());
        Ok(match self.syntax {
            Syntax::Text => Value::from(raw),
            Syntax::Number => Value::from(raw.trim().to_owned())
                .to_num_lossy()
                .map(Value::from)
                .ok_or_else(invalid)?,
            Syntax::Boolean => Value::from(raw.trim().to_owned())
                .to_bool_lossy()
                .map(Value::from)
                .ok_or_else(invalid)?,
            Syntax::List if raw.trim().is_empty() => Value::from(Vec::<String>::new()),
            Syntax::List => Value::from(
                raw.split(',')
                    .map(|item| item.trim().to_owned())
                    .collect::<Vec<_>>(),
            ),
            Syntax::Json => serde_json::from_str(&raw).map_err(|error| {
                // A syntax error tells where, never what: serde_json quotes no input for it.
                let reason = if error.is_syntax() || error.is_eof() {
                    format!("{} ({error})", self.expected_text())
                } else {
                    self.expected_text()
                };
                ConfigError::invalid(self.name, reason)
            })?,
        })
    }

    fn expected_text(&self) -> String {
        format!("expected {}", self.expected)
    }

    /// The built-in default, as `--help` and the README show it.
    pub fn default_value(&self) -> Option<String> {
        built_in_defaults()
            .find_value(&self.key())
            .ok()
            .map(|value| match (value, self.syntax) {
                (Value::String(_, text), _) => text,
                // As the variable would be written: `standard-webhooks,hmac`.
                (Value::Array(_, items), Syntax::List) => items
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(","),
                (other, _) => serde_json::to_string(&other).unwrap_or_default(),
            })
    }
}

/// The configuration reference of `--help`: the layers, then every variable with its default.
pub fn help() -> String {
    const WIDTH: usize = 96;
    // The descriptions start two columns after the longest name.
    let indent = VARIABLES
        .iter()
        .map(|variable| variable.name.len())
        .chain(["APP_CONFIG".len()])
        .max()
        .unwrap_or_default()
        + 4;
    let mut text = wrap(
        "Configuration, each layer overriding the one before: built-in defaults (the shipped \
         config/default.toml), config/default.toml relative to the working directory, the \
         TOML file named by APP_CONFIG, then these variables:",
        0,
        WIDTH,
    );
    text.push('\n');
    let app_config = (
        "APP_CONFIG",
        "optional TOML file with the same keys in lower case, plus the [database], [http] \
         and [retention] tuning tables of config/default.toml"
            .to_owned(),
    );
    let described = VARIABLES.iter().map(|variable| {
        let default = variable.default_value();
        let default = default.map_or(String::new(), |value| format!(" [default: {value}]"));
        (variable.name, format!("{}{default}", variable.help))
    });
    for (name, description) in described.chain([app_config]) {
        let _ = write!(text, "  {name:<width$}", width = indent - 2);
        text.push_str(wrap(&description, indent, WIDTH).trim_start());
    }
    text.trim_end().to_owned()
}

/// `text`'s words in lines of at most `width` characters, each indented by `indent`.
fn wrap(text: &str, indent: usize, width: usize) -> String {
    let mut wrapped = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && indent + line.len() + 1 + word.len() > width {
            let _ = writeln!(wrapped, "{:indent$}{line}", "");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        let _ = writeln!(wrapped, "{:indent$}{line}", "");
    }
    wrapped
}
