//! The operator commands that look at data and repair it, run as the real binary against the
//! test's database: `rejected list|show|replay`, `attempts`, `unregistered`.

use std::process::Output;

use reqwest::StatusCode;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::*;

/// `idnow-attempts ARGS` with the test's configuration.
async fn run(pool: &PgPool, args: &[&str]) -> Output {
    operator_command(pool, args, &[]).await
}

/// The lines of a command's stdout, which must be UTF-8.
fn lines(output: &Output) -> Vec<String> {
    String::from_utf8(output.stdout.clone())
        .expect("UTF-8 output")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The stdout lines of a command that succeeded, its header checked and left out.
fn rows(output: &Output, header: &str) -> Vec<String> {
    assert!(output.status.success(), "{output:?}");
    let mut lines = lines(output);
    assert_eq!(
        lines.first().map(String::as_str),
        Some(header),
        "{output:?}"
    );
    lines.remove(0);
    lines
}

const LIST_HEADER: &str = "id\treceived_at\tstatus\tcode";
const REPLAY_HEADER: &str = "rejected_id\toutcome\tattempt_id\tstatus\tcode";
const ATTEMPTS_HEADER: &str =
    "id\tresult\treason\tidentified_at\treceived_at\tperson_id\tsigning_id";
const UNREGISTERED_HEADER: &str =
    "transaction_number\tattempts\tfirst_received_at\tlast_received_at";

/// An authentic body that is refused 422 (it has no `result`): kept.
fn without_result(transaction_number: &str) -> Vec<u8> {
    format!(r#"{{"identificationprocess":{{"transactionnumber":"{transaction_number}"}}}}"#)
        .into_bytes()
}

/// The ids of the kept rejected deliveries, oldest first.
async fn kept_ids(pool: &PgPool) -> Vec<Uuid> {
    sqlx::query_scalar("SELECT id FROM rejected_deliveries ORDER BY received_at, id")
        .fetch_all(pool)
        .await
        .expect("kept ids")
}

async fn kept_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM rejected_deliveries")
        .fetch_one(pool)
        .await
        .expect("count")
}

/// Sets a row's arrival time; `table` is the test's own text.
async fn arrived(pool: &PgPool, table: &str, id: Uuid, time: &str) {
    sqlx::query(&format!(
        "UPDATE {table} SET received_at = $2::timestamptz WHERE id = $1"
    ))
    .bind(id)
    .bind(time)
    .execute(pool)
    .await
    .expect("received_at set");
}

/// The uuid of an attempt id (`…cida`).
fn uuid_of(attempt_id: &str) -> Uuid {
    Uuid::parse_str(&attempt_id[..32]).expect("an attempt id")
}

#[sqlx::test(migrations = false)]
async fn rejected_list_prints_kept_deliveries_newest_first_and_since_filters(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let signed = |id| Signed::Standard {
        secret: WEBHOOK_SECRET,
        id,
        timestamp: unix_now(),
    };
    assert_eq!(
        app.deliver(&without_result("tn-list")).await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        app.deliver(b"{not json").await.status(),
        StatusCode::BAD_REQUEST
    );
    let first = webhook_body("tn-list", "ABORTED", "2026-11-01T10:00:00Z");
    let second = webhook_body("tn-list", "SUCCESS", "2026-11-01T11:00:00Z");
    assert!(app
        .post_webhook(&first, signed("msg_list"))
        .await
        .status()
        .is_success());
    assert_eq!(
        app.post_webhook(&second, signed("msg_list")).await.status(),
        StatusCode::CONFLICT
    );
    let ids = kept_ids(&pool).await;
    assert_eq!(ids.len(), 3);
    // The 409 kept last is made the oldest, so that the order is the times', not arrival's.
    let times = [
        "2026-11-02T10:00:00Z",
        "2026-11-03T10:00:00.25Z",
        "2026-11-01T10:00:00Z",
    ];
    for (id, time) in ids.iter().zip(times) {
        arrived(&pool, "rejected_deliveries", *id, time).await;
    }

    let listed = rows(&run(&pool, &["rejected", "list"]).await, LIST_HEADER);
    assert_eq!(
        listed,
        [
            format!("{}\t2026-11-03T10:00:00.250000Z\t400\tinvalid_json", ids[1]),
            format!(
                "{}\t2026-11-02T10:00:00.000000Z\t422\tinvalid_webhook_payload",
                ids[0]
            ),
            format!(
                "{}\t2026-11-01T10:00:00.000000Z\t409\twebhook_id_reused",
                ids[2]
            ),
        ]
    );

    // From a time on, that time included, in any offset.
    let since = run(
        &pool,
        &["rejected", "list", "--since", "2026-11-02T11:00:00+01:00"],
    )
    .await;
    assert_eq!(rows(&since, LIST_HEADER), listed[..2]);
    let none = run(
        &pool,
        &["rejected", "list", "--since", "2026-11-04T00:00:00Z"],
    )
    .await;
    assert!(rows(&none, LIST_HEADER).is_empty());

    let malformed = run(&pool, &["rejected", "list", "--since", "last tuesday"]).await;
    assert!(!malformed.status.success());
    assert!(malformed.stdout.is_empty());
    assert!(String::from_utf8_lossy(&malformed.stderr).contains("RFC 3339"));
}

#[sqlx::test(migrations = false)]
async fn rejected_show_writes_the_kept_body_byte_for_byte_and_nothing_else(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    // Key order, spacing, escapes and non-ASCII as sent; refused for its missing result.
    let json = "{ \"zeta\":1,\n  \"identificationprocess\" : {\"transactionnumber\":\"tn-show\",\
                \"id\":\"TST-\\u00c4\u{e9}\"},\"alpha\":[true,null,1.50e3,\"\\\"\"]}\r\n"
        .as_bytes()
        .to_vec();
    assert_eq!(
        app.deliver(&json).await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // Not UTF-8, NUL and all.
    let bytes = b"\xff\xfe{\x00not json\x80}".to_vec();
    assert_eq!(app.deliver(&bytes).await.status(), StatusCode::BAD_REQUEST);
    let ids = kept_ids(&pool).await;
    // A body kept before encryption existed, in its plain column.
    let legacy = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO rejected_deliveries (id, status, error_code, body)
         VALUES ($1, 400, 'invalid_json', '\\x7b7a00ff'::bytea)",
    )
    .bind(legacy)
    .execute(&pool)
    .await
    .expect("a plain kept body");

    for (id, body) in [
        (ids[0], &json[..]),
        (ids[1], &bytes[..]),
        (legacy, &b"\x7b\x7a\x00\xff"[..]),
    ] {
        // Debug logging on: the log goes to stderr, never into the body.
        let output = operator_command(
            &pool,
            &["rejected", "show", &id.to_string()],
            &[("RUST_LOG", "debug")],
        )
        .await;
        assert!(output.status.success(), "{output:?}");
        assert_eq!(output.stdout, body, "{output:?}");
        let log = String::from_utf8_lossy(&output.stderr);
        assert!(log.contains("\"level\":\"DEBUG\""), "{log}");
        assert!(!log.contains("zeta") && !log.contains("TST-"), "{log}");
    }

    let unknown = Uuid::new_v4();
    let output = run(&pool, &["rejected", "show", &unknown.to_string()]).await;
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("no rejected delivery is kept with id {unknown}")),
        "{stderr}"
    );
    // A body that does not open is an error, not bytes.
    let keyless = operator_command(
        &pool,
        &["rejected", "show", &ids[0].to_string()],
        &[(
            "PAYLOAD_ENCRYPTION_KEYS",
            "other:b3RoZXItdGVzdC1rZXktMzItYnl0ZXMtbG9uZy0hISE=",
        )],
    )
    .await;
    assert!(!keyless.status.success());
    assert!(keyless.stdout.is_empty(), "{keyless:?}");
    assert!(String::from_utf8_lossy(&keyless.stderr).contains("test-k1"));
}

#[sqlx::test(migrations = false)]
async fn replaying_a_body_still_refused_reports_its_code_fails_and_keeps_nothing_more(
    pool: PgPool,
) {
    let app = spawn_app(pool.clone()).await;
    assert_eq!(
        app.deliver(&without_result("tn-still")).await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let kept = kept_ids(&pool).await[0];

    let output = run(&pool, &["rejected", "replay", &kept.to_string()]).await;
    assert!(!output.status.success(), "{output:?}");
    assert_eq!(
        lines(&output),
        [
            REPLAY_HEADER.to_owned(),
            format!("{kept}\trefused\t\t422\tinvalid_webhook_payload"),
            "replayed 1: 0 stored, 0 stored_unregistered, 0 duplicate, 0 erased, 1 refused, \
             0 unreadable"
                .to_owned(),
        ]
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("still refused"));
    assert_eq!(kept_count(&pool).await, 1, "not kept a second time");
    assert_eq!(app.attempt_count().await, 0);

    let unknown = Uuid::new_v4();
    let output = run(&pool, &["rejected", "replay", &unknown.to_string()]).await;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr)
        .contains(&format!("no rejected delivery is kept with id {unknown}")));
}

/// A delivery refused because its `webhook-id` was another event's: once that attempt is
/// gone (retention deleted it, unclaimed), the kept body replays into the attempt it is,
/// under its own `webhook-id`, and replaying it again, or IDnow redelivering it, is its
/// duplicate.
#[sqlx::test(migrations = false)]
async fn replay_stores_a_kept_body_once_its_refusal_is_gone_and_then_reports_the_duplicate(
    pool: PgPool,
) {
    let app = spawn_app(pool.clone()).await;
    let signed = || Signed::Standard {
        secret: WEBHOOK_SECRET,
        id: "msg_shared",
        timestamp: unix_now(),
    };
    let holder_body = webhook_body("tn-holder", "ABORTED", "2026-06-01T10:00:00Z");
    let holder = acknowledged_id(app.post_webhook(&holder_body, signed()).await).await;
    let refused = webhook_body("tn-replay", "SUCCESS", "2026-11-20T10:00:00Z");
    assert_eq!(
        app.post_webhook(&refused, signed()).await.status(),
        StatusCode::CONFLICT
    );
    let kept = kept_ids(&pool).await[0];
    let kept_arg = kept.to_string();
    let args = ["rejected", "replay", kept_arg.as_str()];
    let replay = || run(&pool, &args);

    // Still refused while the holder is there; the line names it.
    let output = replay().await;
    assert!(!output.status.success(), "{output:?}");
    assert_eq!(
        lines(&output)[1],
        format!("{kept}\trefused\t{holder}\t409\twebhook_id_reused")
    );

    // The holder's identification was never claimed: retention deletes it.
    sqlx::query(
        "UPDATE attempts SET received_at = now() - interval '100 days'
         WHERE transaction_number = 'tn-holder'",
    )
    .execute(&pool)
    .await
    .expect("aged");
    assert!(run(&pool, &["purge"]).await.status.success());
    assert_eq!(app.attempt_count().await, 0);
    assert_eq!(
        app.register(PERSON, "sig-replay", "tn-replay")
            .await
            .status(),
        StatusCode::CREATED
    );

    let output = replay().await;
    assert!(output.status.success(), "{output:?}");
    let lines_stored = lines(&output);
    let fields: Vec<&str> = lines_stored[1].split('\t').collect();
    assert_eq!(fields[..2], [kept.to_string().as_str(), "stored"]);
    assert_eq!(fields[3..], ["201", ""]);
    let stored = fields[2].to_owned();
    assert_eq!(
        lines_stored[2],
        "replayed 1: 1 stored, 0 stored_unregistered, 0 duplicate, 0 erased, 0 refused, \
         0 unreadable"
    );
    // As if it had arrived now: in the signing's history, byte for byte, under its webhook-id.
    let history = listed(app.list(PERSON, "sig-replay", "").await).await;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].id, stored);
    assert_eq!(history[0].payload.get().as_bytes(), &refused[..]);
    let webhook_id: Option<String> =
        sqlx::query_scalar("SELECT webhook_id FROM attempts WHERE id = $1")
            .bind(uuid_of(&stored))
            .fetch_one(&pool)
            .await
            .expect("the stored attempt");
    assert_eq!(webhook_id.as_deref(), Some("msg_shared"));

    // Idempotent: the same body again is the same attempt.
    let output = replay().await;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        lines(&output)[1],
        format!("{kept}\tduplicate\t{stored}\t200\t")
    );
    // The kept body stays, for retention to delete; nothing else was kept.
    assert_eq!(kept_ids(&pool).await, [kept]);
    // And IDnow redelivering it now is answered with that same attempt.
    let redelivered = app.post_webhook(&refused, signed()).await;
    assert_eq!(redelivered.status(), StatusCode::OK);
    assert_eq!(acknowledged_id(redelivered).await, stored);
    assert_eq!(app.attempt_count().await, 1);
}

#[sqlx::test(migrations = false)]
async fn replay_all_goes_through_every_kept_body_oldest_first_and_counts_the_outcomes(
    pool: PgPool,
) {
    let app = spawn_app(pool.clone()).await;
    // 1. Never storable: no result.
    assert_eq!(
        app.deliver(&without_result("tn-all-1")).await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // 2. A value the store refused then (a constraint a later migration dropped).
    sqlx::query("ALTER TABLE attempts ADD CONSTRAINT refuses_poison CHECK (result <> 'POISON')")
        .execute(&pool)
        .await
        .expect("constraint added");
    let poison = webhook_body("tn-all-2", "POISON", "2026-11-20T10:00:00Z");
    assert_eq!(
        app.deliver(&poison).await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    sqlx::query("ALTER TABLE attempts DROP CONSTRAINT refuses_poison")
        .execute(&pool)
        .await
        .expect("constraint dropped");
    app.register(PERSON, "sig-all-2", "tn-all-2").await;
    // 3. A webhook-id unfit to store: kept without it, and stored without it.
    let long_id = webhook_body("tn-all-3", "SUCCESS", "2026-11-20T11:00:00Z");
    let response = app.post_with_webhook_id(&long_id, &[b'x'; 1025]).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // 4. A reused webhook-id, whose event IDnow later delivered under an id of its own.
    let signed = |id| Signed::Standard {
        secret: WEBHOOK_SECRET,
        id,
        timestamp: unix_now(),
    };
    let holder = webhook_body("tn-all-4", "ABORTED", "2026-11-20T12:00:00Z");
    let reused = webhook_body("tn-all-4", "SUCCESS", "2026-11-20T13:00:00Z");
    assert!(app
        .post_webhook(&holder, signed("msg_all"))
        .await
        .status()
        .is_success());
    assert_eq!(
        app.post_webhook(&reused, signed("msg_all")).await.status(),
        StatusCode::CONFLICT
    );
    let original = acknowledged_id(app.post_webhook(&reused, signed("msg_own")).await).await;
    let kept = kept_ids(&pool).await;
    assert_eq!(kept.len(), 4);
    let attempts_before = app.attempt_count().await;

    let output = operator_command(
        &pool,
        &["rejected", "replay", "--all"],
        &[("RUST_LOG", "debug")],
    )
    .await;
    assert!(!output.status.success(), "one is still refused: {output:?}");
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("still refused"), "{log}");
    for personal in ["TROBOT", "solarisbank"] {
        assert!(!log.contains(personal), "{log}");
    }
    let lines = lines(&output);
    assert_eq!(lines.len(), 6, "{lines:#?}");
    assert_eq!(lines[0], REPLAY_HEADER);
    assert_eq!(
        lines[1],
        format!("{}\trefused\t\t422\tinvalid_webhook_payload", kept[0])
    );
    let outcome = |line: &str| -> Vec<String> {
        let fields: Vec<String> = line.split('\t').map(str::to_owned).collect();
        assert_eq!(fields.len(), 5, "{line}");
        fields
    };
    let second = outcome(&lines[2]);
    assert_eq!(
        [second[0].as_str(), &second[1], &second[3], &second[4]],
        [kept[1].to_string().as_str(), "stored", "201", ""]
    );
    let third = outcome(&lines[3]);
    assert_eq!(
        [third[0].as_str(), &third[1], &third[3], &third[4]],
        [
            kept[2].to_string().as_str(),
            "stored_unregistered",
            "202",
            ""
        ]
    );
    assert_eq!(
        lines[4],
        format!("{}\tduplicate\t{original}\t200\t", kept[3])
    );
    assert_eq!(
        lines[5],
        "replayed 4: 1 stored, 1 stored_unregistered, 1 duplicate, 0 erased, 1 refused, \
         0 unreadable"
    );
    assert_eq!(app.attempt_count().await, attempts_before + 2);
    assert_eq!(app.stored_payload(&second[2]).await, poison);
    assert_eq!(app.stored_payload(&third[2]).await, long_id);
    assert_eq!(
        kept_ids(&pool).await,
        kept,
        "nothing kept anew, nothing dropped"
    );

    // Again: what was stored is now a duplicate of itself; the rest is as it was.
    let again = run(&pool, &["rejected", "replay", "--all"]).await;
    assert!(!again.status.success());
    let again = self::lines(&again);
    assert_eq!(
        again[2],
        format!("{}\tduplicate\t{}\t200\t", kept[1], second[2])
    );
    assert_eq!(
        again[3],
        format!("{}\tduplicate\t{}\t200\t", kept[2], third[2])
    );
    assert_eq!(
        again[5],
        "replayed 4: 0 stored, 0 stored_unregistered, 3 duplicate, 0 erased, 1 refused, \
         0 unreadable"
    );
    assert_eq!(app.attempt_count().await, attempts_before + 2);
}

/// A body with a `reason` that holds a tab and a line break, as a sender may write one.
fn with_reason(transaction_number: &str, time: &str) -> Vec<u8> {
    serde_json::json!({
        "identificationprocess": {
            "result": "ABORTED",
            "reason": "USER_CANCELLATION\tby\nphone",
            "identificationtime": time,
            "id": "TST-REASON",
            "transactionnumber": transaction_number,
        }
    })
    .to_string()
    .into_bytes()
}

#[sqlx::test(migrations = false)]
async fn attempts_prints_an_identifications_attempts_oldest_first_with_their_signing(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    // Arrives first, identified last.
    let later = acknowledged_id(
        app.deliver(&webhook_body(
            "tn-ops",
            "SUCCESS",
            "2026-11-20T12:00:00+01:00",
        ))
        .await,
    )
    .await;
    let earlier = acknowledged_id(
        app.deliver(&with_reason("tn-ops", "2026-11-20T10:00:00Z"))
            .await,
    )
    .await;
    // Another identification's attempt is not listed.
    let other = app
        .deliver(&webhook_body("tn-other", "SUCCESS", "2026-11-20T10:00:00Z"))
        .await;
    assert!(other.status().is_success());
    arrived(&pool, "attempts", uuid_of(&later), "2026-11-21T08:00:00Z").await;
    arrived(
        &pool,
        "attempts",
        uuid_of(&earlier),
        "2026-11-21T09:00:00.5Z",
    )
    .await;

    let expected = |signing: &str| {
        vec![
            format!(
                "{earlier}\tABORTED\tUSER_CANCELLATION\\tby\\nphone\t2026-11-20T10:00:00.000000Z\t\
                 2026-11-21T09:00:00.500000Z\t{signing}"
            ),
            format!(
                "{later}\tSUCCESS\t\t2026-11-20T11:00:00.000000Z\t2026-11-21T08:00:00.000000Z\t\
                 {signing}"
            ),
        ]
    };
    let before = run(&pool, &["attempts", "tn-ops"]).await;
    assert_eq!(rows(&before, ATTEMPTS_HEADER), expected("\t"));

    app.register(PERSON, "sig-ops", "tn-ops").await;
    let after = run(&pool, &["attempts", "tn-ops"]).await;
    assert_eq!(
        rows(&after, ATTEMPTS_HEADER),
        expected(&format!("{PERSON}\tsig-ops"))
    );

    let unknown = run(&pool, &["attempts", "tn-never-seen"]).await;
    assert!(rows(&unknown, ATTEMPTS_HEADER).is_empty());
    let invalid = run(&pool, &["attempts", "two words"]).await;
    assert!(!invalid.status.success());
    assert!(invalid.stdout.is_empty());
}

/// `received_at` of `transaction_number`'s attempts set to `days_ago` days before now, each
/// to the second; their first and last arrival as the commands print them.
async fn arrived_days_ago(
    pool: &PgPool,
    transaction_number: &str,
    days_ago: &[i32],
) -> (String, String) {
    let ids: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM attempts WHERE transaction_number = $1 ORDER BY seq")
            .bind(transaction_number)
            .fetch_all(pool)
            .await
            .expect("ids");
    assert_eq!(ids.len(), days_ago.len());
    for (id, days) in ids.iter().zip(days_ago) {
        sqlx::query(
            "UPDATE attempts SET received_at = date_trunc('second', now())
                                               - make_interval(days => $2)
             WHERE id = $1",
        )
        .bind(id)
        .bind(days)
        .execute(pool)
        .await
        .expect("aged");
    }
    sqlx::query_as(
        r#"SELECT to_char(min(received_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                  to_char(max(received_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
           FROM attempts WHERE transaction_number = $1"#,
    )
    .bind(transaction_number)
    .fetch_one(pool)
    .await
    .expect("arrivals")
}

#[sqlx::test(migrations = false)]
async fn unregistered_lists_unclaimed_identifications_until_claimed_and_older_than_filters(
    pool: PgPool,
) {
    let app = spawn_app(pool.clone()).await;
    for (tn, time) in [
        ("tn-waiting", "2026-11-01T10:00:00Z"),
        ("tn-waiting", "2026-11-02T10:00:00Z"),
        ("tn-recent", "2026-11-20T10:00:00Z"),
        ("tn-claimed", "2026-11-01T10:00:00Z"),
    ] {
        assert!(app
            .deliver(&webhook_body(tn, "ABORTED", time))
            .await
            .status()
            .is_success());
    }
    app.register(PERSON, "sig-claimed", "tn-claimed").await;
    let (waiting_first, waiting_last) = arrived_days_ago(&pool, "tn-waiting", &[10, 8]).await;
    let (recent, _) = arrived_days_ago(&pool, "tn-recent", &[1]).await;
    arrived_days_ago(&pool, "tn-claimed", &[30]).await;

    let waiting = format!("tn-waiting\t2\t{waiting_first}\t{waiting_last}");
    let all = run(&pool, &["unregistered"]).await;
    assert_eq!(
        rows(&all, UNREGISTERED_HEADER),
        [waiting.clone(), format!("tn-recent\t1\t{recent}\t{recent}")]
    );
    // Every attempt older than the days: the last arrival counts.
    let week = run(&pool, &["unregistered", "--older-than", "7"]).await;
    assert_eq!(rows(&week, UNREGISTERED_HEADER), [waiting]);
    let nine = run(&pool, &["unregistered", "--older-than", "9"]).await;
    assert!(rows(&nine, UNREGISTERED_HEADER).is_empty());

    // Claimed, it is no longer listed.
    app.register(PERSON, "sig-waiting", "tn-waiting").await;
    let after = run(&pool, &["unregistered"]).await;
    assert_eq!(
        rows(&after, UNREGISTERED_HEADER),
        [format!("tn-recent\t1\t{recent}\t{recent}")]
    );
}

/// `rejected list | head`: a command whose reader goes away stops as SIGPIPE would stop it
/// (141) and logs no ERROR, since it did not fail.
#[sqlx::test(migrations = false)]
async fn a_command_whose_reader_went_away_stops_without_an_error(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    assert_eq!(
        app.deliver(&without_result("tn-gone")).await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // The reader is gone before the command writes a byte: its first line fails.
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let output = operator_command_with(&pool, &["rejected", "list"], &[], |command| {
        command.stdout(writer);
    })
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(141), "{stderr}");
    assert!(!stderr.contains(r#""level":"ERROR""#), "{stderr}");
    assert!(
        stderr.contains("stopped: the reader of standard output went away"),
        "{stderr}"
    );

    // Read, it lists as ever.
    let listed = rows(&run(&pool, &["rejected", "list"]).await, LIST_HEADER);
    assert_eq!(listed.len(), 1);
}
