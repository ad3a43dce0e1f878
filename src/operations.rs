//! The commands besides `serve`: `migrate`, and the operator commands that repair data,
//! `reencrypt` and `purge`. They run with the same configuration as `serve`, on a connection
//! of their own without a statement timeout (they may read whole tables), print what they do
//! on stdout, and fail with a non-zero exit and the reason in the log.

use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Context as _};
use uuid::Uuid;

use crate::at_rest::{Binding, OpenError, PayloadKeys};
use crate::cli::Command;
use crate::configuration::Settings;
use crate::persistence::attempts::StoredPayload;
use crate::persistence::keys::{self, Resealed, Stale};
use crate::persistence::{self, Database, Table};
use crate::retention::{RetentionSettings, Turn};

/// Rows re-encrypted per statement at most: about 1.5 MB of 3 KB payloads each way.
const REENCRYPT_BATCH: i64 = 500;
/// Bytes of payloads re-encrypted per statement at most (a batch holds at least one row,
/// whatever its size): what bounds the command's memory, since bodies go up to 1 MiB.
const REENCRYPT_BATCH_BYTES: i64 = 8 * 1024 * 1024;

/// Runs `command`, which is not `serve`.
pub async fn run(
    command: Command,
    settings: &Settings,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let database = Closing(persistence::connect(
        &settings.database.maintenance(),
        settings.database.connect_options(),
    ));
    match command {
        Command::Serve => bail!("`serve` is not an operator command"),
        Command::Migrate => {
            persistence::migrate(&database.0)
                .await
                .context("applying database migrations")?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Reencrypt => {
            // A write's transaction lasts at most its statement timeout (the server's, not
            // this command's); a minute more for clocks and commits.
            let writes_last = settings.database.statement_timeout + Duration::from_secs(60);
            reencrypt(&database.0, &settings.payload_keys, writes_last, out).await
        }
        Command::Purge { dry_run } => purge(&database.0, &settings.retention, dry_run, out).await,
    }
}

/// A command's database, closed politely when the command ends, however it ends.
struct Closing(Database);

impl Drop for Closing {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Re-encrypts every row not sealed under the first key (sealed under another, or stored
/// before encryption) under it, then unregisters the keys no row uses any more.
///
/// Batched by id, each batch read, re-sealed and written back only where the row is still as
/// it was read, so that it runs beside live traffic and beside another run. Interrupted, it
/// resumes where it was: rows already under the first key are passed over. A row that does
/// not open (tampered with, or under a key not configured) is reported and left as it is.
/// Fails unless every row ends under the first key; `writes_last` is how long a write of the
/// server may run (see [`keys::forget_unused`]).
pub async fn reencrypt(
    database: &Database,
    keys: &PayloadKeys,
    writes_last: Duration,
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
                .run(async |conn| {
                    keys::stale(
                        conn,
                        table,
                        current,
                        after,
                        REENCRYPT_BATCH,
                        REENCRYPT_BATCH_BYTES,
                    )
                    .await
                })
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
    let forgotten = keys::forget_unused(database, current, writes_last)
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
    if unreadable > 0 {
        bail!("{unreadable} row(s) could not be decrypted and were left as they are");
    }
    if !in_use.is_empty() {
        bail!(
            "rows are still encrypted under key id(s) {} (written meanwhile by a replica that \
             encrypts with an older key?): keep them listed, finish the roll-out, and run \
             reencrypt again",
            in_use.join(", ")
        );
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
    let stored = StoredPayload::from_columns(row.key_id.clone(), row.sealed, row.plain);
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
