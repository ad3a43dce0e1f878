//! Stores attempts in batches: deliveries that arrive while the database is busy share one
//! INSERT statement, and so one commit.
//!
//! Handlers hand their attempt to the writer and wait for its outcome. The writer takes the
//! first waiting attempt at once, adds whatever else is already waiting (up to
//! [`MAX_BATCH`]), and stores them with one statement that commits on its own; only then does
//! any of the handlers answer. Under light load every batch holds one attempt and nothing
//! waits longer than it would alone; under load, batches grow while earlier ones run, so
//! the database does one round trip and one commit for many webhooks.
//!
//! Batches in flight follow the queue, up to `concurrency` (by default the pool's connections
//! less one for reads), each on a pooled connection. One batch always may run. Another starts
//! beside those in flight only once `SHARED_BATCH` (16) attempts wait for it; until then it
//! gathers, or starts when a batch in flight ends. So a queue that one batch at a time drains
//! keeps the large batches that make ingest cheap per row, while a queue that outgrows them
//! (commits slow, senders many) gets more commits in flight, and ingest follows what the
//! database can commit rather than the number of workers.
//!
//! Duplicates keep their meaning: the unique constraints decide, also between two attempts
//! of the same batch (`ON CONFLICT DO NOTHING` skips the second), and a skipped attempt is
//! answered with what holds its place: the same event (a duplicate, its id) or another event
//! with its `webhook-id` (refused). One delivery never fails another: a batch the database
//! refuses is stored again attempt by attempt (see `store_batch`).

use std::sync::Arc;
use std::time::Duration;

use prometheus::IntGauge;
use tokio::sync::{mpsc, oneshot, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::{timeout, Instant};

use super::attempts::{self, NewAttempt, Stored};
use super::failure::{is_conflict, is_unstorable, refusal, Transient};
use super::Database;
use crate::metrics::WriterMetrics;

/// Attempts per statement at most: bounds the statement's size (about 3 KB an attempt).
pub const MAX_BATCH: usize = 64;

/// Attempts that must wait before a batch starts beside others in flight: a quarter of a full
/// batch, so that a second commit is worth its round trip.
const SHARED_BATCH: usize = MAX_BATCH / 4;

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

impl Transient for WriteError {
    fn is_transient(&self) -> bool {
        match self {
            Self::Database(error) => error.is_transient(),
            Self::Busy | Self::Stopped | Self::Vanished => true,
        }
    }
}

impl WriteError {
    /// As `failure::is_unstorable`: no retry could store the attempt.
    pub fn is_unstorable(&self) -> bool {
        matches!(self, Self::Database(error) if is_unstorable(error))
    }

    /// The SQLSTATE and constraint of a database's refusal: what may be logged of it.
    pub fn refusal(&self) -> Option<(String, Option<String>)> {
        match self {
            Self::Database(error) => refusal(error),
            _ => None,
        }
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

/// An attempt waiting for the writer, counted in the queue depth until its batch starts or
/// it is dropped (answered busy, or its worker gone).
struct Queued {
    attempt: NewAttempt,
    reply: Reply,
    _counted: Counted,
}

/// One unit of a gauge, given back however its holder ends.
struct Counted(IntGauge);

impl Counted {
    fn new(gauge: &IntGauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A batch in flight: its slot, counted, and the writer told when it ends, however it ends.
struct InFlight {
    slot: Option<OwnedSemaphorePermit>,
    _counted: Counted,
    ended: Arc<Notify>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        drop(self.slot.take());
        self.ended.notify_waiters();
    }
}

#[derive(Debug, Clone)]
pub struct AttemptWriter {
    queue: mpsc::UnboundedSender<Queued>,
    metrics: WriterMetrics,
}

impl AttemptWriter {
    /// Starts the writer's task on the current runtime. It ends once every handle is dropped.
    ///
    /// An attempt waits at most about `acquire_timeout` for a free slot, as a request waits
    /// for a pooled connection; then it is answered [`WriteError::Busy`] (503). With a slot, its
    /// batch waits at most as long again to grow beside batches in flight before it starts.
    pub fn start(
        database: Database,
        concurrency: usize,
        acquire_timeout: Duration,
        metrics: WriterMetrics,
    ) -> Self {
        let (queue, waiting) = mpsc::unbounded_channel();
        let writer = Writer {
            database,
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            concurrency: concurrency.max(1),
            ended: Arc::new(Notify::new()),
            metrics: metrics.clone(),
        };
        tokio::spawn(writer.run(waiting, acquire_timeout));
        Self { queue, metrics }
    }

    /// Stores the attempt, unless the same event is stored already; returns once committed.
    pub async fn store(&self, attempt: NewAttempt) -> Outcome {
        let (reply, outcome) = oneshot::channel();
        let queued = Queued {
            attempt,
            reply,
            _counted: Counted::new(&self.metrics.queue_depth),
        };
        self.queue.send(queued).map_err(|_| WriteError::Stopped)?;
        outcome.await.map_err(|_| WriteError::Stopped)?
    }
}

/// The writer's task and what its batches share.
struct Writer {
    database: Database,
    /// One permit per batch that may be in flight.
    slots: Arc<Semaphore>,
    concurrency: usize,
    /// Told whenever a batch ends.
    ended: Arc<Notify>,
    metrics: WriterMetrics,
}

type Waiting = mpsc::UnboundedReceiver<Queued>;

impl Writer {
    async fn run(self, mut waiting: Waiting, acquire_timeout: Duration) {
        loop {
            // A free slot first: while every slot is busy, attempts gather in the queue.
            let slot = match timeout(acquire_timeout, self.slots.clone().acquire_owned()).await {
                Ok(Ok(slot)) => slot,
                Ok(Err(_closed)) => return,
                Err(_elapsed) => {
                    // The database holds every slot: those waiting are told to retry, as a
                    // request that cannot get a connection is.
                    while let Ok(queued) = waiting.try_recv() {
                        drop(queued.reply.send(Err(WriteError::Busy)));
                    }
                    continue;
                }
            };
            let Some(first) = waiting.recv().await else {
                return;
            };
            let mut batch = vec![first];
            self.gather(&mut batch, &mut waiting);
            // Beside batches in flight, a small batch waits to grow, or for one of them to
            // end (then it is the one batch a quiet queue would have started anyway); at most
            // for the acquire timeout, then it starts beside them: a batch the database holds
            // up must not hold attempts that have a slot longer than a request waits for a
            // connection (it held them until its statement timed out, a red-team session
            // measured).
            let wait_to_grow = tokio::time::sleep(acquire_timeout);
            tokio::pin!(wait_to_grow);
            loop {
                // Listening before looking: a batch that ends in between still wakes it.
                let ended = self.ended.notified();
                tokio::pin!(ended);
                ended.as_mut().enable();
                if self.in_flight_besides_one() == 0 || batch.len() >= SHARED_BATCH {
                    break;
                }
                tokio::select! {
                    () = &mut ended => {}
                    () = &mut wait_to_grow => break,
                    next = waiting.recv() => match next {
                        Some(next) => {
                            batch.push(next);
                            self.gather(&mut batch, &mut waiting);
                        }
                        None => break,
                    },
                }
            }
            let in_flight = InFlight {
                slot: Some(slot),
                _counted: Counted::new(&self.metrics.batches_in_flight),
                ended: self.ended.clone(),
            };
            // Out of the queue: the gauge counts what waits for a batch to start.
            let (attempts, replies): (Vec<_>, Vec<_>) = batch
                .into_iter()
                .map(|queued| (queued.attempt, queued.reply))
                .unzip();
            let database = self.database.clone();
            let metrics = self.metrics.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let outcomes = store_batch(&database, &attempts).await;
                drop(in_flight);
                metrics
                    .batch_duration
                    .observe(started.elapsed().as_secs_f64());
                // Counts as f64: a batch holds at most 64 attempts.
                #[allow(clippy::cast_precision_loss)]
                metrics.batch_size.observe(attempts.len() as f64);
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    // A handler that gave up (request timeout) no longer listens.
                    drop(reply.send(outcome));
                }
            });
        }
    }

    /// Adds what already waits to `batch`, up to [`MAX_BATCH`].
    fn gather(&self, batch: &mut Vec<Queued>, waiting: &mut Waiting) {
        while batch.len() < MAX_BATCH {
            match waiting.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
    }

    /// Batches in flight, not counting the one this loop holds a slot for.
    fn in_flight_besides_one(&self) -> usize {
        self.concurrency - self.slots.available_permits() - 1
    }
}

/// Stores a batch with one statement; one outcome per attempt, in order.
///
/// A value the database refuses fails the whole statement, and so every attempt of the
/// batch; so does a deadlock with another batch over the same events. Then each is stored
/// again on its own, on the same connection, so that only the offending delivery is refused
/// and the others are stored as if they had come alone. A failure of the connection or the
/// database (lost, restarting, too slow) is every attempt's: they are all told to retry.
async fn store_batch(database: &Database, attempts: &[NewAttempt]) -> Vec<Outcome> {
    let stored = database
        .run(async |conn| match attempts::insert(conn, attempts).await {
            Ok(places) => Ok(outcomes(places)),
            Err(error) if attempts.len() > 1 && !concerns_every_attempt(&error) => {
                let mut outcomes = Vec::with_capacity(attempts.len());
                for attempt in attempts.chunks(1) {
                    match attempts::insert(conn, attempt).await {
                        Ok(alone) => outcomes.extend(self::outcomes(alone)),
                        Err(error) => outcomes.push(Err(error.into())),
                    }
                }
                // An `Err` to `run`, so that the connection whose statements failed is
                // resynchronised before its next use.
                Err(Failed::Partly(outcomes))
            }
            Err(error) => Err(Failed::Wholly(error)),
        })
        .await;
    match stored {
        Ok(outcomes) | Err(Failed::Partly(outcomes)) => outcomes,
        Err(Failed::Wholly(error)) => vec![Err(error.into()); attempts.len()],
    }
}

/// How a batch failed.
enum Failed {
    /// Attempt by attempt: what became of each.
    Partly(Vec<Outcome>),
    /// Every attempt, for this reason.
    Wholly(sqlx::Error),
}

impl From<sqlx::Error> for Failed {
    fn from(error: sqlx::Error) -> Self {
        Self::Wholly(error)
    }
}

/// An outcome per place the insert reported; a place taken by a row deleted since is retried.
fn outcomes(places: Vec<Option<Stored>>) -> Vec<Outcome> {
    places
        .into_iter()
        .map(|place| place.ok_or(WriteError::Vanished))
        .collect()
}

/// Whether a failed statement tells of every attempt in it (the connection or the database
/// failed) rather than of one of them (a value, a conflict with another batch).
fn concerns_every_attempt(error: &sqlx::Error) -> bool {
    error.is_transient() && !is_conflict(error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::at_rest::{PayloadKeys, TEST_KEYS};
    use crate::domain::Delivery;
    use crate::persistence::MIGRATOR;
    use sqlx::PgPool;

    fn attempt(minute: u32, result: &str) -> NewAttempt {
        let body = format!(
            r#"{{"identificationprocess":{{"result":"{result}","transactionnumber":"tn-batch","identificationtime":"2026-10-02T09:{minute:02}:00Z"}}}}"#
        );
        let delivery = Delivery::parse(body.as_bytes()).expect("a valid delivery");
        let keys = PayloadKeys::parse(&[TEST_KEYS]).expect("valid keys");
        NewAttempt::new(&delivery, None, &keys)
    }

    fn database(pool: &PgPool) -> Database {
        let mut settings = crate::configuration::DatabaseSettings::for_tests();
        // Tests hold statements back with locks for as long as they need.
        settings.statement_timeout = Duration::from_secs(60);
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

    /// Polls `condition` until it holds: the writer's gauges move on its own task.
    async fn until(condition: impl Fn() -> bool) {
        timeout(Duration::from_secs(10), async {
            while !condition() {
                tokio::task::yield_now().await;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await
        .expect("the writer got there within 10 s");
    }

    /// With commits held back (a lock), one batch runs; attempts queue behind it, and a second
    /// batch starts only once `SHARED_BATCH` of them wait. Released, every attempt is stored.
    #[sqlx::test(migrator = "MIGRATOR")]
    async fn batches_in_flight_follow_the_queue(pool: PgPool) {
        let metrics = WriterMetrics::detached();
        let writer =
            AttemptWriter::start(database(&pool), 4, Duration::from_secs(30), metrics.clone());
        // A batch that came and went leaves nothing behind that would let the next small
        // batch start beside one in flight.
        let quiet = writer.store(attempt(59, "ABORTED")).await;
        assert!(matches!(quiet, Ok(Stored::New { .. })), "{quiet:?}");
        until(|| metrics.batches_in_flight.get() == 0).await;

        let mut holder = pool.begin().await.expect("a transaction");
        sqlx::query("LOCK TABLE attempts IN ACCESS EXCLUSIVE MODE")
            .execute(&mut *holder)
            .await
            .expect("locked");
        let send = |minute: u32| {
            let writer = writer.clone();
            tokio::spawn(async move { writer.store(attempt(minute, "SUCCESS")).await })
        };
        let mut stores = vec![send(0)];
        until(|| metrics.batches_in_flight.get() == 1 && metrics.queue_depth.get() == 0).await;

        // Fewer than SHARED_BATCH waiting: they gather behind the batch in flight.
        let minutes = u32::try_from(SHARED_BATCH).expect("small");
        stores.extend((1..minutes).map(send));
        until(|| metrics.queue_depth.get() == i64::from(minutes - 1)).await;
        assert_eq!(metrics.batches_in_flight.get(), 1);

        // The SHARED_BATCH-th: a second batch starts beside the first.
        stores.push(send(minutes));
        until(|| metrics.batches_in_flight.get() == 2 && metrics.queue_depth.get() == 0).await;

        holder.rollback().await.expect("released");
        for store in stores {
            let stored = store.await.expect("joined");
            assert!(matches!(stored, Ok(Stored::New { .. })), "{stored:?}");
        }
        until(|| metrics.batches_in_flight.get() == 0).await;
        assert_eq!(metrics.batch_size.get_sample_count(), 3);
        assert_eq!(
            metrics.batch_size.get_sample_sum(),
            f64::from(1 + 1 + minutes),
            "the quiet one, one, then the others together"
        );
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
