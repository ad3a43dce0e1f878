//! The `rejected_deliveries` table: authentic webhooks that were refused (400/409/422), kept
//! so that nothing IDnow sent is lost, their bodies sealed like payloads.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::attempts::StoredPayload;
use crate::at_rest::{Binding, PayloadKeys};
use crate::domain::TransactionNumber;

#[derive(Debug)]
pub struct RejectedDelivery<'a> {
    pub status: u16,
    pub error_code: &'a str,
    pub webhook_id: Option<&'a str>,
    pub content_type: Option<&'a str>,
    /// The identifications the body names (`domain::transaction_numbers_of`): kept with them
    /// (the first as its `transaction_number`, the others as `also_named`), so that erasing
    /// any of them erases it, and not kept at all if one of them was erased.
    pub transaction_numbers: Vec<TransactionNumber>,
    pub body: &'a [u8],
}

/// What became of a delivery to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    Kept(Uuid),
    /// Kept already: the same delivery, refused the same way, was kept before (a retry).
    Before,
    /// Not kept: its identification was erased.
    Erased,
}

/// What tells one kept delivery from another: the keyed digest of what its sender sent and
/// was answered (the body holds identity data: a plain hash would let a copy of the database
/// confirm a guessed body).
fn digest(keys: &PayloadKeys, delivery: &RejectedDelivery<'_>) -> [u8; 32] {
    keys.fingerprint(&[
        Some(&delivery.status.to_be_bytes()),
        Some(delivery.error_code.as_bytes()),
        delivery.webhook_id.map(str::as_bytes),
        delivery.content_type.map(str::as_bytes),
        Some(delivery.body),
    ])
}

/// Keeps the delivery, its body sealed under the first of `keys`, unless an identification it
/// names was erased, or the same delivery is kept already.
pub async fn keep(
    conn: &mut PgConnection,
    keys: &PayloadKeys,
    delivery: &RejectedDelivery<'_>,
) -> Result<Kept, sqlx::Error> {
    // In order of creation, as attempt ids (`AttemptId::generate`): a page of the index at hand.
    let id = Uuid::now_v7();
    let sealed = keys.seal(Binding::Rejected { id }, delivery.body);
    let also_named: Option<Vec<&str>> = delivery
        .transaction_numbers
        .get(1..)
        .filter(|others| !others.is_empty())
        .map(|others| others.iter().map(TransactionNumber::as_str).collect());
    let identifications: Vec<Vec<u8>> = delivery
        .transaction_numbers
        .iter()
        .map(|number| number.digest().to_vec())
        .collect();
    let kept = sqlx::query!(
        r#"
        WITH registered AS (
            INSERT INTO payload_keys (key_id) VALUES ($7) ON CONFLICT DO NOTHING
        ),
        erased AS (
            SELECT EXISTS (
                SELECT 1 FROM erased_identifications WHERE digest = ANY($9)
            ) AS erased
        ),
        kept AS (
            INSERT INTO rejected_deliveries
                (id, status, error_code, webhook_id, content_type, transaction_number,
                 also_named, key_id, sealed, digest)
            SELECT $1, $2, $3, $4, $5, $6, $10, $7, $8, $11
            WHERE NOT (SELECT erased FROM erased)
            -- Kept before, or by a retry committing beside this one.
            ON CONFLICT (digest) DO NOTHING
            RETURNING id
        )
        SELECT (SELECT erased FROM erased) AS "erased!", (SELECT id FROM kept) AS kept
        "#,
        id,
        i16::try_from(delivery.status).unwrap_or(i16::MAX),
        delivery.error_code,
        delivery.webhook_id,
        delivery.content_type,
        delivery
            .transaction_numbers
            .first()
            .map(TransactionNumber::as_str),
        sealed.key_id.as_str(),
        sealed.bytes,
        &identifications,
        also_named.as_deref() as Option<&[&str]>,
        &digest(keys, delivery)[..],
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(match (kept.erased, kept.kept) {
        (true, _) => Kept::Erased,
        (false, Some(id)) => Kept::Kept(id),
        (false, None) => Kept::Before,
    })
}

/// A kept delivery as `rejected list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptDelivery {
    pub id: Uuid,
    pub received_at: DateTime<Utc>,
    /// The HTTP status its sender was answered.
    pub status: i16,
    /// The error code its sender was answered.
    pub error_code: String,
}

/// The kept deliveries that arrived at `since` or later (all without it), newest first.
pub async fn list(
    conn: &mut PgConnection,
    since: Option<DateTime<Utc>>,
) -> Result<Vec<KeptDelivery>, sqlx::Error> {
    sqlx::query_as!(
        KeptDelivery,
        r#"
        SELECT id, received_at, status, error_code
        FROM rejected_deliveries
        WHERE received_at >= coalesce($1, '-infinity'::timestamptz)
        ORDER BY received_at DESC, id DESC
        "#,
        since,
    )
    .fetch_all(&mut *conn)
    .await
}

/// The ids of every kept delivery, oldest first.
pub async fn ids(conn: &mut PgConnection) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar!("SELECT id FROM rejected_deliveries ORDER BY received_at, id")
        .fetch_all(&mut *conn)
        .await
}

/// A kept delivery's body, and the `webhook-id` it was kept with.
#[derive(Debug)]
pub struct KeptBody {
    pub webhook_id: Option<String>,
    /// Sealed for [`Binding::Rejected`], or plain when kept before encryption.
    pub body: StoredPayload,
}

/// The body of the kept delivery `id`; `None` when none is kept with that id.
pub async fn body(conn: &mut PgConnection, id: Uuid) -> Result<Option<KeptBody>, sqlx::Error> {
    let row = sqlx::query!(
        "SELECT webhook_id, key_id, sealed, body FROM rejected_deliveries WHERE id = $1",
        id,
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|row| KeptBody {
        webhook_id: row.webhook_id,
        body: StoredPayload::from_columns(row.key_id, row.sealed, row.body),
    }))
}
