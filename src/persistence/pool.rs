//! The connection pool: deadpool over sqlx connections, with no round trip of its own on the
//! path of a request.
//!
//! Why not sqlx's own pool: it checks each connection with a round trip when it hands it out
//! and again when it takes it back, three round trips for a one-statement request where one
//! does. Without them the listing served about 60% more requests a second (A/B runs against
//! pgbench, bench/RESULTS.md). Here:
//!
//! - Work runs through [`Database::run`]: a connection whose work completed (`Ok`) goes back
//!   as it is, since sqlx has read every answer it waited for and reads any it left before
//!   the next statement.
//! - One whose work failed or was cancelled (perhaps mid-statement, a request timeout) is
//!   resynchronised in the background: what sqlx buffered is flushed (a queued ROLLBACK,
//!   say) and every answer read up to the server's ReadyForQuery. Only then does anyone get
//!   it again; if that fails, or outlasts `resync_timeout`, it is closed.
//! - A connection idle for longer than [`CHECK_AFTER_IDLE`] is pinged before it is handed
//!   out, so that one the server or a network hop closed meanwhile is replaced rather than
//!   failing a request.
//! - Connections are replaced after [`MAX_LIFETIME`], so that load spreads again after a
//!   failover; idle ones beyond `min_connections` close after `idle_timeout`.
//!
//! The resynchronisation relies on how sqlx 0.8's `PgConnection` buffers and counts the
//! answers it owes (its `ping` flushes and waits for every pending ReadyForQuery): Cargo.toml
//! pins that version, and `tests/api/database.rs` holds it to the behaviour.

use std::ops::{Deref, DerefMut};
use std::time::Duration;

use deadpool::managed::{self, Metrics, Object, PoolError, QueueMode, RecycleError, RecycleResult};
use futures_util::future::join_all;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::Connection as _;

use crate::configuration::DatabaseSettings;

/// Idle longer than this, a connection is pinged before it is handed out.
pub const CHECK_AFTER_IDLE: Duration = Duration::from_secs(5);
/// Older than this, a connection is closed instead of handed out again.
pub const MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// The service's connections to PostgreSQL. Cheap to clone; clones share the pool.
#[derive(Debug, Clone)]
pub struct Database {
    pub(super) pool: managed::Pool<Manager>,
    acquire_timeout: Duration,
}

/// What the pool holds: a connection, and whether its last holder finished with it.
#[derive(Debug)]
pub(super) struct Session {
    conn: PgConnection,
    in_sync: bool,
}

/// How connections are opened and checked; deadpool does the rest.
#[derive(Debug)]
pub(super) struct Manager {
    options: PgConnectOptions,
    resync_timeout: Duration,
}

/// The pool's figures at one moment, for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStatus {
    /// Open connections, in use or idle.
    pub size: usize,
    pub idle: usize,
    pub max: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
}

impl Database {
    /// A pool that connects lazily: nothing is opened before a connection is asked for, or
    /// before the background task opens `min_connections`. Must be called within a Tokio
    /// runtime, which runs that task until the pool is closed or dropped.
    pub fn new(settings: &DatabaseSettings, options: PgConnectOptions) -> Self {
        let manager = Manager {
            options,
            // A statement cut short may run on until its timeout; past that, and the time a
            // request would wait for a connection, the connection is given up.
            resync_timeout: settings.statement_timeout + settings.acquire_timeout,
        };
        let max = usize::try_from(settings.max_connections).unwrap_or(usize::MAX);
        let pool = managed::Pool::builder(manager)
            .max_size(max)
            // The connection used last is handed out first: under light load a few stay
            // warm (no idle ping) and the rest reach the idle timeout and close.
            .queue_mode(QueueMode::Lifo)
            .build()
            .expect("a pool without timeouts or hooks needs no runtime to build");
        tokio::spawn(maintain(
            pool.weak(),
            usize::try_from(settings.min_connections).unwrap_or(usize::MAX),
            settings.idle_timeout,
        ));
        Self {
            pool,
            acquire_timeout: settings.acquire_timeout,
        }
    }

    /// Runs `work` on a pooled connection, waiting at most the acquire timeout for one
    /// ([`sqlx::Error::PoolTimedOut`] beyond). A connection whose work returned `Ok` goes back
    /// as it is; after an `Err`, or if the returned future is dropped before it completes, it
    /// is resynchronised before anyone gets it again. So is one that `work` left inside a
    /// transaction, or with a statement queued and not sent (a transaction dropped without a
    /// commit queues its ROLLBACK): it is never handed back as done. Statements that must
    /// succeed or fail together go through [`Database::transaction`].
    pub async fn run<T, E>(
        &self,
        work: impl AsyncFnOnce(&mut PgConnection) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<sqlx::Error>,
    {
        let mut conn = self.acquire().await?;
        let outcome = work(&mut conn).await;
        // `should_flush`: sqlx's own test for bytes buffered and not sent (doc-hidden; sqlx
        // is pinned).
        let done = !conn.is_in_transaction() && !conn.should_flush();
        if outcome.is_ok() && done {
            conn.release();
        }
        outcome
    }

    /// As [`Database::run`], within one transaction: committed when `work` returns `Ok`,
    /// rolled back when it returns `Err` or is dropped before it completes.
    pub async fn transaction<T, E>(
        &self,
        work: impl AsyncFnOnce(&mut PgConnection) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<sqlx::Error>,
    {
        self.run(async move |conn| {
            let mut transaction = conn.begin().await?;
            let value = work(&mut transaction).await?;
            transaction.commit().await?;
            Ok(value)
        })
        .await
    }

    async fn acquire(&self) -> Result<Connection, sqlx::Error> {
        let mut object = tokio::time::timeout(self.acquire_timeout, self.pool.get())
            .await
            .map_err(|_elapsed| sqlx::Error::PoolTimedOut)?
            .map_err(pool_error)?;
        object.in_sync = false;
        let resync_timeout = self.pool.manager().resync_timeout;
        Ok(Connection {
            object: Some(object),
            resync_timeout,
        })
    }

    pub fn status(&self) -> PoolStatus {
        status_of(&self.pool)
    }

    /// Closes idle connections now and every other one as it comes back; from now on,
    /// [`Database::run`] fails with [`sqlx::Error::PoolClosed`].
    pub fn close(&self) {
        self.pool.close();
    }
}

pub(super) fn status_of(pool: &managed::Pool<Manager>) -> PoolStatus {
    let status = pool.status();
    PoolStatus {
        size: status.size,
        idle: status.available,
        max: status.max_size,
        waiting: status.waiting,
    }
}

fn pool_error(error: PoolError<sqlx::Error>) -> sqlx::Error {
    match error {
        // Only `Manager::create` gives deadpool a backend error: the server refused a new
        // connection (an unknown role or password after a credential rotated on one side, a
        // database renamed or closed to connections for maintenance: SQLSTATE 28xxx, 3D000,
        // 55000, ...). That is an outage, to retry (503), as a server that is away is; the
        // same SQLSTATEs from a statement are not, so they are told apart here, where the
        // connect step is known.
        PoolError::Backend(sqlx::Error::Database(error)) => sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            format!("the database server refused the connection: {error}"),
        )),
        PoolError::Backend(error) => error,
        PoolError::Closed => sqlx::Error::PoolClosed,
        PoolError::Timeout(_) => sqlx::Error::PoolTimedOut,
        // Neither hooks nor deadpool's own timeouts are configured.
        PoolError::NoRuntimeSpecified | PoolError::PostCreateHook(_) => {
            sqlx::Error::Configuration(error.to_string().into())
        }
    }
}

impl managed::Manager for Manager {
    type Type = Session;
    type Error = sqlx::Error;

    async fn create(&self) -> Result<Session, sqlx::Error> {
        let conn = PgConnection::connect_with(&self.options).await?;
        Ok(Session {
            conn,
            in_sync: true,
        })
    }

    async fn recycle(
        &self,
        session: &mut Session,
        metrics: &Metrics,
    ) -> RecycleResult<sqlx::Error> {
        if metrics.age() > MAX_LIFETIME {
            return Err(RecycleError::message("the connection is past its lifetime"));
        }
        // Out of sync only when it was dropped where no runtime could resynchronise it.
        if !session.in_sync || metrics.last_used() > CHECK_AFTER_IDLE {
            resync(&mut session.conn, self.resync_timeout).await?;
            session.in_sync = true;
        }
        Ok(())
    }
}

/// One round trip: flushes what sqlx buffered and reads every answer still owed, up to the
/// server's ReadyForQuery.
async fn resync(conn: &mut PgConnection, within: Duration) -> Result<(), sqlx::Error> {
    tokio::time::timeout(within, conn.ping())
        .await
        .map_err(|_elapsed| {
            sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the connection did not answer a ping in time",
            ))
        })?
}

/// A connection out of the pool, for the length of one [`Database::run`].
#[derive(Debug)]
struct Connection {
    /// Present until released or dropped.
    object: Option<Object<Manager>>,
    resync_timeout: Duration,
}

impl Connection {
    /// Gives the connection back as it is, its work done: the next holder gets it without a
    /// round trip. Dropping it instead (an error, a cancelled request) resynchronises it
    /// first.
    fn release(mut self) {
        if let Some(mut object) = self.object.take() {
            object.in_sync = true;
        }
    }

    fn session(&self) -> &Session {
        self.object
            .as_ref()
            .expect("a connection holds its session until released or dropped")
    }

    fn session_mut(&mut self) -> &mut Session {
        self.object
            .as_mut()
            .expect("a connection holds its session until released or dropped")
    }
}

impl Deref for Connection {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        &self.session().conn
    }
}

impl DerefMut for Connection {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.session_mut().conn
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let Some(mut object) = self.object.take() else {
            return;
        };
        // Without a runtime (only while one shuts down) the pool resynchronises it on the
        // next checkout instead: it goes back marked out of sync.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let within = self.resync_timeout;
        runtime.spawn(async move {
            match resync(&mut object.conn, within).await {
                Ok(()) => object.in_sync = true,
                Err(error) => {
                    tracing::info!(%error, "closing a connection that could not be resynchronised");
                    drop(Object::take(object));
                }
            }
        });
    }
}

/// Every so often: closes connections idle for `idle_timeout` beyond the first `min`, and
/// opens connections up to `min`. Ends with the pool.
async fn maintain(pool: managed::WeakPool<Manager>, min: usize, idle_timeout: Duration) {
    let mut ticks = tokio::time::interval(
        (idle_timeout / 2).clamp(Duration::from_secs(1), Duration::from_secs(30)),
    );
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(pool) = pool.upgrade() else { return };
        if pool.is_closed() {
            return;
        }
        let mut spare = pool.status().size.saturating_sub(min);
        let idle = pool.retain(|_, metrics| {
            let close = spare > 0 && metrics.last_used() > idle_timeout;
            if close {
                spare -= 1;
            }
            !close
        });
        for session in idle.removed {
            // Politely: the server logs no broken connection.
            let _ = session.conn.close().await;
        }
        let status = pool.status();
        let missing = min.saturating_sub(status.size);
        if missing > 0 {
            // Held all at once, so that each missing one is opened; back to the pool at once.
            let wanted = (status.available + missing).min(status.max_size);
            drop(join_all((0..wanted).map(|_| pool.get())).await);
        }
    }
}
