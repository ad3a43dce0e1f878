//! Retention: unclaimed attempts and kept rejected deliveries deleted after their days, claimed
//! attempts kept; `purge [--dry-run]` on demand, and `serve` in the background.

use std::time::Duration;

use reqwest::StatusCode;
use sqlx::PgPool;

use crate::helpers::*;
use crate::metrics::{grew, scrape};

/// Old and new rows of every kind: attempts claimed (`tn-claimed`), unclaimed
/// (`tn-unclaimed-*`), and kept rejected deliveries. Everything but the `new` ones is moved
/// 100 days back, past the default 90 and 30 days.
async fn old_and_new_rows(app: &TestApp, pool: &PgPool) {
    app.register(PERSON, "sig-claimed", "tn-claimed").await;
    for (tn, time) in [
        ("tn-claimed", "2026-06-01T10:00:00Z"),
        ("tn-claimed", "2026-06-02T10:00:00Z"),
        ("tn-unclaimed-old", "2026-06-01T10:00:00Z"),
        ("tn-unclaimed-old", "2026-06-02T10:00:00Z"),
        ("tn-unclaimed-old-2", "2026-06-02T10:00:00Z"),
    ] {
        assert!(app
            .deliver(&webhook_body(tn, "ABORTED", time))
            .await
            .status()
            .is_success());
    }
    assert_eq!(
        app.deliver(b"{old and not json").await.status(),
        StatusCode::BAD_REQUEST
    );
    sqlx::query("UPDATE attempts SET received_at = now() - interval '100 days'")
        .execute(pool)
        .await
        .expect("aged");
    sqlx::query("UPDATE rejected_deliveries SET received_at = now() - interval '100 days'")
        .execute(pool)
        .await
        .expect("aged");
    let new = webhook_body("tn-unclaimed-new", "ABORTED", "2026-11-01T10:00:00Z");
    assert_eq!(app.deliver(&new).await.status(), StatusCode::ACCEPTED);
    assert_eq!(
        app.deliver(b"{new and not json").await.status(),
        StatusCode::BAD_REQUEST
    );
}

/// Transaction numbers of the attempts left, sorted, and the kept bodies left.
async fn left(app: &TestApp, pool: &PgPool) -> (Vec<String>, Vec<Vec<u8>>) {
    let attempts =
        sqlx::query_scalar("SELECT transaction_number FROM attempts ORDER BY transaction_number")
            .fetch_all(pool)
            .await
            .expect("attempts");
    let kept = app
        .rejected_bodies()
        .await
        .into_iter()
        .map(|(_, _, body)| body)
        .collect();
    (attempts, kept)
}

#[sqlx::test(migrations = false)]
async fn purge_deletes_expired_unclaimed_attempts_and_kept_bodies_and_a_dry_run_nothing(
    pool: PgPool,
) {
    let app = spawn_app(pool.clone()).await;
    old_and_new_rows(&app, &pool).await;
    let everything = left(&app, &pool).await;
    assert_eq!(everything.0.len(), 6);
    assert_eq!(everything.1.len(), 2);

    let dry = operator_command(&pool, &["purge", "--dry-run"], &[]).await;
    assert!(dry.status.success(), "{dry:?}");
    // The counts and nothing else: the log goes to stderr.
    assert_eq!(
        String::from_utf8_lossy(&dry.stdout),
        "dry run, nothing deleted; a purge now would delete:\n\
         3 attempts no signing claimed within 90 days\n\
         1 rejected deliveries kept over 30 days\n"
    );
    assert!(
        String::from_utf8_lossy(&dry.stderr).contains("\"idnow-attempts starting\""),
        "{dry:?}"
    );
    assert_eq!(
        left(&app, &pool).await,
        everything,
        "a dry run changes nothing"
    );

    let run = operator_command(&pool, &["purge"], &[]).await;
    assert!(run.status.success(), "{run:?}");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.contains("deleted:\n3 attempts no signing claimed within 90 days\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("\n1 rejected deliveries kept over 30 days\n"),
        "{stdout}"
    );
    let (attempts, kept) = left(&app, &pool).await;
    assert_eq!(attempts, ["tn-claimed", "tn-claimed", "tn-unclaimed-new"]);
    assert_eq!(kept, [b"{new and not json".to_vec()]);
    assert_eq!(
        listed(app.list(PERSON, "sig-claimed", "").await)
            .await
            .len(),
        2
    );

    // Nothing more is due; a second run deletes nothing.
    let again = operator_command(&pool, &["purge"], &[]).await;
    assert!(String::from_utf8_lossy(&again.stdout).contains("deleted:\n0 attempts"));
    assert_eq!(left(&app, &pool).await.0.len(), 3);

    // With longer retention, nothing of it would have been due.
    let unexpired = operator_command(
        &pool,
        &["purge", "--dry-run"],
        &[("RETENTION_UNREGISTERED_DAYS", "200")],
    )
    .await;
    assert!(String::from_utf8_lossy(&unexpired.stdout)
        .contains("\n0 attempts no signing claimed within 200 days\n"));
}

#[sqlx::test(migrations = false)]
async fn serve_purges_in_the_background_and_counts_what_it_deleted(pool: PgPool) {
    let app = spawn_app_adjusted(pool.clone(), |settings| {
        settings.retention.interval = Duration::from_millis(100);
        settings.retention.batch_size = 2;
    })
    .await;
    let before = scrape(&app).await;
    old_and_new_rows(&app, &pool).await;
    wait_until(|| async { left(&app, &pool).await.0.len() == 3 }).await;
    wait_until(|| async { left(&app, &pool).await.1.len() == 1 }).await;
    let (attempts, kept) = left(&app, &pool).await;
    assert_eq!(attempts, ["tn-claimed", "tn-claimed", "tn-unclaimed-new"]);
    assert_eq!(kept, [b"{new and not json".to_vec()]);
    let after = scrape(&app).await;
    assert_eq!(
        grew(
            &before,
            &after,
            r#"idnow_retention_deleted_total{table="attempts"}"#
        ),
        3.0
    );
    assert_eq!(
        grew(
            &before,
            &after,
            r#"idnow_retention_deleted_total{table="rejected_deliveries"}"#
        ),
        1.0
    );
}

/// Claimed attempts stay for good, so a batch must not read again those the mark has passed:
/// the mark bounds the index scan itself, not a filter over a scan from the start.
#[sqlx::test(migrator = "idnow_attempts::persistence::MIGRATOR")]
async fn a_retention_batch_starts_its_index_scan_at_the_mark(pool: PgPool) {
    let plan = plan_of(
        &pool,
        "purge_attempts.sql",
        "batch(int, bigint)",
        "batch(90, 1000)",
        &["enable_seqscan = off", "enable_bitmapscan = off"],
    )
    .await;
    let bounded = plan
        .iter()
        .any(|line| line.contains("Index Cond") && line.contains("ROW(received_at, seq) > ROW("));
    assert!(bounded, "{}", plan.join("\n"));
}
