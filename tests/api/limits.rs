//! Timeouts and limits on every edge: request head, body, whole request, keep-alive, headers.
//! Each test shortens one setting and shows what a client then observes.

use std::time::{Duration, Instant};

use idnow_attempts::edge::linger::LINGER_BYTES;
use reqwest::StatusCode;
use sqlx::PgPool;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::helpers::*;

const SHORT: Duration = Duration::from_millis(300);

#[sqlx::test(migrations = false)]
async fn a_body_that_does_not_arrive_in_time_is_408(pool: PgPool) {
    let app = spawn_app_adjusted(pool, |s| s.http.body_read_timeout = SHORT).await;
    let body = webhook_body("tn-slow", "SUCCESS", "2026-10-02T09:31:47+02:00");
    let (chunks, _rest, trickle) = half_sent(&body).await;
    let started = Instant::now();
    // Answered while the body is still open.
    let response = app.deliver_streamed(&body, trickle).await;
    assert!(started.elapsed() >= SHORT);
    assert_error(response, StatusCode::REQUEST_TIMEOUT, "request_timeout").await;
    drop(chunks);
    assert_eq!(app.attempt_count().await, 0);
    assert!(app.rejected_bodies().await.is_empty());
}

#[sqlx::test(migrations = false)]
async fn a_request_that_takes_too_long_is_503_and_its_retry_is_one_attempt(pool: PgPool) {
    let app = spawn_app_adjusted(pool, |s| s.http.request_timeout = SHORT).await;
    let lock = AttemptsLock::take(&app.db.connect_options(), "SHARE").await;

    let body = webhook_body("tn-stuck", "SUCCESS", "2026-10-02T09:31:47+02:00");
    let started = Instant::now();
    assert_unavailable(app.deliver(&body).await).await;
    let waited = started.elapsed();
    assert!(
        waited >= SHORT && waited < SHORT * 5,
        "503 at the request timeout: {waited:?}"
    );

    lock.release().await;
    // The abandoned INSERT may still commit; either way the retry leaves one attempt.
    let retry = app.deliver(&body).await;
    assert!(retry.status().is_success(), "{}", retry.status());
    assert_eq!(app.attempt_count().await, 1);
}

/// A batch that has its slot waits to grow beside a batch in flight for the acquire timeout
/// at most, then starts beside it: when the database holds up the batch in flight, the next
/// one is answered by its own statement's timeout, not only once the first one's has passed
/// too.
#[sqlx::test(migrations = false)]
async fn a_batch_beside_one_held_up_starts_after_the_acquire_timeout(pool: PgPool) {
    const STATEMENT: Duration = Duration::from_secs(3);
    let app = spawn_app_adjusted(pool, |s| {
        // One writer, with both slots.
        s.http.workers = std::num::NonZeroUsize::MIN;
        s.database.write_concurrency = 2;
        s.database.acquire_timeout = SHORT;
        s.database.statement_timeout = STATEMENT;
        s.http.request_timeout = STATEMENT * 5;
    })
    .await;
    let lock = AttemptsLock::take(&app.db.connect_options(), "SHARE").await;
    let first_body = webhook_body("tn-held-1", "SUCCESS", "2026-10-02T09:31:47Z");
    let first = app.deliver(&first_body);
    let second = async {
        // Once the first batch waits for the lock, the second is beside it.
        wait_until(|| async { statements_waiting_for_a_lock(&app.db).await >= 1 }).await;
        let started = Instant::now();
        let response = app
            .deliver(&webhook_body(
                "tn-held-2",
                "SUCCESS",
                "2026-10-02T09:31:48Z",
            ))
            .await;
        (response, started.elapsed())
    };
    let (first, (second, waited)) = tokio::join!(first, second);
    assert_unavailable(first).await;
    assert_unavailable(second).await;
    // About SHORT + STATEMENT; held until the first batch's end, it was about 2 × STATEMENT.
    assert!(
        waited < STATEMENT + Duration::from_millis(1_500),
        "answered by its own statement's timeout: {waited:?}"
    );
    lock.release().await;
    assert_eq!(app.attempt_count().await, 0);
}

#[sqlx::test(migrations = false)]
async fn a_head_that_does_not_arrive_in_time_is_closed_with_408(pool: PgPool) {
    let app = spawn_app_adjusted(pool, |s| s.http.client_request_timeout = SHORT).await;
    // The server's clock starts when it accepts the connection.
    let connected = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", app.port()))
        .await
        .expect("connect");
    stream
        .write_all(b"POST /v1/webhooks/idnow HTTP/1.1\r\nHost: idnow\r\n")
        .await
        .expect("half a head");
    let (answer, _) = read_until_closed(&mut stream).await;
    // actix-http answers this itself, before any route; in the contract's shape all the same.
    assert_raw_error(&answer, StatusCode::REQUEST_TIMEOUT, "request_timeout");
    let after = connected.elapsed();
    assert!(after >= SHORT, "{after:?}");
    assert_eq!(app.attempt_count().await, 0);
}

/// A connection on which one request was sent and answered 200: kept alive, and idle.
async fn after_one_request(port: u16) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    stream
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: idnow\r\n\r\n")
        .await
        .expect("a request");
    let mut first = vec![0; 4096];
    let n = stream.read(&mut first).await.expect("its answer");
    let first = String::from_utf8_lossy(&first[..n]).into_owned();
    assert!(first.starts_with("HTTP/1.1 200 "), "{first}");
    stream
}

/// The head timeout holds for every request on a connection, not only its first: a client
/// that sends a request and then part of another's head is answered 408 and closed, instead
/// of holding its connection for good.
#[sqlx::test(migrations = false)]
async fn a_later_head_that_does_not_arrive_in_time_is_closed_with_408(pool: PgPool) {
    let app = spawn_app_adjusted(pool, |s| s.http.client_request_timeout = SHORT).await;
    let mut stream = after_one_request(app.port()).await;
    // Longer than the head timeout: the next head's clock starts with its first byte.
    tokio::time::sleep(SHORT * 2).await;
    let started = Instant::now();
    stream
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: idnow\r\n")
        .await
        .expect("half a head");
    let (answer, _) = read_until_closed(&mut stream).await;
    assert_raw_error(&answer, StatusCode::REQUEST_TIMEOUT, "request_timeout");
    assert!(started.elapsed() >= SHORT, "{:?}", started.elapsed());
}

/// A later head trickled in a byte at a time gets no fresh deadline with each byte: the 408
/// comes the head timeout after its first byte, long before the trickle ends.
#[sqlx::test(migrations = false)]
async fn a_later_head_trickled_in_is_closed_with_408_in_time(pool: PgPool) {
    let app = spawn_app_adjusted(pool, |s| s.http.client_request_timeout = SHORT).await;
    let (mut reader, mut writer) = after_one_request(app.port()).await.into_split();
    // A byte every third of the timeout, for twenty times the timeout, or until refused.
    let trickle = tokio::spawn(async move {
        for byte in b"GET /health/live HTTP/1.1\r\nX-Slow: "
            .iter()
            .cycle()
            .take(60)
        {
            if writer.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(SHORT / 3).await;
        }
    });
    let mut answer = Vec::new();
    tokio::time::timeout(SHORT * 10, reader.read_to_end(&mut answer))
        .await
        .expect("closed within ten times the head timeout, the trickle going on")
        .expect("read");
    assert_raw_error(
        &String::from_utf8_lossy(&answer),
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
    );
    trickle.abort();
}

#[sqlx::test(migrations = false)]
async fn an_idle_keep_alive_connection_is_closed(pool: PgPool) {
    let app = spawn_app_adjusted(pool, |s| s.http.keep_alive = Duration::from_secs(1)).await;
    let mut stream = TcpStream::connect(("127.0.0.1", app.port()))
        .await
        .expect("connect");
    stream
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: idnow\r\n\r\n")
        .await
        .expect("request");
    let (answer, after) = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // actix-http reckons the deadline from a clock it refreshes every 500 ms
    // (actix-http's DateService), so the connection may close up to that much early.
    assert!(
        after >= Duration::from_millis(500),
        "closed after the keep-alive, not before: {after:?}"
    );
}

/// What the HTTP layer answers itself, before any route, is complete whatever came before it
/// on the connection, and answers only what the client sent: a head that fills its 128 KiB
/// buffer unended;
/// more than 96 fields after a `HEAD` (whose own answer has no body, and whose method must
/// not take the next answer's body away); a chunked body that breaks off into garbage, which
/// its route answers, once.
#[sqlx::test(migrations = false)]
async fn the_http_layers_own_answers_are_whole_and_answer_only_what_was_sent(pool: PgPool) {
    let app = spawn_app(pool).await;
    let port = app.port();
    let exchange = |request: Vec<u8>| async move {
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        // The server may close before it has read everything; that is its answer too.
        drop(stream.write_all(&request).await);
        read_until_closed(&mut stream).await.0
    };

    // Exactly the buffer: refused as it fills, with nothing left over (for larger heads, see
    // `a_client_still_sending_a_refused_request_reads_its_answer_not_a_reset`).
    let mut huge = b"GET /health/live HTTP/1.1\r\nHost: idnow\r\nX-Filler: ".to_vec();
    huge.resize(128 * 1024, b'a');
    assert_raw_error(
        &exchange(huge).await,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "request_header_fields_too_large",
    );

    let mut after_head = "HEAD /health/live HTTP/1.1\r\nHost: idnow\r\n\r\n\
                          GET /health/live HTTP/1.1\r\nHost: idnow\r\n"
        .to_owned();
    for n in 0..100 {
        after_head.push_str(&format!("X-Filler-{n}: {n}\r\n"));
    }
    after_head.push_str("\r\n");
    let answers = exchange(after_head.into_bytes()).await;
    let second = answers
        .match_indices("HTTP/1.1 ")
        .nth(1)
        .map(|(at, _)| &answers[at..])
        .unwrap_or_else(|| panic!("two answers: {answers:?}"));
    assert!(
        answers.starts_with("HTTP/1.1 200 "),
        "HEAD is served: {answers:?}"
    );
    assert_raw_error(
        second,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "request_header_fields_too_large",
    );

    let body = webhook_body("tn-chunked", "SUCCESS", "2026-10-02T09:31:47+02:00");
    let mut broken = format!(
        "POST /v1/webhooks/idnow HTTP/1.1\r\nHost: idnow\r\nContent-Type: application/json\r\n\
         X-Idnow-Signature: {}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        key(WEBHOOK_SECRET).hmac_signature(&body),
        body.len() / 2
    )
    .into_bytes();
    broken.extend_from_slice(&body[..body.len() / 2]);
    broken.extend_from_slice(b"\r\nzz\r\n");
    // One answer, its route's: the Content-Length check of `assert_raw_error` fails if an
    // unasked-for answer follows it.
    assert_raw_error(
        &exchange(broken).await,
        StatusCode::BAD_REQUEST,
        "unreadable_body",
    );
    assert_eq!(app.attempt_count().await, 0);
}

/// A client that is still sending when its request is refused reads the refusal, and then the
/// end of the connection, rather than a reset that fails its write and can take the answer
/// with it: the server reads on and throws the rest away (src/edge/linger.rs). Each request
/// is 8 MiB, far past what the server reads of it before it answers.
#[sqlx::test(migrations = false)]
async fn a_client_still_sending_a_refused_request_reads_its_answer_not_a_reset(pool: PgPool) {
    let app = spawn_app(pool).await;
    let port = app.port();
    let size = 8 * 1024 * 1024;
    let exchange = |request: Vec<u8>| async move {
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        stream
            .write_all(&request)
            .await
            .expect("the server takes the whole request, though it refused it");
        read_until_closed(&mut stream).await.0
    };

    let mut huge_head = b"GET /health/live HTTP/1.1\r\nHost: idnow\r\nX-Filler: ".to_vec();
    huge_head.resize(size, b'a');
    assert_raw_error(
        &exchange(huge_head).await,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "request_header_fields_too_large",
    );

    let mut malformed = b"GET /health/live HTTP/1.1\r\nHost: idnow\r\nNot a field\r\n\r\n".to_vec();
    malformed.resize(size, b'a');
    assert_raw_error(
        &exchange(malformed).await,
        StatusCode::BAD_REQUEST,
        "malformed_request",
    );

    let mut huge_body = format!(
        "POST /v1/webhooks/idnow HTTP/1.1\r\nHost: idnow\r\nContent-Type: application/json\r\n\
         X-Idnow-Signature: sha256=0000000000000000000000000000000000000000000000000000000000000000\r\nContent-Length: {size}\r\n\r\n"
    )
    .into_bytes();
    huge_body.resize(huge_body.len() + size, b' ');
    assert_raw_error(
        &exchange(huge_body).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    assert_eq!(app.attempt_count().await, 0);
}

/// The rest of a refused request may still be on its way when the server closes: a client
/// that sends its body after its head, as most do, over a network that delays it. Here the
/// client sends on only once it has read its answer and the end of the stream, when the
/// server has closed for certain; its bytes are still taken, not answered with a reset.
#[sqlx::test(migrations = false)]
async fn a_client_that_sends_on_after_its_refusal_is_not_reset(pool: PgPool) {
    let app = spawn_app(pool).await;
    let mut stream = TcpStream::connect(("127.0.0.1", app.port()))
        .await
        .expect("connect");
    stream
        .write_all(
            b"POST /v1/webhooks/idnow HTTP/1.1\r\nHost: idnow\r\nContent-Length: 4194304\r\n\
              Transfer-Encoding: chunked\r\n\r\n",
        )
        .await
        .expect("head");
    let (answer, _) = read_until_closed(&mut stream).await;
    assert_raw_error(&answer, StatusCode::BAD_REQUEST, "malformed_request");

    stream
        .write_all(&vec![b'a'; 4 * 1024 * 1024])
        .await
        .expect("the server takes the rest of the request");
    stream.shutdown().await.expect("end of the request");
}

/// What a refused client sends on is read for it only so far (16 MiB, src/edge/linger.rs):
/// a client that sends without end is cut off, however fast it sends; after a malformed head
/// as after a body declared too large (for which actix-http read on, and threw away, 2.5 to
/// 3.5 GB in 1 s before the linger began, vendor/README.md).
#[sqlx::test(migrations = false)]
async fn a_refused_client_that_sends_without_end_is_cut_off(pool: PgPool) {
    let app = spawn_app(pool).await;
    let port = app.port();
    let limit = usize::try_from(LINGER_BYTES).expect("16 MiB");
    let refused_then_sending = |head: &'static [u8], status: StatusCode, code: &'static str| async move {
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        // Sent on at once, as a client streaming its request does, not once it has read the
        // answer.
        stream.write_all(head).await.expect("head");
        let chunk = vec![b'a'; 1024 * 1024];
        let mut sent = 0;
        // Well within the linger's 5 s: the byte limit cuts it off, not the time limit.
        let cut_off = tokio::time::timeout(Duration::from_secs(3), async {
            while stream.write_all(&chunk).await.is_ok() {
                sent += chunk.len();
            }
        })
        .await;
        assert!(
            cut_off.is_ok(),
            "{code}: still taken after {} MiB",
            sent >> 20
        );
        // Neither much before nor much after the limit: the socket buffers hold some of
        // what was sent when it ends.
        assert!(
            (limit - (4 << 20)..=limit + socket_buffers_max() + (4 << 20)).contains(&sent),
            "{code}: cut off after {} MiB",
            sent >> 20
        );
        // The answer came before the reset, and stays readable after it.
        let mut answer = Vec::new();
        let mut buffer = [0; 4096];
        while let Ok(read @ 1..) = stream.read(&mut buffer).await {
            answer.extend_from_slice(&buffer[..read]);
        }
        assert_raw_error(&String::from_utf8_lossy(&answer), status, code);
    };

    refused_then_sending(
        b"GET /health/live HTTP/1.1\r\nHost: idnow\r\nNot a field\r\n\r\n",
        StatusCode::BAD_REQUEST,
        "malformed_request",
    )
    .await;
    refused_then_sending(
        b"POST /v1/webhooks/idnow HTTP/1.1\r\nHost: idnow\r\nContent-Type: application/json\r\n\
          X-Idnow-Signature: sha256=0000000000000000000000000000000000000000000000000000000000000000\r\nContent-Length: 2000000\r\n\r\n",
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
}

#[sqlx::test(migrations = false)]
async fn too_many_or_too_large_headers_are_refused_without_a_write(pool: PgPool) {
    let app = spawn_app(pool).await;
    let body = webhook_body("tn-headers", "SUCCESS", "2026-10-02T09:31:47+02:00");
    let signature = key(WEBHOOK_SECRET).hmac_signature(&body);

    let mut many = format!(
        "POST /v1/webhooks/idnow HTTP/1.1\r\nHost: idnow\r\nContent-Type: application/json\r\n\
         Connection: close\r\nX-Idnow-Signature: {signature}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for n in 0..100 {
        many.push_str(&format!("X-Filler-{n}: {n}\r\n"));
    }
    let large = format!(
        "POST /v1/webhooks/idnow HTTP/1.1\r\nHost: idnow\r\nContent-Type: application/json\r\n\
         Connection: close\r\nX-Idnow-Signature: {signature}\r\nContent-Length: {}\r\n\
         X-Filler: {}\r\n",
        body.len(),
        "a".repeat(17 * 1024)
    );
    // actix-http's own limit: more than 96 fields, answered before any route. Ours: 16 KiB in
    // all. Both in the contract's shape.
    for head in [many, large] {
        let mut stream = TcpStream::connect(("127.0.0.1", app.port()))
            .await
            .expect("connect");
        let mut request = head.into_bytes();
        request.extend_from_slice(b"\r\n");
        request.extend_from_slice(&body);
        // The server may close before it has read everything; that is its answer too.
        drop(stream.write_all(&request).await);
        let (answer, _) = read_until_closed(&mut stream).await;
        assert_raw_error(
            &answer,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request_header_fields_too_large",
        );
    }
    assert_eq!(app.attempt_count().await, 0);
}
