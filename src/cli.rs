//! The command line: `serve` (the default), `migrate`, and the operator commands.

use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

use crate::configuration;

/// Verified IDnow result webhooks in, per-signing attempt history out, all in PostgreSQL.
#[derive(Debug, Parser)]
#[command(name = "idnow-attempts", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Cli {
    /// The process' arguments; `--help` ends with the configuration reference, written from
    /// the variables and defaults of `configuration`.
    pub fn from_args() -> Self {
        let matches = Self::command()
            .after_help(configuration::help())
            .get_matches();
        Self::from_arg_matches(&matches).unwrap_or_else(|error| error.exit())
    }
}

#[derive(Debug, Clone, Copy, Subcommand, PartialEq, Eq)]
pub enum Command {
    /// Run the HTTP service (the default).
    Serve,
    /// Apply pending database migrations and exit. Safe to run from several places at once.
    Migrate,
    /// Re-encrypt every stored payload and kept body that is not under the first key of
    /// PAYLOAD_ENCRYPTION_KEYS (or not encrypted at all, from before encryption), in batches,
    /// beside live traffic; prints progress. Interrupted, run it again: it resumes. Then the
    /// other keys may be dropped.
    Reencrypt,
    /// Apply the retention settings now: delete attempts no signing claimed within
    /// RETENTION_UNREGISTERED_DAYS and rejected deliveries kept over RETENTION_REJECTED_DAYS,
    /// and print the counts.
    Purge {
        /// Only count what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_documents_every_variable_with_its_default() {
        let help = Cli::command()
            .after_help(configuration::help())
            .render_help()
            .to_string();
        // As read: wrapped lines joined.
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
        for variable in &configuration::VARIABLES {
            assert!(help.contains(variable.name), "{} missing", variable.name);
            if let Some(default) = variable.default_value() {
                let default = format!("[default: {default}]");
                assert!(help.contains(&default), "{default} missing: {help}");
            }
        }
    }

    #[test]
    fn serve_is_the_default() {
        assert_eq!(Cli::parse_from(["idnow-attempts"]).command, None);
        assert_eq!(
            Cli::parse_from(["idnow-attempts", "migrate"]).command,
            Some(Command::Migrate)
        );
        assert_eq!(
            Cli::parse_from(["idnow-attempts", "purge", "--dry-run"]).command,
            Some(Command::Purge { dry_run: true })
        );
    }
}
