//! `DELETE /v1/persons/{person_id}`: everything held for a person erased, in one transaction,
//! and nothing of an erased identification stored again.

use std::sync::Arc;

use reqwest::StatusCode;
use sha2::{Digest as _, Sha256};
use sqlx::PgPool;

use crate::helpers::*;
use crate::metrics::{grew, scrape};

const OTHER_PERSON: &str = "0b5e7c1d9a2f4e6b8c0d1e2f3a4b5c6dper";

async fn erase(app: &TestApp, person: &str) -> serde_json::Value {
    let response = app.erase_as(ERASE_TOKEN, person).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(content_type(&response), Some("application/json"));
    response.json().await.expect("a JSON body")
}

async fn attempts_of(pool: &PgPool, transaction_number: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM attempts WHERE transaction_number = $1")
        .bind(transaction_number)
        .fetch_one(pool)
        .await
        .expect("count")
}

#[sqlx::test(migrations = false)]
async fn erasure_removes_a_person_counts_it_and_acknowledges_late_deliveries(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.register(PERSON, "sig-1", "tn-erase-1").await;
    app.register(PERSON, "sig-2", "tn-erase-2").await;
    app.register(OTHER_PERSON, "sig-3", "tn-keep").await;
    for (tn, result, time) in [
        ("tn-erase-1", "ABORTED", "2026-10-01T10:00:00Z"),
        ("tn-erase-1", "SUCCESS", "2026-10-01T11:00:00Z"),
        ("tn-erase-2", "SUCCESS", "2026-10-02T11:00:00Z"),
        ("tn-keep", "SUCCESS", "2026-10-02T11:00:00Z"),
    ] {
        let response = app.deliver(&webhook_body(tn, result, time)).await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    // Authentic, refused and kept: of the person's first identification, and of nobody's.
    let no_result = br#"{"identificationprocess":{"transactionnumber":"tn-erase-1"}}"#;
    assert_eq!(
        app.deliver(no_result).await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        app.deliver(b"{not json").await.status(),
        StatusCode::BAD_REQUEST
    );

    // Without the scope: nothing happens.
    let response = app
        .client
        .delete(app.url(&format!("/v1/persons/{PERSON}")))
        .send()
        .await
        .expect("sent");
    assert_eq!(
        response
            .headers()
            .get("www-authenticate")
            .map(|v| v.as_bytes()),
        Some(&b"Bearer"[..])
    );
    assert_error(response, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    for token in [READ_TOKEN, WRITE_TOKEN, NO_SCOPE_TOKEN] {
        let response = app.erase_as(token, PERSON).await;
        let error = assert_error(response, StatusCode::FORBIDDEN, "unauthorized_action").await;
        assert_eq!(error["title"], "Unauthorized Action");
    }
    assert_eq!(app.attempt_count().await, 4);
    let response = app.erase_as(ERASE_TOKEN, "not a person id!").await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_path_parameter").await;

    let before = scrape(&app).await;
    assert_eq!(
        erase(&app, PERSON).await,
        serde_json::json!({"signings": 2, "attempts": 3, "rejected_deliveries": 1})
    );
    assert_eq!(
        app.list(PERSON, "sig-1", "").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.list(PERSON, "sig-2", "").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(attempts_of(&pool, "tn-erase-1").await, 0);
    assert_eq!(attempts_of(&pool, "tn-erase-2").await, 0);
    // The other person, and what names nobody, are untouched.
    assert_eq!(
        listed(app.list(OTHER_PERSON, "sig-3", "").await)
            .await
            .len(),
        1
    );
    let kept = app.rejected_bodies().await;
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].2, b"{not json");

    // Remembered as digests only.
    let remembered: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT digest FROM erased_identifications ORDER BY digest")
            .fetch_all(&pool)
            .await
            .expect("digests");
    let mut digests: Vec<Vec<u8>> = ["tn-erase-1", "tn-erase-2"]
        .iter()
        .map(|tn| Sha256::digest(tn.as_bytes()).to_vec())
        .collect();
    digests.sort();
    assert_eq!(remembered, digests);

    // Late deliveries, stored or refused alike: 204, nothing kept.
    let late = app
        .deliver(&webhook_body(
            "tn-erase-1",
            "SUCCESS",
            "2026-10-03T11:00:00Z",
        ))
        .await;
    assert_eq!(late.status(), StatusCode::NO_CONTENT);
    assert!(late.bytes().await.expect("body").is_empty());
    let redelivered = app
        .deliver(&webhook_body(
            "tn-erase-2",
            "SUCCESS",
            "2026-10-02T11:00:00Z",
        ))
        .await;
    assert_eq!(redelivered.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.deliver(no_result).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.attempt_count().await, 1);
    assert_eq!(app.rejected_bodies().await.len(), 1);
    let after = scrape(&app).await;
    assert_eq!(
        grew(&before, &after, "idnow_webhook_erased_deliveries_total"),
        3.0
    );
    assert_eq!(grew(&before, &after, "idnow_person_erasures_total"), 1.0);

    // Again: nothing left, zeros.
    assert_eq!(
        erase(&app, PERSON).await,
        serde_json::json!({"signings": 0, "attempts": 0, "rejected_deliveries": 0})
    );
    // A person never seen: zeros too.
    assert_eq!(
        erase(&app, "ffffffffffffffffffffffffffffffffper").await,
        serde_json::json!({"signings": 0, "attempts": 0, "rejected_deliveries": 0})
    );
}

/// A refused body is erased by every identification it names, even where it is not readable
/// as a whole (a key sent twice, cut short, a raw line break in a text, bytes after its end;
/// named by IDnow's file name alone),
/// and one naming an erased identification anywhere is acknowledged and not kept again. A
/// red-team session found such bodies kept past their person's erasure, and kept again after
/// it; a review, a body kept past the erasure of the second identification it named.
#[sqlx::test(migrations = false)]
async fn refused_bodies_are_erased_by_every_identification_they_name(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.register(PERSON, "sig-1", "tn-unreadable").await;
    app.register(OTHER_PERSON, "sig-2", "tn-other").await;
    // A red-team session's: sixteen numbers of nobody's before the person's.
    let decoys: String = (0..16)
        .map(|n| format!(r#""identificationprocess":{{"transactionnumber":"tn-decoy-{n}"}},"#))
        .collect();
    let behind_decoys = format!(
        r#"{{{decoys}"identificationprocess":{{"result":"SUCCESS","transactionnumber":"tn-unreadable"}}}}"#
    );
    let of_the_person: [&[u8]; 12] = [
        behind_decoys.as_bytes(),
        br#"{"identificationprocess":{"result":"SUCCESS","transactionnumber":["tn-unreadable"]}}"#,
        br#"{"identificationprocess":{"result":"SUCCESS","result":"SUCCESS","transactionnumber":"tn-unreadable"},"userdata":{"lastname":{"value":"MUSTERMANN"}}}"#,
        br#"{"identificationprocess":{"transactionnumber":"tn-unreadable"},"identificationprocess":{"result":"SUCCESS"}}"#,
        br#"{"identificationprocess":{"result":"SUCCESS","transactionnumber":"tn-unreadable"}} trailing"#,
        br#"{"identificationprocess":{"transactionnumber":"tn-unreadable","result":"SUCC"#,
        // Cut short before its transactionnumber: named by IDnow's file name (a red-team
        // session's).
        br#"{"identificationprocess":{"result":"SUCCESS","filename":"tn-unreadable.zip","agentname":"TRO"#,
        b"{\"identificationprocess\":{\"result\":\"ABORTED\",\"reason\":\"line\nbreak\",\"transactionnumber\":\"tn-unreadable\"}}",
        // An escape JSON does not know beside the number (a red-team session's).
        br#"{"identificationprocess":{"result":"A","transactionnumber":"tn-unreadable\ud800"},"userdata":{"firstname":{"value":"MUSTERMANN"}}}"#,
        br#"{"identificationprocess":{"result":"A","transactionnumber":"tn-unreadable\x"}}"#,
        // Naming both, in either order: erased with either person.
        br#"{"identificationprocess":{"transactionnumber":"tn-unreadable","transactionnumber":"tn-other"}}"#,
        br#"{"identificationprocess":{"transactionnumber":"tn-other","transactionnumber":"tn-unreadable"}}"#,
    ];
    for body in of_the_person {
        let status = app.deliver(body).await.status();
        assert!(
            [StatusCode::BAD_REQUEST, StatusCode::UNPROCESSABLE_ENTITY].contains(&status),
            "{status} for {}",
            String::from_utf8_lossy(body)
        );
    }
    let of_another = br#"{"identificationprocess":{"transactionnumber":"tn-other"}}"#;
    assert_eq!(
        app.deliver(of_another).await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(app.rejected_bodies().await.len(), 13);

    assert_eq!(
        erase(&app, PERSON).await,
        serde_json::json!({"signings": 1, "attempts": 0, "rejected_deliveries": 12})
    );
    let kept = app.rejected_bodies().await;
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].2, of_another);

    // Late: every one of them, also where the erased identification is named second.
    for body in of_the_person {
        let late = app.deliver(body).await;
        assert_eq!(
            late.status(),
            StatusCode::NO_CONTENT,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    assert_eq!(app.rejected_bodies().await.len(), 1);

    // The other way round: a body naming the other person's identification second goes
    // with that person.
    app.register(PERSON, "sig-3", "tn-third").await;
    let both = br#"{"identificationprocess":{"transactionnumber":"tn-third","transactionnumber":"tn-other"}}"#;
    assert_eq!(
        app.deliver(both).await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        erase(&app, OTHER_PERSON).await,
        serde_json::json!({"signings": 1, "attempts": 0, "rejected_deliveries": 2})
    );
    assert!(app.rejected_bodies().await.is_empty());

    // Naming more than erasure could afford to look for: answered, not kept.
    let values: Vec<String> = (0..=idnow_attempts::domain::MAX_NAMED)
        .map(|n| format!(r#""tn-many-{n}""#))
        .collect();
    let many = format!(
        r#"{{"identificationprocess":{{"transactionnumber":[{}]}}}}"#,
        values.join(",")
    );
    assert_eq!(
        app.deliver(many.as_bytes()).await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert!(app.rejected_bodies().await.is_empty());
}

/// Many deliveries of one identification race its erasure: each is either erased with it
/// (it was answered 201, or 422 and kept, before) or answered 204; none is left behind.
#[sqlx::test(migrations = false)]
async fn deliveries_racing_an_erasure_are_erased_with_it_or_acknowledged(pool: PgPool) {
    /// Senders at once; each sends distinct events until it has been answered 204 thrice.
    /// Every fourth sends events without a result, refused 422 and kept.
    const SENDERS: usize = 16;
    let app = Arc::new(spawn_app(pool.clone()).await);
    app.register(PERSON, "sig-race", "tn-race").await;
    let senders: Vec<_> = (0..SENDERS)
        .map(|sender| {
            let app = Arc::clone(&app);
            tokio::spawn(async move {
                let mut answers = Vec::new();
                for n in 0..3600 {
                    let time = format!("2026-10-01T{sender:02}:{:02}:{:02}Z", n / 60, n % 60);
                    let mut body: serde_json::Value =
                        serde_json::from_slice(&webhook_body("tn-race", "ABORTED", &time))
                            .expect("JSON");
                    if sender % 4 == 0 {
                        body["identificationprocess"]["result"] = serde_json::Value::Null;
                    }
                    let body = serde_json::to_vec(&body).expect("JSON");
                    let status = app.deliver(&body).await.status();
                    answers.push(status);
                    if answers
                        .iter()
                        .filter(|s| **s == StatusCode::NO_CONTENT)
                        .count()
                        == 3
                    {
                        return answers;
                    }
                }
                panic!("sender {sender} was never told the identification is erased");
            })
        })
        .collect();
    // Erase while deliveries are being stored.
    wait_until(|| async { attempts_of(&pool, "tn-race").await >= 50 }).await;
    let erased = erase(&app, PERSON).await;

    let (mut created, mut kept) = (0, 0);
    for (sender, answers) in senders.into_iter().enumerate() {
        let answers = answers.await.expect("the sender ends");
        // Once a sender has been told "erased", it is never told "stored" or "kept" again.
        let first_erased = answers
            .iter()
            .position(|s| *s == StatusCode::NO_CONTENT)
            .expect("answered 204");
        let before = if sender % 4 == 0 {
            kept += first_erased;
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            created += first_erased;
            StatusCode::CREATED
        };
        assert!(
            answers[..first_erased].iter().all(|s| *s == before),
            "{answers:?}"
        );
        assert!(
            answers[first_erased..]
                .iter()
                .all(|s| *s == StatusCode::NO_CONTENT),
            "{answers:?}"
        );
    }
    assert!(created >= 50 && kept > 0, "{created} {kept}");
    assert_eq!(
        erased,
        serde_json::json!({"signings": 1, "attempts": created, "rejected_deliveries": kept})
    );
    assert_eq!(attempts_of(&pool, "tn-race").await, 0, "none left behind");
    assert!(
        app.rejected_bodies().await.is_empty(),
        "no kept body left behind"
    );
}

/// A VACUUM of `attempts` (SHARE UPDATE EXCLUSIVE, as this lock) keeps the erasure from its
/// lock: it gives up after its lock timeout with a 503 to retry, instead of holding ingest back
/// behind it, and goes through once the table is free.
#[sqlx::test(migrations = false)]
async fn an_erasure_kept_from_its_lock_is_a_503_to_retry(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.register(PERSON, "sig-vacuum", "tn-vacuum").await;
    let body = webhook_body("tn-vacuum", "SUCCESS", "2026-10-01T10:00:00Z");
    assert_eq!(app.deliver(&body).await.status(), StatusCode::CREATED);

    let vacuum = AttemptsLock::take(&pool.connect_options(), "SHARE UPDATE EXCLUSIVE").await;
    let started = std::time::Instant::now();
    assert_unavailable(app.erase_as(ERASE_TOKEN, PERSON).await).await;
    let waited = started.elapsed();
    assert!(waited < std::time::Duration::from_secs(5), "{waited:?}");
    // Nothing was erased; ingest goes on.
    assert_eq!(attempts_of(&pool, "tn-vacuum").await, 1);
    let next = webhook_body("tn-vacuum", "SUCCESS", "2026-10-02T10:00:00Z");
    assert_eq!(app.deliver(&next).await.status(), StatusCode::CREATED);
    vacuum.release().await;

    assert_eq!(
        erase(&app, PERSON).await,
        serde_json::json!({"signings": 1, "attempts": 2, "rejected_deliveries": 0})
    );
}

/// The erasure finds a person's signings through an index, not by reading every signing: it
/// does so while ingest waits for it.
#[sqlx::test(migrator = "idnow_attempts::persistence::MIGRATOR")]
async fn an_erasure_finds_the_persons_signings_through_an_index(pool: PgPool) {
    // As on a table large enough for an index to pay; without one the scan stays.
    let plan = plan_of(
        &pool,
        "erase.sql",
        "erase(text)",
        "erase('some-person')",
        &["enable_seqscan = off"],
    )
    .await;
    // The kept rejected deliveries too, by either column (a review found the whole table
    // read once a second column joined the condition).
    let scans = plan.iter().any(|line| {
        line.contains("Seq Scan on signings") || line.contains("Seq Scan on rejected_deliveries")
    });
    assert!(!scans, "{}", plan.join("\n"));
}
