//! Identity data at rest: what a copy of the database holds, key rotation with `reencrypt`,
//! readiness without a key in use, and rows that do not authenticate.

use reqwest::StatusCode;
use sqlx::PgPool;

use crate::helpers::*;
use crate::process::ServiceProcess;

const K1: &str = "k1:MTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTE=";
const K2: &str = "k2:MjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjI=";
const K3: &str = "k3:MzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzM=";
const OTHER_PERSON: &str = "0b9a6812a14f6cc338cd084208535bcdcper";

/// Every fixture delivered, on two registered signings; returns (signing, fixture) pairs in
/// the order each signing lists them.
async fn deliver_every_fixture(app: &TestApp) -> Vec<(&'static str, Vec<Vec<u8>>)> {
    assert_eq!(
        app.register(
            PERSON,
            "sig-upstream",
            "b2d949eb12ecd6798fa8e2ae66fc4a5acidt"
        )
        .await
        .status(),
        StatusCode::CREATED
    );
    assert_eq!(
        app.register(
            PERSON,
            "sig-lifecycle",
            "7f3c5a19d2e84b06a1c9e5f2b3d4a6c8cidt"
        )
        .await
        .status(),
        StatusCode::CREATED
    );
    for file in FIXTURES {
        let response = app.deliver(&fixture(file)).await;
        assert_eq!(response.status(), StatusCode::CREATED, "{file}");
    }
    // As the listing orders them: by identification time, then arrival.
    let lifecycle = [
        "lifecycle/1_aborted.json",
        "lifecycle/2_review_pending.json",
        "lifecycle/3_success_data_changed.json",
        "canceled_after_review.json",
        "fraud_suspicion_pending.json",
    ];
    vec![
        ("sig-upstream", vec![fixture("success.json")]),
        (
            "sig-lifecycle",
            lifecycle.iter().map(|f| fixture(f)).collect(),
        ),
    ]
}

/// Every listed payload is the body as sent, byte for byte (less surrounding whitespace).
async fn assert_listed_byte_for_byte(app: &TestApp, expected: &[(&str, Vec<Vec<u8>>)]) {
    for (signing, bodies) in expected {
        let listed = listed(app.list(PERSON, signing, "?page[size]=100").await).await;
        let payloads: Vec<&str> = listed.iter().map(|a| a.payload.get()).collect();
        let sent: Vec<&str> = bodies
            .iter()
            .map(|body| std::str::from_utf8(body).expect("UTF-8").trim())
            .collect();
        assert_eq!(payloads, sent, "{signing}");
    }
}

/// A plain-text `pg_dump` of the test's database, as a backup or a stolen copy would be.
fn pg_dump(pool: &PgPool) -> String {
    let program = std::env::var("PG_BIN_DIR")
        .map(|dir| format!("{dir}/pg_dump"))
        .unwrap_or_else(|_| "pg_dump".to_owned());
    let output = std::process::Command::new(&program)
        .arg("--format=plain")
        .arg(database_url(&pool.connect_options()))
        .output()
        .unwrap_or_else(|e| panic!("{program} runs (scripts/test installs it): {e}"));
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).expect("a plain dump is text")
}

/// A dump's text less its `bytea` values (`\\x…`) and uuids, and those `bytea` values' hex,
/// one per line.
fn split_hex_values(dump: &str) -> (String, String) {
    let is_uuid = |word: &str| {
        let groups: Vec<&str> = word.split('-').collect();
        groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
            && groups
                .iter()
                .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    let (mut text, mut blobs) = (String::new(), String::new());
    for line in dump.lines() {
        // COPY data separates columns by tabs.
        for field in line.split('\t') {
            if let Some(hex) = field.strip_prefix("\\\\x") {
                blobs.push_str(hex);
                blobs.push('\n');
            } else if !is_uuid(field) {
                text.push_str(field);
                text.push('\t');
            }
        }
        text.push('\n');
    }
    (text, blobs)
}

fn with_keys(keys: &str) -> std::collections::HashMap<String, String> {
    let mut environment = test_environment();
    environment.insert("PAYLOAD_ENCRYPTION_KEYS".to_owned(), keys.to_owned());
    environment
}

#[sqlx::test(migrations = false)]
async fn a_copy_of_the_database_holds_no_personal_data_and_the_listing_every_byte(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let expected = deliver_every_fixture(&app).await;
    // Authentic, refused (no result) and kept: a whole identity document all the same.
    let mut refused: serde_json::Value =
        serde_json::from_slice(&fixture("success.json")).expect("JSON");
    refused["identificationprocess"]
        .as_object_mut()
        .expect("an object")
        .remove("result");
    let refused = serde_json::to_vec(&refused).expect("JSON");
    let response = app.deliver(&refused).await;
    assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_webhook_payload",
    )
    .await;
    assert_eq!(app.rejected_bodies().await.len(), 1);

    let dump = pg_dump(&pool);
    assert!(dump.contains("CREATE TABLE public.attempts"), "a real dump");
    let values = personal_values();
    assert!(
        values.len() > 20,
        "the fixtures hold personal data: {values:?}"
    );
    // Ciphertexts and digests are random hex: a short number (a postcode) turns up in them by
    // chance. So values are looked for as text outside the `bytea` and `uuid` values, and
    // hex-encoded inside the `bytea` ones, where a body kept unencrypted would show.
    let (text, blobs) = split_hex_values(&dump);
    let leaked: Vec<&String> = values
        .iter()
        .filter(|v| text.contains(v.as_str()) || blobs.contains(&hex::encode(v.as_bytes())))
        .collect();
    assert!(leaked.is_empty(), "the dump holds {leaked:?}");
    // What is needed to find and order attempts stays readable.
    assert!(dump.contains("b2d949eb12ecd6798fa8e2ae66fc4a5acidt"));
    assert!(dump.contains("SUCCESS_DATA_CHANGED"));

    assert_listed_byte_for_byte(&app, &expected).await;
    assert_eq!(app.rejected_bodies().await[0].2, refused);
}

#[sqlx::test(migrations = false)]
async fn keys_rotate_through_reencrypt_and_a_missing_key_keeps_readiness_503(pool: PgPool) {
    // Stored under k1.
    let app = spawn_app_with(pool.clone(), with_keys(K1)).await;
    let expected = deliver_every_fixture(&app).await;
    assert_eq!(
        app.deliver(b"{not json").await.status(),
        StatusCode::BAD_REQUEST
    );
    drop(app);
    // A row of before encryption: plain text, no key.
    let legacy = webhook_body("tn-legacy", "SUCCESS", "2026-10-01T10:00:00Z");
    sqlx::query(
        "INSERT INTO attempts (id, transaction_number, result, dedup_key, payload)
         VALUES (gen_random_uuid(), 'tn-legacy', 'SUCCESS', sha256('legacy'), $1::text::json)",
    )
    .bind(std::str::from_utf8(&legacy).expect("UTF-8"))
    .execute(&pool)
    .await
    .expect("a plain row, as the previous release wrote it");
    sqlx::query(
        "INSERT INTO rejected_deliveries (id, status, error_code, body)
         VALUES (gen_random_uuid(), 400, 'invalid_json', '\\xff00'::bytea)",
    )
    .execute(&pool)
    .await
    .expect("a plain kept body");

    // k2 first, k1 still listed: everything reads, new rows go under k2.
    let app = spawn_app_with(pool.clone(), with_keys(&format!("{K2},{K1}"))).await;
    assert_eq!(app.get("/health/ready").await.status(), StatusCode::OK);
    app.register(PERSON, "sig-legacy", "tn-legacy").await;
    let mut expected = expected;
    expected.push(("sig-legacy", vec![legacy.clone()]));
    assert_listed_byte_for_byte(&app, &expected).await;

    let output = operator_command(
        &pool,
        &["reencrypt"],
        &[("PAYLOAD_ENCRYPTION_KEYS", &format!("{K2},{K1}"))],
    )
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout.contains("re-encrypting under key k2: 7 attempts, 2 rejected deliveries"),
        "{stdout}"
    );
    assert!(stdout.contains("attempts: 7 of 7 re-encrypted"), "{stdout}");
    assert!(
        stdout.contains("rejected deliveries: 2 of 2 re-encrypted"),
        "{stdout}"
    );
    assert!(
        stdout.contains("no row uses key id(s) k1 any more"),
        "{stdout}"
    );
    // Its log went to stderr: stdout is only its progress.
    assert!(!stdout.contains('{'), "{stdout}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("\"idnow-attempts starting\""),
        "{output:?}"
    );
    let keys: Vec<(Option<String>, bool)> = sqlx::query_as(
        "SELECT key_id, payload IS NULL FROM attempts
         UNION ALL SELECT key_id, body IS NULL FROM rejected_deliveries",
    )
    .fetch_all(&pool)
    .await
    .expect("rows");
    assert_eq!(keys.len(), 9);
    assert!(
        keys.iter().all(|k| *k == (Some("k2".to_owned()), true)),
        "{keys:?}"
    );
    // Idempotent: nothing left to do.
    let again = operator_command(
        &pool,
        &["reencrypt"],
        &[("PAYLOAD_ENCRYPTION_KEYS", &format!("{K2},{K1}"))],
    )
    .await;
    assert!(again.status.success(), "{again:?}");
    assert!(String::from_utf8_lossy(&again.stdout).contains("0 attempts, 0 rejected deliveries"));
    drop(app);

    // k2 alone reads everything.
    let app = spawn_app_with(pool.clone(), with_keys(K2)).await;
    assert_eq!(app.get("/health/ready").await.status(), StatusCode::OK);
    assert_listed_byte_for_byte(&app, &expected).await;
    drop(app);

    // k1 alone cannot: not ready, and the log says which key is missing.
    let service = ServiceProcess::start(&pool, &[("PAYLOAD_ENCRYPTION_KEYS", K1)]);
    let response = service.app.get("/health/ready").await;
    assert_error(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
    )
    .await;
    service.signal(nix::sys::signal::Signal::SIGTERM);
    let (_, log) = service.wait().await;
    let named = log
        .iter()
        .any(|line| line.contains("/health/ready") && line.contains("key id(s) k2"));
    assert!(named, "{log:#?}");
    let material = [K1, K2].map(|k| k.split_once(':').expect("id:key").1);
    assert!(
        !log.iter()
            .any(|line| material.iter().any(|m| line.contains(m))),
        "no key material in the log"
    );
}

#[sqlx::test(migrations = false)]
async fn a_tampered_or_swapped_payload_is_a_clean_500_naming_the_attempt(pool: PgPool) {
    let service = ServiceProcess::start(&pool, &[]);
    let app = &service.app;
    app.register(PERSON, "sig-1", "tn-tamper").await;
    app.register(PERSON, "sig-2", "tn-other").await;
    let first = acknowledged_id(
        app.deliver(&webhook_body(
            "tn-tamper",
            "ABORTED",
            "2026-10-01T10:00:00Z",
        ))
        .await,
    )
    .await;
    let second = acknowledged_id(
        app.deliver(&webhook_body(
            "tn-tamper",
            "SUCCESS",
            "2026-10-01T11:00:00Z",
        ))
        .await,
    )
    .await;
    let other = acknowledged_id(
        app.deliver(&webhook_body("tn-other", "SUCCESS", "2026-10-01T11:00:00Z"))
            .await,
    )
    .await;
    let uuid = |id: &str| uuid::Uuid::parse_str(&id[..32]).expect("an attempt id");
    assert_eq!(listed(app.list(PERSON, "sig-1", "").await).await.len(), 2);

    // One bit of one ciphertext flipped.
    sqlx::query(
        "UPDATE attempts SET sealed = set_byte(sealed, 40, get_byte(sealed, 40) # 1) WHERE id = $1",
    )
    .bind(uuid(&second))
    .execute(&pool)
    .await
    .expect("tampered");
    let body = assert_error(
        app.list(PERSON, "sig-1", "").await,
        StatusCode::INTERNAL_SERVER_ERROR,
        "generic_error",
    )
    .await;
    assert_eq!(body["title"], "Generic Error");
    // The other signing is untouched.
    assert_eq!(listed(app.list(PERSON, "sig-2", "").await).await.len(), 1);

    // Two rows' ciphertexts swapped, each valid for its own row.
    sqlx::query(
        "UPDATE attempts a SET sealed = b.sealed FROM attempts b
         WHERE (a.id, b.id) IN (($1, $2), ($2, $1))",
    )
    .bind(uuid(&first))
    .bind(uuid(&other))
    .execute(&pool)
    .await
    .expect("swapped");
    let body = assert_error(
        app.list(PERSON, "sig-2", "").await,
        StatusCode::INTERNAL_SERVER_ERROR,
        "generic_error",
    )
    .await;
    assert!(!body.to_string().contains("tn-"), "{body}");

    service.signal(nix::sys::signal::Signal::SIGTERM);
    let (_, log) = service.wait().await;
    let failures: Vec<&String> = log
        .iter()
        .filter(|line| line.contains("does not authenticate"))
        .collect();
    assert_eq!(failures.len(), 2, "{log:#?}");
    assert!(failures[0].contains(&second) && failures[0].contains("\"status\":500"));
    assert!(failures[1].contains(&other));
    for line in &log {
        assert!(
            !line.contains("TROBOT") && !line.contains("solarisbank"),
            "{line}"
        );
    }
}

/// A replica still encrypting with the old key after `reencrypt` (a roll-out not finished):
/// its rows register the key again, so that readiness without it stays 503 until a second
/// `reencrypt` has moved them.
#[sqlx::test(migrations = false)]
async fn a_replica_still_on_the_old_key_keeps_it_registered(pool: PgPool) {
    let rotated = format!("{K2},{K1}");
    let old = spawn_app_with(pool.clone(), with_keys(K1)).await;
    let body = |minute: u32| {
        webhook_body(
            "tn-replica",
            "ABORTED",
            &format!("2026-10-01T10:{minute:02}:00Z"),
        )
    };
    assert_eq!(old.deliver(&body(0)).await.status(), StatusCode::ACCEPTED);
    let output = operator_command(
        &pool,
        &["reencrypt"],
        &[("PAYLOAD_ENCRYPTION_KEYS", &rotated)],
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("no row uses key id(s) k1 any more"));

    // The old replica writes on, with k1.
    assert_eq!(old.deliver(&body(1)).await.status(), StatusCode::ACCEPTED);
    let new = spawn_app_with(pool.clone(), with_keys(K2)).await;
    let response = new.get("/health/ready").await;
    assert_error(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
    )
    .await;

    // Once it is gone, a second run moves its rows and readiness follows.
    drop(old);
    let output = operator_command(
        &pool,
        &["reencrypt"],
        &[("PAYLOAD_ENCRYPTION_KEYS", &rotated)],
    )
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout.contains("attempts: 1 of 1 re-encrypted"), "{stdout}");
    assert_eq!(new.get("/health/ready").await.status(), StatusCode::OK);
}

/// `reencrypt` run with keys that open no row (an operator's wrong PAYLOAD_ENCRYPTION_KEYS)
/// fails, changes no row, and leaves nothing behind: the replicas that hold the right keys
/// stay ready, as no row is under the key it was given.
#[sqlx::test(migrations = false)]
async fn reencrypt_with_the_wrong_keys_fails_and_leaves_the_replicas_ready(pool: PgPool) {
    let app = spawn_app_with(pool.clone(), with_keys(K1)).await;
    let body = webhook_body("tn-wrong-keys", "SUCCESS", "2026-10-01T10:00:00Z");
    let delivered = app.deliver(&body).await;
    assert_eq!(delivered.status(), StatusCode::ACCEPTED);
    let stored: serde_json::Value = delivered.json().await.expect("a JSON answer");
    let id = stored["id"].as_str().expect("the attempt's id");
    assert_eq!(app.get("/health/ready").await.status(), StatusCode::OK);

    let output = operator_command(&pool, &["reencrypt"], &[("PAYLOAD_ENCRYPTION_KEYS", K3)]).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{output:?}");
    // The row it could not open, by the id the sender was answered and the API lists.
    assert!(
        stdout.contains(&format!("\nattempts {id}: left as it is: ")),
        "{stdout}"
    );
    assert!(stdout.contains("attempts: 0 of 1 re-encrypted"), "{stdout}");

    let keys: Vec<String> = sqlx::query_scalar("SELECT key_id FROM payload_keys ORDER BY 1")
        .fetch_all(&pool)
        .await
        .expect("registered keys");
    assert_eq!(keys, ["k1"]);
    let rows: Vec<Option<String>> = sqlx::query_scalar("SELECT key_id FROM attempts")
        .fetch_all(&pool)
        .await
        .expect("rows");
    assert_eq!(rows, [Some("k1".to_owned())]);
    assert_eq!(app.get("/health/ready").await.status(), StatusCode::OK);
    app.register(PERSON, "sig-wrong-keys", "tn-wrong-keys")
        .await;
    assert_listed_byte_for_byte(&app, &[("sig-wrong-keys", vec![body])]).await;
}

/// Under k3, first in the list: an attempt and a refused body of a person, then erased. Returns
/// with k3 registered and no row under it.
async fn erase_every_row_under_k3(pool: &PgPool) {
    let rotated = spawn_app_with(pool.clone(), with_keys(&format!("{K3},{K2},{K1}"))).await;
    rotated.register(PERSON, "sig-k3", "tn-k3").await;
    let stored = rotated
        .deliver(&webhook_body("tn-k3", "SUCCESS", "2026-10-01T10:00:00Z"))
        .await;
    assert_eq!(stored.status(), StatusCode::CREATED);
    // Refused and kept, under k3 too.
    let no_result = br#"{"identificationprocess":{"transactionnumber":"tn-k3"}}"#;
    assert_eq!(
        rotated.deliver(no_result).await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let erased = rotated.erase_as(ERASE_TOKEN, PERSON).await;
    assert_eq!(erased.status(), StatusCode::OK);
    let counts: serde_json::Value = erased.json().await.expect("a JSON body");
    assert_eq!(
        counts,
        serde_json::json!({"signings": 1, "attempts": 1, "rejected_deliveries": 1})
    );
    assert!(registered_keys(pool).await.contains(&"k3".to_owned()));
}

async fn registered_keys(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT key_id FROM payload_keys ORDER BY key_id")
        .fetch_all(pool)
        .await
        .expect("the registered keys")
}

/// A key whose rows were all erased is still registered. A replica started without it is not
/// ready at first, looks whether any row still uses it, unregisters it, and is ready; a key
/// dropped while rows do use it stays registered, and the replica unready.
#[sqlx::test(migrations = false)]
async fn a_replica_without_a_key_whose_rows_are_gone_turns_ready_on_its_own(pool: PgPool) {
    // A row under k1, which stays.
    let app = spawn_app_with(pool.clone(), with_keys(K1)).await;
    app.register(OTHER_PERSON, "sig-k1", "tn-k1").await;
    let stored = app
        .deliver(&webhook_body("tn-k1", "SUCCESS", "2026-10-01T10:00:00Z"))
        .await;
    assert_eq!(stored.status(), StatusCode::CREATED);
    drop(app);
    erase_every_row_under_k3(&pool).await;
    assert_eq!(registered_keys(&pool).await, ["k1", "k3"]);

    // Without k1 and k3: both are named, and the look unregisters k3 only.
    let without_both = spawn_app_with(pool.clone(), with_keys(K2)).await;
    let refused = without_both.get("/health/ready").await;
    assert_error(
        refused,
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
    )
    .await;
    wait_until(|| async { registered_keys(&pool).await == ["k1"] }).await;
    assert_error(
        without_both.get("/health/ready").await,
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
    )
    .await;
    drop(without_both);

    // Without k3 only: ready at once.
    let without_k3 = spawn_app_with(pool.clone(), with_keys(&format!("{K2},{K1}"))).await;
    assert_eq!(
        without_k3.get("/health/ready").await.status(),
        StatusCode::OK
    );
    without_k3.register(OTHER_PERSON, "sig-k1", "tn-k1").await;
    assert_eq!(
        listed(without_k3.list(OTHER_PERSON, "sig-k1", "").await)
            .await
            .len(),
        1
    );
}

/// `reencrypt` run with the keys that stay unregisters a key whose rows were all erased, and
/// says so; a replica started without that key is then ready at its first probe.
#[sqlx::test(migrations = false)]
async fn reencrypt_forgets_a_key_whose_rows_were_all_erased(pool: PgPool) {
    erase_every_row_under_k3(&pool).await;
    let output = operator_command(&pool, &["reencrypt"], &[("PAYLOAD_ENCRYPTION_KEYS", K2)]).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout.contains("re-encrypting under key k2: 0 attempts, 0 rejected deliveries"),
        "{stdout}"
    );
    assert!(
        stdout.contains("no row uses key id(s) k3 any more"),
        "{stdout}"
    );
    let without_k3 = spawn_app_with(pool.clone(), with_keys(K2)).await;
    assert_eq!(
        without_k3.get("/health/ready").await.status(),
        StatusCode::OK
    );
}
