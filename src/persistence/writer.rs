//! Stores attempts in batches: deliveries that arrive while the database is busy share one
//! INSERT statement, and so one commit.
//!
//! Handlers hand their attempt to the writer and wait for its outcome. The writer takes the
//! first waiting attempt at once, adds whatever else is already waiting (up to
//! [`MAX_BATCH`]), and stores them with one statement that commits on its own; only then does
//! any of the handlers answer. Under light load every batch holds one attempt and nothing
//! waits longer than it would alone; under load, batches grow while earlier ones run, so
//! the database does one round trip and one commit for many webhooks. At most
//! `concurrency` batches run at once, each on a pooled connection.
//!
//! Duplicates keep their meaning: the unique constraints decide, also between two attempts
//! of the same batch (`ON CONFLICT DO NOTHING` skips the second), and a skipped attempt is
//! answered with what holds its place: the same event (a duplicate, its id) or another event
//! with its `webhook-id` (refused). One delivery never fails another: a batch the database
//! refuses is stored again attempt by attempt (see [`store_batch`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::timeout;
use uuid::Uuid;

use super::attempts::Stored;
use super::Database;
use crate::domain::{AttemptId, Delivery, WebhookId};

/// Attempts per statement at most: bounds the statement's size (about 3 KB an attempt).
pub const MAX_BATCH: usize = 64;

/// An attempt to store, owned, as the writer's task needs it.
#[derive(Debug)]
pub struct NewAttempt {
    pub id: AttemptId,
    pub transaction_number: String,
    pub ident_id: Option<String>,
    pub result: String,
    pub reason: Option<String>,
    pub identified_at: Option<DateTime<Utc>>,
    pub webhook_id: Option<String>,
    pub dedup_key: [u8; 32],
    pub payload: String,
}

impl NewAttempt {
    pub fn new(delivery: &Delivery<'_>, webhook_id: Option<&WebhookId>) -> Self {
        Self {
            id: AttemptId::generate(),
            transaction_number: delivery.transaction_number.as_str().to_owned(),
            ident_id: delivery.ident_id.clone(),
            result: delivery.result.clone(),
            reason: delivery.reason.clone(),
            identified_at: delivery.identified_at,
            webhook_id: webhook_id.map(|id| id.as_str().to_owned()),
            dedup_key: delivery.dedup_key,
            payload: delivery.payload.to_owned(),
        }
    }
}

/// Why an attempt was not stored.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    #[error("storing attempts")]
    Database(#[source] Arc<sqlx::Error>),
    #[error("every batch slot stayed busy for the acquire timeout")]
    Busy,
    #[error("the attempt writer has stopped")]
    Stopped,
    /// The insert found its place taken, and the row that took it was gone by the look-up
    /// (deleted in between): a retry stores the attempt.
    #[error("the attempt that held this one's place was deleted meanwhile")]
    Vanished,
}

impl WriteError {
    /// As [`crate::error::is_transient`]: whether the sender should retry.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Database(error) => crate::error::is_transient(error),
            Self::Busy | Self::Stopped | Self::Vanished => true,
        }
    }

    /// As [`crate::error::is_unstorable`]: no retry could store the attempt.
    pub fn is_unstorable(&self) -> bool {
        matches!(self, Self::Database(error) if crate::error::is_unstorable(error))
    }

    /// The SQLSTATE and constraint of a database's refusal: what may be logged of it. (Its
    /// detail may quote the row, personal data included.)
    pub fn refusal(&self) -> Option<(String, Option<String>)> {
        let Self::Database(error) = self else {
            return None;
        };
        let error = error.as_database_error()?;
        Some((
            error.code()?.into_owned(),
            error.constraint().map(str::to_owned),
        ))
    }
}

impl From<sqlx::Error> for WriteError {
    fn from(error: sqlx::Error) -> Self {
        Self::Database(Arc::new(error))
    }
}

/// What became of one attempt.
pub type Outcome = Result<Stored, WriteError>;

type Reply = oneshot::Sender<Outcome>;

#[derive(Debug, Clone)]
pub struct AttemptWriter {
    queue: mpsc::UnboundedSender<(NewAttempt, Reply)>,
}

impl AttemptWriter {
    /// Starts the writer's task on the current runtime. It ends once every handle is dropped.
    ///
    /// An attempt waits at most about `acquire_timeout` for a free slot, as a request waits
    /// for a pooled connection; then it is answered [`WriteError::Busy`] (503).
    pub fn start(database: Database, concurrency: usize, acquire_timeout: Duration) -> Self {
        let (queue, waiting) = mpsc::unbounded_channel();
        tokio::spawn(run(database, waiting, concurrency.max(1), acquire_timeout));
        Self { queue }
    }

    /// Stores the attempt, unless the same event is stored already; returns once committed.
    pub async fn store(&self, attempt: NewAttempt) -> Outcome {
        let (reply, outcome) = oneshot::channel();
        self.queue
            .send((attempt, reply))
            .map_err(|_| WriteError::Stopped)?;
        outcome.await.map_err(|_| WriteError::Stopped)?
    }
}

async fn run(
    database: Database,
    mut waiting: mpsc::UnboundedReceiver<(NewAttempt, Reply)>,
    concurrency: usize,
    acquire_timeout: Duration,
) {
    let slots = Arc::new(Semaphore::new(concurrency));
    loop {
        // A free slot first: while every slot is busy, attempts gather in the queue.
        let slot = match timeout(acquire_timeout, slots.clone().acquire_owned()).await {
            Ok(Ok(slot)) => slot,
            Ok(Err(_closed)) => return,
            Err(_elapsed) => {
                // The database holds every slot: those waiting are told to retry, as a
                // request that cannot get a connection is.
                while let Ok((_, reply)) = waiting.try_recv() {
                    drop(reply.send(Err(WriteError::Busy)));
                }
                continue;
            }
        };
        let Some(first) = waiting.recv().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match waiting.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let database = database.clone();
        tokio::spawn(async move {
            let (attempts, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
            let outcomes = store_batch(&database, &attempts).await;
            drop(slot);
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                // A handler that gave up (request timeout) no longer listens.
                drop(reply.send(outcome));
            }
        });
    }
}

/// Stores a batch with one statement; one outcome per attempt, in order.
///
/// A value the database refuses fails the whole statement, and so every attempt of the
/// batch; so does a deadlock with another batch over the same events. Then each is stored
/// again on its own, so that only the offending delivery is refused and the others are
/// stored as if they had come alone. A failure of the connection or the database (lost,
/// restarting, too slow) is every attempt's: they are all told to retry.
async fn store_batch(database: &Database, attempts: &[NewAttempt]) -> Vec<Outcome> {
    let shared = |error: WriteError| vec![Err(error); attempts.len()];
    let mut conn = match database.acquire().await {
        Ok(conn) => conn,
        Err(error) => return shared(error.into()),
    };
    match insert(&mut conn, attempts).await {
        Ok(outcomes) => {
            conn.release();
            outcomes
        }
        Err(error) if attempts.len() > 1 && !concerns_every_attempt(&error) => {
            let mut outcomes = Vec::with_capacity(attempts.len());
            for attempt in attempts.chunks(1) {
                match insert(&mut conn, attempt).await {
                    Ok(alone) => outcomes.extend(alone),
                    Err(error) => outcomes.push(Err(error.into())),
                }
            }
            // Dropped without release: the pool resynchronises it before its next use.
            outcomes
        }
        Err(error) => shared(error.into()),
    }
}

/// Whether a failed statement tells of every attempt in it (the connection or the database
/// failed) rather than of one of them (a value, a conflict with another batch).
fn concerns_every_attempt(error: &sqlx::Error) -> bool {
    let conflict = error
        .as_database_error()
        .and_then(|error| error.code())
        .is_some_and(|code| matches!(code.as_ref(), "40001" | "40P01"));
    crate::error::is_transient(error) && !conflict
}

/// One INSERT for all `attempts`, committed on its own, then, for those it skipped, one
/// look-up of the rows that hold their place.
///
/// A skipped attempt is a duplicate when the same event is stored (its `dedup_key`), whatever
/// its `webhook-id`; otherwise its `webhook-id` is already another event's.
async fn insert(
    conn: &mut PgConnection,
    attempts: &[NewAttempt],
) -> Result<Vec<Outcome>, sqlx::Error> {
    let ids: Vec<Uuid> = attempts.iter().map(|a| a.id.as_uuid()).collect();
    let text = |f: fn(&NewAttempt) -> &str| attempts.iter().map(f).collect::<Vec<_>>();
    let optional = |f: fn(&NewAttempt) -> Option<&str>| attempts.iter().map(f).collect::<Vec<_>>();
    let transaction_numbers = text(|a| &a.transaction_number);
    let results = text(|a| &a.result);
    let payloads = text(|a| &a.payload);
    let ident_ids = optional(|a| a.ident_id.as_deref());
    let reasons = optional(|a| a.reason.as_deref());
    let webhook_ids = optional(|a| a.webhook_id.as_deref());
    let identified_at: Vec<Option<DateTime<Utc>>> =
        attempts.iter().map(|a| a.identified_at).collect();
    let dedup_keys: Vec<&[u8]> = attempts.iter().map(|a| &a.dedup_key[..]).collect();

    // UNNEST keeps the order of the arrays, so `seq` follows arrival within a batch.
    let inserted: HashMap<Uuid, bool> = sqlx::query!(
        r#"
        WITH inserted AS (
            INSERT INTO attempts
                (id, transaction_number, ident_id, result, reason, identified_at,
                 webhook_id, dedup_key, payload)
            SELECT id, transaction_number, ident_id, result, reason, identified_at,
                   webhook_id, dedup_key, payload::json
            FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                        $6::timestamptz[], $7::text[], $8::bytea[], $9::text[])
                AS input(id, transaction_number, ident_id, result, reason, identified_at,
                         webhook_id, dedup_key, payload)
            ON CONFLICT DO NOTHING
            RETURNING id, transaction_number
        )
        SELECT i.id AS "id!",
               EXISTS (SELECT 1 FROM signings s
                       WHERE s.identification_id = i.transaction_number) AS "signing_registered!"
        FROM inserted i
        "#,
        &ids,
        &transaction_numbers as &[&str],
        &ident_ids as &[Option<&str>],
        &results as &[&str],
        &reasons as &[Option<&str>],
        &identified_at as &[Option<DateTime<Utc>>],
        &webhook_ids as &[Option<&str>],
        &dedup_keys as &[&[u8]],
        &payloads as &[&str],
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|row| (row.id, row.signing_registered))
    .collect();

    let skipped: Vec<usize> = (0..attempts.len())
        .filter(|n| !inserted.contains_key(&ids[*n]))
        .collect();
    let mut places = HashMap::new();
    if !skipped.is_empty() {
        let positions: Vec<i32> = skipped.iter().map(|n| *n as i32).collect();
        let skipped_webhook_ids: Vec<Option<&str>> =
            skipped.iter().map(|n| webhook_ids[*n]).collect();
        let skipped_dedup_keys: Vec<&[u8]> = skipped.iter().map(|n| dedup_keys[*n]).collect();
        for row in sqlx::query!(
            r#"
            SELECT k.position AS "position!",
                   (SELECT id FROM attempts WHERE dedup_key = k.dedup_key) AS "original?",
                   (SELECT id FROM attempts WHERE webhook_id = k.webhook_id) AS "holder?"
            FROM UNNEST($1::int4[], $2::text[], $3::bytea[]) AS k(position, webhook_id, dedup_key)
            "#,
            &positions,
            &skipped_webhook_ids as &[Option<&str>],
            &skipped_dedup_keys as &[&[u8]],
        )
        .fetch_all(&mut *conn)
        .await?
        {
            let place = match (row.original, row.holder) {
                (Some(original), _) => Ok(Stored::Duplicate {
                    id: original.into(),
                }),
                (None, Some(holder)) => Ok(Stored::WebhookIdReused {
                    holder: holder.into(),
                }),
                (None, None) => Err(WriteError::Vanished),
            };
            places.insert(row.position as usize, place);
        }
    }

    Ok((0..attempts.len())
        .map(|n| match inserted.get(&ids[n]) {
            Some(&signing_registered) => Ok(Stored::New {
                id: attempts[n].id,
                signing_registered,
            }),
            None => places.remove(&n).unwrap_or(Err(WriteError::Vanished)),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persistence::MIGRATOR;
    use sqlx::PgPool;

    fn attempt(minute: u32, result: &str) -> NewAttempt {
        let body = format!(
            r#"{{"identificationprocess":{{"result":"{result}","transactionnumber":"tn-batch","identificationtime":"2026-10-02T09:{minute:02}:00Z"}}}}"#
        );
        let delivery = Delivery::parse(body.as_bytes()).expect("a valid delivery");
        NewAttempt::new(&delivery, None)
    }

    fn database(pool: &PgPool) -> Database {
        let environment = [
            ("DATABASE_URL", "postgres://unused@localhost/unused"),
            ("IDNOW_WEBHOOK_SECRETS", "secret"),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
        let settings = crate::configuration::Settings::from_env_map(&environment)
            .expect("valid settings")
            .database;
        Database::new(&settings, (*pool.connect_options()).clone())
    }

    /// The batch writer's own promise, with a batch made certain (through the server, which
    /// deliveries share a batch depends on timing): a row the database refuses fails alone.
    #[sqlx::test(migrator = "MIGRATOR")]
    async fn a_refused_row_fails_alone_and_its_batch_is_stored(pool: PgPool) {
        // Stands for any refusal the parser does not foresee.
        sqlx::query(
            "ALTER TABLE attempts ADD CONSTRAINT refuses_poison CHECK (result <> 'POISON')",
        )
        .execute(&pool)
        .await
        .expect("constraint added");
        let database = database(&pool);
        let batch = [
            attempt(0, "ABORTED"),
            attempt(1, "POISON"),
            attempt(2, "SUCCESS"),
            attempt(0, "ABORTED"),
        ];
        let outcomes = store_batch(&database, &batch).await;
        assert!(matches!(
            outcomes[0],
            Ok(Stored::New { id, signing_registered: false }) if id == batch[0].id
        ));
        assert!(
            matches!(&outcomes[1], Err(error) if error.is_unstorable()),
            "{:?}",
            outcomes[1]
        );
        assert_eq!(
            outcomes[1].as_ref().err().and_then(WriteError::refusal),
            Some(("23514".to_owned(), Some("refuses_poison".to_owned())))
        );
        assert!(matches!(outcomes[2], Ok(Stored::New { id, .. }) if id == batch[2].id));
        assert!(matches!(outcomes[3], Ok(Stored::Duplicate { id }) if id == batch[0].id));
        let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM attempts")
            .fetch_one(&pool)
            .await
            .expect("count");
        assert_eq!(stored, 2);
        database.close();
    }

    #[sqlx::test(migrator = "MIGRATOR")]
    async fn a_failed_database_fails_every_attempt_of_the_batch_as_transient(pool: PgPool) {
        let database = database(&pool);
        sqlx::query("ALTER TABLE attempts RENAME TO attempts_away")
            .execute(&pool)
            .await
            .expect("renamed");
        // 42P01 (no such table, as during a roll-out) is every attempt's, and retryable.
        let outcomes =
            store_batch(&database, &[attempt(0, "ABORTED"), attempt(1, "SUCCESS")]).await;
        assert!(outcomes
            .iter()
            .all(|outcome| matches!(outcome, Err(error) if error.is_transient())));
        database.close();
    }
}
