//! The log line format: one JSON object per event, as tracing-subscriber's JSON format with
//! `flatten_event` and the current span writes it (`timestamp`, `level`, the event's fields,
//! `target`, then `span` with its fields and `name`), written straight into one buffer.
//!
//! tracing-subscriber's own JSON format costs every request about 40,000 instructions for
//! its one line (callgrind, `bench/instructions`): each field goes through serde's map
//! serializer into an `io::Write` adaptor that checks every piece for UTF-8 again, and the
//! span's fields, kept as JSON text, are parsed back into values at every event to be
//! written out once more. Here each field is escaped once, with serde_json's escaper, and
//! the span's JSON text is spliced in as it is.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent as _;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The event format of the service's logs; spans' fields are kept by [`JsonFields`].
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonLines;

impl<S> FormatEvent<S, JsonFields> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        context: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // Events of the `log` crate name their own target and level, not `log`'s.
        let normalized = event.normalized_metadata();
        let metadata = normalized.as_ref().unwrap_or_else(|| event.metadata());
        let mut line = Line(Vec::with_capacity(512));
        line.0.extend_from_slice(b"{\"timestamp\":\"");
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ");
        line.0.extend_from_slice(now.to_string().as_bytes());
        line.0.extend_from_slice(b"\",\"level\":\"");
        line.0
            .extend_from_slice(metadata.level().as_str().as_bytes());
        line.0.push(b'"');
        event.record(&mut line);
        line.key("target");
        line.string(metadata.target());
        // An event's explicit parent, else the span it was logged in.
        let span = match event.parent() {
            Some(id) => context.span(id),
            None if event.is_contextual() => context.lookup_current(),
            None => None,
        };
        if let Some(span) = span {
            line.key("span");
            let extensions = span.extensions();
            let fields = extensions
                .get::<FormattedFields<JsonFields>>()
                .map_or("", |fields| fields.fields.as_str());
            // `{"a":1}` with the name added: `{"a":1,"name":"…"}`; `{}` or nothing: the name.
            match fields.trim().strip_suffix('}') {
                Some(open) if open.trim_end() != "{" => {
                    line.0.extend_from_slice(open.as_bytes());
                    line.0.push(b',');
                }
                _ => line.0.push(b'{'),
            }
            line.0.extend_from_slice(b"\"name\":");
            line.string(span.name());
            line.0.push(b'}');
        }
        line.0.extend_from_slice(b"}\n");
        // Every piece was a str or escaped JSON: valid UTF-8, which this checks once.
        let line = String::from_utf8(line.0).map_err(|_| fmt::Error)?;
        writer.write_str(&line)
    }
}

/// A line being written, and the visitor of an event's fields.
struct Line(Vec<u8>);

impl Line {
    fn key(&mut self, name: &str) {
        self.0.push(b',');
        self.string(name);
        self.0.push(b':');
    }

    fn string(&mut self, value: &str) {
        // Writing a str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.0, value);
    }

    fn display(&mut self, value: impl fmt::Display) {
        let mut text = String::new();
        let _ = write!(text, "{value}");
        self.string(&text);
    }
}

impl Line {
    /// Starts `field`, unless it is metadata of a `log` record (`log.target`, `log.file`, …),
    /// written as the event's own already, as tracing-subscriber's JSON format does.
    fn field(&mut self, field: &Field) -> bool {
        if field.name().starts_with("log.") {
            return false;
        }
        self.key(field.name());
        true
    }

    /// `field` with a number as serde_json writes it.
    fn number(&mut self, field: &Field, value: impl serde::Serialize) {
        if self.field(field) {
            // Writing a number into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut self.0, &value);
        }
    }
}

impl Visit for Line {
    fn record_str(&mut self, field: &Field, value: &str) {
        if !self.field(field) {
            return;
        }
        self.string(value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.number(field, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.number(field, value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // Not finite: null, as serde_json writes it.
        self.number(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if !self.field(field) {
            return;
        }
        self.0
            .extend_from_slice(if value { b"true" } else { b"false" });
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if !self.field(field) {
            return;
        }
        self.display(value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if !self.field(field) {
            return;
        }
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        self.string(&text);
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    /// What the subscriber wrote, shared with the test.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .expect("not poisoned")
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Self;

        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    /// Each line written while `run` ran: its text and what it parses to.
    fn lines(run: impl FnOnce()) -> Vec<(String, serde_json::Value)> {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(JsonFields::new())
            .event_format(JsonLines)
            .with_writer(captured.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, run);
        let text =
            String::from_utf8(captured.0.lock().expect("not poisoned").clone()).expect("UTF-8");
        text.lines()
            .map(|line| {
                let parsed = serde_json::from_str(line).expect("every line is JSON");
                (line.to_owned(), parsed)
            })
            .collect()
    }

    #[test]
    fn lines_are_json_objects_in_the_json_formats_shape() {
        let error = io::Error::other("disk \"full\"");
        let lines = lines(|| {
            tracing::warn!(
                text = "tab\there, quote \" and \u{1b}",
                count = 3_u64,
                delta = -2_i64,
                ratio = 0.5,
                flag = true,
                error = &error as &(dyn std::error::Error + 'static),
                debugged = ?Some("x"),
                "a message with {} and \"quotes\"",
                "arguments"
            );
            let span = tracing::info_span!("HTTP request", request_id = "r-1", http.method = "GET");
            let _entered = span.enter();
            tracing::info!(status = 200, "request completed");
            let empty = tracing::info_span!("quiet");
            let _inner = empty.enter();
            tracing::info!("inside a span without fields");
            let other = tracing::info_span!("other");
            tracing::info!(parent: &other, "with an explicit parent");
            let record = log::Record::builder()
                .target("sqlx::postgres::notice")
                .level(log::Level::Warn)
                .args(format_args!("from the log crate"))
                .build();
            tracing_log::format_trace(&record).expect("dispatched");
        });
        assert_eq!(lines.len(), 5);
        let (text, first) = &lines[0];
        // The order of tracing-subscriber's JSON format.
        let at = |key: &str| text.find(&format!("\"{key}\":")).expect(key);
        assert_eq!(at("timestamp"), 1, "{text}");
        assert!(
            at("level") < at("message") && at("message") < at("text"),
            "{text}"
        );
        assert!(at("debugged") < at("target"), "{text}");
        assert_eq!(first["level"], "WARN");
        assert_eq!(first["message"], "a message with arguments and \"quotes\"");
        assert_eq!(first["text"], "tab\there, quote \" and \u{1b}");
        assert_eq!(first["count"], 3);
        assert_eq!(first["delta"], -2);
        assert_eq!(first["ratio"], 0.5);
        assert_eq!(first["flag"], true);
        assert_eq!(first["error"], "disk \"full\"");
        assert_eq!(first["debugged"], "Some(\"x\")");
        assert_eq!(first["target"], module_path!());
        assert!(first.get("span").is_none());
        let timestamp = first["timestamp"].as_str().expect("a string");
        assert!(
            chrono::DateTime::parse_from_rfc3339(timestamp).is_ok(),
            "{timestamp}"
        );

        let (text, second) = &lines[1];
        assert!(text.ends_with(r#""name":"HTTP request"}}"#), "{text}");
        assert_eq!(
            second["span"],
            serde_json::json!({"request_id": "r-1", "http.method": "GET", "name": "HTTP request"})
        );
        assert_eq!(second["status"], 200);
        assert_eq!(lines[2].1["span"], serde_json::json!({"name": "quiet"}));
        assert_eq!(lines[3].1["span"], serde_json::json!({"name": "other"}));
        let from_log = &lines[4].1;
        assert_eq!(
            (
                &from_log["target"],
                &from_log["level"],
                &from_log["message"]
            ),
            (
                &"sqlx::postgres::notice".into(),
                &"WARN".into(),
                &"from the log crate".into()
            )
        );
        assert!(from_log.get("log.target").is_none(), "{from_log}");
    }
}
