//! Which keys rows are sealed under, and re-encryption under the first key.
//!
//! `payload_keys` names every key id any row may be sealed under: each statement that seals a
//! row registers its key in the same transaction, and [`forget_unused`] removes the ids no row
//! uses any more. Readiness reads that small table, not the attempts.

use sqlx::PgConnection;
use uuid::Uuid;

/// The key ids in use that are not among `configured`.
pub async fn unconfigured_in_use(
    conn: &mut PgConnection,
    configured: &[&str],
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT key_id FROM payload_keys WHERE key_id <> ALL($1) ORDER BY key_id",
        configured as &[&str],
    )
    .fetch_all(&mut *conn)
    .await
}

/// A row to re-encrypt: sealed under another key, or plain (stored before encryption).
#[derive(Debug)]
pub struct Stale {
    pub id: Uuid,
    /// Attempts only: the identification its payload is bound to.
    pub transaction_number: Option<String>,
    pub key_id: Option<String>,
    pub sealed: Option<Vec<u8>>,
    pub plain: Option<Vec<u8>>,
}

/// Which table a re-encryption walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Attempts,
    RejectedDeliveries,
}

impl Table {
    pub fn name(self) -> &'static str {
        match self {
            Self::Attempts => "attempts",
            Self::RejectedDeliveries => "rejected deliveries",
        }
    }
}

/// Rows of `table` not sealed under `current`, in id order after `after`, at most `size`.
pub async fn stale(
    conn: &mut PgConnection,
    table: Table,
    current: &str,
    after: Uuid,
    size: i64,
) -> Result<Vec<Stale>, sqlx::Error> {
    match table {
        Table::Attempts => {
            let rows = sqlx::query!(
                r#"
                SELECT id, transaction_number, key_id, sealed,
                       convert_to(payload::text, 'UTF8') AS plain
                FROM attempts
                WHERE id > $1 AND key_id IS DISTINCT FROM $2
                ORDER BY id
                LIMIT $3
                "#,
                after,
                current,
                size,
            )
            .fetch_all(&mut *conn)
            .await?;
            Ok(rows
                .into_iter()
                .map(|row| Stale {
                    id: row.id,
                    transaction_number: Some(row.transaction_number),
                    key_id: row.key_id,
                    sealed: row.sealed,
                    plain: row.plain,
                })
                .collect())
        }
        Table::RejectedDeliveries => {
            let rows = sqlx::query!(
                r#"
                SELECT id, key_id, sealed, body AS plain
                FROM rejected_deliveries
                WHERE id > $1 AND key_id IS DISTINCT FROM $2
                ORDER BY id
                LIMIT $3
                "#,
                after,
                current,
                size,
            )
            .fetch_all(&mut *conn)
            .await?;
            Ok(rows
                .into_iter()
                .map(|row| Stale {
                    id: row.id,
                    transaction_number: None,
                    key_id: row.key_id,
                    sealed: row.sealed,
                    plain: row.plain,
                })
                .collect())
        }
    }
}

/// One re-sealed row: its new value, and the key it was read under (`None`: plain).
#[derive(Debug)]
pub struct Resealed {
    pub id: Uuid,
    pub was_key_id: Option<String>,
    pub sealed: Vec<u8>,
}

/// Writes re-sealed rows under `key_id`, each only if it is still as it was read (another
/// re-encryption or an erasure may have got there first). Returns the rows written.
pub async fn rewrite(
    conn: &mut PgConnection,
    table: Table,
    key_id: &str,
    rows: &[Resealed],
) -> Result<u64, sqlx::Error> {
    let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
    let was: Vec<Option<&str>> = rows.iter().map(|row| row.was_key_id.as_deref()).collect();
    let sealed: Vec<&[u8]> = rows.iter().map(|row| row.sealed.as_slice()).collect();
    let written = match table {
        Table::Attempts => {
            sqlx::query_scalar!(
                r#"
            WITH registered AS (
                INSERT INTO payload_keys (key_id) VALUES ($1) ON CONFLICT DO NOTHING
            ),
            written AS (
                UPDATE attempts a SET key_id = $1, sealed = u.sealed, payload = NULL
                FROM UNNEST($2::uuid[], $3::text[], $4::bytea[]) AS u(id, was, sealed)
                WHERE a.id = u.id AND a.key_id IS NOT DISTINCT FROM u.was
                RETURNING 1
            )
            SELECT count(*) AS "written!" FROM written
            "#,
                key_id,
                &ids,
                &was as &[Option<&str>],
                &sealed as &[&[u8]],
            )
            .fetch_one(&mut *conn)
            .await?
        }
        Table::RejectedDeliveries => {
            sqlx::query_scalar!(
                r#"
            WITH registered AS (
                INSERT INTO payload_keys (key_id) VALUES ($1) ON CONFLICT DO NOTHING
            ),
            written AS (
                UPDATE rejected_deliveries r SET key_id = $1, sealed = u.sealed, body = NULL
                FROM UNNEST($2::uuid[], $3::text[], $4::bytea[]) AS u(id, was, sealed)
                WHERE r.id = u.id AND r.key_id IS NOT DISTINCT FROM u.was
                RETURNING 1
            )
            SELECT count(*) AS "written!" FROM written
            "#,
                key_id,
                &ids,
                &was as &[Option<&str>],
                &sealed as &[&[u8]],
            )
            .fetch_one(&mut *conn)
            .await?
        }
    };
    Ok(u64::try_from(written).unwrap_or_default())
}

/// Rows of both tables not sealed under `current`.
pub async fn count_stale(
    conn: &mut PgConnection,
    current: &str,
) -> Result<(u64, u64), sqlx::Error> {
    let row = sqlx::query!(
        r#"
        SELECT (SELECT count(*) FROM attempts WHERE key_id IS DISTINCT FROM $1) AS "attempts!",
               (SELECT count(*) FROM rejected_deliveries
                WHERE key_id IS DISTINCT FROM $1) AS "rejected!"
        "#,
        current,
    )
    .fetch_one(&mut *conn)
    .await?;
    let count = |n: i64| u64::try_from(n).unwrap_or_default();
    Ok((count(row.attempts), count(row.rejected)))
}

/// Unregisters every key but `current`, waits until no statement that may have relied on the
/// old registration is in flight, then registers again the ids that rows still use (written
/// meanwhile by a replica that still seals with an old key). Returns the ids no longer
/// registered.
///
/// The wait: every statement that seals holds ROW EXCLUSIVE on `payload_keys` until it
/// commits; taking SHARE ROW EXCLUSIVE waits for them all. A statement that starts after the
/// unregistration commits registers its key again itself.
pub async fn forget_unused(
    database: &super::Database,
    current: &str,
) -> Result<Vec<String>, sqlx::Error> {
    let unregistered = database
        .run(async |conn| {
            sqlx::query_scalar!(
                "DELETE FROM payload_keys WHERE key_id <> $1 RETURNING key_id",
                current
            )
            .fetch_all(&mut *conn)
            .await
        })
        .await?;
    database
        .transaction(async |conn| {
            sqlx::query!("LOCK TABLE payload_keys IN SHARE ROW EXCLUSIVE MODE")
                .execute(&mut *conn)
                .await
        })
        .await?;
    let registered = database
        .run(async |conn| {
            sqlx::query!(
                r#"
                WITH used AS (
                    SELECT DISTINCT key_id FROM attempts WHERE key_id <> $1
                    UNION
                    SELECT DISTINCT key_id FROM rejected_deliveries WHERE key_id <> $1
                )
                INSERT INTO payload_keys (key_id) SELECT key_id FROM used
                ON CONFLICT DO NOTHING
                "#,
                current
            )
            .execute(&mut *conn)
            .await?;
            sqlx::query_scalar!("SELECT key_id FROM payload_keys")
                .fetch_all(&mut *conn)
                .await
        })
        .await?;
    Ok(unregistered
        .into_iter()
        .filter(|id| !registered.contains(id))
        .collect())
}
