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

use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::PgConnectOptions;
use sqlx::ConnectOptions as _;

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
///
/// These sessions run only the requests' statements, every one of them a look-up by key
/// through an index, and keep one plan per statement (`plan_cache_mode =
/// force_generic_plan`). Left to choose, PostgreSQL compares the generic plan's cost with the
/// custom plans' and, for the listing, whose generic plan must assume some unknown `LIMIT` and
/// `OFFSET`, chose custom plans for good once a table's statistics showed a few hundred
/// attempts per identification: the statement was planned anew at every listing, and cost
/// PostgreSQL 126 µs of CPU instead of 45 (bench: 5-attempt listing at 16 connections, after
/// an ingest run and an ANALYZE; the plan itself was the same). The retention and operator
/// commands, whose range scans do gain from custom plans, run on sessions of their own without
/// this setting.
pub fn connect_workers(
    settings: &DatabaseSettings,
    options: PgConnectOptions,
    workers: usize,
) -> WorkerPools {
    WorkerPools::new(
        settings.clone(),
        session_options(settings, options).options([("plan_cache_mode", "force_generic_plan")]),
        workers,
    )
}

/// sqlx logs every statement slower than a second at WARN, with its whole SQL (2 KB for a
/// batch's INSERT) and no request id: while the database is slow, one such line per request,
/// beside the request's own line, which already says what the request cost (`elapsed_ms`),
/// as the writer's metrics say what its statements cost. So they are at DEBUG, as sqlx's lines
/// of every statement are: there when asked for, never by default.
fn session_options(settings: &DatabaseSettings, options: PgConnectOptions) -> PgConnectOptions {
    options
        .application_name(env!("CARGO_PKG_NAME"))
        .options([(
            "statement_timeout",
            settings.statement_timeout.as_millis().to_string(),
        )])
        .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1))
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

#[cfg(test)]
mod tests {
    use sqlx::PgPool;

    use futures_util::TryStreamExt as _;

    use super::*;
    use crate::domain::{PageRequest, PersonId, SigningId};

    /// Statistics where identifications have 250 attempts each make PostgreSQL, left to choose,
    /// plan the listing anew at every execution (see [`connect_workers`]). The requests'
    /// sessions keep one plan all the same.
    #[sqlx::test(migrator = "MIGRATOR")]
    async fn the_requests_sessions_plan_the_listing_once(pool: PgPool) {
        sqlx::raw_sql(
            "INSERT INTO signings (signing_id, person_id, identification_id)
             VALUES ('sig-short', 'per-short', 'tn-short');
             INSERT INTO attempts (id, transaction_number, result, dedup_key, payload)
             SELECT gen_random_uuid(),
                    CASE WHEN g = 0 THEN 'tn-short' ELSE 'tn-long-' || g % 40 END,
                    'ABORTED', sha256(g::text::bytea), '{}'
             FROM generate_series(0, 10000) AS g;
             ANALYZE attempts;",
        )
        .execute(&pool)
        .await
        .expect("a history of 40 long identifications and a short one");
        let settings = DatabaseSettings::for_tests();
        let options = (*pool.connect_options()).clone();
        let (person, signing) = (
            PersonId::parse("per-short").expect("an id"),
            SigningId::parse("sig-short").expect("an id"),
        );

        let plans = async |database: &Database| {
            database
                .run(async |conn| {
                    for _ in 0..8 {
                        let rows: Vec<_> =
                            attempts::history(conn, &person, &signing, PageRequest::default())
                                .try_collect()
                                .await?;
                        assert_eq!(rows.len(), 1);
                        assert!(rows[0].attempt.is_some());
                    }
                    // Unnamed (not persistent), so that it is not listed itself.
                    sqlx::query_as::<_, (i64, i64)>(
                        "SELECT generic_plans, custom_plans FROM pg_prepared_statements
                         WHERE statement LIKE '%LIMIT $3 OFFSET $4%'",
                    )
                    .persistent(false)
                    .fetch_all(&mut *conn)
                    .await
                })
                .await
                .expect("the listing runs")
        };
        let workers = connect_workers(&settings, options.clone(), 1);
        let (requests, _) = workers.open();
        assert_eq!(
            plans(&requests).await,
            [(8, 0)],
            "one generic plan, never re-planned"
        );
        // What the setting changes: a session left to choose re-plans at every listing.
        // (PostgreSQL always makes its first five plans custom; after them it compares.)
        let chooses = connect(&settings, options);
        let [(_, custom)] = plans(&chooses).await[..] else {
            panic!("the listing is prepared once");
        };
        assert!(
            custom > 5,
            "{custom} of 8 custom plans: re-planned after the first five"
        );
        // Closed, so that the test's database can be dropped.
        workers.close();
        chooses.close();
    }
}
