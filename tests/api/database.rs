//! The sessions the service opens: named for operators, bounded by a statement timeout, and
//! never handed out again in a state that would give their next holder someone else's answers.

use std::time::Duration;

use idnow_attempts::configuration::{DatabaseSettings, Settings};
use idnow_attempts::persistence::{self, Database, Transient as _};
use sqlx::PgPool;

use crate::helpers::*;

/// The service's pool on the test database, with its settings adjusted by `adjust`.
fn service_database(pool: &PgPool, adjust: impl FnOnce(&mut DatabaseSettings)) -> Database {
    let mut settings = Settings::from_env_map(&test_environment()).expect("valid settings");
    adjust(&mut settings.database);
    persistence::connect(&settings.database, (*pool.connect_options()).clone())
}

async fn backend_pid(database: &Database) -> Result<i32, sqlx::Error> {
    database
        .run(async |conn| {
            sqlx::query_scalar!(r#"SELECT pg_backend_pid() AS "pid!""#)
                .fetch_one(conn)
                .await
        })
        .await
}

#[sqlx::test(migrations = false)]
async fn sessions_are_named_and_bounded(pool: PgPool) {
    let database = service_database(&pool, |_| {});
    let session = database
        .run(async |conn| {
            sqlx::query!(
                r#"SELECT current_setting('application_name') AS "application_name!",
                          current_setting('statement_timeout') AS "statement_timeout!""#
            )
            .fetch_one(conn)
            .await
        })
        .await
        .expect("the service's pool connects, and the session answers");
    // Closed before the test ends, so that the test database can be dropped at once.
    database.close();
    assert_eq!(session.application_name, "idnow-attempts");
    assert_eq!(session.statement_timeout, "5s");
}

#[sqlx::test(migrations = false)]
async fn a_statement_cut_short_never_answers_the_next_holder(pool: PgPool) {
    let database = service_database(&pool, |s| s.max_connections = 1);
    let first_pid = backend_pid(&database).await.expect("connects");

    // A holder cancelled mid-statement, as a request timeout cancels a handler: the
    // statement is still running on the server when the connection goes back.
    let cut_short = tokio::time::timeout(
        Duration::from_millis(100),
        database.run(async |conn| {
            sqlx::query_scalar!(r#"SELECT 'stale' AS "answer!" FROM pg_sleep(0.5)"#)
                .fetch_one(conn)
                .await
        }),
    )
    .await;
    assert!(cut_short.is_err(), "the statement outlives its holder");

    // The same connection, in sync: its next holder reads its own answer.
    let (answer, pid) = database
        .run(async |conn| {
            let answer = sqlx::query_scalar!(r#"SELECT 'fresh' AS "answer!""#)
                .fetch_one(&mut *conn)
                .await?;
            let pid = sqlx::query_scalar!(r#"SELECT pg_backend_pid() AS "pid!""#)
                .fetch_one(&mut *conn)
                .await?;
            Ok::<_, sqlx::Error>((answer, pid))
        })
        .await
        .expect("the connection comes back and runs the statements");
    database.close();
    assert_eq!(answer, "fresh");
    assert_eq!(pid, first_pid, "resynchronised, not replaced");
}

#[sqlx::test(migrations = false)]
async fn a_connection_the_server_closed_fails_once_and_is_replaced(pool: PgPool) {
    let database = service_database(&pool, |s| s.max_connections = 1);
    let first_pid = backend_pid(&database).await.expect("connects");
    // Waits (up to 5 s) until the backend has exited.
    let terminated: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1, 5000)")
        .bind(first_pid)
        .fetch_one(&pool)
        .await
        .expect("terminates");
    assert!(terminated);

    // Released in sync moments ago, it is handed out without a check: its first statement
    // finds it closed. The request that holds it fails; the pool replaces it.
    let outcome = backend_pid(&database).await;
    let error = outcome.expect_err("the closed connection fails its statement");
    assert!(
        error.is_transient(),
        "retryable (503), not a 500: {error:?}"
    );
    let second_pid = backend_pid(&database)
        .await
        .expect("a new connection serves");
    database.close();
    assert_ne!(second_pid, first_pid);
}

#[sqlx::test(migrations = false)]
async fn idle_connections_close_down_to_min_connections(pool: PgPool) {
    let database = service_database(&pool, |s| {
        s.min_connections = 1;
        s.idle_timeout = Duration::from_secs(1);
    });
    let open = || async {
        sqlx::query_scalar!(
            r#"SELECT count(*) AS "open!" FROM pg_stat_activity
               WHERE datname = current_database() AND application_name = 'idnow-attempts'"#
        )
        .fetch_one(&pool)
        .await
        .expect("pg_stat_activity answers")
    };

    // Opened in the background, with no request asking.
    wait_until(|| async { open().await == 1 }).await;

    // A burst opens more: three units of work that each hold their connection until all
    // three do. Once idle for the timeout, they close down to the minimum.
    let together = tokio::sync::Barrier::new(3);
    let burst = futures_util::future::join_all((0..3).map(|_| {
        database.run(async |_conn| {
            together.wait().await;
            Ok::<_, sqlx::Error>(())
        })
    }))
    .await;
    assert!(burst.iter().all(Result::is_ok), "{burst:?}");
    assert_eq!(open().await, 3);
    wait_until(|| async { open().await == 1 }).await;
    database.close();
}

#[sqlx::test(migrations = false)]
async fn a_transaction_dropped_mid_way_does_not_stay_open_in_the_pool(pool: PgPool) {
    use sqlx::Connection as _;

    let database = service_database(&pool, |s| s.max_connections = 1);
    let pid = backend_pid(&database).await.expect("connects");
    // Units of work that drop a transaction without a commit: sqlx only queues its ROLLBACK.
    // Whether they fail or, carelessly, report success, the connection goes back unfinished.
    let abandoned = database
        .run(async |conn| {
            let mut transaction = conn.begin().await?;
            sqlx::query("SELECT 1").execute(&mut *transaction).await?;
            Err::<(), _>(sqlx::Error::RowNotFound)
        })
        .await;
    assert!(matches!(abandoned, Err(sqlx::Error::RowNotFound)));
    wait_until_idle(&pool, pid).await;

    database
        .run(async |conn| {
            let mut transaction = conn.begin().await?;
            sqlx::query("SELECT 1").execute(&mut *transaction).await?;
            Ok::<_, sqlx::Error>(())
        })
        .await
        .expect("the work itself succeeds");
    wait_until_idle(&pool, pid).await;
    database.close();
}

/// Waits until the backend `pid` is idle. Nobody asks for its connection again, so only the
/// pool can have sent the queued ROLLBACK: left "idle in transaction", the connection would
/// hold its snapshot and locks until its next use.
async fn wait_until_idle(pool: &PgPool, pid: i32) {
    wait_until(|| async {
        let state: Option<String> =
            sqlx::query_scalar("SELECT state FROM pg_stat_activity WHERE pid = $1")
                .bind(pid)
                .fetch_optional(pool)
                .await
                .expect("pg_stat_activity answers")
                .flatten();
        state.as_deref() == Some("idle")
    })
    .await;
}

#[sqlx::test(migrations = false)]
async fn a_transaction_commits_its_work_or_none_of_it(pool: PgPool) {
    let database = service_database(&pool, |s| s.max_connections = 1);
    sqlx::query("CREATE TABLE units (n int)")
        .execute(&pool)
        .await
        .expect("table created");
    let insert = async |conn: &mut sqlx::PgConnection, n: i32| {
        sqlx::query("INSERT INTO units VALUES ($1)")
            .bind(n)
            .execute(conn)
            .await
            .map(drop)
    };
    database
        .transaction(async |conn| {
            insert(&mut *conn, 1).await?;
            insert(&mut *conn, 2).await
        })
        .await
        .expect("committed");
    let failed = database
        .transaction(async |conn| {
            insert(&mut *conn, 3).await?;
            Err::<(), _>(sqlx::Error::RowNotFound)
        })
        .await;
    assert!(matches!(failed, Err(sqlx::Error::RowNotFound)));

    let stored: Vec<i32> = sqlx::query_scalar("SELECT n FROM units ORDER BY n")
        .fetch_all(&pool)
        .await
        .expect("rows");
    assert_eq!(stored, [1, 2], "the failed unit left nothing");
    // The one connection serves again, outside any transaction.
    let pid = backend_pid(&database).await.expect("serves");
    let state: Option<String> =
        sqlx::query_scalar("SELECT state FROM pg_stat_activity WHERE pid = $1")
            .bind(pid)
            .fetch_one(&pool)
            .await
            .expect("pg_stat_activity answers");
    assert_eq!(state.as_deref(), Some("idle"));
    database.close();
}
