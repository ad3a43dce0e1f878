//! Hostile input through the real server: each case gets a clean 4xx in the contract's shape
//! and no attempt is written. The table here is the list the README gives. Every fuzzing
//! seed and every crash the fuzzer ever found (fuzz/seeds, fuzz/regressions) is replayed too.

use std::path::Path;

use reqwest::StatusCode;
use sqlx::PgPool;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::helpers::*;

fn success() -> Vec<u8> {
    fixture("success.json")
}

/// Authentic (signed) bodies that cannot be stored.
fn hostile_bodies() -> Vec<(&'static str, Vec<u8>, StatusCode, &'static str)> {
    let mut invalid_utf8 = success();
    invalid_utf8.splice(30..30, [0xff, 0xfe]);
    let nested = format!(
        r#"{{"identificationprocess":{{"result":"SUCCESS","transactionnumber":"tn","x":{}{}}}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let success = success();
    vec![
        ("invalid UTF-8", invalid_utf8, StatusCode::BAD_REQUEST, "invalid_json"),
        ("10,000 levels of nesting", nested.into_bytes(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_webhook_payload"),
        (
            "duplicate keys",
            br#"{"identificationprocess":{"result":"SUCCESS","result":"FRAUD_SUSPICION_CONFIRMED","transactionnumber":"tn"}}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_webhook_payload",
        ),
        ("a JSON array", b"[1,2,3]".to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_webhook_payload"),
        ("a JSON string", br#""identificationprocess""#.to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_webhook_payload"),
        ("JSON null", b"null".to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_webhook_payload"),
        ("a body that stops early", success[..success.len() / 2].to_vec(), StatusCode::BAD_REQUEST, "invalid_json"),
        ("an empty body", Vec::new(), StatusCode::BAD_REQUEST, "invalid_json"),
        (
            "no transaction number",
            br#"{"identificationprocess":{"result":"SUCCESS"}}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_webhook_payload",
        ),
        (
            "a transaction number with a newline",
            br#"{"identificationprocess":{"result":"SUCCESS","transactionnumber":"a\nb"}}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_webhook_payload",
        ),
    ]
}

/// A number literal no parser reads back exactly is still JSON, and the contract refuses only
/// what the store cannot hold: it is stored and listed as it was sent.
#[sqlx::test(migrations = false)]
async fn a_number_of_5000_digits_is_stored_and_listed_as_sent(pool: PgPool) {
    let app = spawn_app(pool).await;
    let number = format!("1{}e999999", "0".repeat(5_000));
    let body = format!(
        r#"{{"identificationprocess":{{"result":"SUCCESS","transactionnumber":"tn-number","n":{number}}}}}"#
    );
    assert_eq!(
        app.register("person", "signing", "tn-number")
            .await
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(
        app.deliver(body.as_bytes()).await.status(),
        StatusCode::CREATED
    );
    let listing = app.list("person", "signing", "").await;
    assert_eq!(listing.status(), StatusCode::OK);
    let listing = listing.text().await.expect("listing body");
    assert!(
        listing.contains(&body),
        "the payload is listed byte for byte"
    );
}

#[sqlx::test(migrations = false)]
async fn hostile_input_gets_a_clean_4xx_and_writes_no_attempt(pool: PgPool) {
    let app = spawn_app(pool).await;
    let cases = hostile_bodies();
    for (name, body, status, code) in &cases {
        let response = app.deliver(body).await;
        assert_eq!(response.status(), *status, "{name}");
        assert_error(response, *status, code).await;
    }
    // Authentic but refused: kept verbatim for operators, never as an attempt.
    let kept = app.rejected_bodies().await;
    assert_eq!(kept.len(), cases.len());
    for ((_, body, status, _), (kept_status, _, kept_body)) in cases.iter().zip(&kept) {
        assert_eq!(kept_body, body);
        assert_eq!(*kept_status, status.as_u16() as i16);
    }

    // Unauthentic: refused before the body is read as JSON; nothing is kept at all.
    let body = success();
    let signature = key(WEBHOOK_SECRET).hmac_signature(&body);
    for (name, headers) in [
        (
            "the signature header twice",
            vec![
                ("x-idnow-signature", signature.clone()),
                ("x-idnow-signature", signature.clone()),
            ],
        ),
        (
            "a signature of 100,000 characters",
            vec![("x-idnow-signature", "a".repeat(100_000))],
        ),
        (
            "a Standard Webhooks timestamp far in the future",
            vec![
                ("webhook-id", "msg_1".to_owned()),
                ("webhook-timestamp", "99999999999999999999".to_owned()),
                ("webhook-signature", "v1,AAAA".to_owned()),
            ],
        ),
    ] {
        let response = app.post_webhook(&body, Signed::Headers(headers)).await;
        let expected = if name.contains("100,000") {
            (
                StatusCode::from_u16(431).expect("431"),
                "request_header_fields_too_large",
            )
        } else {
            (StatusCode::UNAUTHORIZED, "invalid_signature")
        };
        assert_eq!(response.status(), expected.0, "{name}");
        assert_error(response, expected.0, expected.1).await;
    }

    // The listing's path ids and page parameters.
    let long = "a".repeat(10_000);
    for (name, path) in [
        (
            "a NUL byte",
            format!("/v1/persons/{PERSON}/signings/sig%00/idnow_attempts"),
        ),
        (
            "an encoded slash",
            format!("/v1/persons/{PERSON}/signings/a%2Fb/idnow_attempts"),
        ),
        (
            "unicode",
            format!("/v1/persons/{PERSON}/signings/s%C3%AFg/idnow_attempts"),
        ),
        (
            "10,000 characters",
            format!("/v1/persons/{long}/signings/sig/idnow_attempts"),
        ),
    ] {
        let response = app
            .client
            .get(app.url(&path))
            .bearer_auth(READ_TOKEN)
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{name}");
        assert_error(response, StatusCode::BAD_REQUEST, "invalid_path_parameter").await;
    }
    let slash = app
        .client
        .get(app.url(&format!("/v1/persons/{PERSON}/signings/a/b/idnow_attempts")))
        .bearer_auth(READ_TOKEN)
        .send()
        .await
        .expect("sent");
    assert_error(slash, StatusCode::NOT_FOUND, "not_found").await;
    for query in [
        "?page[size]=-1",
        "?page[size]=1e9",
        "?page[size]=abc",
        "?page[number]=0",
    ] {
        let response = app.list(PERSON, "sig", query).await;
        assert_error(response, StatusCode::BAD_REQUEST, "invalid_pagination").await;
    }

    assert_eq!(app.attempt_count().await, 0);
    assert_eq!(app.rejected_bodies().await.len(), cases.len());
}

#[sqlx::test(migrations = false)]
async fn a_body_cut_off_by_the_client_writes_nothing(pool: PgPool) {
    let app = spawn_app(pool).await;
    let body = success();
    let head = format!(
        "POST /v1/webhooks/idnow HTTP/1.1\r\nHost: idnow\r\nContent-Type: application/json\r\n\
         X-Idnow-Signature: {}\r\nContent-Length: {}\r\n\r\n",
        key(WEBHOOK_SECRET).hmac_signature(&body),
        body.len()
    );
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    stream.write_all(head.as_bytes()).await.expect("head");
    stream
        .write_all(&body[..body.len() / 2])
        .await
        .expect("half the body");
    stream.shutdown().await.expect("the client stops sending");
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await
    .expect("the server ends the exchange")
    .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    // An answer, if the server still sends one, is a 4xx; never a 2xx or a 5xx.
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
        "{answer}"
    );
    assert_eq!(app.attempt_count().await, 0);
    assert!(app.rejected_bodies().await.is_empty());
}

/// A chunked body whose framing goes on without end (a chunk extension, leading zeros of a
/// chunk size, trailer fields, a trailer line without end) is refused once what it has beyond
/// what each chunk needs passes 64 KiB, well before the body timeout: actix-http read each of
/// them, byte by byte, until that timeout (1.8 to 3.1 GB and a core per connection in 10 s;
/// vendor/README.md).
#[sqlx::test(migrations = false)]
async fn a_chunked_body_whose_framing_has_no_end_is_refused_at_once(pool: PgPool) {
    let app = spawn_app(pool).await;
    let port = app.port();
    let head =
        "POST /v1/webhooks/idnow HTTP/1.1\r\nHost: idnow\r\nContent-Type: application/json\r\n\
                X-Idnow-Signature: sha256=0000000000000000000000000000000000000000000000000000000000000000\r\nTransfer-Encoding: chunked\r\n\r\n";
    let endless: [(&str, &[u8], &[u8]); 4] = [
        ("a chunk extension", b"1;", b"a"),
        ("leading zeros", b"", b"0"),
        ("trailer fields", b"0\r\n", b"X-T: y\r\n"),
        ("a trailer line without end", b"0\r\nX", b"a"),
    ];
    for (name, start, repeated) in endless {
        let mut request = head.as_bytes().to_vec();
        request.extend_from_slice(start);
        while request.len() < 512 * 1024 {
            request.extend_from_slice(repeated);
        }
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        // All of it is taken: what the server does not parse, it reads and drops.
        stream.write_all(&request).await.expect("sent");
        let (answer, took) = read_until_closed(&mut stream).await;
        // Well within the body timeout (10 s).
        assert!(
            took < std::time::Duration::from_secs(3),
            "{name}: answered at once, not after {took:?}"
        );
        assert_raw_error(&answer, StatusCode::BAD_REQUEST, "unreadable_body");
        // The connection ends after it, as the answer says.
        assert!(
            answer
                .to_ascii_lowercase()
                .contains("\r\nconnection: close\r\n"),
            "{name}: {answer}"
        );
    }
    assert_eq!(app.attempt_count().await, 0);

    // Framing as heavy as honest senders make it stays within the bound: a delivery in chunks
    // of one byte (six bytes of framing each) is stored.
    let body = success();
    let mut request = format!(
        "POST /v1/webhooks/idnow HTTP/1.1\r\nHost: idnow\r\nContent-Type: application/json\r\n\
         X-Idnow-Signature: {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        key(WEBHOOK_SECRET).hmac_signature(&body)
    )
    .into_bytes();
    for byte in &body {
        request.extend_from_slice(b"1\r\n");
        request.push(*byte);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let answer = exchange(port, &request).await;
    assert!(answer.starts_with("HTTP/1.1 202 "), "{answer}");
    assert_eq!(app.attempt_count().await, 1);
}

/// A chunked body's trailer section is field lines (RFC 9112 §7.1.2), checked as a head's
/// are: a line that is not one, such as a request line a front end may have meant as the next
/// request, fails the body, and nothing is stored. Trailer fields as RFC 9110 allows them are
/// taken (and dropped).
#[sqlx::test(migrations = false)]
async fn a_chunked_body_whose_trailers_are_not_field_lines_is_refused(pool: PgPool) {
    let app = spawn_app(pool).await;
    let body = success();
    let chunked = |trailers: &str| {
        let mut request = format!(
            "POST /v1/webhooks/idnow HTTP/1.1\r\nHost: idnow\r\nContent-Type: application/json\r\n\
             X-Idnow-Signature: {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
             {:x}\r\n",
            key(WEBHOOK_SECRET).hmac_signature(&body),
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(&body);
        request.extend_from_slice(format!("\r\n0\r\n{trailers}\r\n").as_bytes());
        request
    };
    for trailers in [
        "GET /v1/persons/p/signings/s/idnow_attempts HTTP/1.1\r\nHost: idnow\r\n",
        " X-Folded: 1\r\n",
        "X-Nul: a\0b\r\n",
    ] {
        let answer = exchange(app.port(), &chunked(trailers)).await;
        assert_raw_error(&answer, StatusCode::BAD_REQUEST, "unreadable_body");
    }
    assert_eq!(app.attempt_count().await, 0);

    let answer = exchange(app.port(), &chunked("X-Checksum: 1a2b\r\nExpires:\r\n")).await;
    assert!(answer.starts_with("HTTP/1.1 202 "), "{answer}");
    assert_eq!(app.attempt_count().await, 1);
}

/// The service upgrades no connection (RFC 9110 §7.8: a server may ignore `Upgrade`): a request
/// that asks for a WebSocket or another protocol is served as any other, its body framed by its
/// `Content-Length`, on a connection that stays open for the request pipelined behind it.
#[sqlx::test(migrations = false)]
async fn a_request_asking_for_an_upgrade_is_served_as_any_other(pool: PgPool) {
    let app = spawn_app(pool).await;
    let body = success();
    let signature = key(WEBHOOK_SECRET).hmac_signature(&body);
    for (connection, upgrade) in [
        ("Connection: keep-alive, Upgrade\r\n", "websocket"),
        ("", "websocket"),
        (
            "Connection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n",
            "h2c",
        ),
        ("Connection: upgrade\r\n", "foo/1"),
    ] {
        let mut request = format!(
            "POST /v1/webhooks/idnow HTTP/1.1\r\nHost: idnow\r\nContent-Type: application/json\r\n\
             X-Idnow-Signature: {signature}\r\n{connection}\
             Upgrade: {upgrade}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(&body);
        request.extend_from_slice(
            b"GET /health/live HTTP/1.1\r\nHost: idnow\r\nConnection: close\r\n\r\n",
        );
        let answer = exchange(app.port(), &request).await;
        let statuses: Vec<&str> = answer
            .match_indices("HTTP/1.1 ")
            .map(|(at, _)| &answer[at + 9..at + 12])
            .collect();
        // Stored the first time, a duplicate after; then the pipelined request's answer.
        assert_eq!(statuses.len(), 2, "{upgrade}: {answer}");
        assert!(["202", "200"].contains(&statuses[0]), "{upgrade}: {answer}");
        assert_eq!(statuses[1], "200", "{upgrade}: {answer}");
        assert!(
            !answer.to_ascii_lowercase().contains("upgrade"),
            "{upgrade}: {answer}"
        );
    }
    assert_eq!(app.attempt_count().await, 1);

    // Nor does it tunnel: a CONNECT has the body its framing gives it, none here, and what
    // follows it is the next request.
    let answer = exchange(
        app.port(),
        b"CONNECT idnow:80 HTTP/1.1\r\nHost: idnow:80\r\nContent-Length: 0\r\n\r\n\
          GET /health/live HTTP/1.1\r\nHost: idnow\r\nConnection: close\r\n\r\n",
    )
    .await;
    let second = answer.rfind("HTTP/1.1 ").expect("two answers");
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
    assert!(answer[second..].starts_with("HTTP/1.1 200 "), "{answer}");
}

/// RFC 9112 §3.2: a `Host` that is not a host and port is 400, in the contract's shape, on
/// every route; the connection serves on.
#[sqlx::test(migrations = false)]
async fn a_host_that_is_not_one_is_refused(pool: PgPool) {
    let app = spawn_app(pool).await;
    for host in ["a b", "u@x", "x:abc", "[::1", "x/y"] {
        for target in ["/health/live", "/v1/webhooks/idnow"] {
            let request = format!(
                "GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n\
                 GET /health/live HTTP/1.1\r\nHost: idnow\r\nConnection: close\r\n\r\n"
            );
            let answer = exchange(app.port(), request.as_bytes()).await;
            let second = answer.rfind("HTTP/1.1 ").expect("two answers");
            assert_raw_error(
                &answer[..second],
                StatusCode::BAD_REQUEST,
                "malformed_request",
            );
            assert!(
                answer[second..].starts_with("HTTP/1.1 200 "),
                "{host}: {answer}"
            );
        }
    }
    // A host and port, a name, an IPv6 address: served.
    for host in ["idnow", "127.0.0.1:8080", "[::1]:8080"] {
        let request =
            format!("GET /health/live HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let answer = exchange(app.port(), request.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 200 "), "{host}: {answer}");
    }
}

/// The fuzzer's seeds and every crash it found, as signed deliveries: never a 5xx.
#[sqlx::test(migrations = false)]
async fn fuzzing_seeds_and_regressions_never_get_a_server_error(pool: PgPool) {
    let app = spawn_app(pool).await;
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut replayed = 0;
    for dir in [
        fuzz.join("seeds/delivery"),
        fuzz.join("regressions/delivery"),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            let body = std::fs::read(&path).expect("readable");
            let status = app.deliver(&body).await.status();
            assert!(
                status.is_success()
                    || status == StatusCode::BAD_REQUEST
                    || status == StatusCode::UNPROCESSABLE_ENTITY
                    || status == StatusCode::PAYLOAD_TOO_LARGE,
                "{}: {status}",
                path.display()
            );
            replayed += 1;
        }
    }
    assert!(replayed >= 10, "the seeds were found: {replayed}");
}

/// `Expect: 100-continue` (RFC 9110 §10.1.1): the client waits to be told to send its body.
/// The server tells it only once it reads the body, so a delivery refused by its head alone
/// (413 by its declared length, 415, 401 without credentials or with signature headers that
/// could never verify) is refused at once, and the body is never asked for; a signed
/// delivery is asked for its body and stored.
#[sqlx::test(migrations = false)]
async fn expect_100_continue_is_answered_only_when_the_body_is_read(pool: PgPool) {
    let app = spawn_app(pool).await;
    let port = app.port();
    let signed = key(WEBHOOK_SECRET).hmac_signature(&success());
    let refused_by_the_head = [
        (
            format!("Content-Type: application/json\r\nContent-Length: 2000000\r\nX-Idnow-Signature: {signed}"),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            format!("Content-Type: text/plain\r\nContent-Length: 3000\r\nX-Idnow-Signature: {signed}"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "Content-Type: application/json\r\nContent-Length: 3000".to_owned(),
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
        ),
        (
            "Content-Type: application/json\r\nTransfer-Encoding: chunked".to_owned(),
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
        ),
        // Signature headers that could never verify, whatever the body.
        (
            "Content-Type: application/json\r\nContent-Length: 3000\r\n\
             X-Idnow-Signature: garbage"
                .to_owned(),
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
        ),
        (
            format!(
                "Content-Type: application/json\r\nContent-Length: 3000\r\n\
                 webhook-id: msg-stale\r\nwebhook-timestamp: {}\r\n\
                 webhook-signature: v1,AAAA",
                unix_now() - 3_600
            ),
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
        ),
    ];
    for (fields, status, code) in refused_by_the_head {
        let head = format!(
            "POST /v1/webhooks/idnow HTTP/1.1\r\nHost: idnow\r\n{fields}\r\n\
             Expect: 100-continue\r\n\r\n"
        );
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        stream.write_all(head.as_bytes()).await.expect("sent");
        // No body is sent: the answer comes without it, well within the body timeout (10 s).
        let (answer, took) = read_until_closed(&mut stream).await;
        assert!(
            took < std::time::Duration::from_secs(3),
            "{fields}: answered at once, not after {took:?}"
        );
        assert_raw_error(&answer, status, code);
    }

    // Signed: told to go on, then stored.
    let body = success();
    let head = format!(
        "POST /v1/webhooks/idnow HTTP/1.1\r\nHost: idnow\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nX-Idnow-Signature: {signed}\r\nExpect: 100-continue\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    stream.write_all(head.as_bytes()).await.expect("sent");
    assert_told_to_go_on(&mut stream).await;
    stream.write_all(&body).await.expect("sent");
    let (answer, _) = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 202 "), "{answer}");
    assert_eq!(app.attempt_count().await, 1);
}

/// A request target longer than the server takes is 414 (RFC 9112 §3), in the contract's
/// shape: past what a URI holds (65,534 bytes), and past the read buffer (128 KiB), where the
/// request line does not even end. One of exactly that length is served; a head that fills
/// the buffer with its fields after a target of a length taken is 431.
#[sqlx::test(migrations = false)]
async fn a_request_target_too_long_to_take_is_414(pool: PgPool) {
    let app = spawn_app(pool).await;
    let request = |before: &str, target_len: usize, fields: &str| {
        let query = "a".repeat(target_len - "/health/live?".len());
        format!(
            "{before}GET /health/live?{query} HTTP/1.1\r\nHost: idnow\r\n{fields}\
             Connection: close\r\n\r\n"
        )
    };
    let answer = exchange(app.port(), request("", 65_534, "").as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{}", &answer[..80]);
    // Three fields of 25,000 bytes: with the target, past the read buffer.
    let large_fields = format!("X-Large: {}\r\n", "b".repeat(25_000)).repeat(3);
    for (before, target_len, fields) in [
        ("", 65_535, ""),
        ("", 200_000, ""),
        // Empty lines before a request line are skipped (RFC 9112 §2.2).
        ("\r\n", 200_000, ""),
        ("", 70_000, large_fields.as_str()),
    ] {
        let answer = exchange(app.port(), request(before, target_len, fields).as_bytes()).await;
        assert_raw_error(&answer, StatusCode::URI_TOO_LONG, "uri_too_long");
    }
    let answer = exchange(app.port(), request("", 60_000, &large_fields).as_bytes()).await;
    assert_raw_error(
        &answer,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "request_header_fields_too_large",
    );

    // A target still being sent is answered once it is past the limit, not after the head
    // timeout (5 s).
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port()))
        .await
        .expect("connect");
    let unfinished = format!("GET /?{}", "a".repeat(65_540));
    stream.write_all(unfinished.as_bytes()).await.expect("sent");
    let (answer, took) = read_until_closed(&mut stream).await;
    assert!(took < std::time::Duration::from_secs(3), "after {took:?}");
    assert_raw_error(&answer, StatusCode::URI_TOO_LONG, "uri_too_long");
}

/// A delivery admitted by its static token is told to go on once the token is checked, and
/// stored; a wrong token is refused before any body is asked for.
#[sqlx::test(migrations = false)]
async fn a_token_delivery_is_told_to_go_on_once_its_token_is_checked(pool: PgPool) {
    let app = spawn_app_adding(
        pool,
        &[
            ("WEBHOOK_AUTH", "hmac,token"),
            ("WEBHOOK_TOKENS", &sha256_hex("the-token")),
        ],
    )
    .await;
    let body = success();
    let head = |token: &str| {
        format!(
            "POST /v1/webhooks/idnow HTTP/1.1\r\nHost: idnow\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nX-Auth-Token: {token}\r\nExpect: 100-continue\r\n\
             Connection: close\r\n\r\n",
            body.len()
        )
    };
    let answer = exchange(app.port(), head("a-wrong-token").as_bytes()).await;
    assert_raw_error(&answer, StatusCode::UNAUTHORIZED, "invalid_signature");

    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port()))
        .await
        .expect("connect");
    stream
        .write_all(head("the-token").as_bytes())
        .await
        .expect("sent");
    assert_told_to_go_on(&mut stream).await;
    stream.write_all(&body).await.expect("sent");
    let (answer, _) = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 202 "), "{answer}");
    assert_eq!(app.attempt_count().await, 1);
}

/// Reads what a client that sent `Expect: 100-continue` waits for before its body.
async fn assert_told_to_go_on(stream: &mut tokio::net::TcpStream) {
    let continue_line = b"HTTP/1.1 100 Continue\r\n\r\n";
    let mut told = vec![0; continue_line.len()];
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_exact(&mut told),
    )
    .await
    .expect("told to go on before the body is sent")
    .expect("read");
    assert_eq!(told, continue_line);
}
