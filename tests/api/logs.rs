//! The real binary, run as an operator would, for its logs: JSON lines with a request id, and
//! no personal data, secret or token in any of them.

use nix::sys::signal::Signal;
use reqwest::StatusCode;
use sqlx::PgPool;

use crate::helpers::*;
use crate::process::ServiceProcess;

/// Every personal value of the fixtures: what `userdata`, `contactdata` and
/// `identificationdocument` hold.
fn personal_values() -> Vec<String> {
    fn leaves(value: &serde_json::Value, into: &mut Vec<String>) {
        match value {
            serde_json::Value::String(s) if s.chars().count() >= 4 => into.push(s.clone()),
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    if key != "status" {
                        leaves(value, into);
                    }
                }
            }
            _ => {}
        }
    }
    let mut values = Vec::new();
    for file in FIXTURES {
        let payload: serde_json::Value =
            serde_json::from_slice(&fixture(file)).expect("fixture is JSON");
        for section in ["userdata", "contactdata", "identificationdocument"] {
            leaves(&payload[section], &mut values);
        }
    }
    values.sort();
    values.dedup();
    values
}

#[sqlx::test(migrations = false)]
async fn a_full_run_logs_no_personal_data_or_secrets(pool: PgPool) {
    // More than production logs, to catch what a debugging operator would see too.
    let service = ServiceProcess::start(&pool, &[("RUST_LOG", "debug")]);
    let app = &service.app;

    // The whole surface, with every fixture.
    app.register(PERSON, "sig-1", "b2d949eb12ecd6798fa8e2ae66fc4a5acidt")
        .await;
    app.register(PERSON, "sig-2", "7f3c5a19d2e84b06a1c9e5f2b3d4a6c8cidt")
        .await;
    for file in FIXTURES {
        let body = fixture(file);
        assert!(app.deliver(&body).await.status().is_success());
        assert_eq!(app.deliver(&body).await.status(), StatusCode::OK);
        let forged = app.post_webhook(&body, Signed::Plain("forged")).await;
        assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
        // Authentic but refused: the body holds personal data, the log must not.
        let mut truncated = body.clone();
        truncated.truncate(body.len() / 2);
        assert_eq!(
            app.deliver(&truncated).await.status(),
            StatusCode::BAD_REQUEST
        );
        let unprocessable = String::from_utf8(body.clone())
            .expect("utf-8")
            .replace("\"transactionnumber\"", "\"transaction_number\"");
        assert_eq!(
            app.deliver(unprocessable.as_bytes()).await.status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
    assert_eq!(
        listed(app.list(PERSON, "sig-2", "?page[size]=2").await)
            .await
            .len(),
        2
    );
    assert_eq!(
        app.list_as("wrong", PERSON, "sig-2", "").await.status(),
        401
    );
    assert_eq!(
        app.list_as(WRITE_TOKEN, PERSON, "sig-2", "").await.status(),
        403
    );

    service.signal(Signal::SIGTERM);
    let (exit, log) = service.wait().await;
    assert!(exit.success(), "SIGTERM ends the service cleanly: {exit:?}");

    let completed: Vec<serde_json::Value> = log
        .iter()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("every line is JSON"))
        .filter(|event| event["message"] == "request completed")
        .inspect(|event| {
            assert!(event["span"]["request_id"].is_string(), "{event}");
            assert!(event["status"].is_u64(), "{event}");
        })
        .collect();
    // 2 registrations, 5 deliveries of each of the 6 fixtures, 3 listings: one line each, and
    // no other line about them (nothing here is a server error).
    assert_eq!(
        completed.len(),
        2 + 5 * FIXTURES.len() + 3,
        "one line per request"
    );
    assert!(
        !log.iter().any(|line| line.contains("\"level\":\"ERROR\"") || line.contains("\"level\":\"WARN\"")),
        "no request here is worth a warning"
    );
    // The one line of a request says what came of it.
    let stored = completed
        .iter()
        .find(|event| event["status"] == 201 && event["http.route"] == "/v1/webhooks/idnow")
        .expect("a stored webhook was logged");
    assert_eq!(stored["outcome"], "stored");
    assert_eq!(
        stored["transaction_number"],
        "b2d949eb12ecd6798fa8e2ae66fc4a5acidt"
    );
    assert!(stored["attempt_id"]
        .as_str()
        .is_some_and(|id| id.ends_with("cida")));
    let forged = completed
        .iter()
        .find(|event| event["status"] == 401 && event["http.route"] == "/v1/webhooks/idnow")
        .expect("a forged webhook was logged");
    assert_eq!(forged["error.code"], "invalid_signature");
    assert!(forged["error.id"].is_string(), "{forged}");
    let listing = completed
        .iter()
        .find(|event| event["status"] == 200 && event["total"].is_u64())
        .expect("a listing was logged");
    assert_eq!(listing["api_client"], "reader");
    assert_eq!(
        listing["http.route"],
        "/v1/persons/{person_id}/signings/{signing_id}/idnow_attempts"
    );

    let text = log.join("\n");
    let mut forbidden = personal_values();
    assert!(
        forbidden.len() >= 20,
        "the fixtures' personal data: {forbidden:?}"
    );
    forbidden.extend(
        [
            WEBHOOK_SECRET,
            "cHJldmlvdXMtd2ViaG9vay1zZWNyZXQ",
            READ_TOKEN,
            WRITE_TOKEN,
        ]
        .map(String::from),
    );
    for value in &forbidden {
        assert!(!text.contains(value.as_str()), "the log contains {value:?}");
    }
}

#[sqlx::test(migrations = false)]
async fn a_server_error_is_logged_with_its_cause_under_the_id_the_client_got(pool: PgPool) {
    // A database where nothing listens: every request that needs it fails, 503.
    let unreachable = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        format!("postgres://postgres@127.0.0.1:{port}/none")
    };
    let service = ServiceProcess::start_on(&unreachable, &pool, &[("MIGRATE_ON_START", "false")]);
    let response = service.app.list(PERSON, "sig-1", "").await;
    let error = assert_unavailable(response).await;

    service.signal(Signal::SIGTERM);
    let (_, log) = service.wait().await;
    let failed: Vec<serde_json::Value> = log
        .iter()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("every line is JSON"))
        .filter(|event| event["message"] == "request failed")
        .collect();
    assert_eq!(failed.len(), 1, "one line for the one request: {log:?}");
    let line = &failed[0];
    assert_eq!(line["level"], "ERROR");
    assert_eq!(line["status"], 503);
    assert_eq!(line["error.id"], error["id"], "the id the client got");
    assert_eq!(line["error.code"], "service_unavailable");
    let cause = line["error.cause"].as_str().expect("the cause is logged");
    assert!(
        cause.contains("acquiring a connection") && cause.contains("Caused by"),
        "the whole chain: {cause}"
    );
}
