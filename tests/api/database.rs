//! The sessions the service opens: named for operators, bounded by a statement timeout.

use idnow_attempts::configuration::Settings;
use idnow_attempts::persistence;
use sqlx::PgPool;

use crate::helpers::*;

#[sqlx::test(migrations = false)]
async fn sessions_are_named_and_bounded(pool: PgPool) {
    let settings = Settings::from_env_map(&test_environment()).expect("valid settings");
    let service_pool = persistence::connect(&settings.database, (*pool.connect_options()).clone());
    let session = sqlx::query!(
        r#"SELECT current_setting('application_name') AS "application_name!",
                  current_setting('statement_timeout') AS "statement_timeout!""#
    )
    .fetch_one(&service_pool)
    .await
    .expect("the service's pool connects");
    // Closed before the test ends, so that the test database can be dropped at once.
    service_pool.close().await;
    assert_eq!(session.application_name, "idnow-attempts");
    assert_eq!(session.statement_timeout, "5s");
}
