//! Retention (CONTRACT.md): attempts no signing has claimed are deleted
//! `RETENTION_UNREGISTERED_DAYS` after arrival, kept rejected deliveries
//! `RETENTION_REJECTED_DAYS` after arrival. `serve` runs a pass every `interval` in the
//! background; `idnow-attempts purge` runs one on demand.
//!
//! A pass deletes in batches of `batch_size` rows, each a short transaction of its own, and
//! rests between batches seven times as long as the batch took: it takes at most an eighth
//! of one connection's time, so that the listing and ingest beside it keep their latency
//! (bench/RESULTS.md, "Retention beside live traffic").

use std::time::{Duration, Instant};

pub use crate::configuration::RetentionSettings;
pub use crate::persistence::retention::Turn;
use crate::persistence::retention::{self, Batch};
use crate::persistence::{Database, Table};

/// How long a pass rests after each batch, in multiples of the batch's own time.
const REST: u32 = 7;

/// What a pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    pub attempts: u64,
    pub rejected_deliveries: u64,
}

impl RetentionSettings {
    fn days(days: u32) -> i32 {
        i32::try_from(days).unwrap_or(i32::MAX)
    }

    /// What a pass would delete now: (attempts, rejected deliveries).
    pub async fn due(&self, database: &Database) -> Result<(u64, u64), sqlx::Error> {
        database
            .run(async |conn| {
                retention::due(
                    conn,
                    Self::days(self.unregistered_days),
                    Self::days(self.rejected_days),
                )
                .await
            })
            .await
    }

    /// Deletes what is past its retention, batch by batch; `deleted` hears of every batch
    /// that deleted rows. With [`Turn::Yield`] it stops early, without error, when another
    /// replica is purging; with [`Turn::Wait`] it waits for each batch's turn.
    pub async fn purge(
        &self,
        database: &Database,
        turn: Turn,
        mut deleted: impl FnMut(Table, u64),
    ) -> Result<Purged, sqlx::Error> {
        let mut purged = Purged::default();
        let size = i64::from(self.batch_size.max(1));
        for table in Table::ALL {
            loop {
                let started = Instant::now();
                let days = match table {
                    Table::Attempts => self.unregistered_days,
                    Table::RejectedDeliveries => self.rejected_days,
                };
                let batch = database
                    .transaction(async |conn| {
                        retention::batch(conn, table, turn, Self::days(days), size).await
                    })
                    .await?;
                let Batch::Done {
                    walked,
                    deleted: rows,
                } = batch
                else {
                    return Ok(purged);
                };
                if rows > 0 {
                    deleted(table, rows);
                }
                match table {
                    Table::Attempts => purged.attempts += rows,
                    Table::RejectedDeliveries => purged.rejected_deliveries += rows,
                }
                if walked < size.unsigned_abs() {
                    break;
                }
                tokio::time::sleep(started.elapsed() * REST).await;
            }
        }
        Ok(purged)
    }

    /// `serve`'s background task: a pass every `interval`, the first one `interval` after
    /// start. A failed pass is logged and tried again at the next.
    pub async fn run(self, database: Database, metrics: crate::metrics::Metrics) {
        let mut passes = tokio::time::interval(self.interval.max(Duration::from_millis(10)));
        passes.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        passes.tick().await;
        loop {
            passes.tick().await;
            let outcome = self
                .purge(&database, Turn::Yield, |table, rows| {
                    metrics.retention_deleted(table, rows);
                })
                .await;
            match outcome {
                Ok(purged) if purged.attempts + purged.rejected_deliveries > 0 => {
                    tracing::info!(
                        attempts = purged.attempts,
                        rejected_deliveries = purged.rejected_deliveries,
                        "retention deleted expired rows"
                    );
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "retention pass failed; retrying at the next pass");
                }
            }
        }
    }
}
