//! The binary's own surface: `migrate`, `--help`, and what a configuration error looks like.

use std::process::{Output, Stdio};

use sqlx::PgPool;

use crate::helpers::*;

fn idnow_attempts(args: &[&str], env: &[(&str, &str)]) -> Output {
    binary()
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs")
}

#[sqlx::test(migrations = false)]
async fn migrate_applies_the_schema_once_and_exits(pool: PgPool) {
    let url = database_url(&pool.connect_options());
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("IDNOW_WEBHOOK_SECRETS", "s"),
        ("PAYLOAD_ENCRYPTION_KEYS", PAYLOAD_KEYS),
    ];
    for run in ["first", "second"] {
        let output = idnow_attempts(&["migrate"], &env);
        assert!(output.status.success(), "{run}: {output:?}");
    }
    assert_schema_applied_once(&pool).await;
}

/// Several migration Jobs or pods that start together: the advisory lock serialises them.
#[sqlx::test(migrations = false)]
async fn concurrent_migrate_runs_all_succeed_and_apply_the_schema_once(pool: PgPool) {
    let url = database_url(&pool.connect_options());
    let runs: Vec<_> = (0..4)
        .map(|_| {
            binary()
                .arg("migrate")
                .env("DATABASE_URL", &url)
                .env("IDNOW_WEBHOOK_SECRETS", "s")
                .env("PAYLOAD_ENCRYPTION_KEYS", PAYLOAD_KEYS)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("the binary runs")
        })
        .collect();
    for run in runs {
        let output = run.wait_with_output().expect("the run ends");
        assert!(output.status.success(), "{output:?}");
    }
    assert_schema_applied_once(&pool).await;
}

async fn assert_schema_applied_once(pool: &PgPool) {
    let applied =
        sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM _sqlx_migrations WHERE success"#)
            .fetch_one(pool)
            .await
            .expect("migrations table");
    assert_eq!(
        applied,
        idnow_attempts::persistence::MIGRATOR.iter().count() as i64
    );
    let tables = sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM pg_tables
           WHERE schemaname = 'public'
             AND tablename IN ('attempts', 'signings', 'rejected_deliveries')"#
    )
    .fetch_one(pool)
    .await
    .expect("catalog");
    assert_eq!(tables, 3);
}

#[test]
fn help_documents_commands_and_configuration() {
    let output = idnow_attempts(&["--help"], &[]);
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).expect("utf-8");
    for word in [
        "serve",
        "migrate",
        "DATABASE_URL",
        "PORT",
        "WEBHOOK_AUTH",
        "IDNOW_WEBHOOK_SECRETS",
        "WEBHOOK_TOKENS",
        "WEBHOOK_TOKEN_HEADER",
        "WEBHOOK_BASIC_CREDENTIALS",
        "WEBHOOK_ALLOWED_SOURCES",
        "TRUSTED_PROXIES",
        "WEBHOOK_TOLERANCE_SECONDS",
        "API_KEYS",
        "MIGRATE_ON_START",
        "RUST_LOG",
        "PAYLOAD_ENCRYPTION_KEYS",
        "RETENTION_UNREGISTERED_DAYS",
        "RETENTION_REJECTED_DAYS",
        "reencrypt",
        "purge",
        "APP_CONFIG",
    ] {
        assert!(help.contains(word), "--help mentions {word}");
    }
}

#[test]
fn a_configuration_error_names_the_setting_and_not_its_secret() {
    let output = idnow_attempts(
        &["serve"],
        &[
            ("DATABASE_URL", "postgres://app:hunter2@localhost/x"),
            ("IDNOW_WEBHOOK_SECRETS", "whsec_***not-base64***"),
        ],
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).expect("utf-8");
    assert!(stderr.contains("IDNOW_WEBHOOK_SECRETS"), "{stderr}");
    assert!(
        !stderr.contains("not-base64") && !stderr.contains("hunter2"),
        "{stderr}"
    );
}

/// No setting accepts anonymous deliveries from anywhere: `source` needs the allowed sources.
#[test]
fn source_without_allowed_sources_refuses_to_start() {
    let database = ("DATABASE_URL", "postgres://app:hunter2@localhost/x");
    let output = idnow_attempts(&["serve"], &[database, ("WEBHOOK_AUTH", "source")]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).expect("utf-8");
    assert!(
        stderr.contains("WEBHOOK_AUTH") && stderr.contains("WEBHOOK_ALLOWED_SOURCES"),
        "{stderr}"
    );

    // Nor does a credential that cannot be read start the service, or show in the message.
    for (name, value) in [
        ("WEBHOOK_TOKENS", "hunter2-token"),
        ("WEBHOOK_BASIC_CREDENTIALS", "idnow:hunter2-password"),
        ("WEBHOOK_ALLOWED_SOURCES", "hunter2.example"),
    ] {
        let output = idnow_attempts(
            &["serve"],
            &[
                database,
                ("WEBHOOK_AUTH", "token,basic,source"),
                (name, value),
            ],
        );
        assert_eq!(output.status.code(), Some(2), "{name}");
        let stderr = String::from_utf8(output.stderr).expect("utf-8");
        assert!(stderr.contains(name), "{stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }
}
