//! The `attempts` table: one row per IDnow result webhook.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::{AttemptId, PageRequest, PersonId, SigningId};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// A new attempt; `signing_registered` tells whether its signing is known yet.
    New {
        id: AttemptId,
        signing_registered: bool,
    },
    /// The same event was stored before: this is its id.
    Duplicate { id: AttemptId },
    /// Not stored: the delivery's `webhook-id` belongs to `holder`, a different event.
    WebhookIdReused { holder: AttemptId },
}

#[derive(Debug)]
pub struct History {
    /// Attempts in the whole history, not only this page.
    pub total: u64,
    pub attempts: Vec<StoredAttempt>,
}

#[derive(Debug)]
pub struct StoredAttempt {
    pub id: AttemptId,
    pub result: String,
    pub reason: Option<String>,
    /// The body as received.
    pub payload: String,
}

/// One page of a signing's attempt history, oldest first; `None` when the person has no such
/// signing. One statement, so the page and the total come from the same snapshot.
pub async fn history(
    conn: &mut PgConnection,
    person_id: &PersonId,
    signing_id: &SigningId,
    page: PageRequest,
) -> Result<Option<History>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"
        -- MATERIALIZED: the signing and its total are computed once, not once per
        -- row of the page, which a flattened subquery would do.
        WITH s AS MATERIALIZED (
            SELECT sg.identification_id,
                   (SELECT count(*) FROM attempts c
                    WHERE c.transaction_number = sg.identification_id) AS total
            FROM signings sg
            WHERE sg.signing_id = $1 AND sg.person_id = $2
        )
        SELECT s.total AS "total!",
               a.id AS "id?", a.result AS "result?", a.reason, a.payload::text AS "payload?"
        FROM s
        LEFT JOIN LATERAL (
            SELECT at.id, at.result, at.reason, at.payload, at.sort_at, at.seq
            FROM attempts at
            WHERE at.transaction_number = s.identification_id
            ORDER BY at.sort_at, at.seq
            LIMIT $3 OFFSET $4
        ) AS a ON true
        ORDER BY a.sort_at, a.seq
        "#,
        signing_id.as_str(),
        person_id.as_str(),
        page.limit(),
        page.offset(),
    )
    .fetch_all(&mut *conn)
    .await?;

    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let total = u64::try_from(first.total).unwrap_or_default();
    let attempts = rows
        .into_iter()
        .filter_map(|row| {
            // A signing without attempts on this page comes back as one row of NULLs.
            let (id, result, payload): (Uuid, _, _) = (row.id?, row.result?, row.payload?);
            Some(StoredAttempt {
                id: id.into(),
                result,
                reason: row.reason,
                payload,
            })
        })
        .collect();
    Ok(Some(History { total, attempts }))
}
