//! When the database cannot be reached, the service says so in time and stores nothing.

use std::time::{Duration, Instant};

use idnow_attempts::configuration::Settings;
use reqwest::StatusCode;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

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

#[tokio::test]
async fn an_unreachable_database_is_503_with_retry_after_within_the_acquire_timeout() {
    let mut environment = test_environment();
    environment.insert("MIGRATE_ON_START".into(), "false".into());
    let mut settings = Settings::from_env_map(&environment).expect("valid settings");
    settings.database.acquire_timeout = Duration::from_millis(500);
    let pool = PgPoolOptions::new().connect_lazy_with(unreachable_database());
    let app = spawn_app_with_settings(pool, settings).await;

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
