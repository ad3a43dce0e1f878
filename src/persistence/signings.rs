//! The `signings` table: which IDnow identification belongs to which signing of which person.

use sqlx::PgConnection;

use crate::domain::{PersonId, SigningId, TransactionNumber};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    Created,
    /// The very same registration existed: nothing changed.
    Unchanged,
    Conflict(ConflictReason),
}

/// Why a registration conflicts with what is stored; the text is what the client reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConflictReason {
    #[error("The signing is already registered with another identification.")]
    SigningHasOtherIdentification,
    #[error("The signing is already registered for another person.")]
    SigningHasOtherPerson,
    #[error("The identification already belongs to another signing.")]
    IdentificationTaken,
}

/// Registers a signing idempotently. Under concurrency the unique constraints decide; the
/// loser reads what won and compares.
pub async fn register(
    conn: &mut PgConnection,
    person_id: &PersonId,
    signing_id: &SigningId,
    identification_id: &TransactionNumber,
) -> Result<Registration, sqlx::Error> {
    let inserted = sqlx::query_scalar!(
        r#"
        INSERT INTO signings (signing_id, person_id, identification_id)
        VALUES ($1, $2, $3)
        ON CONFLICT DO NOTHING
        RETURNING signing_id
        "#,
        signing_id.as_str(),
        person_id.as_str(),
        identification_id.as_str(),
    )
    .fetch_optional(&mut *conn)
    .await?;
    if inserted.is_some() {
        return Ok(Registration::Created);
    }

    let existing = sqlx::query!(
        r#"
        SELECT signing_id, person_id, identification_id FROM signings
        WHERE signing_id = $1 OR identification_id = $2
        "#,
        signing_id.as_str(),
        identification_id.as_str(),
    )
    .fetch_all(&mut *conn)
    .await?;
    let same_signing = existing
        .iter()
        .find(|row| row.signing_id == signing_id.as_str());
    let reason = match same_signing {
        Some(row) if row.person_id != person_id.as_str() => ConflictReason::SigningHasOtherPerson,
        Some(row) if row.identification_id != identification_id.as_str() => {
            ConflictReason::SigningHasOtherIdentification
        }
        Some(_) => return Ok(Registration::Unchanged),
        None => ConflictReason::IdentificationTaken,
    };
    Ok(Registration::Conflict(reason))
}
