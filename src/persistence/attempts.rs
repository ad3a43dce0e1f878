//! The `attempts` table: one row per IDnow result webhook.
//!
//! Its statements live in `sql/`, one file each, so that the benchmark runs the very text the
//! service sends.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use futures_util::{Stream, TryStreamExt as _};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::at_rest::{Binding, OpenError, PayloadKeys};
use crate::domain::{
    AttemptId, Delivery, PageRequest, PersonId, SigningId, TransactionNumber, WebhookId,
};

/// An attempt to store, owned, as the batch writer's task needs it, its payload sealed.
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
    /// The SHA-256 of the transaction number, as erasure remembers it.
    pub identification: [u8; 32],
    pub key_id: String,
    /// The body as received, sealed for this row (see `at_rest`).
    pub sealed: Vec<u8>,
}

impl NewAttempt {
    /// The attempt of `delivery`, its payload sealed under the first of `keys`.
    pub fn new(
        delivery: &Delivery<'_>,
        webhook_id: Option<&WebhookId>,
        keys: &PayloadKeys,
    ) -> Self {
        let id = AttemptId::generate();
        let transaction_number = delivery.transaction_number.as_str();
        let sealed = keys.seal(
            Binding::Attempt {
                id: id.as_uuid(),
                transaction_number,
            },
            delivery.payload.as_bytes(),
        );
        Self {
            id,
            transaction_number: transaction_number.to_owned(),
            ident_id: delivery.ident_id.clone(),
            result: delivery.result.clone(),
            reason: delivery.reason.clone(),
            identified_at: delivery.identified_at,
            webhook_id: webhook_id.map(|id| id.as_str().to_owned()),
            dedup_key: delivery.dedup_key,
            identification: delivery.transaction_number.digest(),
            key_id: sealed.key_id.as_str().to_owned(),
            sealed: sealed.bytes,
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
    /// Not stored: its identification was erased.
    Erased,
}

/// Inserts `attempts` with one statement, committed on its own, then looks up, for those it
/// skipped, the rows that hold their place. One answer per attempt, in order; `None` for an
/// attempt whose place was taken by a row deleted before the look-up (a retry stores it).
///
/// An attempt of an erased identification is skipped. Another skipped attempt is a duplicate
/// when the same event is stored (its `dedup_key`), whatever its `webhook-id`; otherwise its
/// `webhook-id` is already another event's.
pub async fn insert(
    conn: &mut PgConnection,
    attempts: &[NewAttempt],
) -> Result<Vec<Option<Stored>>, sqlx::Error> {
    let ids: Vec<Uuid> = attempts.iter().map(|a| a.id.as_uuid()).collect();
    let text = |f: fn(&NewAttempt) -> &str| attempts.iter().map(f).collect::<Vec<_>>();
    let optional = |f: fn(&NewAttempt) -> Option<&str>| attempts.iter().map(f).collect::<Vec<_>>();
    let transaction_numbers = text(|a| &a.transaction_number);
    let results = text(|a| &a.result);
    let key_ids = text(|a| &a.key_id);
    let ident_ids = optional(|a| a.ident_id.as_deref());
    let reasons = optional(|a| a.reason.as_deref());
    let webhook_ids = optional(|a| a.webhook_id.as_deref());
    let identified_at: Vec<Option<DateTime<Utc>>> =
        attempts.iter().map(|a| a.identified_at).collect();
    let dedup_keys: Vec<&[u8]> = attempts.iter().map(|a| &a.dedup_key[..]).collect();
    let sealed: Vec<&[u8]> = attempts.iter().map(|a| &a.sealed[..]).collect();
    let identifications: Vec<&[u8]> = attempts.iter().map(|a| &a.identification[..]).collect();

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
        &sealed as &[&[u8]],
        &key_ids as &[&str],
        &identifications as &[&[u8]],
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
        let skipped_identifications: Vec<&[u8]> =
            skipped.iter().map(|n| identifications[*n]).collect();
        for row in sqlx::query_file!(
            "src/persistence/sql/places.sql",
            &positions,
            &skipped_webhook_ids as &[Option<&str>],
            &skipped_dedup_keys as &[&[u8]],
            &skipped_identifications as &[&[u8]],
        )
        .fetch_all(&mut *conn)
        .await?
        {
            let place = match (row.erased, row.original, row.holder) {
                (true, _, _) => Stored::Erased,
                (false, Some(original), _) => Stored::Duplicate {
                    id: original.into(),
                },
                (false, None, Some(holder)) => Stored::WebhookIdReused {
                    holder: holder.into(),
                },
                (false, None, None) => continue,
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

/// A row of a page of a signing's history: the history's figures, and one attempt of the page.
#[derive(Debug)]
pub struct HistoryRow {
    /// Attempts in the whole history, not only this page.
    pub total: u64,
    /// The signing's identification.
    pub transaction_number: String,
    /// `None` on the one row of a page past the end (or of a history without attempts).
    pub attempt: Option<StoredAttempt>,
}

#[derive(Debug)]
pub struct StoredAttempt {
    pub id: AttemptId,
    pub result: String,
    pub reason: Option<String>,
    pub payload: StoredPayload,
}

/// A payload as the database holds it.
#[derive(Debug)]
pub enum StoredPayload {
    Sealed {
        key_id: String,
        sealed: Vec<u8>,
    },
    /// Stored before encryption existed, and not yet re-encrypted.
    Plain(Vec<u8>),
    /// Neither: a row that breaks the table's CHECK, which cannot be read.
    Missing,
}

impl StoredPayload {
    /// The body as received: opened, or as it was stored before encryption.
    pub fn open(self, keys: &PayloadKeys, binding: Binding<'_>) -> Result<Vec<u8>, OpenError> {
        match self {
            Self::Plain(bytes) => Ok(bytes),
            Self::Sealed { key_id, sealed } => keys.open(&key_id, binding, sealed),
            Self::Missing => Err(OpenError::Forged),
        }
    }

    /// As [`StoredPayload::open`], where it lies: a part of this value.
    pub fn open_where_it_lies(
        &mut self,
        keys: &PayloadKeys,
        binding: Binding<'_>,
    ) -> Result<&[u8], OpenError> {
        match self {
            Self::Plain(bytes) => Ok(bytes),
            Self::Sealed { key_id, sealed } => keys.open_where_it_lies(key_id, binding, sealed),
            Self::Missing => Err(OpenError::Forged),
        }
    }

    /// Its length as stored: sealed, its nonce and tag besides the body.
    pub fn stored_len(&self) -> usize {
        match self {
            Self::Sealed { sealed, .. } => sealed.len(),
            Self::Plain(bytes) => bytes.len(),
            Self::Missing => 0,
        }
    }

    /// From a row's `key_id`, `sealed` and plain payload columns.
    pub fn from_columns(
        key_id: Option<String>,
        sealed: Option<Vec<u8>>,
        plain: Option<Vec<u8>>,
    ) -> Self {
        match (key_id, sealed, plain) {
            (Some(key_id), Some(sealed), None) => Self::Sealed { key_id, sealed },
            (None, None, Some(plain)) => Self::Plain(plain),
            _ => Self::Missing,
        }
    }
}

/// One page of a signing's attempt history, oldest first, row by row as PostgreSQL sends them,
/// so that the page is never held whole before its answer is written; no row at all when the
/// person has no such signing.
pub fn history<'a>(
    conn: &'a mut PgConnection,
    person_id: &'a PersonId,
    signing_id: &'a SigningId,
    page: PageRequest,
) -> impl Stream<Item = Result<HistoryRow, sqlx::Error>> + 'a {
    sqlx::query_file!(
        "src/persistence/sql/history.sql",
        signing_id.as_str(),
        person_id.as_str(),
        page.limit(),
        page.offset(),
    )
    .fetch(conn)
    .map_ok(|row| {
        // A signing without attempts on this page comes back as one row of NULLs.
        let attempt = row.id.zip(row.result).map(|(id, result)| StoredAttempt {
            id: id.into(),
            result,
            reason: row.reason,
            payload: StoredPayload::from_columns(
                row.key_id,
                row.sealed,
                row.plain.map(String::into_bytes),
            ),
        });
        HistoryRow {
            total: u64::try_from(row.total).unwrap_or_default(),
            transaction_number: row.identification_id,
            attempt,
        }
    })
}

/// An attempt as `idnow-attempts attempts` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentificationAttempt {
    pub id: AttemptId,
    pub result: String,
    pub reason: Option<String>,
    pub identified_at: Option<DateTime<Utc>>,
    pub received_at: DateTime<Utc>,
    /// The person and signing ids of the signing the attempt belongs to, once one is
    /// registered for its identification.
    pub signing: Option<(String, String)>,
}

/// Every attempt of the identification `transaction_number`, oldest first as in the listing,
/// each with its signing when one is registered.
pub async fn of_identification(
    conn: &mut PgConnection,
    transaction_number: &TransactionNumber,
) -> Result<Vec<IdentificationAttempt>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"
        SELECT a.id, a.result, a.reason, a.identified_at, a.received_at,
               s.person_id AS "person_id?", s.signing_id AS "signing_id?"
        FROM attempts a
        LEFT JOIN signings s ON s.identification_id = a.transaction_number
        WHERE a.transaction_number = $1
        ORDER BY a.sort_at, a.seq
        "#,
        transaction_number.as_str(),
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| IdentificationAttempt {
            id: row.id.into(),
            result: row.result,
            reason: row.reason,
            identified_at: row.identified_at,
            received_at: row.received_at,
            signing: row.person_id.zip(row.signing_id),
        })
        .collect())
}

/// A transaction number whose attempts no signing has claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unclaimed {
    pub transaction_number: String,
    pub attempts: u64,
    pub first_received_at: DateTime<Utc>,
    pub last_received_at: DateTime<Utc>,
}

/// The transaction numbers with attempts that no signing has claimed, the longest waiting
/// first; with `older_than_days`, only those whose last attempt arrived more than that many
/// days ago. Reads every attempt: for operators, not for requests.
pub async fn unclaimed(
    conn: &mut PgConnection,
    older_than_days: Option<u16>,
) -> Result<Vec<Unclaimed>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"
        SELECT a.transaction_number,
               count(*) AS "attempts!",
               min(a.received_at) AS "first_received_at!",
               max(a.received_at) AS "last_received_at!"
        FROM attempts a
        WHERE NOT EXISTS (SELECT 1 FROM signings s
                          WHERE s.identification_id = a.transaction_number)
        GROUP BY a.transaction_number
        HAVING $1::int IS NULL OR max(a.received_at) < now() - make_interval(days => $1::int)
        ORDER BY min(a.received_at), a.transaction_number
        "#,
        older_than_days.map(i32::from),
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| Unclaimed {
            transaction_number: row.transaction_number,
            attempts: super::rows(row.attempts),
            first_received_at: row.first_received_at,
            last_received_at: row.last_received_at,
        })
        .collect())
}
