//! The environment variables of the contract, as data: each names the file key it sets, how
//! its text is read, and what `--help` says of it. Their defaults are the built-in ones of
//! `config/default.toml`, read from there for `--help` too.

use std::fmt::Write as _;

use figment::value::{Dict, Map, Value};
use figment::{Metadata, Profile, Provider};

use super::{built_in_defaults, ConfigError};

/// How a variable's text becomes a configuration value.
#[derive(Debug, Clone, Copy)]
enum Syntax {
    /// One value; numbers and booleans are read from their text as the key's type requires.
    Scalar,
    /// Comma-separated values, each trimmed.
    List,
    /// A JSON document.
    Json,
}

/// One environment variable of the contract.
#[derive(Debug)]
pub struct Variable {
    pub name: &'static str,
    /// The file key it overrides: its own name in lower case.
    key: &'static str,
    syntax: Syntax,
    /// What a valid value is, for the error that names the variable; never the value itself.
    expected: &'static str,
    /// For `--help`.
    help: &'static str,
}

/// The name figment reports as the source of a value that came from the environment.
const SOURCE: &str = "environment variable";

pub const VARIABLES: [Variable; 7] = [
    Variable {
        name: "DATABASE_URL",
        key: "database_url",
        syntax: Syntax::Scalar,
        expected: "a postgres:// or postgresql:// connection URL",
        help: "PostgreSQL connection URL (required)",
    },
    Variable {
        name: "PORT",
        key: "port",
        syntax: Syntax::Scalar,
        expected: "a TCP port number",
        help: "TCP port to listen on, all interfaces",
    },
    Variable {
        name: "IDNOW_WEBHOOK_SECRETS",
        key: "idnow_webhook_secrets",
        syntax: Syntax::List,
        expected: "comma-separated secrets",
        help: "comma-separated webhook signing secrets, any of which may sign a delivery \
               (rotation); `whsec_<base64>` secrets are base64-decoded, others used as UTF-8 \
               bytes (required)",
    },
    Variable {
        name: "WEBHOOK_TOLERANCE_SECONDS",
        key: "webhook_tolerance_seconds",
        syntax: Syntax::Scalar,
        expected: "whole seconds",
        help: "accepted clock skew of Standard Webhooks timestamps",
    },
    Variable {
        name: "API_KEYS",
        key: "api_keys",
        syntax: Syntax::Json,
        expected: "a JSON array of {\"name\",\"sha256\",\"scopes\"}",
        help: "JSON array of API clients: [{\"name\":\"loan-backend\",\"sha256\":\"<hex SHA-256 \
               of the token>\",\"scopes\":[\"idnow_attempts:read\",\"signings:write\"]}]",
    },
    Variable {
        name: "MIGRATE_ON_START",
        key: "migrate_on_start",
        syntax: Syntax::Scalar,
        expected: "true or false",
        help: "apply pending migrations when `serve` starts",
    },
    Variable {
        name: "RUST_LOG",
        key: "rust_log",
        syntax: Syntax::Scalar,
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
            let Some(raw) = env(variable.name) else {
                continue;
            };
            let value = match variable.syntax {
                Syntax::Scalar => Value::from(raw.trim().to_owned()),
                Syntax::List => Value::from(
                    raw.split(',')
                        .map(|item| item.trim().to_owned())
                        .collect::<Vec<_>>(),
                ),
                Syntax::Json => serde_json::from_str(&raw)
                    .map_err(|_| ConfigError::invalid(variable.name, variable.expected_text()))?,
            };
            values.insert(variable.key.to_owned(), value);
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
        let variable = VARIABLES.iter().find(|variable| variable.key == key)?;
        Some(ConfigError::invalid(
            variable.name,
            variable.expected_text(),
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
    fn expected_text(&self) -> String {
        format!("expected {}", self.expected)
    }

    /// The built-in default, as `--help` and the README show it.
    pub fn default_value(&self) -> Option<String> {
        built_in_defaults()
            .find_value(self.key)
            .ok()
            .map(|value| match value {
                Value::String(_, text) => text,
                other => serde_json::to_string(&other).unwrap_or_default(),
            })
    }
}

/// The configuration reference of `--help`: the layers, then every variable with its default.
pub fn help() -> String {
    const INDENT: usize = 29;
    const WIDTH: usize = 96;
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
        "optional TOML file with the same keys in lower case, plus the [database] and [http] \
         tuning tables of config/default.toml"
            .to_owned(),
    );
    let described = VARIABLES.iter().map(|variable| {
        let default = variable.default_value();
        let default = default.map_or(String::new(), |value| format!(" [default: {value}]"));
        (variable.name, format!("{}{default}", variable.help))
    });
    for (name, description) in described.chain([app_config]) {
        let _ = write!(text, "  {name:<width$}", width = INDENT - 2);
        text.push_str(wrap(&description, INDENT, WIDTH).trim_start());
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
