//! The real binary, run as an operator would, for its logs: JSON lines with a request id, and
//! no personal data, secret or token in any of them.

use nix::sys::signal::Signal;
use reqwest::StatusCode;
use sqlx::PgPool;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::helpers::*;
use crate::process::ServiceProcess;

/// The service's log lines, each of them JSON.
fn events(log: &[String]) -> Vec<serde_json::Value> {
    log.iter()
        .map(|line| serde_json::from_str(line).expect("every line is JSON"))
        .collect()
}

/// That no line is at ERROR or WARN: what `cause` did is no fault of the service.
fn assert_no_error_or_warning(events: &[serde_json::Value], cause: &str) {
    let errors: Vec<_> = events
        .iter()
        .filter(|event| event["level"] == "ERROR" || event["level"] == "WARN")
        .collect();
    assert!(
        errors.is_empty(),
        "no ERROR or WARN for {cause}: {errors:?}"
    );
}

/// `event` without the values the service generates: ids, times, durations, numbers.
fn without_generated_values(event: &mut serde_json::Value) {
    const GENERATED: [&str; 6] = [
        "timestamp",
        "elapsed_ms",
        "request_id",
        "trace_id",
        "error.id",
        "attempt_id",
    ];
    if let Some(fields) = event.as_object_mut() {
        fields.retain(|key, value| !GENERATED.contains(&key.as_str()) && !value.is_number());
        fields.values_mut().for_each(without_generated_values);
    }
}

#[sqlx::test(migrations = false)]
async fn a_full_run_logs_no_personal_data_or_secrets(pool: PgPool) {
    // More than production logs, to catch what a debugging operator would see too.
    let service = ServiceProcess::start(&pool, &[("RUST_LOG", "debug")]);
    let app = &service.app;

    // The whole surface, with every fixture.
    app.register(PERSON, "sig-1", "b2d949eb12ecd6798fa8e2ae66fc4a5acidt")
        .await;
    app.register(PERSON, "sig-2", "7f3c5a19d2e84b06a1c9e5f2b3d4a6c8cidt")
        .await;
    for file in FIXTURES {
        let body = fixture(file);
        assert!(app.deliver(&body).await.status().is_success());
        assert_eq!(app.deliver(&body).await.status(), StatusCode::OK);
        let forged = app.post_webhook(&body, Signed::Plain("forged")).await;
        assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
        // Authentic but refused: the body holds personal data, the log must not.
        let mut truncated = body.clone();
        truncated.truncate(body.len() / 2);
        assert_eq!(
            app.deliver(&truncated).await.status(),
            StatusCode::BAD_REQUEST
        );
        let unprocessable = String::from_utf8(body.clone())
            .expect("utf-8")
            .replace("\"transactionnumber\"", "\"transaction_number\"");
        assert_eq!(
            app.deliver(unprocessable.as_bytes()).await.status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
    assert_eq!(
        listed(app.list(PERSON, "sig-2", "?page[size]=2").await)
            .await
            .len(),
        2
    );
    assert_eq!(
        app.list_as("wrong", PERSON, "sig-2", "").await.status(),
        401
    );
    assert_eq!(
        app.list_as(WRITE_TOKEN, PERSON, "sig-2", "").await.status(),
        403
    );
    // Erased, then a late delivery: acknowledged, and logged as such.
    assert_eq!(app.erase_as(ERASE_TOKEN, PERSON).await.status(), 200);
    assert_eq!(app.deliver(&fixture("success.json")).await.status(), 204);

    service.signal(Signal::SIGTERM);
    let (exit, log) = service.wait().await;
    assert!(exit.success(), "SIGTERM ends the service cleanly: {exit:?}");

    let completed: Vec<serde_json::Value> = events(&log)
        .into_iter()
        .filter(|event| event["message"] == "request completed")
        .inspect(|event| {
            assert!(event["span"]["request_id"].is_string(), "{event}");
            assert!(event["status"].is_u64(), "{event}");
        })
        .collect();
    // 2 registrations, 5 deliveries of each of the 6 fixtures, 3 listings, an erasure and a
    // late delivery: one line each, and no other line about them (nothing here is a server
    // error).
    assert_eq!(
        completed.len(),
        2 + 5 * FIXTURES.len() + 3 + 2,
        "one line per request"
    );
    assert!(
        !log.iter().any(|line| line.contains("\"level\":\"ERROR\"") || line.contains("\"level\":\"WARN\"")),
        "no request here is worth a warning"
    );
    // The one line of a request says what came of it.
    let stored = completed
        .iter()
        .find(|event| event["status"] == 201 && event["http.route"] == "/v1/webhooks/idnow")
        .expect("a stored webhook was logged");
    assert_eq!(stored["outcome"], "stored");
    // The identification by its digest's first 16 hex digits, never by its number.
    assert_eq!(
        stored["transaction_number_sha256"],
        sha256_hex("b2d949eb12ecd6798fa8e2ae66fc4a5acidt")[..16]
    );
    assert!(stored.get("transaction_number").is_none(), "{stored}");
    assert!(stored["attempt_id"]
        .as_str()
        .is_some_and(|id| id.ends_with("cida")));
    let forged = completed
        .iter()
        .find(|event| event["status"] == 401 && event["http.route"] == "/v1/webhooks/idnow")
        .expect("a forged webhook was logged");
    assert_eq!(forged["error.code"], "invalid_signature");
    assert!(forged["error.id"].is_string(), "{forged}");
    let listing = completed
        .iter()
        .find(|event| event["status"] == 200 && event["total"].is_u64())
        .expect("a listing was logged");
    assert_eq!(listing["api_client"], "reader");
    let erasure = completed
        .iter()
        .find(|event| event["http.route"] == "/v1/persons/{person_id}")
        .expect("the erasure was logged");
    assert_eq!(
        (&erasure["status"], &erasure["api_client"]),
        (&200.into(), &"eraser".into())
    );
    let late = completed.last().expect("the late delivery was logged last");
    assert_eq!(
        (&late["status"], &late["outcome"]),
        (&204.into(), &"erased".into())
    );
    assert_eq!(
        listing["http.route"],
        "/v1/persons/{person_id}/signings/{signing_id}/idnow_attempts"
    );

    // Generated values (random ids, times, durations) may hold a postcode's digits by chance:
    // they are left out of the search, which covers every other value of every line.
    let text = events(&log)
        .into_iter()
        .map(|mut event| {
            without_generated_values(&mut event);
            event.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut forbidden = personal_values();
    assert!(
        forbidden.len() >= 20,
        "the fixtures' personal data: {forbidden:?}"
    );
    forbidden.extend(
        [
            // The fixtures' transaction numbers: payload values that point to a person at
            // IDnow, and that an erasure keeps only as digests.
            "b2d949eb12ecd6798fa8e2ae66fc4a5acidt",
            "7f3c5a19d2e84b06a1c9e5f2b3d4a6c8cidt",
            WEBHOOK_SECRET,
            "cHJldmlvdXMtd2ViaG9vay1zZWNyZXQ",
            READ_TOKEN,
            WRITE_TOKEN,
            ERASE_TOKEN,
            PAYLOAD_KEYS.split_once(':').expect("id:key").1,
        ]
        .map(String::from),
    );
    for value in &forbidden {
        assert!(!text.contains(value.as_str()), "the log contains {value:?}");
    }
}

#[sqlx::test(migrations = false)]
async fn a_server_error_is_logged_with_its_cause_under_the_id_the_client_got(pool: PgPool) {
    // A database where nothing listens: every request that needs it fails, 503.
    let unreachable = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        format!("postgres://postgres@127.0.0.1:{port}/none")
    };
    let service = ServiceProcess::start_on(&unreachable, &pool, &[("MIGRATE_ON_START", "false")]);
    let response = service.app.list(PERSON, "sig-1", "").await;
    let error = assert_unavailable(response).await;

    service.signal(Signal::SIGTERM);
    let (_, log) = service.wait().await;
    let failed: Vec<serde_json::Value> = events(&log)
        .into_iter()
        .filter(|event| event["message"] == "request failed")
        .collect();
    assert_eq!(failed.len(), 1, "one line for the one request: {log:?}");
    let line = &failed[0];
    assert_eq!(line["level"], "ERROR");
    assert_eq!(line["status"], 503);
    assert_eq!(line["error.id"], error["id"], "the id the client got");
    assert_eq!(line["error.code"], "service_unavailable");
    let cause = line["error.cause"].as_str().expect("the cause is logged");
    assert!(
        cause.contains("reading the attempt history") && cause.contains("Connection refused"),
        "the whole chain: {cause}"
    );
}

/// A caller's `X-Request-Id` follows its request into our log and back in the answer; one
/// that is not a short visible-ASCII token is replaced, never logged; a `traceparent`'s trace
/// id is logged beside it.
#[sqlx::test(migrations = false)]
async fn request_ids_and_trace_ids_are_taken_echoed_and_logged(pool: PgPool) {
    let service = ServiceProcess::start(&pool, &[]);
    let client = reqwest::Client::new();
    let live = service.app.url("/health/live");
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let taken = client
        .get(&live)
        .header("X-Request-Id", "gw-7f3c/1:abc")
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .send()
        .await
        .expect("request");
    assert_eq!(taken.headers()["x-request-id"], "gw-7f3c/1:abc");

    let mut replaced = Vec::new();
    for refused in ["has space".to_owned(), "x".repeat(129), String::new()] {
        let response = client
            .get(&live)
            .header("X-Request-Id", refused.as_str())
            .header(
                "traceparent",
                format!("00-{}-00f067aa0ba902b7-01", "0".repeat(32)),
            )
            .send()
            .await
            .expect("request");
        let id = response.headers()["x-request-id"].to_str().expect("ascii");
        assert!(
            uuid::Uuid::try_parse(id).is_ok(),
            "{refused:?} replaced by a UUID: {id}"
        );
        replaced.push(id.to_owned());
    }
    // Every answer has one, errors too.
    let missing = service.app.get("/no/such/route").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(missing.headers().contains_key("x-request-id"));

    service.signal(Signal::SIGTERM);
    let (_, log) = service.wait().await;
    let events = events(&log);
    // The release comes first, as Cargo.toml has it.
    assert_eq!(events[0]["message"], "idnow-attempts starting");
    assert_eq!(events[0]["version"], env!("CARGO_PKG_VERSION"));
    assert!(events[0]["revision"].is_string());
    let lines: Vec<&serde_json::Value> = events
        .iter()
        .filter(|event| event["message"] == "request completed")
        .collect();
    assert_eq!(lines.len(), 5, "{log:?}");
    assert_eq!(lines[0]["request_id"], "gw-7f3c/1:abc", "at the top level");
    assert_eq!(lines[0]["trace_id"], trace);
    for (line, id) in lines[1..4].iter().zip(&replaced) {
        assert_eq!(line["request_id"], id.as_str());
        assert!(
            line.get("trace_id").is_none(),
            "an all-zero trace id is invalid"
        );
    }
    let log = log.join("\n");
    assert!(!log.contains("has space") && !log.contains(&"x".repeat(129)));
}

/// The workers write their request lines in batches (src/telemetry/stdout.rs): every line
/// still comes out whole and once, while the service runs, without a later request or the
/// stop to push it out.
#[sqlx::test(migrations = false)]
async fn request_lines_come_out_whole_and_once_while_the_service_runs(pool: PgPool) {
    const REQUESTS: usize = 400;
    let mut service = ServiceProcess::start(&pool, &[]);
    let client = reqwest::Client::new();
    let live = service.app.url("/health/live");
    // Concurrent requests, so that many end in the same turn of a worker and share a batch.
    for chunk in (0..REQUESTS).collect::<Vec<_>>().chunks(50) {
        let requests = chunk.iter().map(|n| {
            client
                .get(&live)
                .header("X-Request-Id", format!("batch-{n}"))
                .send()
        });
        for response in futures_util::future::join_all(requests).await {
            assert_eq!(response.expect("request").status(), StatusCode::OK);
        }
    }
    let mut seen = std::collections::HashSet::new();
    while seen.len() < REQUESTS {
        let line = service
            .next_line(std::time::Duration::from_secs(10))
            .unwrap_or_else(|| panic!("only {} of {REQUESTS} lines came", seen.len()));
        let event: serde_json::Value = serde_json::from_str(&line).expect("a whole JSON line");
        if let Some(id) = event["request_id"].as_str() {
            assert!(seen.insert(id.to_owned()), "{id} logged twice");
        }
    }
    // Alone, after the others: its line comes out on its own.
    let response = client
        .get(&live)
        .header("X-Request-Id", "alone")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    loop {
        let line = service
            .next_line(std::time::Duration::from_secs(10))
            .expect("the lone request's line comes while the service runs");
        if line.contains("\"request_id\":\"alone\"") {
            break;
        }
    }

    service.signal(Signal::SIGTERM);
    let (status, log) = service.wait().await;
    assert!(status.success());
    let completed = events(&log)
        .iter()
        .filter(|event| event["message"] == "request completed")
        .count();
    assert_eq!(
        completed,
        REQUESTS + 1,
        "each request once, none after the stop"
    );
}

/// Requests actix-http itself refuses before any route sees them: anyone can send these, so
/// they must not each write an ERROR line. They are counted, and logged at DEBUG.
#[sqlx::test(migrations = false)]
async fn malformed_http_is_counted_and_never_logged_as_an_error(pool: PgPool) {
    let service = ServiceProcess::start(&pool, &[("RUST_LOG", "info,idnow_attempts::http=debug")]);
    let malformed: [(&str, Vec<u8>); 7] = [
        (
            "Content-Length with Transfer-Encoding",
            b"POST /v1/webhooks/idnow HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
        ),
        (
            "Content-Length twice",
            b"POST /v1/webhooks/idnow HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nabcde".to_vec(),
        ),
        (
            "an obs-fold header",
            b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n".to_vec(),
        ),
        ("no Host", b"GET /health/live HTTP/1.1\r\n\r\n".to_vec()),
        ("a 100 kB query string", {
            let mut request = b"GET /health/live?q=".to_vec();
            request.extend(std::iter::repeat_n(b'a', 100_000));
            request.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\n\r\n");
            request
        }),
        ("a 200 kB target, past the read buffer", {
            let mut request = b"GET /".to_vec();
            request.extend(std::iter::repeat_n(b'a', 200_000));
            request.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\n\r\n");
            request
        }),
        (
            "a Content-Length that is no number",
            b"POST /v1/webhooks/idnow HTTP/1.1\r\nHost: x\r\nContent-Length: five\r\n\r\n".to_vec(),
        ),
    ];
    for (name, request) in &malformed {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", service.port()))
            .await
            .expect("connects");
        stream.write_all(request).await.expect("sent");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.expect("read");
        let answer = String::from_utf8_lossy(&answer);
        // Answered before any route, in the contract's shape all the same: a target too
        // long to take is 414 (RFC 9112 §3), the rest 400.
        if name.contains("kB") {
            assert_raw_error(&answer, StatusCode::URI_TOO_LONG, "uri_too_long");
        } else {
            assert_raw_error(&answer, StatusCode::BAD_REQUEST, "malformed_request");
        }
    }
    let metrics = service
        .app
        .get("/metrics")
        .await
        .text()
        .await
        .expect("body");
    assert!(
        metrics.contains(&format!(
            "http_protocol_refusals_total{{kind=\"malformed_request\"}} {}\n",
            malformed.len()
        )),
        "{metrics}"
    );

    service.signal(Signal::SIGTERM);
    let (_, log) = service.wait().await;
    let events = events(&log);
    assert_no_error_or_warning(&events, "a client's request");
    let refused = events
        .iter()
        .filter(|event| {
            event["level"] == "DEBUG"
                && event["message"] == "HTTP exchange refused before routing"
                && event["kind"] == "malformed_request"
        })
        .count();
    assert_eq!(refused, malformed.len(), "one DEBUG line each: {log:?}");
}

/// The writer's safety net for values the parser does not foresee: the database's refusal is
/// logged by its SQLSTATE and constraint, never with its detail, which quotes the row.
#[sqlx::test(migrations = false)]
async fn a_delivery_the_database_refuses_is_logged_without_its_values(pool: PgPool) {
    let service = ServiceProcess::start(&pool, &[("RUST_LOG", "debug")]);
    // Migrated at start; this stands for any refusal the parser does not foresee.
    sqlx::query("ALTER TABLE attempts ADD CONSTRAINT refuses_poison CHECK (result <> 'POISON')")
        .execute(&pool)
        .await
        .expect("constraint added");
    for file in FIXTURES {
        let mut payload: serde_json::Value =
            serde_json::from_slice(&fixture(file)).expect("fixture is JSON");
        payload["identificationprocess"]["result"] = "POISON".into();
        // Two fixtures differ only in their result: each its own body, kept once each.
        payload["fixture"] = file.into();
        let body = serde_json::to_vec(&payload).expect("serialises");
        let response = service.app.deliver(&body).await;
        assert_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_webhook_payload",
        )
        .await;
    }
    assert_eq!(service.app.rejected().await.len(), FIXTURES.len());

    service.signal(Signal::SIGTERM);
    let (_, log) = service.wait().await;
    let refusals: Vec<serde_json::Value> = events(&log)
        .into_iter()
        .filter(|event| event["level"] == "WARN")
        .collect();
    assert_eq!(refusals.len(), FIXTURES.len(), "{log:?}");
    for refusal in &refusals {
        assert_eq!(refusal["sqlstate"], "23514");
        assert_eq!(refusal["constraint"], "refuses_poison");
    }
    let text = log.join("\n");
    for value in personal_values() {
        assert!(!text.contains(value.as_str()), "the log contains {value:?}");
    }
    assert!(
        !text.contains("Failing row"),
        "PostgreSQL's detail is not logged"
    );
}

/// A client that reads none of its answers is disconnected after the send timeout: its doing,
/// which anyone can cause at will, so no ERROR line (there was one per connection).
#[sqlx::test(migrations = false)]
async fn a_client_that_reads_no_answers_is_never_logged_as_an_error(pool: PgPool) {
    let config = TempFile::new("send-timeout.toml", "[http]\nsend_timeout_ms = 300\n");
    let service = ServiceProcess::start(&pool, &[("APP_CONFIG", config.path())]);
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", service.port()))
        .await
        .expect("connects");
    let pipelined = b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n".repeat(10_000);
    let (_reader, mut writer) = stream.into_split();
    let ended = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while writer.write_all(&pipelined).await.is_ok() {}
    })
    .await;
    assert!(ended.is_ok(), "the service ends the connection");

    service.signal(Signal::SIGTERM);
    let (_, log) = service.wait().await;
    assert_no_error_or_warning(&events(&log), "a client's doing");
}

/// A statement slower than a second is the database's doing, and the service's own lines say
/// what it cost (the request's `elapsed_ms`, the writer's metrics): no WARN line quoting the
/// statement's SQL, which sqlx writes by default for each one, so that a slow database does
/// not double the log with kilobytes of the service's internals.
#[sqlx::test(migrations = false)]
async fn a_slow_statement_is_not_logged_with_its_sql(pool: PgPool) {
    let service = ServiceProcess::start(&pool, &[]);
    let lock = AttemptsLock::take(&service.app.db.connect_options(), "SHARE").await;
    let body = webhook_body("tn-slow-statement", "SUCCESS", "2026-10-02T09:31:47+02:00");
    let delivery = service.app.deliver(&body);
    // Once the INSERT waits behind the lock, it is held there for longer than sqlx's
    // threshold of a slow statement (1 s): the slowness is what is tested, not a wait for
    // something to happen.
    let release = async {
        wait_until(|| async { statements_waiting_for_a_lock(&service.app.db).await >= 1 }).await;
        tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
        lock.release().await;
    };
    let (response, ()) = tokio::join!(delivery, release);
    assert_eq!(response.status(), StatusCode::ACCEPTED);

    service.signal(Signal::SIGTERM);
    let (_, log) = service.wait().await;
    let events = events(&log);
    assert_no_error_or_warning(&events, "a slow statement");
    let text = log.join("\n");
    assert!(!text.contains("INSERT"), "no SQL in the log: {text}");
}

/// `X-Forwarded-For` from a peer that `TRUSTED_PROXIES` does not list is ignored, and said so
/// once per process (behind an unlisted proxy every sender is the proxy): never its value,
/// and never again, whoever sends it.
#[sqlx::test(migrations = false)]
async fn an_ignored_forwarding_header_is_said_once_without_its_value(pool: PgPool) {
    let service = ServiceProcess::start(&pool, &[]);
    for n in 0..3 {
        let response = service
            .app
            .client
            .post(service.app.url("/v1/webhooks/idnow"))
            .header("x-forwarded-for", format!("198.51.100.{n}, MUSTERMANN"))
            .body("{}")
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    service.signal(Signal::SIGTERM);
    let (_, log) = service.wait().await;
    let said: Vec<serde_json::Value> = events(&log)
        .into_iter()
        .filter(|event| {
            event["level"] == "WARN"
                && event["message"]
                    .as_str()
                    .is_some_and(|message| message.contains("X-Forwarded-For"))
        })
        .collect();
    assert_eq!(said.len(), 1, "{said:?}");
    let text = log.join("\n");
    assert!(
        !text.contains("MUSTERMANN") && !text.contains("198.51.100."),
        "{text}"
    );
}

/// A request's method is in its lines as one of HTTP's own, else `_OTHER`: an extension method
/// is whatever token a client sends, up to the head's limit, and was written out as sent, so
/// that one request made a line of 100 kB holding what the client chose.
#[sqlx::test(migrations = false)]
async fn a_method_of_the_clients_own_is_logged_as_other(pool: PgPool) {
    let service = ServiceProcess::start(&pool, &[]);
    let long = "SECRET".repeat(10_000);
    for method in ["PROPFIND", "TOKEN_MUSTERMANN", long.as_str(), "DELETE"] {
        let request =
            format!("{method} /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let answer = exchange(service.port(), request.as_bytes()).await;
        assert!(
            answer.starts_with("HTTP/1.1 405 "),
            "{method:.20}: {answer}"
        );
    }
    service.signal(Signal::SIGTERM);
    let (_, log) = service.wait().await;
    // Sorted: each worker writes its own lines.
    let mut methods: Vec<String> = events(&log)
        .into_iter()
        .filter(|event| event["message"] == "request completed")
        .map(|event| {
            event["span"]["http.method"]
                .as_str()
                .unwrap_or("?")
                .to_owned()
        })
        .collect();
    methods.sort();
    assert_eq!(methods, ["DELETE", "_OTHER", "_OTHER", "_OTHER"]);
    let text = log.join("\n");
    assert!(
        !text.contains("PROPFIND") && !text.contains("MUSTERMANN") && !text.contains("SECRET"),
        "{text:.2000}"
    );
    let longest = log.iter().map(String::len).max().unwrap_or_default();
    assert!(longest < 2_000, "a line of {longest} bytes");
}
