//! Builds the application from settings: pool, migrations, listener, HTTP server.

use std::net::TcpListener;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::ErrorHandlers;
use actix_web::{web, App, HttpServer};
use anyhow::Context as _;
use sqlx::PgPool;
use tracing_actix_web::TracingLogger;

use crate::auth::ApiKeys;
use crate::configuration::Settings;
use crate::error::render_foreign_error;
use crate::persistence;
use crate::routes;
use crate::telemetry::RequestSpan;
use crate::webhook_signature::Verifier;

/// What every request handler shares.
#[derive(Debug)]
pub struct AppState {
    pub pool: PgPool,
    pub verifier: Verifier,
    pub api_keys: ApiKeys,
    /// Largest webhook body accepted.
    pub body_limit: usize,
}

pub struct Application {
    port: u16,
    server: Server,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Connects to `DATABASE_URL`, applies migrations if configured to, and binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let pool = persistence::connect(&settings.database, settings.database.connect_options());
        Self::build_with_pool(settings, pool).await
    }

    /// As [`Application::build`], on a pool the caller owns (tests: a fresh database each).
    pub async fn build_with_pool(settings: Settings, pool: PgPool) -> anyhow::Result<Self> {
        if settings.migrate_on_start {
            persistence::migrate(&pool)
                .await
                .context("applying database migrations")?;
        }
        let listener = TcpListener::bind((settings.http.host, settings.http.port))
            .with_context(|| format!("binding {}:{}", settings.http.host, settings.http.port))?;
        let port = listener
            .local_addr()
            .context("reading the bound address")?
            .port();
        let server = serve(listener, pool, settings)?;
        Ok(Self { port, server })
    }

    /// The port actually bound: the configured one, or the one the OS chose for port 0.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server from outside; what SIGTERM does, for tests.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM or SIGINT, then stops accepting, lets requests in flight finish
    /// within the shutdown timeout, and returns.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

fn serve(listener: TcpListener, pool: PgPool, settings: Settings) -> anyhow::Result<Server> {
    let http = settings.http;
    let state = web::Data::new(AppState {
        pool,
        verifier: Verifier::new(settings.webhooks.keys, settings.webhooks.tolerance),
        api_keys: settings.api_keys,
        body_limit: http.body_limit,
    });
    let mut server = HttpServer::new(move || {
        App::new()
            // Inner: every error answer gets the contract's body. Outer: the request log
            // sees the final answer.
            .wrap(ErrorHandlers::new().default_handler(render_foreign_error))
            .wrap(TracingLogger::<RequestSpan>::new())
            .app_data(state.clone())
            .configure(routes::configure)
            .default_service(web::to(routes::not_found))
    })
    .keep_alive(http.keep_alive)
    .client_request_timeout(http.client_request_timeout)
    .shutdown_timeout(http.shutdown_timeout.as_secs());
    if let Some(workers) = http.workers {
        server = server.workers(workers.get());
    }
    Ok(server
        .listen(listener)
        .context("starting the HTTP server")?
        .run())
}
