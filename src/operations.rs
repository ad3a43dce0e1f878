//! Operator commands that repair data: `reencrypt` and `purge`. They run with the same
//! configuration as `serve`, print what they do on stdout, and fail (non-zero exit) with the
//! reason on stderr.

use std::io::Write;

use anyhow::{bail, Context as _};
use uuid::Uuid;

use crate::at_rest::{Binding, OpenError, PayloadKeys};
use crate::persistence::attempts::StoredPayload;
use crate::persistence::keys::{self, Resealed, Stale, Table};
use crate::persistence::Database;
use crate::retention::{RetentionSettings, Turn};

/// Rows re-encrypted per statement: about 1.5 MB of 3 KB payloads each way.
const REENCRYPT_BATCH: i64 = 500;

/// Re-encrypts every row not sealed under the first key (sealed under another, or stored
/// before encryption) under it, then unregisters the keys no row uses any more.
///
/// Batched by id, each batch read, re-sealed and written back only where the row is still as
/// it was read, so that it runs beside live traffic and beside another run. Interrupted, it
/// resumes where it was: rows already under the first key are passed over. A row that does
/// not open (tampered with, or under a key not configured) is reported and left as it is.
pub async fn reencrypt(
    database: &Database,
    keys: &PayloadKeys,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let current = keys.current().as_str();
    let (attempts, rejected) = database
        .run(async |conn| keys::count_stale(conn, current).await)
        .await
        .context("counting the rows to re-encrypt")?;
    writeln!(
        out,
        "re-encrypting under key {current}: {attempts} attempts, {rejected} rejected deliveries"
    )?;
    let mut unreadable = 0_u64;
    for (table, total) in [
        (Table::Attempts, attempts),
        (Table::RejectedDeliveries, rejected),
    ] {
        let mut after = Uuid::nil();
        let mut written = 0_u64;
        loop {
            let rows = database
                .run(async |conn| keys::stale(conn, table, current, after, REENCRYPT_BATCH).await)
                .await
                .with_context(|| format!("reading {}", table.name()))?;
            let Some(last) = rows.last() else { break };
            after = last.id;
            let mut resealed = Vec::with_capacity(rows.len());
            for row in rows {
                match reseal(keys, table, row) {
                    Ok(row) => resealed.push(row),
                    Err((id, error)) => {
                        unreadable += 1;
                        writeln!(out, "{} {id}: left as it is: {error}", table.name())?;
                    }
                }
            }
            written += database
                .run(async |conn| keys::rewrite(conn, table, current, &resealed).await)
                .await
                .with_context(|| format!("writing {}", table.name()))?;
            writeln!(out, "{}: {written} of {total} re-encrypted", table.name())?;
        }
    }
    let forgotten = keys::forget_unused(database, current)
        .await
        .context("unregistering keys no row uses")?;
    if !forgotten.is_empty() {
        writeln!(
            out,
            "no row uses key id(s) {} any more: they may be removed from PAYLOAD_ENCRYPTION_KEYS",
            forgotten.join(", ")
        )?;
    }
    let in_use = database
        .run(async |conn| keys::unconfigured_in_use(conn, &[current]).await)
        .await
        .context("reading the keys in use")?;
    if !in_use.is_empty() {
        writeln!(
            out,
            "rows are still encrypted under key id(s) {} (written meanwhile by a replica that \
             encrypts with an older key?): keep them listed and run reencrypt again",
            in_use.join(", ")
        )?;
    }
    if unreadable > 0 {
        bail!("{unreadable} row(s) could not be decrypted and were left as they are");
    }
    writeln!(out, "done: every row is encrypted under key {current}")?;
    Ok(())
}

/// A stale row opened and sealed again under the first key, or why it cannot be.
fn reseal(keys: &PayloadKeys, table: Table, row: Stale) -> Result<Resealed, (Uuid, OpenError)> {
    let binding = match (table, &row.transaction_number) {
        (Table::Attempts, Some(transaction_number)) => Binding::Attempt {
            id: row.id,
            transaction_number,
        },
        _ => Binding::Rejected { id: row.id },
    };
    let stored = match (row.key_id.clone(), row.sealed, row.plain) {
        (Some(key_id), Some(sealed), _) => StoredPayload::Sealed { key_id, sealed },
        (None, None, Some(plain)) => StoredPayload::Plain(
            // A plain attempt payload sits in a `json` column, so it is text; a plain kept
            // body may be any bytes, which `Plain` holds only as text: opened separately.
            match String::from_utf8(plain) {
                Ok(text) => text,
                Err(bytes) => {
                    return Ok(Resealed {
                        id: row.id,
                        was_key_id: None,
                        sealed: keys.seal(binding, bytes.as_bytes()).bytes,
                    })
                }
            },
        ),
        _ => return Err((row.id, OpenError::Forged)),
    };
    let plaintext = stored
        .open(keys, binding)
        .map_err(|error| (row.id, error))?;
    Ok(Resealed {
        id: row.id,
        was_key_id: row.key_id,
        sealed: keys.seal(binding, &plaintext).bytes,
    })
}

/// Applies the retention settings now; with `dry_run`, only counts what it would delete.
pub async fn purge(
    database: &Database,
    retention: &RetentionSettings,
    dry_run: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let attempts_rule = format!(
        "attempts no signing claimed within {} days",
        retention.unregistered_days
    );
    let rejected_rule = format!(
        "rejected deliveries kept over {} days",
        retention.rejected_days
    );
    if dry_run {
        let (attempts, rejected) = retention
            .due(database)
            .await
            .context("counting what retention would delete")?;
        writeln!(out, "dry run, nothing deleted; a purge now would delete:")?;
        writeln!(out, "{attempts} {attempts_rule}")?;
        writeln!(out, "{rejected} {rejected_rule}")?;
        return Ok(());
    }
    let mut progress = Ok(());
    let purged = retention
        .purge(database, Turn::Wait, |table, rows| {
            if progress.is_ok() {
                progress = writeln!(out, "{}: {rows} deleted", table.label());
            }
        })
        .await
        .context("deleting what is past its retention")?;
    progress?;
    writeln!(out, "deleted:")?;
    writeln!(out, "{} {attempts_rule}", purged.attempts)?;
    writeln!(out, "{} {rejected_rule}", purged.rejected_deliveries)?;
    Ok(())
}
