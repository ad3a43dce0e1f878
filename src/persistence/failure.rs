//! What a failed statement means for its caller: retry later, or never.
//!
//! By SQLSTATE, never by message text (the message may quote the row, personal data
//! included, and changes with the server's language).

/// A failure of the database or of the path to it.
pub trait Transient: std::error::Error + Send + Sync + 'static {
    /// Whether the same request may succeed if retried: the database is down, restarting,
    /// overloaded or failing over, or the pool is exhausted. The HTTP layer answers these 503
    /// with `Retry-After`, every other failure 500.
    fn is_transient(&self) -> bool;
}

impl Transient for sqlx::Error {
    fn is_transient(&self) -> bool {
        match self {
            Self::PoolTimedOut
            | Self::PoolClosed
            | Self::Io(_)
            | Self::Tls(_)
            | Self::WorkerCrashed => true,
            Self::Database(_) => {
                sqlstate(self).is_some_and(|code| {
                    // 08: connection exception; 53: insufficient resources; 57P: shutdown or
                    // start-up; 57014: statement timeout; 25006: read-only transaction (a failover
                    // in progress); 42P01: undefined table, i.e. migrations not yet applied during
                    // a roll-out; 55P03: lock not available within lock_timeout. And lost
                    // conflicts (is_conflict).
                    // (A server that refuses a new connection is an outage too, whatever its
                    // SQLSTATE: see `pool::pool_error`.)
                    code.starts_with("08")
                        || code.starts_with("53")
                        || code.starts_with("57P")
                        || matches!(code.as_ref(), "57014" | "25006" | "42P01" | "55P03")
                }) || is_conflict(self)
            }
            _ => false,
        }
    }
}

/// Whether the database refused a value of the row itself, so that no retry could store it:
/// a data exception (SQLSTATE class 22, e.g. a NUL character in `text`), a NOT NULL or CHECK
/// violation, or a value too large for an index row (54000).
pub fn is_unstorable(error: &sqlx::Error) -> bool {
    sqlstate(error).is_some_and(|code| {
        code.starts_with("22") || matches!(code.as_ref(), "23502" | "23514" | "54000")
    })
}

/// Whether the statement lost a conflict with another transaction (a serialization failure
/// or a deadlock): transient, but a matter of the rows it touched, not of the database.
pub fn is_conflict(error: &sqlx::Error) -> bool {
    sqlstate(error).is_some_and(|code| matches!(code.as_ref(), "40001" | "40P01"))
}

/// The SQLSTATE and constraint of a database's refusal: what may be logged of it. (Its
/// message and detail may quote the row, personal data included.)
pub fn refusal(error: &sqlx::Error) -> Option<(String, Option<String>)> {
    let error = error.as_database_error()?;
    Some((
        error.code()?.into_owned(),
        error.constraint().map(str::to_owned),
    ))
}

fn sqlstate(error: &sqlx::Error) -> Option<std::borrow::Cow<'_, str>> {
    error.as_database_error()?.code()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_exhaustion_and_outages_are_transient() {
        assert!(sqlx::Error::PoolTimedOut.is_transient());
        assert!(sqlx::Error::PoolClosed.is_transient());
        assert!(!sqlx::Error::RowNotFound.is_transient());
        assert!(!is_unstorable(&sqlx::Error::RowNotFound));
    }
}
