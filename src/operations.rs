//! The commands besides `serve`: `migrate`, the operator commands that repair data,
//! `reencrypt`, `purge` and `rejected replay`, and those that look at it, `rejected list`,
//! `rejected show`, `attempts` and `unregistered`. They run with the same configuration as
//! `serve`, on a connection of their own without a statement timeout (they may read whole
//! tables), print what they do on stdout, and fail with a non-zero exit and the reason in the
//! log.
//!
//! What they print as rows is one header line, then one line per row, tab-separated, with
//! times in RFC 3339 UTC and an empty field for a value that is absent: readable, and
//! scriptable with `cut` or `awk -F'\t'`.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Context as _};
use chrono::{DateTime, SecondsFormat, Utc};
use uuid::Uuid;

use crate::at_rest::{Binding, OpenError, PayloadKeys};
use crate::cli::{Command, RejectedCommand};
use crate::configuration::Settings;
use crate::domain::{AttemptId, TransactionNumber};
use crate::ingest::{self, Outcome};
use crate::metrics::WriterMetrics;
use crate::persistence::attempts::{self, StoredPayload};
use crate::persistence::keys::{self, Resealed, Stale};
use crate::persistence::rejected;
use crate::persistence::writer::AttemptWriter;
use crate::persistence::{self, Database, Table};
use crate::retention::{RetentionSettings, Turn};

/// Rows re-encrypted per statement at most: about 1.5 MB of 3 KB payloads each way.
const REENCRYPT_BATCH: i64 = 500;
/// Bytes of payloads re-encrypted per statement at most (a batch holds at least one row,
/// whatever its size): what bounds the command's memory, since bodies go up to 1 MiB.
const REENCRYPT_BATCH_BYTES: i64 = 8 * 1024 * 1024;

/// Standard output, on which a broken pipe (its reader went away: `rejected list | head`)
/// fails with [`ReaderGone`] inside, so that [`is_reader_gone`] tells it from a broken pipe
/// of the database's connection.
#[derive(Debug)]
pub struct Stdout(pub std::io::Stdout);

impl Write for Stdout {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.write(bytes).map_err(reader_gone)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush().map_err(reader_gone)
    }
}

fn reader_gone(error: std::io::Error) -> std::io::Error {
    match error.kind() {
        std::io::ErrorKind::BrokenPipe => std::io::Error::new(error.kind(), ReaderGone),
        _ => error,
    }
}

/// What [`Stdout`] fails with when nobody reads it any more.
#[derive(Debug, thiserror::Error)]
#[error("the reader of standard output went away")]
pub struct ReaderGone;

/// Whether `error` is that [`Stdout`]'s reader went away: the reader stopped the command, as
/// `head` does, which is no failure of the command's to log.
pub fn is_reader_gone(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .is_some_and(|inner| inner.is::<ReaderGone>())
    })
}

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
            // The server's writes, not this command's.
            let writes_last = settings.database.writes_last();
            reencrypt(&database.0, &settings.payload_keys, writes_last, out).await
        }
        Command::Purge { dry_run } => purge(&database.0, &settings.retention, dry_run, out).await,
        Command::Rejected { command } => {
            let keys = &settings.payload_keys;
            match command {
                RejectedCommand::List { since } => rejected_list(&database.0, since, out).await,
                RejectedCommand::Show { id } => rejected_show(&database.0, keys, id, out).await,
                RejectedCommand::Replay { id, all: _ } => {
                    // The store of live deliveries, on this command's one connection.
                    let writer = AttemptWriter::start(
                        database.0.clone(),
                        1,
                        settings.database.acquire_timeout,
                        WriterMetrics::detached(),
                    );
                    rejected_replay(&database.0, &writer, keys, id, out).await
                }
            }
        }
        Command::Attempts { transaction_number } => {
            identification_attempts(&database.0, &transaction_number, out).await
        }
        Command::Unregistered { older_than } => unregistered(&database.0, older_than, out).await,
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
                        // An attempt as the API and `attempts` show it (`…cida`).
                        let id = match table {
                            Table::Attempts => AttemptId::from(id).to_string(),
                            Table::RejectedDeliveries => id.to_string(),
                        };
                        writeln!(out, "{} {id}: left as it is: {error}", table.name())?;
                    }
                }
            }
            if !resealed.is_empty() {
                written += database
                    .run(async |conn| keys::rewrite(conn, table, current, &resealed).await)
                    .await
                    .with_context(|| format!("writing {}", table.name()))?;
            }
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

/// Prints the kept rejected deliveries that arrived at `since` or later (all without it),
/// newest first.
pub async fn rejected_list(
    database: &Database,
    since: Option<DateTime<Utc>>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let kept = database
        .run(async |conn| rejected::list(conn, since).await)
        .await
        .context("reading the kept rejected deliveries")?;
    writeln!(out, "id\treceived_at\tstatus\tcode")?;
    for delivery in kept {
        writeln!(
            out,
            "{}\t{}\t{}\t{}",
            delivery.id,
            time(delivery.received_at),
            delivery.status,
            text(&delivery.error_code),
        )?;
    }
    Ok(())
}

/// Writes the body of the kept delivery `id` to `out`, byte for byte as it was received.
pub async fn rejected_show(
    database: &Database,
    keys: &PayloadKeys,
    id: Uuid,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let body = match read_kept(database, keys, id).await? {
        Kept::Body { body, .. } => body,
        Kept::Gone => bail!("no rejected delivery is kept with id {id}"),
        Kept::Unreadable(error) => {
            return Err(error).with_context(|| format!("opening the kept rejected delivery {id}"))
        }
    };
    out.write_all(&body)?;
    out.flush()?;
    Ok(())
}

/// A kept delivery as read for `show` and `replay`.
enum Kept {
    /// Its body opened, and the `webhook-id` it was kept with.
    Body {
        webhook_id: Option<String>,
        body: Vec<u8>,
    },
    /// No delivery is kept with that id (perhaps deleted since it was listed).
    Gone,
    /// Its body does not open.
    Unreadable(OpenError),
}

async fn read_kept(database: &Database, keys: &PayloadKeys, id: Uuid) -> anyhow::Result<Kept> {
    let kept = database
        .run(async |conn| rejected::body(conn, id).await)
        .await
        .with_context(|| format!("reading the kept rejected delivery {id}"))?;
    let Some(kept) = kept else {
        return Ok(Kept::Gone);
    };
    Ok(match kept.body.open(keys, Binding::Rejected { id }) {
        Ok(body) => Kept::Body {
            webhook_id: kept.webhook_id,
            body,
        },
        Err(error) => Kept::Unreadable(error),
    })
}

/// What `rejected replay` made of the kept deliveries, by outcome.
#[derive(Debug, Default)]
struct Replayed {
    stored: u64,
    stored_unregistered: u64,
    duplicate: u64,
    erased: u64,
    refused: u64,
    unreadable: u64,
}

/// Runs the kept delivery `id` (every one, oldest first, without it) through the parse and
/// store of a live delivery ([`ingest::authentic`]) and prints what became of each: one line
/// per delivery, then a summary. Keeps nothing: a kept delivery stays as it is, and one that
/// is still refused is not kept again. Fails, after the summary, when any is still refused or
/// does not open.
pub async fn rejected_replay(
    database: &Database,
    writer: &AttemptWriter,
    keys: &PayloadKeys,
    id: Option<Uuid>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let ids = match id {
        Some(id) => vec![id],
        None => database
            .run(async |conn| rejected::ids(conn).await)
            .await
            .context("reading the kept rejected deliveries")?,
    };
    writeln!(out, "rejected_id\toutcome\tattempt_id\tstatus\tcode")?;
    let mut replayed = Replayed::default();
    for kept_id in ids {
        let (webhook_id, body) = match read_kept(database, keys, kept_id).await? {
            Kept::Body { webhook_id, body } => (webhook_id, body),
            Kept::Gone if id.is_some() => bail!("no rejected delivery is kept with id {kept_id}"),
            // Deleted since it was listed (retention, erasure): nothing left to replay.
            Kept::Gone => continue,
            Kept::Unreadable(error) => {
                replayed.unreadable += 1;
                writeln!(out, "{kept_id}\tunreadable\t\t\t{error}")?;
                continue;
            }
        };
        let outcome = ingest::authentic(
            writer,
            keys,
            webhook_id.as_deref().map(str::as_bytes),
            &body,
            |_| {},
        )
        .await
        .with_context(|| format!("replaying the kept rejected delivery {kept_id}"))?;
        let (outcome, attempt, status, code) = match outcome {
            Outcome::Stored {
                id,
                signing_registered: true,
                ..
            } => {
                replayed.stored += 1;
                ("stored", Some(id), 201, "")
            }
            Outcome::Stored { id, .. } => {
                replayed.stored_unregistered += 1;
                ("stored_unregistered", Some(id), 202, "")
            }
            Outcome::Duplicate { id } => {
                replayed.duplicate += 1;
                ("duplicate", Some(id), 200, "")
            }
            Outcome::Erased => {
                replayed.erased += 1;
                ("erased", None, 204, "")
            }
            Outcome::Refused(refusal) => {
                replayed.refused += 1;
                ("refused", refusal.holder, refusal.status(), refusal.code())
            }
        };
        let attempt = attempt.map(|id| id.to_string()).unwrap_or_default();
        writeln!(out, "{kept_id}\t{outcome}\t{attempt}\t{status}\t{code}")?;
    }
    let Replayed {
        stored,
        stored_unregistered,
        duplicate,
        erased,
        refused,
        unreadable,
    } = replayed;
    let total = stored + stored_unregistered + duplicate + erased + refused + unreadable;
    writeln!(
        out,
        "replayed {total}: {stored} stored, {stored_unregistered} stored_unregistered, \
         {duplicate} duplicate, {erased} erased, {refused} refused, {unreadable} unreadable"
    )?;
    if refused + unreadable > 0 {
        bail!("{refused} kept delivery(ies) still refused, {unreadable} unreadable");
    }
    Ok(())
}

/// Prints the attempts of the identification `transaction_number`, oldest first, with the
/// signing they belong to, if any.
pub async fn identification_attempts(
    database: &Database,
    transaction_number: &TransactionNumber,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let found = database
        .run(async |conn| attempts::of_identification(conn, transaction_number).await)
        .await
        .context("reading the identification's attempts")?;
    writeln!(
        out,
        "id\tresult\treason\tidentified_at\treceived_at\tperson_id\tsigning_id"
    )?;
    for attempt in found {
        let (person_id, signing_id) = attempt.signing.unwrap_or_default();
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            attempt.id,
            text(&attempt.result),
            text(attempt.reason.as_deref().unwrap_or_default()),
            attempt.identified_at.map(time).unwrap_or_default(),
            time(attempt.received_at),
            text(&person_id),
            text(&signing_id),
        )?;
    }
    Ok(())
}

/// Prints the transaction numbers with attempts no signing has claimed, the longest waiting
/// first; with `older_than_days`, only those whose every attempt arrived more than that many
/// days ago.
pub async fn unregistered(
    database: &Database,
    older_than_days: Option<u16>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let unclaimed = database
        .run(async |conn| attempts::unclaimed(conn, older_than_days).await)
        .await
        .context("reading the unclaimed attempts")?;
    writeln!(
        out,
        "transaction_number\tattempts\tfirst_received_at\tlast_received_at"
    )?;
    for row in unclaimed {
        writeln!(
            out,
            "{}\t{}\t{}\t{}",
            text(&row.transaction_number),
            row.attempts,
            time(row.first_received_at),
            time(row.last_received_at),
        )?;
    }
    Ok(())
}

/// A time as the commands print it: RFC 3339 in UTC, to the microsecond PostgreSQL keeps, so
/// that a printed time given back (`rejected list --since`) means exactly that time.
fn time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A text value as one field of a tab-separated line: a backslash, tab, line break or any
/// other control character (a sender's `result` or `reason` may hold them) is escaped, so
/// that a value never splits its line or its field, nor reaches a terminal as a control; so
/// are the characters that break or reorder a line without being controls, or hide in it
/// (see [`is_invisible`]), so that what an operator reads, and copies, is what was sent.
fn text(value: &str) -> Cow<'_, str> {
    if !value.chars().any(|c| c == '\\' || shown_as_code(c)) {
        return Cow::Borrowed(value);
    }
    let mut escaped = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '\t' => escaped.push_str("\\t"),
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            c if shown_as_code(c) => {
                // Infallible: writing to a String.
                let _ = write!(escaped, "\\u{{{:x}}}", u32::from(c));
            }
            c => escaped.push(c),
        }
    }
    Cow::Owned(escaped)
}

/// What `text` shows as its code point (`\u{…}`): controls, and what [`is_invisible`] says.
fn shown_as_code(c: char) -> bool {
    c.is_control() || is_invisible(c)
}

/// Unicode's line and paragraph separators (a line break to some viewers), and the
/// characters a terminal shows as nothing though they are part of a copied value, or that
/// change how what follows them is shown: Unicode 15's Default_Ignorable_Code_Point (the
/// marks and overrides of bidirectional text, zero-width characters, variation selectors,
/// fillers, tags, the byte order mark) and the other format characters (General_Category Cf:
/// prepended concatenation marks, interlinear annotations). From DerivedCoreProperties.txt and
/// UnicodeData.txt; no maintained crate we use carries these properties. A deliberate cost:
/// the joiners and variation selectors that Persian and Indic names, emoji and some name
/// kanji use are shown escaped too, since the operator's copy must be exactly what was sent.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00ad}'
            | '\u{034f}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061c}'
            | '\u{06dd}'
            | '\u{070f}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08e2}'
            | '\u{115f}'..='\u{1160}'
            | '\u{17b4}'..='\u{17b5}'
            | '\u{180b}'..='\u{180f}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}'
            | '\u{3164}'
            | '\u{fe00}'..='\u{fe0f}'
            | '\u{feff}'
            | '\u{ffa0}'
            | '\u{fff0}'..='\u{fffb}'
            | '\u{110bd}'
            | '\u{110cd}'
            | '\u{13430}'..='\u{1343f}'
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0000}'..='\u{e0fff}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_fields_keep_to_their_field_and_line() {
        assert_eq!(text("ABORTED"), "ABORTED");
        assert!(matches!(text("ABORTED"), Cow::Borrowed(_)));
        assert_eq!(
            text("a\tb\nc\rd\\e\u{1b}[31mf\u{85}"),
            "a\\tb\\nc\\rd\\\\e\\u{1b}[31mf\\u{85}"
        );
        assert_eq!(text("Käse ✓"), "Käse ✓");
        // Found by a red-team session: printed raw, these broke or reordered a row.
        assert_eq!(
            text("a\u{2028}b\u{202e}c\u{200b}d\u{feff}"),
            "a\\u{2028}b\\u{202e}c\\u{200b}d\\u{feff}"
        );
        // And what a second look found still printed as nothing.
        assert_eq!(
            text("S\u{ad}U\u{180e}C\u{fff9}C\u{e0041}E\u{1d173}S\u{34f}S\u{3164}"),
            "S\\u{ad}U\\u{180e}C\\u{fff9}C\\u{e0041}E\\u{1d173}S\\u{34f}S\\u{3164}"
        );
        assert_eq!(text("עברית"), "עברית");
    }

    #[test]
    fn times_are_utc_to_the_microsecond() {
        let time = DateTime::parse_from_rfc3339("2026-11-24T10:00:00.5+01:00")
            .expect("a time")
            .with_timezone(&Utc);
        assert_eq!(super::time(time), "2026-11-24T09:00:00.500000Z");
    }
}
