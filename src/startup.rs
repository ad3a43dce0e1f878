//! Builds the application from settings: pool, migrations, listener, HTTP server, retention
//! in the background, and the way they stop.

use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::{from_fn, ErrorHandlers};
use actix_web::web::Bytes;
use actix_web::{web, App, HttpServer};
use anyhow::Context as _;
use sqlx::postgres::PgConnectOptions;

use crate::configuration::Settings;
use crate::edge::client_address::TrustedProxies;
use crate::edge::linger::Lingering;
use crate::edge::listener::{self, Stack};
use crate::edge::{self, body, connection, limits, EdgeLimits};
use crate::metrics::Metrics;
use crate::persistence::keys::UnusedKeys;
use crate::persistence::writer::AttemptWriter;
use crate::persistence::{self, Database, WorkerPools};
use crate::routes;
use crate::state::{AppState, Draining};
use crate::telemetry;

pub struct Application {
    address: SocketAddr,
    server: Server,
    pools: WorkerPools,
    retention: Background,
    /// Closed once the server has stopped (its workers' pools close with them).
    key_looks: Database,
}

/// A task that lives as long as its owner: aborted when dropped.
#[derive(Debug)]
struct Background(tokio::task::JoinHandle<()>);

impl Drop for Background {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// What starts the graceful stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shutdown {
    /// SIGTERM or SIGINT: the process' own server.
    OnSignals,
    /// Only [`Application::handle`]: a server embedded in another process leaves that
    /// process' signals alone.
    ByHandle,
}

impl Application {
    /// Connects to `DATABASE_URL`, applies migrations if configured to, and binds the
    /// listener. The server stops gracefully on SIGTERM or SIGINT.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let options = settings.database.connect_options();
        Self::start(settings, options, Shutdown::OnSignals).await
    }

    /// As [`Application::build`], for a server embedded in another process (the API tests
    /// run it so, on a fresh database each): it connects with `options` rather than
    /// `DATABASE_URL`, and stops only through [`Application::handle`].
    pub async fn embedded(settings: Settings, options: PgConnectOptions) -> anyhow::Result<Self> {
        Self::start(settings, options, Shutdown::ByHandle).await
    }

    async fn start(
        settings: Settings,
        options: PgConnectOptions,
        shutdown: Shutdown,
    ) -> anyhow::Result<Self> {
        if settings.migrate_on_start {
            // On connections of their own: the workers' are opened on the workers' threads.
            let database = persistence::connect(&settings.database.maintenance(), options.clone());
            let migrated = persistence::migrate(&database).await;
            database.close();
            migrated.context("applying database migrations")?;
        }
        let (host, port) = (settings.http.host, settings.http.port);
        let (listener, stack) = listener::listen(host, port)
            .with_context(|| format!("binding {}", SocketAddr::new(host, port)))?;
        let address = listener.local_addr().context("reading the bound address")?;
        if stack == Stack::Ipv4Fallback {
            tracing::warn!(
                %address,
                "IPv6 is disabled on this host: listening on all IPv4 interfaces only"
            );
        }
        // Retention deletes one batch at a time, each within the statement timeout.
        let retention =
            persistence::connect(&settings.database.single_connection(), options.clone());
        // Looks for key ids no row uses any more read whole tables: no statement timeout.
        let key_looks = persistence::connect(&settings.database.maintenance(), options.clone());
        let pools =
            persistence::connect_workers(&settings.database, options, settings.http.workers.get());
        let databases = BackgroundDatabases {
            retention,
            key_looks: key_looks.clone(),
        };
        let (server, retention) = serve(listener, pools.clone(), databases, settings, shutdown)?;
        Ok(Self {
            address,
            server,
            pools,
            retention,
            key_looks,
        })
    }

    /// The port actually bound: the configured one, or the one the OS chose for port 0.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// The address actually bound: `[::]` on all interfaces, `0.0.0.0` where the host has no
    /// IPv6, or the configured one.
    pub fn address(&self) -> SocketAddr {
        self.address
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
        let Self {
            server,
            retention,
            key_looks,
            ..
        } = self;
        let served = server.await;
        // A pass cut short leaves nothing half done: each batch is its own transaction; so
        // does a look for unused keys, whose last step is one.
        drop(retention);
        key_looks.close();
        served
    }
}

/// The connections of the server's work beside the requests.
struct BackgroundDatabases {
    /// Deletes one batch at a time, each within the statement timeout.
    retention: Database,
    /// For [`UnusedKeys`], without a statement timeout.
    key_looks: Database,
}

fn serve(
    listener: TcpListener,
    pools: WorkerPools,
    databases: BackgroundDatabases,
    settings: Settings,
    shutdown: Shutdown,
) -> anyhow::Result<(Server, Background)> {
    let http = settings.http;
    let limits = EdgeLimits::new(&http);
    let webhook_auth = settings.webhooks.auth;
    let trusted_proxies = TrustedProxies::new(settings.webhooks.trusted_proxies);
    let methods: Vec<_> = webhook_auth.methods().collect();
    let openapi = Bytes::from(routes::openapi::served_json(&webhook_auth));
    let metrics = Metrics::new(
        pools.clone(),
        limits.body_budget.clone(),
        limits.page_budget.clone(),
        &methods,
    )
    .context("registering the metrics")?;
    let retention = Background(tokio::spawn(
        settings.retention.run(databases.retention, metrics.clone()),
    ));
    let payload_keys = settings.payload_keys;
    let unused_keys = UnusedKeys::new(
        databases.key_looks,
        payload_keys.current().as_str(),
        settings.database.writes_last(),
    );
    let draining = Draining::default();
    let drain_on_stop = draining.clone();
    let api_keys = web::Data::new(settings.api_keys);
    let lingering = Lingering::default();
    let workers = pools.workers();
    // The answers actix-http gives before any route (400, 414, 431, 408) carry the contract's
    // error body too. Process-wide; every server of the process sets the same.
    actix_http::h1::set_own_answer_body(edge::refusals::own_answer_body);
    // No route upgrades a connection or tunnels one: a request asking for either is served
    // as any other.
    actix_http::h1::ignore_upgrades();
    let mut server = HttpServer::new(move || {
        // Called on each worker's thread, within its runtime: the pool and the writer made
        // here are driven by the worker that uses them.
        telemetry::batch_log_lines_on_this_thread();
        let (database, database_settings) = pools.open();
        let state = web::Data::new(AppState {
            writer: AttemptWriter::start(
                database.clone(),
                database_settings.write_concurrency,
                database_settings.acquire_timeout,
                metrics.writer.clone(),
            ),
            database,
            webhook_auth: webhook_auth.clone(),
            payload_keys: payload_keys.clone(),
            unused_keys: unused_keys.clone(),
            trusted_proxies: trusted_proxies.clone(),
            limits: limits.clone(),
            metrics: metrics.clone(),
            draining: draining.clone(),
            openapi: openapi.clone(),
        });
        let observed = Rc::new(metrics.clone());
        let request_timeout = http.request_timeout;
        App::new()
            // Innermost the header limit and the Host check, before any route runs; then
            // every error answer gets the contract's body; then a body left unread closes its
            // connection; then a client that takes no answers waits; outermost, the metrics
            // and the request log see the final answer.
            .wrap(from_fn(move |request, next| {
                limits::check_head(http.max_header_bytes, request, next)
            }))
            .wrap(ErrorHandlers::new().default_handler(edge::contract_shape))
            .wrap(from_fn(body::close_on_unread_body))
            .wrap(from_fn(connection::pace))
            .wrap(from_fn(move |request, next| {
                telemetry::observe(Rc::clone(&observed), request, next)
            }))
            .app_data(state)
            .app_data(api_keys.clone())
            .configure(|routes| routes::configure(routes, request_timeout))
            .default_service(web::to(routes::not_found))
    })
    .on_connect(move |connection, data| {
        connection::remember_socket(connection, data, http.send_timeout, &lingering)
    })
    .workers(workers)
    // actix counts per worker; the setting is the process' bound on what connections cost.
    .max_connections(http.max_connections / workers)
    .keep_alive(http.keep_alive)
    .client_request_timeout(http.client_request_timeout)
    .shutdown_timeout(http.shutdown_timeout.as_secs());
    server = match shutdown {
        Shutdown::OnSignals => {
            server.shutdown_signal(drain_on_termination(drain_on_stop, http.shutdown_delay))
        }
        Shutdown::ByHandle => server.disable_signals(),
    };
    let server = server
        .listen(listener)
        .context("starting the HTTP server")?
        .run();
    Ok((server, retention))
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
