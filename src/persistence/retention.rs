//! Retention: attempts no signing has claimed, and kept rejected deliveries, deleted a set
//! number of days after arrival, in small batches.
//!
//! Each batch is a transaction of its own that first takes a transaction-level advisory lock,
//! so that replicas purge one at a time and a batch cut short (a crash, a cancelled task)
//! leaves no lock behind. `serve`'s passes yield to one in progress; an operator's waits its
//! turn. Attempts are walked in arrival order from a mark kept in
//! `retention_marks`, so claimed attempts are passed over once, not at every pass.

use sqlx::PgConnection;

use super::{rows, Table};

/// The advisory lock of retention, the same for every replica: "idnow-at" in ASCII.
const LOCK: i64 = 0x6964_6e6f_772d_6174;

/// Whether a batch waits for the retention lock or gives up at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    Wait,
    Yield,
}

/// What one batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    /// Another replica holds the lock: it is purging.
    Busy,
    /// Rows looked at and rows deleted; fewer looked at than the batch size means done.
    Done { walked: u64, deleted: u64 },
}

async fn lock(conn: &mut PgConnection, turn: Turn) -> Result<bool, sqlx::Error> {
    match turn {
        Turn::Yield => {
            sqlx::query_scalar!(r#"SELECT pg_try_advisory_xact_lock($1) AS "held!""#, LOCK)
                .fetch_one(&mut *conn)
                .await
        }
        Turn::Wait => {
            sqlx::query!("SELECT pg_advisory_xact_lock($1)", LOCK)
                .execute(&mut *conn)
                .await?;
            Ok(true)
        }
    }
}

/// One batch over `table`: attempts unclaimed `days` after arrival, or rejected deliveries
/// kept `days` after arrival. Run within a transaction: its lock is the transaction's.
pub async fn batch(
    conn: &mut PgConnection,
    table: Table,
    turn: Turn,
    days: i32,
    size: i64,
) -> Result<Batch, sqlx::Error> {
    if !lock(conn, turn).await? {
        return Ok(Batch::Busy);
    }
    match table {
        Table::Attempts => {
            let row = sqlx::query_file!("src/persistence/sql/purge_attempts.sql", days, size)
                .fetch_one(&mut *conn)
                .await?;
            Ok(Batch::Done {
                walked: rows(row.walked),
                deleted: rows(row.deleted),
            })
        }
        Table::RejectedDeliveries => {
            let deleted = sqlx::query_scalar!(
                r#"
                WITH deleted AS (
                    DELETE FROM rejected_deliveries WHERE id IN (
                        SELECT id FROM rejected_deliveries
                        WHERE received_at < now() - make_interval(days => $1)
                        ORDER BY received_at
                        LIMIT $2
                    )
                    RETURNING 1
                )
                SELECT count(*) AS "deleted!" FROM deleted
                "#,
                days,
                size,
            )
            .fetch_one(&mut *conn)
            .await?;
            // Nothing is passed over: every row walked is deleted.
            Ok(Batch::Done {
                walked: rows(deleted),
                deleted: rows(deleted),
            })
        }
    }
}

/// What a purge would delete now: (attempts, rejected deliveries).
pub async fn due(
    conn: &mut PgConnection,
    unregistered_days: i32,
    rejected_days: i32,
) -> Result<(u64, u64), sqlx::Error> {
    let row = sqlx::query!(
        r#"
        SELECT
            (SELECT count(*) FROM attempts a
             WHERE (a.received_at, a.seq) > (
                       (SELECT received_at FROM retention_marks WHERE name = 'attempts'),
                       (SELECT seq FROM retention_marks WHERE name = 'attempts'))
               AND a.received_at < now() - make_interval(days => $1)
               AND NOT EXISTS (SELECT 1 FROM signings s
                               WHERE s.identification_id = a.transaction_number))
                AS "attempts!",
            (SELECT count(*) FROM rejected_deliveries
             WHERE received_at < now() - make_interval(days => $2)) AS "rejected!"
        "#,
        unregistered_days,
        rejected_days,
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok((rows(row.attempts), rows(row.rejected)))
}
