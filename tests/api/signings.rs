//! `PUT /v1/persons/{person_id}/signings/{signing_id}`.

use reqwest::StatusCode;
use sqlx::PgPool;

use crate::helpers::*;

#[sqlx::test(migrations = false)]
async fn registration_is_idempotent(pool: PgPool) {
    let app = spawn_app(pool).await;
    let created = app.register(PERSON, "sig-1", "tn-1").await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let body: serde_json::Value = created.json().await.expect("json");
    assert_eq!(
        body,
        serde_json::json!({"person_id": PERSON, "signing_id": "sig-1", "identification_id": "tn-1"})
    );
    assert_eq!(
        app.register(PERSON, "sig-1", "tn-1").await.status(),
        StatusCode::OK
    );

    let rows = sqlx::query!("SELECT person_id, signing_id, identification_id FROM signings")
        .fetch_all(&app.db)
        .await
        .expect("rows");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].identification_id, "tn-1");
}

#[sqlx::test(migrations = false)]
async fn conflicting_registrations_are_refused(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.register(PERSON, "sig-1", "tn-1").await;

    let response = app.register(PERSON, "sig-1", "tn-2").await;
    let error = assert_error(response, StatusCode::CONFLICT, "conflict").await;
    assert_eq!(
        error["detail"],
        "The signing is already registered with another identification."
    );

    let response = app.register(PERSON, "sig-2", "tn-1").await;
    let error = assert_error(response, StatusCode::CONFLICT, "conflict").await;
    assert_eq!(
        error["detail"],
        "The identification already belongs to another signing."
    );

    let response = app.register("other-person", "sig-1", "tn-1").await;
    let error = assert_error(response, StatusCode::CONFLICT, "conflict").await;
    assert_eq!(
        error["detail"],
        "The signing is already registered for another person."
    );

    let count = sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM signings"#)
        .fetch_one(&app.db)
        .await
        .expect("count");
    assert_eq!(count, 1);
}

#[sqlx::test(migrations = false)]
async fn concurrent_registrations_of_one_signing_agree(pool: PgPool) {
    let app = spawn_app(pool).await;
    let responses = futures_util::future::join_all(
        (0..20).map(|i| app.register(PERSON, "sig-race", if i % 2 == 0 { "tn-a" } else { "tn-b" })),
    )
    .await;
    let mut statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [200, 201, 409].contains(s)),
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 409).count(),
        10,
        "the other identification loses"
    );
}

#[sqlx::test(migrations = false)]
async fn malformed_registrations_are_refused(pool: PgPool) {
    let app = spawn_app(pool).await;
    let put = |body: &'static str, content_type: &'static str| {
        app.client
            .put(app.url(&format!("/v1/persons/{PERSON}/signings/sig-1")))
            .bearer_auth(WRITE_TOKEN)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let response = put("{", "application/json").await.expect("sent");
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_json").await;
    for body in [
        "{}",
        r#"{"identification_id":7}"#,
        r#"{"identification_id":""}"#,
        r#"{"identification_id":"tn-1","identification_id":"tn-2"}"#,
        "[]",
        // serde reads a struct from an array too: not a registration here.
        r#"["tn-array"]"#,
        r#"["tn-array","extra",1]"#,
        r#""tn-1""#,
        "null",
    ] {
        let response = put(body, "application/json").await.expect("sent");
        assert_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_registration",
        )
        .await;
    }
    // None of them registered the signing.
    assert_eq!(
        app.register(PERSON, "sig-1", "tn-other").await.status(),
        StatusCode::CREATED
    );
    let response = put(r#"{"identification_id":"tn"}"#, "text/plain")
        .await
        .expect("sent");
    assert_error(
        response,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;

    let response = app.register("person%2Fwith%2Fslash", "sig-1", "tn-1").await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_path_parameter").await;
    let long = "a".repeat(10_000);
    let response = app.register(PERSON, &long, "tn-1").await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_path_parameter").await;
}

#[sqlx::test(migrations = false)]
async fn registration_needs_the_write_scope(pool: PgPool) {
    let app = spawn_app(pool).await;
    let put = |token: Option<&'static str>| {
        let request = app
            .client
            .put(app.url(&format!("/v1/persons/{PERSON}/signings/sig-1")))
            .json(&serde_json::json!({"identification_id": "tn-1"}));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
        .send()
    };
    let response = put(None).await.expect("sent");
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_error(response, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    let response = put(Some(READ_TOKEN)).await.expect("sent");
    assert_error(response, StatusCode::FORBIDDEN, "unauthorized_action").await;
    let count = sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM signings"#)
        .fetch_one(&app.db)
        .await
        .expect("count");
    assert_eq!(count, 0);
}
