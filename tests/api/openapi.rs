//! `GET /openapi.json`: the description clients generate from, as the contract lists the
//! routes, served by the real server exactly as committed.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use sqlx::PgPool;

use crate::helpers::*;

/// The committed description, which clients generate from.
const COMMITTED: &str = include_str!("../../openapi.json");

#[sqlx::test(migrations = false)]
async fn the_description_is_served_as_committed_and_covers_every_route(pool: PgPool) {
    let app = spawn_app(pool).await;
    let response = app.get("/openapi.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(content_type(&response), Some("application/json"));
    let body = response.text().await.expect("body");
    assert!(
        body == COMMITTED,
        "the served description is the committed one"
    );

    let document: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(document["info"]["version"], env!("CARGO_PKG_VERSION"));
    // The contract's routes, each with its method, and nothing else.
    let operations: BTreeMap<String, Vec<String>> = document["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .map(|(path, item)| {
            let methods = item.as_object().expect("a path item").keys().cloned();
            (path.clone(), methods.collect())
        })
        .collect();
    let expected: BTreeMap<String, Vec<String>> = [
        ("/v1/webhooks/idnow", "post"),
        ("/v1/persons/{person_id}/signings/{signing_id}", "put"),
        (
            "/v1/persons/{person_id}/signings/{signing_id}/idnow_attempts",
            "get",
        ),
        ("/v1/persons/{person_id}", "delete"),
        ("/health/live", "get"),
        ("/health/ready", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
    ]
    .into_iter()
    .map(|(path, method)| (path.to_owned(), vec![method.to_owned()]))
    .collect();
    assert_eq!(operations, expected);

    // Every answer of every operation documents X-Request-Id, every error the error body.
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            for (status, answer) in operation["responses"].as_object().expect("responses") {
                let at = format!("{method} {path} {status}");
                assert!(answer["headers"]["X-Request-Id"].is_object(), "{at}");
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        answer["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorDocument",
                        "{at}"
                    );
                }
            }
        }
    }
    let listing =
        &document["paths"]["/v1/persons/{person_id}/signings/{signing_id}/idnow_attempts"]["get"];
    for header in ["Link", "Total", "Per-Page"] {
        assert!(
            listing["responses"]["200"]["headers"][header].is_object(),
            "{header}"
        );
    }
    assert_eq!(
        listing["security"],
        serde_json::json!([{"bearer": ["idnow_attempts:read"]}])
    );
}
