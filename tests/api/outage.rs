//! When the database cannot be reached, the service says so in time and stores nothing.

use std::time::{Duration, Instant};

use idnow_attempts::configuration::Settings;
use reqwest::StatusCode;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use crate::helpers::*;

/// A port where nothing listens: connections are refused at once.
fn unreachable_database() -> PgConnectOptions {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    PgConnectOptions::new()
        .host("127.0.0.1")
        .port(port)
        .username("postgres")
}

/// The service on a database reached through `options`, connecting only when a request needs
/// it, and waiting 500 ms for a connection before it answers.
async fn app_on(options: PgConnectOptions) -> TestApp {
    let mut environment = test_environment();
    environment.insert("MIGRATE_ON_START".into(), "false".into());
    let mut settings = Settings::from_env_map(&environment).expect("valid settings");
    settings.database.acquire_timeout = Duration::from_millis(500);
    spawn_app_with_settings(PgPoolOptions::new().connect_lazy_with(options), settings).await
}

#[tokio::test]
async fn an_unreachable_database_is_503_with_retry_after_within_the_acquire_timeout() {
    let app = app_on(unreachable_database()).await;

    let live = app.get("/health/live").await;
    assert_eq!(live.status(), StatusCode::OK, "alive, if not ready");

    for name in ["ready", "webhook", "listing"] {
        let started = Instant::now();
        let response = match name {
            "ready" => app.get("/health/ready").await,
            "webhook" => app.deliver(&fixture("success.json")).await,
            _ => app.list(PERSON, "sig-1", "").await,
        };
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{name}: answered within the acquire timeout, not hung"
        );
        let error = assert_unavailable(response).await;
        assert!(
            !error["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("127.0.0.1"),
            "{name}: no internals in the body"
        );
    }
}

/// The server is up but refuses the service's connections: a role it does not know (a
/// credential rotated on one side only), a database it does not have (renamed, not yet
/// restored), a database closed to connections (maintenance). As much an outage as a server
/// that is away: 503 with Retry-After, so that IDnow retries, never a 500.
#[sqlx::test]
async fn a_database_server_that_refuses_the_connection_is_503_with_retry_after(pool: PgPool) {
    let closed = format!("idnow_attempts_closed_{}", std::process::id());
    // One a failed run of this test left behind goes first.
    sqlx::query(&format!("DROP DATABASE IF EXISTS {closed}"))
        .execute(&pool)
        .await
        .expect("drop a leftover");
    sqlx::query(&format!("CREATE DATABASE {closed}"))
        .execute(&pool)
        .await
        .expect("create the closed database");
    sqlx::query(&format!("ALTER DATABASE {closed} ALLOW_CONNECTIONS false"))
        .execute(&pool)
        .await
        .expect("close it");

    let options = pool.connect_options();
    let refusing = [
        (
            "unknown role",
            options
                .as_ref()
                .clone()
                .username("idnow_attempts_no_such_role"),
        ),
        (
            "unknown database",
            options
                .as_ref()
                .clone()
                .database("idnow_attempts_no_such_db"),
        ),
        (
            "closed database",
            options.as_ref().clone().database(&closed),
        ),
    ];
    for (case, refused) in refusing {
        let app = app_on(refused).await;
        for (route, response) in [
            ("webhook", app.deliver(&fixture("success.json")).await),
            ("listing", app.list(PERSON, "sig-1", "").await),
        ] {
            let error = assert_unavailable(response).await.to_string();
            for internal in ["idnow_attempts_no_such", &closed, "postgres"] {
                assert!(
                    !error.contains(internal),
                    "{case}, {route}: no internals in the body: {error}"
                );
            }
        }
    }

    sqlx::query(&format!("DROP DATABASE {closed}"))
        .execute(&pool)
        .await
        .expect("drop the closed database");
}
