//! PostgreSQL: the pool, the embedded migrations, and one module per table.
//!
//! Helpers take a `&mut PgConnection` (or a transaction) and run plain statements; callers
//! decide what is one unit of work and run it with [`Database::run`].

pub mod attempts;
mod failure;
pub mod keys;
pub mod persons;
pub mod pool;
pub mod rejected;
pub mod retention;
pub mod signings;
mod worker_pools;
pub mod writer;

use sqlx::migrate::Migrator;
use sqlx::postgres::PgConnectOptions;

pub use self::failure::Transient;
pub use self::pool::Database;
pub use self::worker_pools::WorkerPools;

use crate::at_rest::{KeyId, PayloadKeys};
use crate::configuration::DatabaseSettings;

/// The tables that hold identity data: what `reencrypt` and retention go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Attempts,
    RejectedDeliveries,
}

impl Table {
    pub const ALL: [Self; 2] = [Self::Attempts, Self::RejectedDeliveries];

    /// As people read it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Attempts => "attempts",
            Self::RejectedDeliveries => "rejected deliveries",
        }
    }

    /// As SQL and metric labels name it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Attempts => "attempts",
            Self::RejectedDeliveries => "rejected_deliveries",
        }
    }
}

/// A row count as PostgreSQL returns it (`bigint`), as the count it is.
fn rows(count: i64) -> u64 {
    u64::try_from(count).unwrap_or_default()
}

/// The migrations of `migrations/`, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Every session is named (visible in `pg_stat_activity`) and bounded by a server-side
/// statement timeout. The pool connects lazily: the process starts, and reports itself not
/// ready, while the database is away.
pub fn connect(settings: &DatabaseSettings, options: PgConnectOptions) -> Database {
    Database::new(settings, session_options(settings, options))
}

/// As [`connect`], for a server of `workers` HTTP workers: each opens its share of the
/// connections with [`WorkerPools::open`].
pub fn connect_workers(
    settings: &DatabaseSettings,
    options: PgConnectOptions,
    workers: usize,
) -> WorkerPools {
    WorkerPools::new(
        settings.clone(),
        session_options(settings, options),
        workers,
    )
}

fn session_options(settings: &DatabaseSettings, options: PgConnectOptions) -> PgConnectOptions {
    options.application_name(env!("CARGO_PKG_NAME")).options([(
        "statement_timeout",
        settings.statement_timeout.as_millis().to_string(),
    )])
}

/// Applies pending migrations. sqlx holds a PostgreSQL advisory lock meanwhile, so replicas
/// and migration jobs that start together apply each migration once.
pub async fn migrate(database: &Database) -> Result<(), sqlx::migrate::MigrateError> {
    database.run(async |conn| MIGRATOR.run(conn).await).await
}

/// Whether the service can serve: what readiness reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    MigrationsPending,
    /// Rows are sealed under these key ids, which `PAYLOAD_ENCRYPTION_KEYS` does not list:
    /// serving would make their attempts look missing.
    KeysMissing(Vec<String>),
}

/// Ready when the database answers, every embedded migration has been applied, and every key
/// rows are sealed under is configured. Two small look-ups, whatever the size of the tables.
pub async fn readiness(database: &Database, keys: &PayloadKeys) -> Result<Readiness, sqlx::Error> {
    let expected: Vec<i64> = MIGRATOR
        .iter()
        .filter(|migration| migration.migration_type.is_up_migration())
        .map(|migration| migration.version)
        .collect();
    let configured: Vec<&str> = keys.ids().map(KeyId::as_str).collect();
    database
        .run(async |conn| {
            let applied = sqlx::query_scalar!(
                r#"SELECT count(*) AS "applied!" FROM _sqlx_migrations
                   WHERE success AND version = ANY($1)"#,
                &expected
            )
            .fetch_one(&mut *conn)
            .await?;
            if !usize::try_from(applied).is_ok_and(|applied| applied == expected.len()) {
                return Ok(Readiness::MigrationsPending);
            }
            let missing = keys::unconfigured_in_use(conn, &configured).await?;
            Ok(if missing.is_empty() {
                Readiness::Ready
            } else {
                Readiness::KeysMissing(missing)
            })
        })
        .await
}
