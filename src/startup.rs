//! Builds the application from settings: pool, migrations, listener, HTTP server, and the
//! way it stops.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Server, ServerHandle};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{from_fn, ErrorHandlers, Next};
use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::Context as _;
use sqlx::postgres::PgConnectOptions;
use sqlx::PgPool;

use crate::auth::ApiKeys;
use crate::body::{self, BodyBudget, BodyLimits};
use crate::configuration::Settings;
use crate::connection;
use crate::error::{render_foreign_error, ApiError, DbResultExt as _};
use crate::metrics::Metrics;
use crate::persistence::writer::AttemptWriter;
use crate::persistence::{self, Connection, Database, WorkerPools};
use crate::routes;
use crate::telemetry;
use crate::webhook_signature::Verifier;

/// What the request handlers of one HTTP worker share.
#[derive(Debug)]
pub struct AppState {
    /// This worker's own pool (see [`WorkerPools`]).
    pub database: Database,
    pub verifier: Verifier,
    pub api_keys: ApiKeys,
    /// Largest webhook body accepted.
    pub body_limit: usize,
    pub body_read_timeout: Duration,
    /// The process' bound on request body bytes held at once, shared by every worker.
    pub body_budget: BodyBudget,
    pub request_timeout: Duration,
    pub metrics: Metrics,
    pub draining: Draining,
    /// Stores the attempts of this worker's webhooks, in batches under load.
    pub writer: AttemptWriter,
}

impl AppState {
    /// The limits a body of at most `size` bytes is read under.
    pub fn body_limits(&self, size: usize) -> BodyLimits<'_> {
        BodyLimits {
            size,
            timeout: self.body_read_timeout,
            budget: &self.body_budget,
        }
    }

    /// A connection from the pool; 503 once the acquire timeout has passed.
    pub async fn connection(&self) -> Result<Connection, ApiError> {
        self.database
            .acquire()
            .await
            .db_context("acquiring a connection")
    }
}

/// Set once the process has been asked to stop. From then on readiness answers 503, so the
/// load balancer takes this replica out while it drains.
#[derive(Debug, Clone, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    pub fn start(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

pub struct Application {
    port: u16,
    server: Server,
    pools: WorkerPools,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// What starts the graceful stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopOn {
    /// SIGTERM or SIGINT: the process' own server.
    Signals,
    /// Only [`Application::handle`]: servers embedded in another process, such as tests,
    /// leave that process' signals alone.
    Handle,
}

impl Application {
    /// Connects to `DATABASE_URL`, applies migrations if configured to, and binds the
    /// listener. The server stops gracefully on SIGTERM or SIGINT.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let options = settings.database.connect_options();
        Self::start(settings, options, StopOn::Signals).await
    }

    /// As [`Application::build`], on the database `pool` connects to rather than
    /// `DATABASE_URL`'s (tests: a fresh database each), and stopped only through
    /// [`Application::handle`]. The application opens connections of its own.
    pub async fn build_with_pool(settings: Settings, pool: &PgPool) -> anyhow::Result<Self> {
        let options = (*pool.connect_options()).clone();
        Self::start(settings, options, StopOn::Handle).await
    }

    async fn start(
        settings: Settings,
        options: PgConnectOptions,
        stop_on: StopOn,
    ) -> anyhow::Result<Self> {
        if settings.migrate_on_start {
            // On connections of their own: the workers' are opened on the workers' threads.
            let database = persistence::connect(&settings.database, options.clone());
            let migrated = persistence::migrate(&database).await;
            database.close();
            migrated.context("applying database migrations")?;
        }
        let listener = TcpListener::bind((settings.http.host, settings.http.port))
            .with_context(|| format!("binding {}:{}", settings.http.host, settings.http.port))?;
        let port = listener
            .local_addr()
            .context("reading the bound address")?
            .port();
        let pools =
            persistence::connect_workers(&settings.database, options, settings.http.workers.get());
        let server = serve(listener, pools.clone(), settings, stop_on)?;
        Ok(Self {
            port,
            server,
            pools,
        })
    }

    /// The port actually bound: the configured one, or the one the OS chose for port 0.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The application's connections, to close them from outside once it has stopped.
    pub fn pools(&self) -> WorkerPools {
        self.pools.clone()
    }

    /// Stops the server from outside, gracefully with `stop(true)`.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM or SIGINT. Then readiness turns 503 at once; after the shutdown
    /// delay the listener closes, idle connections are closed, requests in flight finish
    /// within the shutdown timeout, and this returns.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

fn serve(
    listener: TcpListener,
    pools: WorkerPools,
    settings: Settings,
    stop_on: StopOn,
) -> anyhow::Result<Server> {
    let http = settings.http;
    let body_budget = BodyBudget::new(http.body_budget);
    let metrics =
        Metrics::new(pools.clone(), body_budget.clone()).context("registering the metrics")?;
    let draining = Draining::default();
    let drain_on_stop = draining.clone();
    let max_header_bytes = http.max_header_bytes;
    let verifier = Verifier::new(settings.webhooks.keys, settings.webhooks.tolerance);
    let api_keys = settings.api_keys;
    let workers = pools.workers();
    let mut server = HttpServer::new(move || {
        // Called on each worker's thread, within its runtime: the pool and the writer made
        // here are driven by the worker that uses them.
        let (database, database_settings) = pools.open();
        let state = web::Data::new(AppState {
            writer: AttemptWriter::start(
                database.clone(),
                database_settings.write_concurrency,
                database_settings.acquire_timeout,
            ),
            database,
            verifier: verifier.clone(),
            api_keys: api_keys.clone(),
            body_limit: http.body_limit,
            body_read_timeout: http.body_read_timeout,
            body_budget: body_budget.clone(),
            request_timeout: http.request_timeout,
            metrics: metrics.clone(),
            draining: draining.clone(),
        });
        App::new()
            // Innermost the header limit, before any route runs; then every error answer
            // gets the contract's body; then a body left unread closes its connection; then
            // a client that takes no answers waits; outermost, the metrics and the request
            // log see the final answer.
            .wrap(from_fn(move |request, next| {
                limit_header_size(max_header_bytes, request, next)
            }))
            .wrap(ErrorHandlers::new().default_handler(render_foreign_error))
            .wrap(from_fn(body::close_on_unread_body))
            .wrap(from_fn(connection::pace))
            .wrap(from_fn(telemetry::observe))
            .app_data(state)
            .configure(routes::configure)
            .default_service(web::to(routes::not_found))
    })
    .on_connect(move |connection, data| {
        connection::remember_socket(connection, data, http.send_timeout)
    })
    .workers(workers)
    // actix counts per worker; the setting is the process' bound on what connections cost.
    .max_connections(http.max_connections / workers)
    .keep_alive(http.keep_alive)
    .client_request_timeout(http.client_request_timeout)
    .shutdown_timeout(http.shutdown_timeout.as_secs());
    server = match stop_on {
        StopOn::Signals => {
            server.shutdown_signal(drain_on_termination(drain_on_stop, http.shutdown_delay))
        }
        StopOn::Handle => server.disable_signals(),
    };
    Ok(server
        .listen(listener)
        .context("starting the HTTP server")?
        .run())
}

/// 431 for requests whose header fields, names and values together, exceed `limit`.
///
/// actix-http itself refuses more than 96 header fields (431, without our body) and heads
/// beyond its read buffer; this is the tighter limit the service chooses, answered in the
/// contract's shape.
async fn limit_header_size(
    limit: usize,
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let size: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if size > limit {
        // from_error keeps the error on the response: it is ours, for the log and the
        // error renderer alike.
        let response = HttpResponse::from_error(ApiError::HeadersTooLarge(limit));
        let (request, _payload) = request.into_parts();
        return Ok(ServiceResponse::new(request, response).map_into_right_body());
    }
    next.call(request)
        .await
        .map(ServiceResponse::map_into_left_body)
}

/// Resolves, and so starts the graceful stop, `delay` after the first SIGTERM or SIGINT.
///
/// Readiness fails from the signal on. The delay lets the load balancer notice before the
/// listener closes; requests keep being served meanwhile.
async fn drain_on_termination(draining: Draining, delay: Duration) {
    termination().await;
    draining.start();
    tracing::info!(
        delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
        "termination requested; readiness now fails, listener closes after the delay"
    );
    tokio::time::sleep(delay).await;
    tracing::info!("closing the listener, finishing requests in flight");
}

async fn termination() {
    use tokio::signal::unix::{signal, SignalKind};

    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut terminate), Ok(mut interrupt)) => {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
        }
        (Err(error), _) | (_, Err(error)) => {
            // Without a handler the default action of SIGTERM ends the process at once;
            // say so instead of serving as if shutdown were graceful.
            tracing::error!(%error, "cannot listen for SIGTERM/SIGINT; shutdown will not be graceful");
            std::future::pending::<()>().await;
        }
    }
}
