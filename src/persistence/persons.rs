//! Erasure of everything held for a person.

use serde::Serialize;
use sqlx::PgConnection;
use utoipa::ToSchema;

use super::rows;
use crate::domain::PersonId;

/// How long an erasure waits for its lock, for the transaction it runs in.
const LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '2s'";

/// What an erasure removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct Erased {
    pub signings: u64,
    pub attempts: u64,
    pub rejected_deliveries: u64,
}

/// Erases the person's signings, their identifications' attempts and kept deliveries, and
/// remembers the identifications as erased. Run within one transaction
/// ([`super::Database::transaction`]).
///
/// A delivery racing the erasure must end erased or refused, never stored beside it. Writers
/// check `erased_identifications` in the statement that inserts, so the erasure first waits
/// for every insert in flight to commit and holds new ones back until it commits: SHARE ROW
/// EXCLUSIVE conflicts with the ROW EXCLUSIVE lock of an INSERT, not with readers. An insert
/// held back takes its snapshot once it has its lock, after the erasure committed, and so
/// finds the identification erased. The wait is as long as the slowest insert in flight
/// (milliseconds). The lock also waits for a VACUUM or ANALYZE of those tables, which the
/// server cancels after `deadlock_timeout` (1 s) unless it prevents wraparound; past 2 s
/// (`LOCK_TIMEOUT`) the erasure gives up (55P03, transient: 503 with Retry-After) rather
/// than hold ingest back any longer. A person with no signing takes no lock.
pub async fn erase(conn: &mut PgConnection, person_id: &PersonId) -> Result<Erased, sqlx::Error> {
    let signings = sqlx::query_scalar!(
        "SELECT count(*) AS \"signings!\" FROM
         (SELECT 1 FROM signings WHERE person_id = $1 FOR UPDATE) locked",
        person_id.as_str()
    )
    .fetch_one(&mut *conn)
    .await?;
    if signings == 0 {
        return Ok(Erased {
            signings: 0,
            attempts: 0,
            rejected_deliveries: 0,
        });
    }
    sqlx::query(LOCK_TIMEOUT).execute(&mut *conn).await?;
    sqlx::query!("LOCK TABLE attempts, rejected_deliveries IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *conn)
        .await?;
    let row = sqlx::query_file!("src/persistence/sql/erase.sql", person_id.as_str())
        .fetch_one(&mut *conn)
        .await?;
    Ok(Erased {
        signings: rows(row.signings),
        attempts: rows(row.attempts),
        rejected_deliveries: rows(row.rejected_deliveries),
    })
}
