use std::process::ExitCode;

use anyhow::Context as _;
use idnow_attempts::cli::{Cli, Command};
use idnow_attempts::configuration::Settings;
use idnow_attempts::startup::Application;
use idnow_attempts::{metrics, operations, telemetry};

/// mimalloc rather than glibc's malloc: a request allocates and frees many small buffers
/// across two worker threads, where glibc spent 5 % of the service's CPU (bench/RESULTS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[actix_web::main]
async fn main() -> ExitCode {
    let cli = Cli::from_args();
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(error) => {
            // Logging is configured by these very settings, so this goes to stderr as text.
            eprintln!("idnow-attempts: configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    let command = cli.command.unwrap_or(Command::Serve);
    // A command that prints what it does (rows, a kept body, counts) logs to stderr, so that
    // nothing else lands in what it prints.
    let logging = if command.prints_to_stdout() {
        telemetry::init_with_writer(&settings.log_filter, std::io::stderr)
    } else {
        telemetry::init(&settings.log_filter)
    };
    if let Err(error) = logging {
        eprintln!("idnow-attempts: {error:#}");
        return ExitCode::from(2);
    }
    // Which release runs, first: Cargo.toml's version, and the revision it was built from.
    tracing::info!(
        version = metrics::VERSION,
        revision = metrics::REVISION,
        "idnow-attempts starting"
    );
    for warning in &settings.webhooks.warnings {
        tracing::warn!("{warning}");
    }
    match run(command, settings).await {
        Ok(()) => ExitCode::SUCCESS,
        // `… | head`: stopped by its reader. Ends as a process that SIGPIPE ends would
        // (128 + 13), which shells know, without an ERROR line: the command did not fail,
        // though it may not have finished (`set -o pipefail` says so, and so does this line).
        Err(error) if operations::is_reader_gone(&error) => {
            tracing::info!("stopped: the reader of standard output went away");
            ExitCode::from(141)
        }
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "exiting on error");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            let application = Application::build(settings).await?;
            tracing::info!(
                port = application.port(),
                address = %application.address(),
                "listening"
            );
            application
                .run_until_stopped()
                .await
                .context("serving HTTP")
        }
        command => {
            let mut out = operations::Stdout(std::io::stdout());
            operations::run(command, &settings, &mut out).await
        }
    }
}
