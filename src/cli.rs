//! The command line: `serve` (the default) and `migrate`.

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
    }
}
