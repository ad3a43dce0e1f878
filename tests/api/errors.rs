//! Every error answer has the contract's body, including the framework's own.

use reqwest::StatusCode;
use sqlx::PgPool;

use crate::helpers::*;

#[sqlx::test(migrations = false)]
async fn unknown_routes_are_404(pool: PgPool) {
    let app = spawn_app(pool).await;
    for path in [
        "/",
        "/v1",
        "/v1/persons/p/signings",
        "/v1/persons/p/signings/s/idnow_attempts/x",
    ] {
        let response = app.get(path).await;
        assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
    }
}

#[sqlx::test(migrations = false)]
async fn wrong_methods_are_405_with_allow(pool: PgPool) {
    let app = spawn_app(pool).await;
    for (method, path, allow) in [
        (
            reqwest::Method::GET,
            "/v1/webhooks/idnow".to_owned(),
            "POST",
        ),
        (
            reqwest::Method::DELETE,
            format!("/v1/persons/{PERSON}/signings/s"),
            "PUT",
        ),
        (
            reqwest::Method::POST,
            format!("/v1/persons/{PERSON}/signings/s/idnow_attempts"),
            "GET, HEAD",
        ),
        (
            reqwest::Method::POST,
            "/health/ready".to_owned(),
            "GET, HEAD",
        ),
        // Every other route of the contract, and a method no route takes.
        (
            reqwest::Method::GET,
            format!("/v1/persons/{PERSON}"),
            "DELETE",
        ),
        (
            reqwest::Method::PUT,
            format!("/v1/persons/{PERSON}"),
            "DELETE",
        ),
        (
            reqwest::Method::PATCH,
            "/v1/webhooks/idnow".to_owned(),
            "POST",
        ),
        (
            reqwest::Method::DELETE,
            "/health/live".to_owned(),
            "GET, HEAD",
        ),
        (reqwest::Method::POST, "/metrics".to_owned(), "GET, HEAD"),
        (
            reqwest::Method::POST,
            "/openapi.json".to_owned(),
            "GET, HEAD",
        ),
    ] {
        let response = app
            .client
            .request(method, app.url(&path))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.headers()["allow"], allow, "{path}");
        assert_error(
            response,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        )
        .await;
    }
    // HEAD is served only where GET is; elsewhere its 405 is as GET's, without the body.
    let response = app
        .client
        .head(app.url("/v1/webhooks/idnow"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "POST");
}

#[sqlx::test(migrations = false)]
async fn unusable_path_ids_are_400(pool: PgPool) {
    let app = spawn_app(pool).await;
    let long = "a".repeat(10_000);
    for person in ["%00", "p%C3%BCnktchen", "a%2Fb", "%FF", long.as_str()] {
        let response = app.list(person, "sig-1", "").await;
        assert_error(response, StatusCode::BAD_REQUEST, "invalid_path_parameter").await;
    }
}

#[sqlx::test(migrations = false)]
async fn health_routes_answer(pool: PgPool) {
    let app = spawn_app(pool).await;
    let live = app.get("/health/live").await;
    assert_eq!(live.status(), StatusCode::OK);
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(
        ready.json::<serde_json::Value>().await.expect("json")["status"],
        "ready"
    );
}

#[sqlx::test(migrations = false)]
async fn readiness_waits_for_migrations(pool: PgPool) {
    let mut environment = test_environment();
    environment.insert("MIGRATE_ON_START".into(), "false".into());
    let app = spawn_app_with(pool, environment).await;
    let response = app.get("/health/ready").await;
    assert_unavailable(response).await;

    // Deliveries are refused for the sender to retry, never answered 2xx without a commit.
    let response = app.deliver(&fixture("success.json")).await;
    assert_unavailable(response).await;

    idnow_attempts::persistence::MIGRATOR
        .run(&app.db)
        .await
        .expect("migrates");
    let response = app.get("/health/ready").await;
    assert_eq!(response.status(), StatusCode::OK);
}
