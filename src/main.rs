use std::process::ExitCode;

use anyhow::Context as _;
use idnow_attempts::cli::{Cli, Command};
use idnow_attempts::configuration::Settings;
use idnow_attempts::startup::Application;
use idnow_attempts::{operations, persistence, telemetry};

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
    if let Err(error) = telemetry::init(&settings.log_filter) {
        eprintln!("idnow-attempts: {error:#}");
        return ExitCode::from(2);
    }
    for warning in &settings.webhooks.warnings {
        tracing::warn!("{warning}");
    }
    match run(cli.command.unwrap_or(Command::Serve), settings).await {
        Ok(()) => ExitCode::SUCCESS,
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
        Command::Migrate => {
            let database =
                persistence::connect(&settings.database, settings.database.connect_options());
            persistence::migrate(&database)
                .await
                .context("applying database migrations")?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Reencrypt => {
            let database = operator_database(&settings);
            let done =
                operations::reencrypt(&database, &settings.payload_keys, &mut std::io::stdout())
                    .await;
            database.close();
            done
        }
        Command::Purge { dry_run } => {
            let database = operator_database(&settings);
            let done = operations::purge(
                &database,
                &settings.retention,
                dry_run,
                &mut std::io::stdout(),
            )
            .await;
            database.close();
            done
        }
    }
}

/// The connection of an operator command: one is enough, they run a statement at a time.
fn operator_database(settings: &Settings) -> persistence::Database {
    let mut database = settings.database.clone();
    (database.max_connections, database.min_connections) = (1, 0);
    persistence::connect(&database, settings.database.connect_options())
}
