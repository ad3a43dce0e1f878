//! Which keys rows are encrypted under, and re-encryption under the first key.
//!
//! `payload_keys` names every key id any row may be encrypted under: each statement that
//! encrypts a row registers its key in the same transaction, and [`forget_unused`] removes the
//! ids no row uses any more (`reencrypt` runs it, and so does [`UnusedKeys`] when readiness
//! finds an id that is not configured). Readiness reads that small table, not the attempts.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{rows, Database, Table};

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

/// A row to re-encrypt: encrypted under another key, or plain (stored before encryption).
#[derive(Debug)]
pub struct Stale {
    pub id: Uuid,
    /// Attempts only: the identification its payload is bound to.
    pub transaction_number: Option<String>,
    pub key_id: Option<String>,
    pub sealed: Option<Vec<u8>>,
    pub plain: Option<Vec<u8>>,
}

/// Rows of `table` not encrypted under `current`, in id order after `after`: at most `size`
/// rows and, beyond the first, `bytes` of payload.
pub async fn stale(
    conn: &mut PgConnection,
    table: Table,
    current: &str,
    after: Uuid,
    size: i64,
    bytes: i64,
) -> Result<Vec<Stale>, sqlx::Error> {
    // The sizes come from each value's header (octet_length does not decompress or fetch a
    // TOASTed value), so only the rows within the budget are read whole.
    Ok(match table {
        Table::Attempts => sqlx::query!(
            r#"
            SELECT id AS "id!", transaction_number AS "transaction_number!", key_id, sealed,
                   convert_to(payload::text, 'UTF8') AS plain
            FROM (
                SELECT id, transaction_number, key_id, sealed, payload,
                       coalesce(octet_length(sealed), octet_length(payload::text)) AS size,
                       sum(coalesce(octet_length(sealed), octet_length(payload::text)))
                           OVER (ORDER BY id) AS running
                FROM attempts
                WHERE id > $1 AND key_id IS DISTINCT FROM $2
                ORDER BY id
                LIMIT $3
            ) batch
            WHERE running - size < $4
            ORDER BY id
            "#,
            after,
            current,
            size,
            bytes,
        )
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .map(|row| Stale {
            id: row.id,
            transaction_number: Some(row.transaction_number),
            key_id: row.key_id,
            sealed: row.sealed,
            plain: row.plain,
        })
        .collect(),
        Table::RejectedDeliveries => sqlx::query!(
            r#"
            SELECT id AS "id!", key_id, sealed, body AS plain
            FROM (
                SELECT id, key_id, sealed, body,
                       coalesce(octet_length(sealed), octet_length(body)) AS size,
                       sum(coalesce(octet_length(sealed), octet_length(body)))
                           OVER (ORDER BY id) AS running
                FROM rejected_deliveries
                WHERE id > $1 AND key_id IS DISTINCT FROM $2
                ORDER BY id
                LIMIT $3
            ) batch
            WHERE running - size < $4
            ORDER BY id
            "#,
            after,
            current,
            size,
            bytes,
        )
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .map(|row| Stale {
            id: row.id,
            transaction_number: None,
            key_id: row.key_id,
            sealed: row.sealed,
            plain: row.plain,
        })
        .collect(),
    })
}

/// One row encrypted again: its new value, and the key it was read under (`None`: plain).
#[derive(Debug)]
pub struct Resealed {
    pub id: Uuid,
    pub was_key_id: Option<String>,
    pub sealed: Vec<u8>,
}

/// Writes re-encrypted rows under `key_id`, each only if it is still under the key it was
/// read under (another `reencrypt` may have got there first; an erasure or retention may have
/// deleted it). Returns the rows written.
///
/// `key_id` is registered in the same statement, and only when a row was written under it:
/// a `reencrypt` run with keys that open nothing (the wrong `PAYLOAD_ENCRYPTION_KEYS`) must
/// leave no id behind that every replica's readiness would then ask for. Its registration is
/// dated anew: the rows written keep their `received_at`, so that is what tells
/// [`forget_unused`], scanning meanwhile, that the id has rows now.
pub async fn rewrite(
    conn: &mut PgConnection,
    table: Table,
    key_id: &str,
    resealed: &[Resealed],
) -> Result<u64, sqlx::Error> {
    let ids: Vec<Uuid> = resealed.iter().map(|row| row.id).collect();
    let was: Vec<Option<&str>> = resealed
        .iter()
        .map(|row| row.was_key_id.as_deref())
        .collect();
    let sealed: Vec<&[u8]> = resealed.iter().map(|row| row.sealed.as_slice()).collect();
    // One statement per table: compile-time checked SQL names its table.
    let written = match table {
        Table::Attempts => {
            sqlx::query_scalar!(
                r#"
            WITH written AS (
                UPDATE attempts a SET key_id = $1, sealed = u.sealed, payload = NULL
                FROM UNNEST($2::uuid[], $3::text[], $4::bytea[]) AS u(id, was, sealed)
                WHERE a.id = u.id AND a.key_id IS NOT DISTINCT FROM u.was
                RETURNING 1
            ),
            registered AS (
                INSERT INTO payload_keys (key_id) SELECT $1 WHERE EXISTS (SELECT FROM written)
                ON CONFLICT (key_id) DO UPDATE SET registered_at = now()
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
            WITH written AS (
                UPDATE rejected_deliveries r SET key_id = $1, sealed = u.sealed, body = NULL
                FROM UNNEST($2::uuid[], $3::text[], $4::bytea[]) AS u(id, was, sealed)
                WHERE r.id = u.id AND r.key_id IS NOT DISTINCT FROM u.was
                RETURNING 1
            ),
            registered AS (
                INSERT INTO payload_keys (key_id) SELECT $1 WHERE EXISTS (SELECT FROM written)
                ON CONFLICT (key_id) DO UPDATE SET registered_at = now()
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
    Ok(rows(written))
}

/// Rows of both tables not encrypted under `current`: (attempts, rejected deliveries).
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
    Ok((rows(row.attempts), rows(row.rejected)))
}

/// Unregisters every key id but `current` that no row uses; returns them.
///
/// Which ids rows use is read first, without holding anything: a scan of both tables. An id
/// registered or registered anew since, as `reencrypt` does while it moves old rows under it
/// (they keep their `received_at`), is kept: its registration is not the one the scan saw. Rows
/// written meanwhile under an old key (a replica that still encrypts with it) are then found
/// in one transaction that first waits for every statement that encrypts and is in flight
/// (each holds ROW EXCLUSIVE on `payload_keys` until it commits; SHARE ROW EXCLUSIVE waits for
/// them and holds new ones back) and looks only at rows received since the scan began, less
/// `writes_last` (the longest a write's transaction can run: its statement timeout), through
/// the `received_at` indexes. So the registry never loses an id a row uses, and ingest waits
/// only for that short look-up. Interrupted, it changes nothing.
pub async fn forget_unused(
    database: &Database,
    current: &str,
    writes_last: Duration,
) -> Result<Vec<String>, sqlx::Error> {
    let scan = database
        .run(async |conn| {
            sqlx::query!(
                r#"
                SELECT now() AS "started!: DateTime<Utc>",
                       ARRAY(SELECT key_id FROM attempts WHERE key_id IS NOT NULL
                             UNION
                             SELECT key_id FROM rejected_deliveries WHERE key_id IS NOT NULL)
                           AS "used!",
                       ARRAY(SELECT key_id FROM payload_keys ORDER BY key_id)
                           AS "registered!",
                       ARRAY(SELECT registered_at FROM payload_keys ORDER BY key_id)
                           AS "registered_at!: Vec<DateTime<Utc>>"
                "#
            )
            .fetch_one(&mut *conn)
            .await
        })
        .await?;
    let since = scan.started - chrono::Duration::from_std(writes_last).unwrap_or_default();
    database
        .transaction(async |conn| {
            // Queued behind a long statement that holds the table, the lock would hold every
            // write behind it: given up instead, and tried again later.
            sqlx::query!("SET LOCAL lock_timeout = '2s'")
                .execute(&mut *conn)
                .await?;
            sqlx::query!("LOCK TABLE payload_keys IN SHARE ROW EXCLUSIVE MODE")
                .execute(&mut *conn)
                .await?;
            sqlx::query_scalar!(
                r#"
                DELETE FROM payload_keys k
                USING UNNEST($4::text[], $5::timestamptz[]) AS seen(key_id, registered_at)
                WHERE k.key_id <> $1 AND k.key_id <> ALL($2)
                  AND seen.key_id = k.key_id AND seen.registered_at = k.registered_at
                  AND NOT EXISTS (SELECT 1 FROM attempts a
                                  WHERE a.received_at >= $3 AND a.key_id = k.key_id)
                  AND NOT EXISTS (SELECT 1 FROM rejected_deliveries r
                                  WHERE r.received_at >= $3 AND r.key_id = k.key_id)
                RETURNING k.key_id
                "#,
                current,
                &scan.used,
                since,
                &scan.registered,
                &scan.registered_at,
            )
            .fetch_all(&mut *conn)
            .await
        })
        .await
}

/// How long after a look for unused key ids has ended the next may begin.
const LOOK_AGAIN_AFTER: Duration = Duration::from_secs(5 * 60);

/// Unregisters, in the background, the key ids that readiness finds registered and not
/// configured, once no row uses them ([`forget_unused`]).
///
/// Retention and erasure may delete every row under a key, which an operator then drops from
/// `PAYLOAD_ENCRYPTION_KEYS`; the registry still named it, and every replica stayed unready
/// until someone ran `reencrypt`. Readiness answers from the registry as before and asks this
/// to look; once the look has unregistered the id, the next probe is ready. While rows do use
/// a missing key, the replica must not serve, and every probe would ask again: a look reads
/// the key column of both tables, so a process runs one at a time, at most one per
/// `LOOK_AGAIN_AFTER` (five minutes).
#[derive(Debug, Clone)]
pub struct UnusedKeys(Arc<UnusedKeysInner>);

#[derive(Debug)]
struct UnusedKeysInner {
    /// Without a statement timeout: a look reads whole tables.
    database: Database,
    /// Where looks run: the process' main runtime, not the worker whose probe asked.
    runtime: tokio::runtime::Handle,
    current: String,
    writes_last: Duration,
    looks: Mutex<Looks>,
}

#[derive(Debug, Default)]
struct Looks {
    running: bool,
    last_ended: Option<Instant>,
}

impl UnusedKeys {
    /// Looks run on the calling runtime, through `database`, never unregistering `current`;
    /// `writes_last` as for [`forget_unused`].
    pub fn new(database: Database, current: &str, writes_last: Duration) -> Self {
        Self(Arc::new(UnusedKeysInner {
            database,
            runtime: tokio::runtime::Handle::current(),
            current: current.to_owned(),
            writes_last,
            looks: Mutex::default(),
        }))
    }

    /// Starts a look, unless one runs or the last ended less than `LOOK_AGAIN_AFTER` ago.
    pub fn look(&self) {
        {
            let mut looks = self.0.looks.lock().unwrap_or_else(PoisonError::into_inner);
            let recent = looks
                .last_ended
                .is_some_and(|ended| ended.elapsed() < LOOK_AGAIN_AFTER);
            if looks.running || recent {
                return;
            }
            looks.running = true;
        }
        let looking = Looking(Arc::clone(&self.0));
        self.0.runtime.spawn(async move {
            let inner = &looking.0;
            match forget_unused(&inner.database, &inner.current, inner.writes_last).await {
                Ok(forgotten) if !forgotten.is_empty() => tracing::info!(
                    key_ids = %forgotten.join(", "),
                    "no row uses these key ids any more: unregistered"
                ),
                Ok(_) => tracing::debug!("every key id that is not configured is still used"),
                Err(error) => tracing::warn!(%error, "looking for key ids no row uses failed"),
            }
        });
    }
}

/// A look that runs: it ends when this is dropped, however the look ends (done, failed,
/// cancelled with its runtime).
struct Looking(Arc<UnusedKeysInner>);

impl Drop for Looking {
    fn drop(&mut self) {
        let mut looks = self.0.looks.lock().unwrap_or_else(PoisonError::into_inner);
        looks.running = false;
        looks.last_ended = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persistence::MIGRATOR;
    use sqlx::PgPool;

    async fn registered(pool: &PgPool) -> Vec<String> {
        sqlx::query_scalar("SELECT key_id FROM payload_keys ORDER BY key_id")
            .fetch_all(pool)
            .await
            .expect("registered keys")
    }

    /// An id registered anew after the look's scan, as `reencrypt` does while it moves rows
    /// under it (they keep their arrival time, which the look goes by otherwise), is kept;
    /// one that no row uses and whose registration is as the scan saw it, goes. The second
    /// registration is made while the look waits for its lock, held here.
    #[sqlx::test(migrator = "MIGRATOR")]
    async fn forgetting_keeps_an_id_registered_anew_after_the_scan(pool: PgPool) {
        sqlx::raw_sql("INSERT INTO payload_keys (key_id) VALUES ('k-old'), ('k-moved')")
            .execute(&pool)
            .await
            .expect("two registrations");
        let database = Database::new(
            &crate::configuration::DatabaseSettings::for_tests(),
            (*pool.connect_options()).clone(),
        );
        let mut holder = pool.begin().await.expect("a transaction");
        sqlx::query("LOCK TABLE payload_keys IN ROW EXCLUSIVE MODE")
            .execute(&mut *holder)
            .await
            .expect("the table held");
        let look = tokio::spawn(async move {
            forget_unused(&database, "k-current", Duration::from_secs(60)).await
        });
        // The look has scanned once it waits for the lock.
        loop {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_locks WHERE relation = 'payload_keys'::regclass
                 AND NOT granted",
            )
            .fetch_one(&pool)
            .await
            .expect("locks");
            if waiting > 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
        sqlx::query(
            "UPDATE payload_keys SET registered_at = clock_timestamp() WHERE key_id = 'k-moved'",
        )
        .execute(&mut *holder)
        .await
        .expect("registered anew");
        holder.commit().await.expect("committed");
        let forgotten = look.await.expect("the look ran").expect("a look");
        assert_eq!(forgotten, ["k-old"]);
        assert_eq!(registered(&pool).await, ["k-moved"]);
    }

    /// A row is written only if it is still under the key it was read under, and the key id
    /// is registered only with a row written under it: a run that writes nothing (another run
    /// got there first, or it opened nothing) leaves the registry as it was.
    #[sqlx::test(migrator = "MIGRATOR")]
    async fn rewrite_registers_its_key_only_with_a_row_written_under_it(pool: PgPool) {
        // A plain row, as stored before encryption.
        let id: Uuid = sqlx::query_scalar(
            "INSERT INTO attempts (id, transaction_number, result, dedup_key, payload)
             VALUES (gen_random_uuid(), 'tn-rewrite', 'SUCCESS', sha256('rewrite'), '{}')
             RETURNING id",
        )
        .fetch_one(&pool)
        .await
        .expect("a plain row");
        let mut conn = pool.acquire().await.expect("a connection");
        let read_under = |was: Option<&str>| Resealed {
            id,
            was_key_id: was.map(str::to_owned),
            sealed: vec![1, 2, 3],
        };

        let written = rewrite(&mut conn, Table::Attempts, "k9", &[read_under(Some("k0"))])
            .await
            .expect("rewritten");
        assert_eq!(written, 0, "the row is not under k0");
        assert!(
            registered(&pool).await.is_empty(),
            "nothing written, nothing registered"
        );

        let written = rewrite(&mut conn, Table::Attempts, "k9", &[read_under(None)])
            .await
            .expect("rewritten");
        assert_eq!(written, 1);
        assert_eq!(registered(&pool).await, ["k9"]);
        let key: Option<String> = sqlx::query_scalar("SELECT key_id FROM attempts")
            .fetch_one(&pool)
            .await
            .expect("the row");
        assert_eq!(key.as_deref(), Some("k9"));
    }
}
