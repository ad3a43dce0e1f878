//! `POST /v1/webhooks/idnow`: storage, deduplication, signatures and refusals.

use reqwest::StatusCode;
use sqlx::PgPool;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::helpers::*;

const LIFECYCLE_TN: &str = "7f3c5a19d2e84b06a1c9e5f2b3d4a6c8cidt";
const SUCCESS_TN: &str = "b2d949eb12ecd6798fa8e2ae66fc4a5acidt";

#[sqlx::test(migrations = false)]
async fn every_fixture_round_trips_with_key_order(pool: PgPool) {
    let app = spawn_app(pool).await;
    assert_eq!(
        app.register(PERSON, "sig-upstream", SUCCESS_TN)
            .await
            .status(),
        201
    );
    assert_eq!(
        app.register(PERSON, "sig-lifecycle", LIFECYCLE_TN)
            .await
            .status(),
        201
    );

    // (file, result, reason) in the order the history lists them: by identification time.
    let lifecycle = [
        ("lifecycle/1_aborted.json", "ABORTED", Some("TECH_LIGHTING")),
        ("lifecycle/2_review_pending.json", "REVIEW_PENDING", None),
        (
            "lifecycle/3_success_data_changed.json",
            "SUCCESS_DATA_CHANGED",
            None,
        ),
        (
            "canceled_after_review.json",
            "CANCELED",
            Some("DATA_APPLICATION_DATA"),
        ),
        (
            "fraud_suspicion_pending.json",
            "FRAUD_SUSPICION_PENDING",
            None,
        ),
    ];
    // Delivered out of order, as senders do; the two that share an identification time come
    // in their own order, since arrival breaks that tie.
    let mut ids = std::collections::HashMap::new();
    for index in [4, 3, 0, 1, 2] {
        let (file, _, _) = &lifecycle[index];
        let response = app.deliver(&fixture(file)).await;
        assert_eq!(response.status(), StatusCode::CREATED, "{file}");
        ids.insert(*file, acknowledged_id(response).await);
    }
    let success = app.deliver(&fixture("success.json")).await;
    assert_eq!(success.status(), StatusCode::CREATED);
    let success_id = acknowledged_id(success).await;

    let history = listed(app.list(PERSON, "sig-lifecycle", "").await).await;
    assert_eq!(history.len(), lifecycle.len());
    for (attempt, (file, result, reason)) in history.iter().zip(lifecycle) {
        let sent = String::from_utf8(fixture(file)).expect("utf-8 fixture");
        assert_eq!(
            attempt.payload.get(),
            sent.trim(),
            "{file}: payload as sent, byte for byte"
        );
        assert_eq!(attempt.result, result, "{file}");
        assert_eq!(attempt.reason.as_deref(), reason, "{file}");
        assert_eq!(attempt.id, ids[file], "{file}");
    }

    let upstream = listed(app.list(PERSON, "sig-upstream", "").await).await;
    assert_eq!(upstream.len(), 1);
    assert_eq!(upstream[0].id, success_id);
    assert_eq!(upstream[0].result, "SUCCESS");
    assert_eq!(upstream[0].reason, None);
    let sent = String::from_utf8(fixture("success.json")).expect("utf-8 fixture");
    assert_eq!(upstream[0].payload.get(), sent.trim());
}

#[sqlx::test(migrations = false)]
async fn the_listing_body_matches_the_upstream_reference(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.register(PERSON, "sig-1", SUCCESS_TN).await;
    let id = acknowledged_id(app.deliver(&fixture("success.json")).await).await;

    let body = app
        .list(PERSON, "sig-1", "")
        .await
        .text()
        .await
        .expect("body");
    let sent = String::from_utf8(fixture("success.json")).expect("utf-8");
    assert_eq!(
        body,
        format!(
            r#"[{{"id":"{id}","result":"SUCCESS","reason":null,"payload":{}}}]"#,
            sent.trim()
        )
    );
}

#[sqlx::test(migrations = false)]
async fn a_redelivery_returns_the_original_id_and_stores_nothing(pool: PgPool) {
    let app = spawn_app(pool).await;
    let body = fixture("success.json");
    let first = app.deliver(&body).await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let id = acknowledged_id(first).await;

    let again = app.deliver(&body).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(acknowledged_id(again).await, id);

    // The same event, formatted and signed differently, is still the same event.
    let pretty = serde_json::to_vec_pretty(
        &serde_json::from_slice::<serde_json::Value>(&body).expect("json"),
    )
    .expect("serialises");
    let reformatted = app
        .post_webhook(
            &pretty,
            Signed::Standard {
                secret: PREVIOUS_WEBHOOK_SECRET,
                id: "msg_other",
                timestamp: unix_now(),
            },
        )
        .await;
    assert_eq!(reformatted.status(), StatusCode::OK);
    assert_eq!(acknowledged_id(reformatted).await, id);
    assert_eq!(app.attempt_count().await, 1);
}

/// A duplicate is the same event: the same transaction number, IDnow ident id, result and
/// identification time. Each of the four tells events apart; nothing else does (the rest of
/// the payload, the reason).
#[sqlx::test(migrations = false)]
async fn the_four_fields_of_an_event_and_only_they_make_a_duplicate(pool: PgPool) {
    let app = spawn_app(pool).await;
    // The event, with `value` written at `section`.`key`.
    let event = |section: &str, key: &str, value: &str| {
        let mut body: serde_json::Value = serde_json::from_slice(&webhook_body(
            "tn-key",
            "ABORTED",
            "2026-10-02T09:31:47+02:00",
        ))
        .expect("JSON");
        body[section][key] = value.into();
        serde_json::to_vec(&body).expect("serialises")
    };
    let process = "identificationprocess";
    let original = acknowledged_id(app.deliver(&event(process, "result", "ABORTED")).await).await;
    for (section, key, value, duplicate) in [
        (process, "transactionnumber", "tn-key-2", false),
        (process, "id", "TST-OTHER", false),
        (process, "result", "SUCCESS", false),
        (
            process,
            "identificationtime",
            "2026-10-02T09:41:47+02:00",
            false,
        ),
        (process, "reason", "USER_CANCELLATION", true),
        ("customdata", "custom1", "changed", true),
    ] {
        let response = app.deliver(&event(section, key, value)).await;
        let status = if duplicate {
            StatusCode::OK
        } else {
            StatusCode::ACCEPTED
        };
        assert_eq!(response.status(), status, "another {key}");
        assert_eq!(
            acknowledged_id(response).await == original,
            duplicate,
            "the original's id for another {key}, and only if it is a duplicate"
        );
    }
    assert_eq!(app.attempt_count().await, 5);
}

/// `WEBHOOK_TOLERANCE_SECONDS` sets the accepted clock skew of a Standard Webhooks
/// timestamp, both ways.
#[sqlx::test(migrations = false)]
async fn the_timestamp_tolerance_is_the_one_configured(pool: PgPool) {
    let app = spawn_app_adding(pool, &[("WEBHOOK_TOLERANCE_SECONDS", "10")]).await;
    let body = webhook_body("tn-skew", "ABORTED", "2026-10-02T09:31:47+02:00");
    let sent_at = |skew: i64| Signed::Standard {
        secret: WEBHOOK_SECRET,
        id: "msg-skew",
        timestamp: unix_now() + skew,
    };
    for skew in [-30, 30, -60] {
        let response = app.post_webhook(&body, sent_at(skew)).await;
        assert_error(response, StatusCode::UNAUTHORIZED, "invalid_signature").await;
    }
    assert_eq!(app.attempt_count().await, 0);
    let response = app.post_webhook(&body, sent_at(-8)).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
}

#[sqlx::test(migrations = false)]
async fn a_repeated_webhook_id_is_a_duplicate(pool: PgPool) {
    let app = spawn_app(pool).await;
    let body = webhook_body("tn-1", "SUCCESS", "2026-10-02T09:31:47+02:00");
    let signed = || Signed::Standard {
        secret: WEBHOOK_SECRET,
        id: "msg_2Kx8",
        timestamp: unix_now(),
    };
    let id = acknowledged_id(app.post_webhook(&body, signed()).await).await;
    let again = app.post_webhook(&body, signed()).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(acknowledged_id(again).await, id);
    assert_eq!(app.attempt_count().await, 1);
}

#[sqlx::test(migrations = false)]
async fn a_webhook_id_reused_for_another_event_is_409_and_kept(pool: PgPool) {
    let app = spawn_app(pool).await;
    let signed = |id| Signed::Standard {
        secret: WEBHOOK_SECRET,
        id,
        timestamp: unix_now(),
    };
    let first = webhook_body("tn-reuse", "ABORTED", "2026-10-02T09:31:47+02:00");
    let stored = acknowledged_id(app.post_webhook(&first, signed("msg_reused")).await).await;

    // The same webhook-id on a different event: not a duplicate, and not silently dropped.
    let other = webhook_body("tn-reuse", "SUCCESS", "2026-10-02T10:02:13+02:00");
    let response = app.post_webhook(&other, signed("msg_reused")).await;
    assert_error(response, StatusCode::CONFLICT, "webhook_id_reused").await;
    assert_eq!(app.attempt_count().await, 1);
    assert_eq!(
        app.rejected().await,
        vec![(
            409,
            "webhook_id_reused".to_owned(),
            Some("msg_reused".to_owned()),
            other.clone()
        )]
    );
    // Refusing it changes nothing for the original: its redelivery is still a duplicate.
    let again = app.post_webhook(&first, signed("msg_reused")).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(acknowledged_id(again).await, stored);
    // The refused event with an id of its own is stored: the id, not the event, was at fault.
    let retried = app.post_webhook(&other, signed("msg_fresh")).await;
    assert_eq!(retried.status(), StatusCode::ACCEPTED);
    // And the same event under yet another id is its duplicate, whatever the id.
    let retried_id = acknowledged_id(retried).await;
    let under_stored_id = app.post_webhook(&other, signed("msg_reused")).await;
    assert_eq!(under_stored_id.status(), StatusCode::OK);
    assert_eq!(acknowledged_id(under_stored_id).await, retried_id);
    assert_eq!(app.attempt_count().await, 2);
}

#[sqlx::test(migrations = false)]
async fn concurrent_events_sharing_a_webhook_id_store_one_and_refuse_the_rest(pool: PgPool) {
    let app = spawn_app(pool).await;
    let bodies: Vec<Vec<u8>> = (0..20)
        .map(|n| {
            webhook_body(
                "tn-shared-id",
                "ABORTED",
                &format!("2026-10-02T09:{n:02}:00+02:00"),
            )
        })
        .collect();
    let answers = futures_util::future::join_all(bodies.iter().map(|body| {
        app.post_webhook(
            body,
            Signed::Standard {
                secret: WEBHOOK_SECRET,
                id: "msg_one_id",
                timestamp: unix_now(),
            },
        )
    }))
    .await;
    let mut statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses[0], 202, "{statuses:?}");
    assert!(statuses[1..].iter().all(|s| *s == 409), "{statuses:?}");
    assert_eq!(app.attempt_count().await, 1);
    assert_eq!(app.rejected().await.len(), 19);
}

#[sqlx::test(migrations = false)]
async fn any_visible_ascii_webhook_id_up_to_1024_characters_is_stored(pool: PgPool) {
    let app = spawn_app(pool).await;
    let longest = "~".repeat(1024);
    for (n, id) in [
        longest.as_str(),
        &"x".repeat(300),
        "msg_!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
    ]
    .into_iter()
    .enumerate()
    {
        let body = webhook_body("tn-ids", "ABORTED", &format!("2026-10-02T09:0{n}:00+02:00"));
        let response = app.post_with_webhook_id(&body, id.as_bytes()).await;
        assert_eq!(
            response.status(),
            StatusCode::ACCEPTED,
            "{} characters",
            id.len()
        );
        let again = app.post_with_webhook_id(&body, id.as_bytes()).await;
        assert_eq!(again.status(), StatusCode::OK, "{} characters", id.len());
    }
    let stored: Vec<i32> =
        sqlx::query_scalar!(r#"SELECT length(webhook_id) AS "length!" FROM attempts ORDER BY seq"#)
            .fetch_all(&app.db)
            .await
            .expect("read attempts");
    assert_eq!(stored, vec![1024, 300, 36]);
}

#[sqlx::test(migrations = false)]
async fn a_signed_webhook_id_unfit_to_store_is_400_and_kept_never_401(pool: PgPool) {
    let app = spawn_app(pool).await;
    let too_long = "~".repeat(1025);
    let cases: [(&str, &[u8]); 5] = [
        ("empty", b""),
        ("1,025 characters", too_long.as_bytes()),
        ("10,000 characters", &[b'a'; 10_000]),
        ("bytes above 0x7f", b"msg_caf\xc3\xa9"),
        ("a space inside", b"msg 1"),
    ];
    for (n, (name, id)) in cases.into_iter().enumerate() {
        let body = webhook_body(
            "tn-bad-id",
            "ABORTED",
            &format!("2026-10-02T09:0{n}:00+02:00"),
        );
        let response = app.post_with_webhook_id(&body, id).await;
        let error = assert_error(response, StatusCode::BAD_REQUEST, "invalid_webhook_id").await;
        assert!(
            error["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("webhook-id ")),
            "{name}: {error}"
        );
        let kept = app.rejected().await;
        assert_eq!(
            kept.last(),
            Some(&(400, "invalid_webhook_id".to_owned(), None, body)),
            "{name}"
        );
    }
    assert_eq!(app.attempt_count().await, 0);
    // Signed with another secret, the same ids are what they always were: 401, not kept.
    let body = webhook_body("tn-bad-id", "ABORTED", "2026-10-02T10:00:00+02:00");
    let forged = app
        .post_webhook(
            &body,
            Signed::Standard {
                secret: "not-a-secret-of-ours",
                id: &too_long,
                timestamp: unix_now(),
            },
        )
        .await;
    assert_error(forged, StatusCode::UNAUTHORIZED, "invalid_signature").await;
    assert_eq!(app.rejected().await.len(), 5);
}

#[sqlx::test(migrations = false)]
async fn fifty_concurrent_identical_deliveries_store_one_attempt(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.register(PERSON, "sig-1", SUCCESS_TN).await;
    let body = fixture("success.json");
    let responses = futures_util::future::join_all((0..50).map(|_| app.deliver(&body))).await;

    let mut statuses = Vec::new();
    let mut ids = std::collections::HashSet::new();
    for response in responses {
        statuses.push(response.status().as_u16());
        ids.insert(acknowledged_id(response).await);
    }
    statuses.sort_unstable();
    assert_eq!(statuses[0], 200);
    assert_eq!(
        statuses.iter().filter(|&&s| s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        49,
        "{statuses:?}"
    );
    assert_eq!(ids.len(), 1, "every answer names the one attempt");
    assert_eq!(app.attempt_count().await, 1);
    assert_eq!(listed(app.list(PERSON, "sig-1", "").await).await.len(), 1);
}

#[sqlx::test(migrations = false)]
async fn unknown_results_are_stored_as_they_are(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.register(PERSON, "sig-1", "tn-unknown").await;
    for result in ["CHECK_PENDING", "FAILED"] {
        let body = webhook_body("tn-unknown", result, "2026-10-02T09:31:47+02:00");
        assert_eq!(
            app.deliver(&body).await.status(),
            StatusCode::CREATED,
            "{result}"
        );
    }
    let history = listed(app.list(PERSON, "sig-1", "").await).await;
    let results: Vec<_> = history.iter().map(|a| a.result.as_str()).collect();
    assert_eq!(results, ["CHECK_PENDING", "FAILED"]);
}

#[sqlx::test(migrations = false)]
async fn unauthentic_deliveries_are_refused_and_store_nothing(pool: PgPool) {
    let app = spawn_app(pool).await;
    let body = fixture("success.json");
    let good = key(WEBHOOK_SECRET).hmac_signature(&body);
    let now = unix_now();
    let cases: Vec<(&str, Signed<'_>)> = vec![
        ("missing", Signed::Headers(vec![])),
        (
            "wrong",
            Signed::Headers(vec![(
                "x-idnow-signature",
                format!("sha256={}", "0".repeat(64)),
            )]),
        ),
        (
            "truncated to nothing",
            Signed::Headers(vec![("x-idnow-signature", "sha256=".into())]),
        ),
        (
            "truncated",
            Signed::Headers(vec![(
                "x-idnow-signature",
                good[..good.len() - 8].to_owned(),
            )]),
        ),
        (
            "uppercase scheme",
            Signed::Headers(vec![(
                "x-idnow-signature",
                good.replace("sha256=", "SHA256="),
            )]),
        ),
        ("other secret", Signed::Plain("not-our-secret")),
        (
            "stale",
            Signed::Standard {
                secret: WEBHOOK_SECRET,
                id: "msg_1",
                // Well past the 300 s tolerance: the exact edge is a unit test's, where the
                // clock is given; here the server reads its own, seconds later on a busy
                // machine.
                timestamp: now - 360,
            },
        ),
        (
            "from the future",
            Signed::Standard {
                secret: WEBHOOK_SECRET,
                id: "msg_2",
                timestamp: now + 360,
            },
        ),
        (
            "standard, other secret",
            Signed::Standard {
                secret: "not-our-secret",
                id: "msg_3",
                timestamp: now,
            },
        ),
        (
            "standard, empty",
            Signed::Headers(vec![
                ("webhook-id", "msg_4".into()),
                ("webhook-timestamp", now.to_string()),
                ("webhook-signature", "v1,".into()),
            ]),
        ),
    ];
    for (name, signed) in cases {
        let response = app.post_webhook(&body, signed).await;
        assert!(
            response.headers().get("www-authenticate").is_none(),
            "{name}: webhooks are not bearer routes"
        );
        let error = assert_error(response, StatusCode::UNAUTHORIZED, "invalid_signature").await;
        assert!(!error.to_string().contains("MUSTERMANN"), "{name}");
    }
    assert_eq!(app.attempt_count().await, 0);
    assert!(
        app.rejected_bodies().await.is_empty(),
        "unverified bodies are not kept"
    );
}

#[sqlx::test(migrations = false)]
async fn either_signature_suffices_when_a_sender_sends_both(pool: PgPool) {
    let app = spawn_app(pool).await;
    let body = webhook_body("tn-both", "ABORTED", "2026-10-02T09:00:00Z");
    let hmac = key(WEBHOOK_SECRET).hmac_signature(&body);
    // A valid HMAC beside a Standard Webhooks signature that fails: authentic.
    let response = app
        .post_webhook(
            &body,
            Signed::Headers(vec![
                ("x-idnow-signature", hmac),
                ("webhook-id", "msg_both".to_owned()),
                ("webhook-timestamp", unix_now().to_string()),
                ("webhook-signature", "v1,AAAA".to_owned()),
            ]),
        )
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    // The failed scheme's id vouches for nothing: it is not stored.
    let webhook_id: Option<String> =
        sqlx::query_scalar!("SELECT webhook_id FROM attempts WHERE transaction_number = 'tn-both'")
            .fetch_one(&app.db)
            .await
            .expect("stored");
    assert_eq!(webhook_id, None);
}

#[sqlx::test(migrations = false)]
async fn every_secret_of_the_rotation_is_accepted(pool: PgPool) {
    let app = spawn_app(pool).await;
    let body = webhook_body("tn-rotation", "SUCCESS", "2026-10-02T09:31:47+02:00");
    let response = app
        .post_webhook(&body, Signed::Plain(PREVIOUS_WEBHOOK_SECRET))
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body = webhook_body("tn-rotation", "SUCCESS", "2026-10-03T09:31:47+02:00");
    let response = app
        .post_webhook(
            &body,
            Signed::Standard {
                secret: PREVIOUS_WEBHOOK_SECRET,
                id: "msg_r",
                timestamp: unix_now() - 299,
            },
        )
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(app.attempt_count().await, 2);
}

#[sqlx::test(migrations = false)]
async fn authentic_but_unusable_deliveries_are_refused_and_kept_verbatim(pool: PgPool) {
    let app = spawn_app(pool).await;
    let not_json = b"{\"identificationprocess\": {\"result\": \"SUCC".to_vec();
    let response = app.deliver(&not_json).await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_json").await;

    let invalid_utf8 = b"{\"a\":\"\xff\"}".to_vec();
    let response = app.deliver(&invalid_utf8).await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_json").await;

    let no_result = br#"{"identificationprocess":{"transactionnumber":"tn-1"}}"#.to_vec();
    let response = app.deliver(&no_result).await;
    let error = assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_webhook_payload",
    )
    .await;
    assert_eq!(error["detail"], "identificationprocess.result is missing");

    let no_transaction = br#"{"identificationprocess":{"result":"SUCCESS"}}"#.to_vec();
    let response = app.deliver(&no_transaction).await;
    let error = assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_webhook_payload",
    )
    .await;
    assert_eq!(
        error["detail"],
        "identificationprocess.transactionnumber is missing"
    );

    assert_eq!(app.attempt_count().await, 0);
    let kept = vec![
        (400, "invalid_json".to_owned(), not_json.clone()),
        (400, "invalid_json".to_owned(), invalid_utf8.clone()),
        (422, "invalid_webhook_payload".to_owned(), no_result.clone()),
        (
            422,
            "invalid_webhook_payload".to_owned(),
            no_transaction.clone(),
        ),
    ];
    assert_eq!(app.rejected_bodies().await, kept);

    // IDnow retries what it was not answered 2xx for: every retry is refused as the first
    // was, one after another or four at once, and none is kept again.
    for (status, code, body) in &kept {
        let status =
            StatusCode::from_u16(u16::try_from(*status).expect("a status")).expect("a status");
        assert_error(app.deliver(body).await, status, code).await;
        let retries = futures_util::future::join_all((0..4).map(|_| app.deliver(body))).await;
        for response in retries {
            assert_error(response, status, code).await;
        }
    }
    assert_eq!(app.rejected_bodies().await, kept);

    // The same bytes under a webhook-id of their own are another delivery: kept, once.
    for _ in 0..2 {
        let signed = Signed::Standard {
            secret: WEBHOOK_SECRET,
            id: "msg-no-result",
            timestamp: unix_now(),
        };
        let response = app.post_webhook(&no_result, signed).await;
        assert_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_webhook_payload",
        )
        .await;
    }
    let rejected = app.rejected().await;
    assert_eq!(rejected.len(), kept.len() + 1);
    assert_eq!(
        rejected[kept.len()].2.as_deref(),
        Some("msg-no-result"),
        "kept with its webhook-id"
    );
}

#[sqlx::test(migrations = false)]
async fn oversized_bodies_are_refused(pool: PgPool) {
    let app = spawn_app(pool).await;
    // The limit itself is taken: a body of exactly 1 MiB is stored.
    let mut whole = webhook_body("tn-limit", "SUCCESS", "2026-10-02T09:31:47+02:00");
    whole.pop();
    whole.extend_from_slice(br#","padding":""#);
    whole.resize(1024 * 1024 - 2, b'x');
    whole.extend_from_slice(b"\"}");
    assert_eq!(whole.len(), 1024 * 1024);
    assert_eq!(app.deliver(&whole).await.status(), StatusCode::ACCEPTED);

    let mut body = webhook_body("tn-big", "SUCCESS", "2026-10-02T09:31:47+02:00");
    body.pop();
    body.extend_from_slice(br#","padding":""#);
    body.resize(1024 * 1024 + 1, b'x');
    body.extend_from_slice(b"\"}");
    let response = app.deliver(&body).await;
    assert_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;

    // Streamed without a declared length, the limit holds all the same.
    let stream = futures_util::stream::iter(
        body.chunks(64 * 1024)
            .map(|chunk| Ok::<_, std::io::Error>(chunk.to_vec()))
            .collect::<Vec<_>>(),
    );
    let response = app
        .deliver_streamed(&body, reqwest::Body::wrap_stream(stream))
        .await;
    assert_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    assert_eq!(app.attempt_count().await, 1);
}

#[sqlx::test(migrations = false)]
async fn declared_content_types_other_than_json_are_refused(pool: PgPool) {
    let app = spawn_app(pool).await;
    let body = webhook_body("tn-ct", "SUCCESS", "2026-10-02T09:31:47+02:00");
    let signature = key(WEBHOOK_SECRET).hmac_signature(&body);
    let send = |content_type: Option<&'static str>| {
        let mut request = app
            .client
            .post(app.url("/v1/webhooks/idnow"))
            .header("x-idnow-signature", signature.clone())
            .body(body.clone());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.send()
    };
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "not a type",
    ] {
        let response = send(Some(content_type)).await.expect("sent");
        assert_error(
            response,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        )
        .await;
    }
    // Two declared types are none: not read by the first or the last (a proxy may read the
    // other one), whatever their order.
    for (first, second) in [
        ("application/json", "text/plain"),
        ("text/plain", "application/json"),
    ] {
        let response = app
            .client
            .post(app.url("/v1/webhooks/idnow"))
            .header("x-idnow-signature", signature.clone())
            .header("content-type", first)
            .header("content-type", second)
            .body(body.clone())
            .send()
            .await
            .expect("sent");
        assert_error(
            response,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        )
        .await;
    }
    assert_eq!(app.attempt_count().await, 0);

    let response = send(Some("application/json; charset=utf-8"))
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let response = send(None).await.expect("sent");
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "no declared type is read as JSON"
    );
}

#[sqlx::test(migrations = false)]
async fn content_codings_other_than_identity_are_refused_before_reading(pool: PgPool) {
    let app = spawn_app(pool).await;
    let body = webhook_body("tn-ce", "SUCCESS", "2026-10-02T09:31:47+02:00");
    let signature = key(WEBHOOK_SECRET).hmac_signature(&body);
    let coded = |coding: &str| {
        Signed::Headers(vec![
            ("content-encoding", coding.to_owned()),
            ("x-idnow-signature", signature.clone()),
        ])
    };
    for coding in ["gzip", "br", "deflate", "identity, gzip", "x-anything"] {
        // Correctly signed over the bytes as sent: the coding is what is refused.
        let response = app.post_webhook(&body, coded(coding)).await;
        assert_eq!(
            response
                .headers()
                .get("accept-encoding")
                .and_then(|v| v.to_str().ok()),
            Some("identity"),
            "{coding}"
        );
        assert_error(
            response,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_content_encoding",
        )
        .await;
    }
    // The registration route reads bodies the same way.
    let response = app
        .client
        .put(app.url(&format!("/v1/persons/{PERSON}/signings/sig-ce")))
        .bearer_auth(WRITE_TOKEN)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(r#"{"identification_id":"tn-ce"}"#)
        .send()
        .await
        .expect("sent");
    assert_error(
        response,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_content_encoding",
    )
    .await;
    let identity = app.post_webhook(&body, coded("identity")).await;
    assert_eq!(
        identity.status(),
        StatusCode::ACCEPTED,
        "identity is the body itself"
    );
    assert_eq!(app.attempt_count().await, 1);

    // Refused before the body is read: a head that promises a body and sends none is
    // answered at once.
    let port = app.port();
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connects");
    stream
        .write_all(
            b"POST /v1/webhooks/idnow HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\n\
              Content-Length: 100000\r\n\r\n",
        )
        .await
        .expect("head sent");
    let mut answer = vec![0; 1024];
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("answered without waiting for the body")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 415 "), "{answer}");
    assert!(answer.contains("unsupported_content_encoding"), "{answer}");
}

#[sqlx::test(migrations = false)]
async fn a_webhook_before_its_signing_joins_it_on_registration(pool: PgPool) {
    let app = spawn_app(pool).await;
    let response = app.deliver(&fixture("lifecycle/1_aborted.json")).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let id = acknowledged_id(response).await;

    let response = app.list(PERSON, "sig-early", "").await;
    assert_error(response, StatusCode::NOT_FOUND, "not_found").await;

    assert_eq!(
        app.register(PERSON, "sig-early", LIFECYCLE_TN)
            .await
            .status(),
        201
    );
    let history = listed(app.list(PERSON, "sig-early", "").await).await;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].id, id);
    assert_eq!(history[0].reason.as_deref(), Some("TECH_LIGHTING"));

    // Once registered, new attempts are 201.
    let response = app
        .deliver(&fixture("lifecycle/2_review_pending.json"))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
}

/// Under load the service stores concurrent deliveries in shared batches; each still gets
/// its own answer, and a delivery sent twice at once is stored once, whichever batch the two
/// land in.
#[sqlx::test(migrations = false)]
async fn concurrent_distinct_deliveries_each_sent_twice_are_stored_once_each(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.register(PERSON, "sig-1", "tn-burst").await;
    let bodies: Vec<Vec<u8>> = (0..40)
        .map(|n| {
            webhook_body(
                "tn-burst",
                "ABORTED",
                &format!("2026-10-02T09:{:02}:{:02}+02:00", n / 60, n % 60),
            )
        })
        .collect();
    let answers = futures_util::future::join_all(
        bodies
            .iter()
            .flat_map(|body| [body, body])
            .map(|body| app.deliver(body)),
    )
    .await;
    let mut ids = Vec::new();
    let mut created = 0;
    for answer in answers {
        if answer.status() == StatusCode::CREATED {
            created += 1;
        }
        ids.push(acknowledged_id(answer).await);
    }
    assert_eq!(created, 40, "one of each pair is the original");
    for pair in ids.chunks(2) {
        assert_eq!(
            pair[0], pair[1],
            "both sends of a delivery name the same attempt"
        );
    }
    assert_eq!(app.attempt_count().await, 40);
    let listed = listed(app.list(PERSON, "sig-1", "?page[size]=100").await).await;
    assert_eq!(listed.len(), 40);
}
