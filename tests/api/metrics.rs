//! `GET /metrics`: known traffic moves each counter by exactly its amount.

use std::collections::HashMap;

use reqwest::StatusCode;
use sqlx::PgPool;

use crate::helpers::*;

/// Series name with labels (as rendered) to value.
pub type Scrape = HashMap<String, f64>;

pub async fn scrape(app: &TestApp) -> Scrape {
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(content_type(&response), Some("text/plain; version=0.0.4"));
    let text = response.text().await.expect("body");
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("`series value`");
            (series.to_owned(), value.parse().expect("a numeric sample"))
        })
        .collect()
}

/// How much `series` grew between two scrapes; a series absent before counts from 0.
pub fn grew(before: &Scrape, after: &Scrape, series: &str) -> f64 {
    let after = after
        .get(series)
        .unwrap_or_else(|| panic!("{series} is exported: {after:#?}"));
    after - before.get(series).copied().unwrap_or(0.0)
}

#[sqlx::test(migrations = false)]
async fn counters_move_by_the_traffic_sent(pool: PgPool) {
    let app = spawn_app(pool).await;
    let before = scrape(&app).await;

    app.register(PERSON, "sig-1", "tn-metrics").await;
    for (n, result) in ["SUCCESS", "ABORTED", "ABORTED", "CHECK_PENDING"]
        .into_iter()
        .enumerate()
    {
        let body = webhook_body("tn-metrics", result, &format!("2026-10-02T09:3{n}:00Z"));
        assert_eq!(app.deliver(&body).await.status(), StatusCode::CREATED);
        if n == 0 {
            assert_eq!(app.deliver(&body).await.status(), StatusCode::OK);
            assert_eq!(app.deliver(&body).await.status(), StatusCode::OK);
        }
    }
    let body = webhook_body("tn-metrics", "SUCCESS", "2026-10-02T09:40:00Z");
    let forged = app
        .post_webhook(&body, Signed::Plain("not-the-secret"))
        .await;
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    let unsigned = app.post_webhook(&body, Signed::Headers(vec![])).await;
    assert_eq!(unsigned.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.deliver(b"{not json").await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.deliver(br#"{"identificationprocess":{}}"#)
            .await
            .status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    for _ in 0..3 {
        assert_eq!(app.list(PERSON, "sig-1", "").await.status(), StatusCode::OK);
    }
    assert_eq!(
        app.get("/no/such/route/1").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/no/such/route/2").await.status(),
        StatusCode::NOT_FOUND
    );

    let after = scrape(&app).await;
    let webhook = |status: &str| format!(r#"{{route="/v1/webhooks/idnow",status="{status}"}}"#);
    for (series, amount) in [
        (format!("http_requests_total{}", webhook("201")), 4.0),
        (format!("http_requests_total{}", webhook("200")), 2.0),
        (format!("http_requests_total{}", webhook("401")), 2.0),
        (format!("http_requests_total{}", webhook("400")), 1.0),
        (format!("http_requests_total{}", webhook("422")), 1.0),
        (
            r#"http_requests_total{route="/v1/persons/{person_id}/signings/{signing_id}/idnow_attempts",status="200"}"#
                .to_owned(),
            3.0,
        ),
        (
            r#"http_requests_total{route="/v1/persons/{person_id}/signings/{signing_id}",status="201"}"#
                .to_owned(),
            1.0,
        ),
        // Unknown paths share one series, whatever they are.
        (r#"http_requests_total{route="unmatched",status="404"}"#.to_owned(), 2.0),
        // The scrape before counts; this one is counted after it is rendered.
        (r#"http_requests_total{route="/metrics",status="200"}"#.to_owned(), 1.0),
        (
            format!("http_request_duration_seconds_count{}", webhook("201")),
            4.0,
        ),
        (
            r#"http_request_duration_seconds_bucket{route="/v1/webhooks/idnow",status="201",le="+Inf"}"#
                .to_owned(),
            4.0,
        ),
        (r#"idnow_attempts_stored_total{result="SUCCESS"}"#.to_owned(), 1.0),
        (r#"idnow_attempts_stored_total{result="ABORTED"}"#.to_owned(), 2.0),
        (r#"idnow_attempts_stored_total{result="other"}"#.to_owned(), 1.0),
        (r#"idnow_attempts_stored_total{result="CANCELED"}"#.to_owned(), 0.0),
        ("idnow_webhook_duplicates_total".to_owned(), 2.0),
        (
            r#"idnow_webhook_signature_failures_total{method="hmac",reason="mismatch"}"#.to_owned(),
            1.0,
        ),
        (
            r#"idnow_webhook_signature_failures_total{method="none",reason="missing"}"#.to_owned(),
            1.0,
        ),
        (
            r#"idnow_webhook_signature_failures_total{method="standard-webhooks",reason="stale"}"#.to_owned(),
            0.0,
        ),
        (r#"idnow_webhook_rejected_total{code="invalid_json"}"#.to_owned(), 1.0),
        (
            r#"idnow_webhook_rejected_total{code="invalid_webhook_payload"}"#.to_owned(),
            1.0,
        ),
    ] {
        assert_eq!(grew(&before, &after, &series), amount, "{series}");
    }

    // The pool: connections were opened and returned, and nobody waits now.
    assert!(after["db_pool_connections"] >= 1.0);
    assert!(after["db_pool_idle_connections"] <= after["db_pool_connections"]);
    assert_eq!(after["db_pool_waiting_requests"], 0.0);
    assert_eq!(after["db_pool_max_connections"], 16.0);
    assert!(after["process_resident_memory_bytes"] > 0.0);
}
