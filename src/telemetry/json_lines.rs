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
//!
//! A request's span is not a tracing span but a [`RequestSpan`] in a tokio task-local, which
//! [`RequestSpan::scope`] sets around the request's future, and which this format writes as
//! the `span` of every line logged while the request runs (unless a tracing span inside it is
//! innermost), in the same shape. A tracing span is entered and left at every poll of the
//! future it instruments, and of every future that captures it: sqlx's row stream re-enters
//! the current span at each poll, 9 times for a 5-attempt listing. Each time through the registry's slab and `EnvFilter`'s lock, which
//! every worker thread shares. A task-local costs a swap of a pointer per poll of the
//! request. With the timestamp written without `format` (below), the service's CPU per
//! listing went down 9% and per stored webhook 6% (`bench/compare`, medians of 3 runs), its
//! instructions per listing from 192,935 to 171,543 (`bench/instructions`, same day).
//! STYLE.md's request span of tracing-actix-web is left for this reason: `RUST_LOG`
//! directives on the request span no longer match, and a tracing layer added later (say,
//! OpenTelemetry) would not see requests as spans without one.

use std::fmt::{self, Write as _};
use std::future::Future;
use std::rc::Rc;

use actix_web::http::header::HeaderValue;
use actix_web::http::Method;

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
        // RFC 3339 to the microsecond, in UTC: `2026-11-26T17:28:54.123456Z`. Not through
        // `format`, which parses its pattern again at every line (1.4% of the listing's CPU).
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        line.0.extend_from_slice(now.as_bytes());
        line.0.extend_from_slice(b"\",\"level\":\"");
        line.0
            .extend_from_slice(metadata.level().as_str().as_bytes());
        line.0.push(b'"');
        event.record(&mut line);
        line.key("target");
        line.string(metadata.target());
        // The innermost span, as tracing's format writes it: the event's explicit parent,
        // else the tracing span it was logged in, else the request it was logged for.
        let span = match event.parent() {
            Some(id) => context.span(id),
            None if event.is_contextual() => context.lookup_current(),
            None => None,
        };
        if span.is_none() {
            // An error only outside any request, where a line has no span.
            let _ = REQUEST.try_with(|request| request.write(&mut line));
        }
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

tokio::task_local! {
    /// The request whose future is being polled, on this thread.
    static REQUEST: Rc<RequestSpan>;
}

/// A request's ids, written as the `span` of every line logged while it runs, as a tracing
/// span `HTTP request` with these fields would be.
#[derive(Debug)]
pub struct RequestSpan {
    /// Visible ASCII (see `telemetry::request_id`).
    pub request_id: HeaderValue,
    pub trace_id: Option<Box<str>>,
    /// See [`logged_method`].
    pub method: &'static str,
}

/// A request's method as its lines name it: one of RFC 9110's, else `_OTHER`, as
/// OpenTelemetry's HTTP conventions write a method they do not know. An extension method is
/// any token up to the head's limit (128 KiB), sent by whoever connects: written as sent, it
/// made one line per request as long as that, and put whatever the client chose in the logs.
pub fn logged_method(method: &Method) -> &'static str {
    static KNOWN: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::CONNECT,
        Method::OPTIONS,
        Method::TRACE,
        Method::PATCH,
    ];
    KNOWN
        .iter()
        .find(|known| *known == method)
        .map_or("_OTHER", Method::as_str)
}

impl RequestSpan {
    /// Runs `future` as the request's: each line logged while it is polled carries the span.
    pub async fn scope<F: Future>(self: Rc<Self>, future: F) -> F::Output {
        REQUEST.scope(self, future).await
    }

    /// Runs `f` as the request's, as [`RequestSpan::scope`] runs a future.
    pub fn sync_scope<R>(self: Rc<Self>, f: impl FnOnce() -> R) -> R {
        REQUEST.sync_scope(self, f)
    }

    fn write(&self, line: &mut Line) {
        line.key("span");
        line.0.push(b'{');
        line.string("request_id");
        line.0.push(b':');
        line.string(self.request_id.to_str().unwrap_or_default());
        if let Some(trace_id) = &self.trace_id {
            line.key("trace_id");
            line.string(trace_id);
        }
        line.key("http.method");
        line.string(self.method);
        line.key("name");
        line.string("HTTP request");
        line.0.push(b'}');
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

    #[test]
    fn lines_logged_while_a_request_runs_carry_its_span() {
        let span = |trace_id: Option<&str>| {
            Rc::new(RequestSpan {
                request_id: HeaderValue::from_static("req-\"1\""),
                trace_id: trace_id.map(Box::from),
                method: "POST",
            })
        };
        let lines = lines(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a runtime");
            runtime.block_on(span(Some("4bf92f3577b34da6a3ce929d0e0e4736")).scope(async {
                tracing::info!("before a pause");
                tokio::task::yield_now().await;
                tracing::info!("after it");
                // Inside the request, the innermost span is written, as tracing's format does.
                let inner = tracing::info_span!("inner", step = 2);
                let _entered = inner.enter();
                tracing::info!("in a span of its own");
            }));
            span(None).sync_scope(|| tracing::info!("the request's line"));
            tracing::info!("outside any request");
        });
        let spans: Vec<_> = lines.iter().map(|(_, line)| line["span"].clone()).collect();
        let traced = serde_json::json!({
            "request_id": "req-\"1\"",
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
            "http.method": "POST",
            "name": "HTTP request",
        });
        assert_eq!(
            spans,
            [
                traced.clone(),
                traced,
                serde_json::json!({"step": 2, "name": "inner"}),
                serde_json::json!({"request_id": "req-\"1\"", "http.method": "POST", "name": "HTTP request"}),
                serde_json::Value::Null,
            ]
        );
        // Where tracing's format puts a span: after the event's fields and its target.
        assert!(
            lines[0].0.ends_with(r#""name":"HTTP request"}}"#),
            "{}",
            lines[0].0
        );
    }
}
