//! The command line: `serve` (the default) and `migrate`.

use clap::{Parser, Subcommand};

const ENVIRONMENT_HELP: &str = "\
Configuration, each layer overriding the one before: built-in defaults, config/default.toml
(relative to the working directory), the TOML file named by APP_CONFIG, then these variables:

  DATABASE_URL               PostgreSQL connection URL (required)
  PORT                       TCP port to listen on, all interfaces [default: 8080]
  IDNOW_WEBHOOK_SECRETS      comma-separated webhook signing secrets, any of which may sign a
                             delivery (rotation); `whsec_<base64>` secrets are base64-decoded,
                             others used as UTF-8 bytes (required)
  WEBHOOK_TOLERANCE_SECONDS  accepted clock skew of Standard Webhooks timestamps [default: 300]
  API_KEYS                   JSON array of API clients:
                             [{\"name\":\"loan-backend\",\"sha256\":\"<hex SHA-256 of the token>\",
                               \"scopes\":[\"idnow_attempts:read\",\"signings:write\"]}]
                             [default: []]
  MIGRATE_ON_START           apply pending migrations when `serve` starts [default: true]
  RUST_LOG                   log filter [default: info]
  APP_CONFIG                 optional TOML file with the same keys in lower case, plus the
                             [database] and [http] tuning tables of config/default.toml";

/// Verified IDnow result webhooks in, per-signing attempt history out, all in PostgreSQL.
#[derive(Debug, Parser)]
#[command(name = "idnow-attempts", version, after_long_help = ENVIRONMENT_HELP, after_help = ENVIRONMENT_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Copy, Subcommand, PartialEq, Eq)]
pub enum Command {
    /// Run the HTTP service (the default).
    Serve,
    /// Apply pending database migrations and exit. Safe to run from several places at once.
    Migrate,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_is_the_default() {
        assert_eq!(Cli::parse_from(["idnow-attempts"]).command, None);
        assert_eq!(
            Cli::parse_from(["idnow-attempts", "migrate"]).command,
            Some(Command::Migrate)
        );
    }
}
