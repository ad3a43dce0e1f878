//! The command line: `serve` (the default), `migrate`, and the operator commands.

use chrono::{DateTime, Utc};
use clap::{ArgGroup, CommandFactory as _, FromArgMatches as _, Parser, Subcommand};
use uuid::Uuid;

use crate::configuration;
use crate::domain::TransactionNumber;

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

#[derive(Debug, Clone, Subcommand, PartialEq, Eq)]
pub enum Command {
    /// Run the HTTP service (the default).
    Serve,
    /// Apply pending database migrations and exit. Safe to run from several places at once.
    Migrate,
    /// Re-encrypt every stored payload and kept body that is not under the first key of
    /// PAYLOAD_ENCRYPTION_KEYS (or not encrypted at all, from before encryption), in batches,
    /// beside live traffic; prints progress. Interrupted, run it again: it resumes. Then the
    /// other keys may be dropped. The log goes to stderr.
    Reencrypt,
    /// Apply the retention settings now: delete attempts no signing claimed within
    /// RETENTION_UNREGISTERED_DAYS and rejected deliveries kept over RETENTION_REJECTED_DAYS,
    /// and print the counts. The log goes to stderr.
    Purge {
        /// Only count what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
    /// Inspect and replay the kept rejected deliveries: authentic webhooks that were refused
    /// (400, 409, 422) and kept verbatim so that nothing IDnow sent is lost.
    ///
    /// `list` and `replay` print a header line, then one tab-separated line per row, times in
    /// RFC 3339 UTC, an empty field for a value that is absent, control characters in values
    /// escaped (`\t`, `\n`, `\\`). `show` prints the body alone. The log goes to stderr.
    Rejected {
        #[command(subcommand)]
        command: RejectedCommand,
    },
    /// Print an identification's attempts and the signing they belong to.
    ///
    /// Oldest first, as the listing has them: id, result, reason, identification and arrival
    /// time, and the person and signing id of its signing, empty while none is registered. A
    /// header line, then one tab-separated line per attempt, times in RFC 3339 UTC, control
    /// characters in values escaped (`\t`, `\n`, `\\`). The log goes to stderr.
    Attempts {
        /// The IDnow transaction number (the signing's identification_id).
        #[arg(value_parser = transaction_number)]
        transaction_number: TransactionNumber,
    },
    /// Print the transaction numbers whose attempts no signing has claimed.
    ///
    /// With their count of attempts and first and last arrival, the longest waiting first. A
    /// header line, then one tab-separated line per transaction number, times in RFC 3339 UTC.
    /// Retention deletes such attempts RETENTION_UNREGISTERED_DAYS after their arrival. The log
    /// goes to stderr.
    Unregistered {
        /// Only transaction numbers whose every attempt arrived more than this many days ago.
        #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u16).range(..=36500))]
        older_than: Option<u16>,
    },
}

impl Command {
    /// Whether the command prints what it does on stdout (rows, a kept body, counts,
    /// progress), so that its log goes to stderr and stdout holds only what it prints: every
    /// operator command. `serve` and `migrate` print nothing but their log, which goes to
    /// stdout, where the contract has it.
    pub fn prints_to_stdout(&self) -> bool {
        !matches!(self, Self::Serve | Self::Migrate)
    }
}

/// `idnow-attempts rejected …`.
#[derive(Debug, Clone, Subcommand, PartialEq, Eq)]
pub enum RejectedCommand {
    /// Print the kept rejected deliveries, newest first: id, arrival time, and the status and
    /// error code their sender was answered.
    List {
        /// Only those that arrived at this time or later (RFC 3339, e.g.
        /// 2026-11-24T00:00:00Z).
        #[arg(long, value_name = "RFC 3339", value_parser = rfc3339)]
        since: Option<DateTime<Utc>>,
    },
    /// Write one kept body to stdout, byte for byte as it was received, and nothing else.
    ///
    /// Decrypted with PAYLOAD_ENCRYPTION_KEYS. It holds personal data. An unknown id, or a body
    /// that does not open, exits non-zero with nothing on stdout.
    Show {
        /// The kept delivery's id, as `rejected list` prints it.
        id: Uuid,
    },
    /// Run kept bodies through the same parse and store as a live delivery, and print what
    /// became of each.
    ///
    /// Each is replayed with the webhook-id it was kept with (one refused for its webhook-id
    /// was kept without it). One line per delivery: its id, the outcome (stored,
    /// stored_unregistered or duplicate, with the attempt's id; erased; refused, with the
    /// status and code a sender would be answered, and for webhook_id_reused the attempt that
    /// holds the id; unreadable, with why), the status a sender would be answered; then a
    /// summary of the counts. Idempotent: a body stored before is reported as the duplicate of
    /// that attempt. A replayed body stays kept (retention deletes it after
    /// RETENTION_REJECTED_DAYS), and one still refused is not kept again. Exits non-zero when
    /// any is still refused or unreadable, or the database fails.
    #[command(group(ArgGroup::new("which").required(true).args(["id", "all"])))]
    Replay {
        /// The kept delivery's id, as `rejected list` prints it.
        id: Option<Uuid>,
        /// Every kept delivery, oldest first.
        #[arg(long)]
        all: bool,
    },
}

fn transaction_number(raw: &str) -> Result<TransactionNumber, String> {
    TransactionNumber::parse(raw).map_err(|error| format!("not a transaction number: {error}"))
}

fn rfc3339(raw: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(raw)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|error| format!("not an RFC 3339 time: {error}"))
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
        for variable in &configuration::VARIABLES {
            // Its own line, its description apart from it, however long the name.
            let line = format!("\n  {}  ", variable.name);
            assert!(
                help.contains(&line),
                "{} not on a line of its own: {help}",
                variable.name
            );
        }
        // As read: wrapped lines joined.
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
        for variable in &configuration::VARIABLES {
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

    fn parsed(args: &[&str]) -> Result<Option<Command>, clap::error::ErrorKind> {
        Cli::try_parse_from(std::iter::once("idnow-attempts").chain(args.iter().copied()))
            .map(|cli| cli.command)
            .map_err(|error| error.kind())
    }

    #[test]
    fn operator_commands_parse_what_they_need() {
        use clap::error::ErrorKind;
        let rejected = |command| Ok(Some(Command::Rejected { command }));
        assert_eq!(
            parsed(&["rejected", "list"]),
            rejected(RejectedCommand::List { since: None })
        );
        let since = DateTime::parse_from_rfc3339("2026-11-24T01:00:00Z")
            .expect("a time")
            .with_timezone(&Utc);
        assert_eq!(
            parsed(&["rejected", "list", "--since", "2026-11-24T02:00:00+01:00"]),
            rejected(RejectedCommand::List { since: Some(since) })
        );
        assert_eq!(
            parsed(&["rejected", "list", "--since", "yesterday"]),
            Err(ErrorKind::ValueValidation)
        );
        let id = Uuid::parse_str("0b5c1a8e-6f47-4f63-9a53-2b0f5a3c9d11").expect("a uuid");
        assert_eq!(
            parsed(&["rejected", "show", "0b5c1a8e-6f47-4f63-9a53-2b0f5a3c9d11"]),
            rejected(RejectedCommand::Show { id })
        );
        assert_eq!(
            parsed(&["rejected", "show", "42"]),
            Err(ErrorKind::ValueValidation)
        );
        assert_eq!(
            parsed(&["rejected", "replay", "0b5c1a8e-6f47-4f63-9a53-2b0f5a3c9d11"]),
            rejected(RejectedCommand::Replay {
                id: Some(id),
                all: false
            })
        );
        assert_eq!(
            parsed(&["rejected", "replay", "--all"]),
            rejected(RejectedCommand::Replay {
                id: None,
                all: true
            })
        );
        assert_eq!(
            parsed(&["rejected", "replay"]),
            Err(ErrorKind::MissingRequiredArgument)
        );
        assert_eq!(
            parsed(&[
                "rejected",
                "replay",
                "--all",
                "0b5c1a8e-6f47-4f63-9a53-2b0f5a3c9d11"
            ]),
            Err(ErrorKind::ArgumentConflict)
        );
        assert_eq!(
            parsed(&["attempts", "b2d949eb12ecd6798fa8e2ae66fc4a5acidt"]),
            Ok(Some(Command::Attempts {
                transaction_number: TransactionNumber::parse(
                    "b2d949eb12ecd6798fa8e2ae66fc4a5acidt"
                )
                .expect("a transaction number")
            }))
        );
        assert_eq!(
            parsed(&["attempts", "two words"]),
            Err(ErrorKind::ValueValidation)
        );
        assert_eq!(
            parsed(&["unregistered"]),
            Ok(Some(Command::Unregistered { older_than: None }))
        );
        assert_eq!(
            parsed(&["unregistered", "--older-than", "7"]),
            Ok(Some(Command::Unregistered {
                older_than: Some(7)
            }))
        );
        assert_eq!(
            parsed(&["unregistered", "--older-than", "36501"]),
            Err(ErrorKind::ValueValidation)
        );
    }

    #[test]
    fn every_operator_command_logs_to_stderr_and_serve_and_migrate_to_stdout() {
        let printing = |args: &[&str]| {
            parsed(args)
                .expect("parses")
                .unwrap_or(Command::Serve)
                .prints_to_stdout()
        };
        assert!(!printing(&[]));
        assert!(!printing(&["serve"]));
        assert!(!printing(&["migrate"]));
        assert!(printing(&["reencrypt"]));
        assert!(printing(&["purge", "--dry-run"]));
        assert!(printing(&["rejected", "list"]));
        assert!(printing(&["rejected", "replay", "--all"]));
        assert!(printing(&["attempts", "tn-1"]));
        assert!(printing(&["unregistered"]));
    }
}
