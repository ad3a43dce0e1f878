//! `GET /openapi.json`: the description clients generate from, as the contract lists the
//! routes, served by the real server as committed, narrowed to the webhook methods it is
//! configured with.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use sqlx::PgPool;

use crate::helpers::*;

/// The committed description, which clients generate from.
const COMMITTED: &str = include_str!("../../openapi.json");

/// The committed description is what a server of every webhook method but `source` serves.
#[sqlx::test(migrations = false)]
async fn the_description_is_served_as_committed_and_covers_every_route(pool: PgPool) {
    let tokens = sha256_hex("a-static-token");
    let basic = format!("idnow:{}", sha256_hex("a password"));
    let app = spawn_app_adding(
        pool,
        &[
            ("WEBHOOK_AUTH", "standard-webhooks,hmac,token,basic"),
            ("WEBHOOK_TOKENS", &tokens),
            ("WEBHOOK_BASIC_CREDENTIALS", &basic),
        ],
    )
    .await;
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

    // Every answer of every operation documents X-Request-Id (but the HTTP layer's 414,
    // which comes before a request has an id), every error the error body.
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            for (status, answer) in operation["responses"].as_object().expect("responses") {
                let at = format!("{method} {path} {status}");
                assert_eq!(
                    answer["headers"]["X-Request-Id"].is_object(),
                    status != "414",
                    "{at}"
                );
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

/// What a server serves describes how to reach it: only the webhook methods it enables, in
/// the order it tries them, `{}` where `source` takes deliveries without credentials, and the
/// static token in the configured header (which the server reads: `sources.rs`).
#[sqlx::test(migrations = false)]
async fn the_description_served_is_of_the_servers_own_webhook_methods(pool: PgPool) {
    let schemes = |document: &serde_json::Value| -> Vec<String> {
        let schemes = document["components"]["securitySchemes"].as_object();
        schemes.expect("schemes").keys().cloned().collect()
    };
    let webhook = |document: &serde_json::Value| -> serde_json::Value {
        document["paths"]["/v1/webhooks/idnow"]["post"]["security"].clone()
    };

    // The test environment: the default methods.
    let app = spawn_app(pool.clone()).await;
    let document: serde_json::Value = app.get("/openapi.json").await.json().await.expect("JSON");
    assert_eq!(
        webhook(&document),
        serde_json::json!([{"standardWebhooks": []}, {"hmac": []}])
    );
    assert_eq!(schemes(&document), ["bearer", "hmac", "standardWebhooks"]);
    drop(app);

    let token = "a-static-token-of-idnow";
    let tokens = sha256_hex(token);
    let basic = format!("idnow:{}", sha256_hex("a password"));
    let app = spawn_app_adding(
        pool,
        &[
            ("WEBHOOK_AUTH", "source,basic,token"),
            ("WEBHOOK_TOKENS", &tokens),
            ("WEBHOOK_TOKEN_HEADER", "X-IDnow-Token"),
            ("WEBHOOK_BASIC_CREDENTIALS", &basic),
            ("WEBHOOK_ALLOWED_SOURCES", "127.0.0.0/8, ::1/128"),
        ],
    )
    .await;
    let document: serde_json::Value = app.get("/openapi.json").await.json().await.expect("JSON");
    assert_eq!(
        webhook(&document),
        serde_json::json!([{"token": []}, {"basic": []}, {}])
    );
    assert_eq!(schemes(&document), ["basic", "bearer", "token"]);
    // Every operation's requirements name schemes the description has.
    for item in document["paths"].as_object().expect("paths").values() {
        for operation in item.as_object().expect("a path item").values() {
            for requirement in operation["security"].as_array().into_iter().flatten() {
                for scheme in requirement.as_object().expect("a requirement").keys() {
                    assert!(schemes(&document).contains(scheme), "{scheme}");
                }
            }
        }
    }
    let scheme = &document["components"]["securitySchemes"]["token"];
    assert_eq!(scheme["in"], "header");
    let header = scheme["name"].as_str().expect("a header name");
    assert_eq!(header, "x-idnow-token");
    // The rest of the description is the committed one's.
    let committed: serde_json::Value = serde_json::from_str(COMMITTED).expect("JSON");
    assert_eq!(
        document["paths"]["/v1/persons/{person_id}"],
        committed["paths"]["/v1/persons/{person_id}"]
    );
}
