//! The pools of a server's HTTP workers: one each, opened on the worker's own thread.

use std::sync::{Arc, Mutex, PoisonError};

use deadpool::managed::{self, WeakPool};
use sqlx::postgres::PgConnectOptions;

use super::pool::{status_of, Database, Manager, PoolStatus};
use crate::configuration::DatabaseSettings;

/// The pools of a server's HTTP workers, one each, opened by the workers themselves.
///
/// A connection's socket belongs to the runtime that opened it: that runtime's reactor wakes
/// whoever waits for an answer. actix-web runs each worker on a single-threaded runtime of
/// its own, so a connection shared between workers is often driven by one worker for
/// another: a wake-up across threads for each answer, late whenever the owning worker is
/// busy. Owning its connections, a worker talks to PostgreSQL from its own thread: ingest at
/// 16 connections stored about a fifth more webhooks a second, with a quarter less CPU per
/// webhook in the service (A/B runs, same machine).
///
/// Each pool has its share of `max_connections` (see [`DatabaseSettings::share`]); a request
/// waits only for its own worker's connections. This is how the rest of the process sees
/// them: summed for the metrics, closed together. A worker's pool lives as long as the
/// worker (only a weak reference is kept here).
#[derive(Debug, Clone)]
pub struct WorkerPools(Arc<WorkerPoolsInner>);

#[derive(Debug)]
struct WorkerPoolsInner {
    settings: DatabaseSettings,
    options: PgConnectOptions,
    workers: usize,
    opened: Mutex<Opened>,
}

#[derive(Debug, Default)]
struct Opened {
    /// By share: the pool of the worker that holds it, while that worker lives.
    pools: Vec<Option<WeakPool<Manager>>>,
    closed: bool,
}

impl WorkerPools {
    pub fn new(settings: DatabaseSettings, options: PgConnectOptions, workers: usize) -> Self {
        Self(Arc::new(WorkerPoolsInner {
            settings,
            options,
            workers: workers.max(1),
            opened: Mutex::default(),
        }))
    }

    /// How many workers the connections are shared between.
    pub fn workers(&self) -> usize {
        self.0.workers
    }

    /// Opens the calling worker's pool, on its runtime, with the first share no living worker
    /// holds (a worker that actix restarts after a panic takes over its predecessor's), and
    /// returns it with the settings of that share. Once [`WorkerPools::close`] has been
    /// called, the pool comes back closed.
    pub fn open(&self) -> (Database, DatabaseSettings) {
        let inner = &*self.0;
        let mut opened = inner.opened.lock().unwrap_or_else(PoisonError::into_inner);
        let free = opened
            .pools
            .iter()
            .position(|pool| pool.as_ref().and_then(WeakPool::upgrade).is_none());
        let part = free.unwrap_or(opened.pools.len());
        let settings = inner.settings.share(part, inner.workers);
        let database = Database::new(&settings, inner.options.clone());
        if opened.closed {
            database.close();
        }
        let weak = Some(database.pool.weak());
        match opened.pools.get_mut(part) {
            Some(slot) => *slot = weak,
            None => opened.pools.push(weak),
        }
        (database, settings)
    }

    /// Every worker's pool together.
    pub fn status(&self) -> PoolStatus {
        self.each(status_of)
            .into_iter()
            .fold(PoolStatus::default(), |sum, one| PoolStatus {
                size: sum.size + one.size,
                idle: sum.idle + one.idle,
                max: sum.max + one.max,
                waiting: sum.waiting + one.waiting,
            })
    }

    /// Closes every worker's pool, as [`Database::close`] does, and any opened from now on.
    pub fn close(&self) {
        let mut opened = self.0.opened.lock().unwrap_or_else(PoisonError::into_inner);
        opened.closed = true;
        drop(opened);
        self.each(managed::Pool::close);
    }

    fn each<T>(&self, f: impl Fn(&managed::Pool<Manager>) -> T) -> Vec<T> {
        let opened = self.0.opened.lock().unwrap_or_else(PoisonError::into_inner);
        opened
            .pools
            .iter()
            .filter_map(|pool| pool.as_ref()?.upgrade())
            .map(|pool| f(&pool))
            .collect()
    }
}

#[cfg(test)]
impl WorkerPools {
    /// Pools of `workers` workers over a database where nothing listens, for tests that
    /// need no connection.
    pub(crate) fn unreachable(max_connections: u32, workers: usize) -> Self {
        let mut settings = DatabaseSettings::for_tests();
        settings.max_connections = max_connections;
        let options = settings.connect_options();
        Self::new(settings, options, workers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_restarted_worker_takes_over_the_share_of_the_one_it_replaces() {
        let pools = WorkerPools::unreachable(7, 2);
        let (first, first_settings) = pools.open();
        let (second, second_settings) = pools.open();
        assert_eq!(first_settings.max_connections, 4);
        assert_eq!(second_settings.max_connections, 3);
        assert_eq!(pools.status().max, 7);

        // A worker's pool goes with the worker; its replacement gets the same share.
        drop(first);
        assert_eq!(pools.status().max, 3);
        let (replacement, replacement_settings) = pools.open();
        assert_eq!(replacement_settings.max_connections, 4);
        assert_eq!(pools.status().max, 7);
        drop((second, replacement));
    }

    #[tokio::test]
    async fn closing_closes_every_pool_and_those_opened_later() {
        let pools = WorkerPools::unreachable(4, 2);
        let (open_before, _) = pools.open();
        pools.close();
        let (opened_after, _) = pools.open();
        for database in [open_before, opened_after] {
            let work = database.run(async |_conn| Ok::<_, sqlx::Error>(())).await;
            assert!(matches!(work, Err(sqlx::Error::PoolClosed)), "{work:?}");
        }
    }
}
