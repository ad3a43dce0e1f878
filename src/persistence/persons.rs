//! Erasure of everything held for a person.

use serde::Serialize;
use sqlx::PgConnection;

use crate::domain::PersonId;

/// What an erasure removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
/// (milliseconds), and the statement timeout bounds it.
pub async fn erase(conn: &mut PgConnection, person_id: &PersonId) -> Result<Erased, sqlx::Error> {
    sqlx::query!("LOCK TABLE attempts, rejected_deliveries IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *conn)
        .await?;
    let row = sqlx::query_file!("src/persistence/sql/erase.sql", person_id.as_str())
        .fetch_one(&mut *conn)
        .await?;
    let count = |n: i64| u64::try_from(n).unwrap_or_default();
    Ok(Erased {
        signings: count(row.signings),
        attempts: count(row.attempts),
        rejected_deliveries: count(row.rejected_deliveries),
    })
}
