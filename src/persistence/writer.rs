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
//! answered with the id of the row that holds its place.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::timeout;
use uuid::Uuid;

use super::attempts::Stored;
use super::Database;
use crate::domain::{AttemptId, Delivery};

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
    pub fn new(delivery: &Delivery<'_>, webhook_id: Option<&str>) -> Self {
        Self {
            id: AttemptId::generate(),
            transaction_number: delivery.transaction_number.as_str().to_owned(),
            ident_id: delivery.ident_id.clone(),
            result: delivery.result.clone(),
            reason: delivery.reason.clone(),
            identified_at: delivery.identified_at,
            webhook_id: webhook_id.map(str::to_owned),
            dedup_key: delivery.dedup_key,
            payload: delivery.payload.to_owned(),
        }
    }
}

/// A database failure shared by every attempt of the batch it ended.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    #[error("storing a batch of attempts")]
    Database(#[source] Arc<sqlx::Error>),
    #[error("every batch slot stayed busy for the acquire timeout")]
    Busy,
    #[error("the attempt writer has stopped")]
    Stopped,
}

impl WriteError {
    /// As [`crate::error::is_transient`]: whether the sender should retry.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Database(error) => crate::error::is_transient(error),
            Self::Busy | Self::Stopped => true,
        }
    }
}

type Reply = oneshot::Sender<Result<Stored, WriteError>>;

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
    pub async fn store(&self, attempt: NewAttempt) -> Result<Stored, WriteError> {
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
            let outcome = store_batch(&database, &attempts)
                .await
                .map_err(|error| WriteError::Database(Arc::new(error)));
            drop(slot);
            match outcome {
                Ok(stored) => {
                    for (reply, stored) in replies.into_iter().zip(stored) {
                        // A handler that gave up (request timeout) no longer listens.
                        drop(reply.send(Ok(stored)));
                    }
                }
                Err(error) => {
                    for reply in replies {
                        drop(reply.send(Err(error.clone())));
                    }
                }
            }
        });
    }
}

/// One INSERT for the whole batch, then, for those it skipped, one look-up of the rows that
/// hold their place. Each statement commits on its own.
async fn store_batch(
    database: &Database,
    attempts: &[NewAttempt],
) -> Result<Vec<Stored>, sqlx::Error> {
    let mut conn = database.acquire().await?;
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
    let mut originals = HashMap::new();
    if !skipped.is_empty() {
        // The same webhook-id names the original first; the same event identity second.
        let positions: Vec<i32> = skipped.iter().map(|n| *n as i32).collect();
        let skipped_webhook_ids: Vec<Option<&str>> =
            skipped.iter().map(|n| webhook_ids[*n]).collect();
        let skipped_dedup_keys: Vec<&[u8]> = skipped.iter().map(|n| dedup_keys[*n]).collect();
        for row in sqlx::query!(
            r#"
            SELECT k.position AS "position!",
                   coalesce((SELECT id FROM attempts WHERE webhook_id = k.webhook_id),
                            (SELECT id FROM attempts WHERE dedup_key = k.dedup_key))
                       AS "id?"
            FROM UNNEST($1::int4[], $2::text[], $3::bytea[]) AS k(position, webhook_id, dedup_key)
            "#,
            &positions,
            &skipped_webhook_ids as &[Option<&str>],
            &skipped_dedup_keys as &[&[u8]],
        )
        .fetch_all(&mut *conn)
        .await?
        {
            let id = row.id.ok_or(sqlx::Error::RowNotFound)?;
            originals.insert(row.position as usize, id);
        }
    }
    conn.release();

    (0..attempts.len())
        .map(|n| match inserted.get(&ids[n]) {
            Some(&signing_registered) => Ok(Stored::New {
                id: attempts[n].id,
                signing_registered,
            }),
            None => originals
                .get(&n)
                .map(|id| Stored::Duplicate { id: (*id).into() })
                .ok_or(sqlx::Error::RowNotFound),
        })
        .collect()
}
