//! The `attempts` table: one row per IDnow result webhook.
//!
//! Its statements live in `sql/`, one file each, so that the benchmark runs the very text the
//! service sends.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::{AttemptId, Delivery, PageRequest, PersonId, SigningId, WebhookId};

/// An attempt to store, owned, as the batch writer's task needs it.
#[derive(Debug)]
pub struct NewAttempt {
    pub id: AttemptId,
    pub transaction_number: String,
    pub ident_id: Option<String>,
    pub result: String,
    pub reason: Option<String>,
    pub identified_at: Option<DateTime<Utc>>,
    pub webhook_id: Option<String>,
    pub dedup_key: [u8; 32],
    pub payload: String,
}

impl NewAttempt {
    pub fn new(delivery: &Delivery<'_>, webhook_id: Option<&WebhookId>) -> Self {
        Self {
            id: AttemptId::generate(),
            transaction_number: delivery.transaction_number.as_str().to_owned(),
            ident_id: delivery.ident_id.clone(),
            result: delivery.result.clone(),
            reason: delivery.reason.clone(),
            identified_at: delivery.identified_at,
            webhook_id: webhook_id.map(|id| id.as_str().to_owned()),
            dedup_key: delivery.dedup_key,
            payload: delivery.payload.to_owned(),
        }
    }
}

/// What became of an attempt the store took.
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

/// Inserts `attempts` with one statement, committed on its own, then looks up, for those it
/// skipped, the rows that hold their place. One answer per attempt, in order; `None` for an
/// attempt whose place was taken by a row deleted before the look-up (a retry stores it).
///
/// A skipped attempt is a duplicate when the same event is stored (its `dedup_key`), whatever
/// its `webhook-id`; otherwise its `webhook-id` is already another event's.
pub async fn insert(
    conn: &mut PgConnection,
    attempts: &[NewAttempt],
) -> Result<Vec<Option<Stored>>, sqlx::Error> {
    let ids: Vec<Uuid> = attempts.iter().map(|a| a.id.as_uuid()).collect();
    let text = |f: fn(&NewAttempt) -> &str| attempts.iter().map(f).collect::<Vec<_>>();
    let optional = |f: fn(&NewAttempt) -> Option<&str>| attempts.iter().map(f).collect::<Vec<_>>();
    let transaction_numbers = text(|a| &a.transaction_number);
    let results = text(|a| &a.result);
    let payloads = text(|a| &a.payload);
    let ident_ids = optional(|a| a.ident_id.as_deref());
    let reasons = optional(|a| a.reason.as_deref());
    let webhook_ids = optional(|a| a.webhook_id.as_deref());
    let identified_at: Vec<Option<DateTime<Utc>>> =
        attempts.iter().map(|a| a.identified_at).collect();
    let dedup_keys: Vec<&[u8]> = attempts.iter().map(|a| &a.dedup_key[..]).collect();

    let inserted: HashMap<Uuid, bool> = sqlx::query_file!(
        "src/persistence/sql/insert.sql",
        &ids,
        &transaction_numbers as &[&str],
        &ident_ids as &[Option<&str>],
        &results as &[&str],
        &reasons as &[Option<&str>],
        &identified_at as &[Option<DateTime<Utc>>],
        &webhook_ids as &[Option<&str>],
        &dedup_keys as &[&[u8]],
        &payloads as &[&str],
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|row| (row.id, row.signing_registered))
    .collect();

    let skipped: Vec<usize> = (0..attempts.len())
        .filter(|n| !inserted.contains_key(&ids[*n]))
        .collect();
    let mut places = HashMap::new();
    if !skipped.is_empty() {
        let positions: Vec<i32> = skipped.iter().map(|n| *n as i32).collect();
        let skipped_webhook_ids: Vec<Option<&str>> =
            skipped.iter().map(|n| webhook_ids[*n]).collect();
        let skipped_dedup_keys: Vec<&[u8]> = skipped.iter().map(|n| dedup_keys[*n]).collect();
        for row in sqlx::query_file!(
            "src/persistence/sql/places.sql",
            &positions,
            &skipped_webhook_ids as &[Option<&str>],
            &skipped_dedup_keys as &[&[u8]],
        )
        .fetch_all(&mut *conn)
        .await?
        {
            let place = match (row.original, row.holder) {
                (Some(original), _) => Stored::Duplicate {
                    id: original.into(),
                },
                (None, Some(holder)) => Stored::WebhookIdReused {
                    holder: holder.into(),
                },
                (None, None) => continue,
            };
            places.insert(row.position as usize, place);
        }
    }

    Ok((0..attempts.len())
        .map(|n| match inserted.get(&ids[n]) {
            Some(&signing_registered) => Some(Stored::New {
                id: attempts[n].id,
                signing_registered,
            }),
            None => places.remove(&n),
        })
        .collect())
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
/// signing.
pub async fn history(
    conn: &mut PgConnection,
    person_id: &PersonId,
    signing_id: &SigningId,
    page: PageRequest,
) -> Result<Option<History>, sqlx::Error> {
    let rows = sqlx::query_file!(
        "src/persistence/sql/history.sql",
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
