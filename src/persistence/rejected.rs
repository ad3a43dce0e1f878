//! The `rejected_deliveries` table: authentic webhooks that were refused (400/409/422), kept
//! verbatim so that nothing IDnow sent is lost.

use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug)]
pub struct RejectedDelivery<'a> {
    pub status: u16,
    pub error_code: &'a str,
    pub webhook_id: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
}

pub async fn keep(
    conn: &mut PgConnection,
    delivery: &RejectedDelivery<'_>,
) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::new_v4();
    sqlx::query!(
        r#"
        INSERT INTO rejected_deliveries (id, status, error_code, webhook_id, content_type, body)
        VALUES ($1, $2, $3, $4, $5, $6)
        "#,
        id,
        i16::try_from(delivery.status).unwrap_or(i16::MAX),
        delivery.error_code,
        delivery.webhook_id,
        delivery.content_type,
        delivery.body,
    )
    .execute(&mut *conn)
    .await?;
    Ok(id)
}
