//! `spawn_app()` and typed requests against the real server on a fresh database.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::dev::ServerHandle;
use idnow_attempts::at_rest::{Binding, PayloadKeys};
use idnow_attempts::configuration::Settings;
use idnow_attempts::error::RETRY_AFTER_SECONDS;
use idnow_attempts::persistence::WorkerPools;
use idnow_attempts::startup::Application;
use idnow_attempts::webhook_auth::SigningKey;
use reqwest::{Response, StatusCode};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection as _, PgConnection, PgPool};

/// First in the rotation list.
pub const WEBHOOK_SECRET: &str = "current-webhook-secret";
/// Still accepted while senders move to the current one.
pub const PREVIOUS_WEBHOOK_SECRET: &str = "whsec_cHJldmlvdXMtd2ViaG9vay1zZWNyZXQ=";

/// `PAYLOAD_ENCRYPTION_KEYS` of the test apps: one key, `test-k1`.
pub const PAYLOAD_KEYS: &str = "test-k1:dGVzdC1vbmx5LWtleS0zMi1ieXRlcy1sb25nLSEhISE=";

/// The test apps' keys, to open what they stored as an operator holding the key could.
pub fn payload_keys() -> PayloadKeys {
    PayloadKeys::parse(&[PAYLOAD_KEYS]).expect("the test key is valid")
}

pub const READ_TOKEN: &str = "reader-token-0123456789";
pub const WRITE_TOKEN: &str = "writer-token-0123456789";
pub const NO_SCOPE_TOKEN: &str = "bystander-token-0123456789";
pub const ERASE_TOKEN: &str = "eraser-token-0123456789";

pub const PERSON: &str = "dc1a6812a14f6cc338cd084208535bcdcper";

/// Every payload of `tests/fixtures/`.
pub const FIXTURES: [&str; 6] = [
    "success.json",
    "canceled_after_review.json",
    "fraud_suspicion_pending.json",
    "lifecycle/1_aborted.json",
    "lifecycle/2_review_pending.json",
    "lifecycle/3_success_data_changed.json",
];

pub struct TestApp {
    pub address: String,
    /// The test database, to look at rows as an operator would. The harness closes it when
    /// the test ends, so the database can be dropped at once.
    pub db: PgPool,
    pub client: reqwest::Client,
    /// `None` for a server the test does not own (another process).
    pub server: Option<ServerHandle>,
    /// The server's own connections, closed with it so that the test database can be
    /// dropped at once.
    pub database: Option<WorkerPools>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(server) = &self.server {
            // The stop command is sent now; nothing needs to wait for the workers to end.
            drop(server.stop(false));
        }
        if let Some(database) = &self.database {
            database.close();
        }
    }
}

pub fn sha256_hex(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The environment every test app runs with; tests may change it before start.
pub fn test_environment() -> HashMap<String, String> {
    let api_keys = serde_json::json!([
        {"name": "reader", "sha256": sha256_hex(READ_TOKEN), "scopes": ["idnow_attempts:read"]},
        {"name": "writer", "sha256": sha256_hex(WRITE_TOKEN), "scopes": ["signings:write"]},
        {"name": "bystander", "sha256": sha256_hex(NO_SCOPE_TOKEN), "scopes": []},
        {"name": "eraser", "sha256": sha256_hex(ERASE_TOKEN), "scopes": ["persons:erase"]},
    ]);
    [
        // Replaced by the test database's options; required by the settings all the same.
        ("DATABASE_URL", "postgres://unused@localhost/unused"),
        ("PORT", "0"),
        (
            "IDNOW_WEBHOOK_SECRETS",
            &format!("{WEBHOOK_SECRET},{PREVIOUS_WEBHOOK_SECRET}"),
        ),
        ("API_KEYS", &api_keys.to_string()),
        ("PAYLOAD_ENCRYPTION_KEYS", PAYLOAD_KEYS),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

pub async fn spawn_app(pool: PgPool) -> TestApp {
    spawn_app_with(pool, test_environment()).await
}

/// As [`spawn_app`], with the test settings adjusted by `adjust` first.
pub async fn spawn_app_adjusted(pool: PgPool, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = Settings::from_env_map(&test_environment()).expect("valid settings");
    adjust(&mut settings);
    spawn_app_with_settings(pool, settings).await
}

pub async fn spawn_app_with(pool: PgPool, environment: HashMap<String, String>) -> TestApp {
    let settings = Settings::from_env_map(&environment).expect("valid test settings");
    spawn_app_with_settings(pool, settings).await
}

/// The test server with `variables` added to the test environment, or overriding it.
pub async fn spawn_app_adding(pool: PgPool, variables: &[(&str, &str)]) -> TestApp {
    let mut environment = test_environment();
    for (name, value) in variables {
        environment.insert((*name).to_owned(), (*value).to_owned());
    }
    spawn_app_with(pool, environment).await
}

/// Starts the real server on a free port of 127.0.0.1, whatever the settings say.
pub async fn spawn_app_with_settings(pool: PgPool, mut settings: Settings) -> TestApp {
    settings.http.host = IpAddr::V4(Ipv4Addr::LOCALHOST);
    settings.http.port = 0;
    let application = Application::embedded(settings, (*pool.connect_options()).clone())
        .await
        .expect("the application starts");
    let address = format!("http://127.0.0.1:{}", application.port());
    let server = application.handle();
    let database = application.pools();
    tokio::spawn(application.run_until_stopped());
    TestApp {
        address,
        db: pool,
        client: reqwest::Client::new(),
        server: Some(server),
        database: Some(database),
    }
}

/// The service's binary, run from the repository root with nothing of this process'
/// environment: what it needs, the test gives it.
pub fn binary() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_idnow-attempts"));
    command.current_dir(env!("CARGO_MANIFEST_DIR")).env_clear();
    command
}

/// `idnow-attempts ARGS` on the test's database, as an operator runs it: with the test's
/// webhook secrets and payload keys, and `environment` added or overriding.
pub async fn operator_command(
    pool: &PgPool,
    args: &[&str],
    environment: &[(&str, &str)],
) -> std::process::Output {
    operator_command_with(pool, args, environment, |_| {}).await
}

/// As [`operator_command`], with the command set up further by `configure` (its stdout, say).
pub async fn operator_command_with(
    pool: &PgPool,
    args: &[&str],
    environment: &[(&str, &str)],
    configure: impl FnOnce(&mut std::process::Command),
) -> std::process::Output {
    let mut command = binary();
    command
        .args(args)
        .env("DATABASE_URL", database_url(&pool.connect_options()))
        .env("IDNOW_WEBHOOK_SECRETS", WEBHOOK_SECRET)
        .env("PAYLOAD_ENCRYPTION_KEYS", PAYLOAD_KEYS)
        .envs(environment.iter().copied());
    configure(&mut command);
    // Off the test's runtime, which the server of the test may share.
    tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the command's thread ends")
        .expect("the binary runs")
}

/// The plan of the service's statement in `src/persistence/sql/{file}`, as PostgreSQL would
/// run it on a table large enough for an index to pay: prepared as `signature` (`name(types)`)
/// in a session where each of `settings` is set (`enable_seqscan = off`, …), explained as
/// `execution` (`name(arguments)`). One line of the plan each.
pub async fn plan_of(
    pool: &PgPool,
    file: &str,
    signature: &str,
    execution: &str,
    settings: &[&str],
) -> Vec<String> {
    let statement = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/persistence/sql")
            .join(file),
    )
    .expect("the statement the service runs");
    let mut conn = pool.acquire().await.expect("a connection");
    for setting in settings {
        sqlx::query(&format!("SET {setting}"))
            .execute(&mut *conn)
            .await
            .expect("set");
    }
    sqlx::query(&format!("PREPARE {signature} AS {statement}"))
        .execute(&mut *conn)
        .await
        .expect("prepared");
    sqlx::query_scalar(&format!("EXPLAIN EXECUTE {execution}"))
        .fetch_all(&mut *conn)
        .await
        .expect("a plan")
}

/// The URL of the test's own database, for a separate process.
pub fn database_url(options: &PgConnectOptions) -> String {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL is set for the tests");
    let mut url = url::Url::parse(&base).expect("DATABASE_URL is a URL");
    url.set_path(
        options
            .get_database()
            .expect("the test database has a name"),
    );
    url.to_string()
}

/// A webhook request signed with the current secret over `signed`, the bytes `body` carries
/// (or will, for a stream); for clients of the test's own making.
pub fn delivery_request(
    client: &reqwest::Client,
    address: &str,
    signed: &[u8],
    body: impl Into<reqwest::Body>,
) -> reqwest::RequestBuilder {
    client
        .post(format!("{address}/v1/webhooks/idnow"))
        .header("content-type", "application/json")
        .header(
            "x-idnow-signature",
            key(WEBHOOK_SECRET).hmac_signature(signed),
        )
        .body(body)
}

/// A body that sends its first half at once and the rest when the test sends it through the
/// returned channel; dropping the channel ends the body early.
pub async fn half_sent(
    body: &[u8],
) -> (tokio::sync::mpsc::Sender<Vec<u8>>, Vec<u8>, reqwest::Body) {
    let (chunks, mut received) = tokio::sync::mpsc::channel::<Vec<u8>>(2);
    let half = body.len() / 2;
    chunks
        .send(body[..half].to_vec())
        .await
        .expect("the channel is open");
    let stream = futures_util::stream::poll_fn(move |cx| {
        received
            .poll_recv(cx)
            .map(|chunk| chunk.map(Ok::<_, std::io::Error>))
    });
    (
        chunks,
        body[half..].to_vec(),
        reqwest::Body::wrap_stream(stream),
    )
}

/// A connection holding a lock on `attempts` in an open transaction: statements that conflict
/// with `mode` wait, each holding its own connection, until [`AttemptsLock::release`].
pub struct AttemptsLock(PgConnection);

impl AttemptsLock {
    pub async fn take(options: &PgConnectOptions, mode: &str) -> Self {
        let mut conn = PgConnection::connect_with(options)
            .await
            .expect("the test connects");
        sqlx::query("BEGIN")
            .execute(&mut conn)
            .await
            .expect("begin");
        sqlx::query(&format!("LOCK TABLE attempts IN {mode} MODE"))
            .execute(&mut conn)
            .await
            .expect("lock");
        Self(conn)
    }

    pub async fn release(mut self) {
        sqlx::query("COMMIT")
            .execute(&mut self.0)
            .await
            .expect("commit");
    }
}

/// The service's statements on this test's database that wait for a lock now (behind an
/// [`AttemptsLock`]).
pub async fn statements_waiting_for_a_lock(db: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND application_name = 'idnow-attempts' AND wait_event_type = 'Lock'",
    )
    .fetch_one(db)
    .await
    .expect("pg_stat_activity")
}

/// The most a loopback connection's socket buffers can hold, the sender's and the receiver's
/// together (Linux's `tcp_wmem` and `tcp_rmem` maxima; 64 MiB where they cannot be read):
/// what a client can have "sent" that the server never read.
pub fn socket_buffers_max() -> usize {
    let max = |name: &str| {
        std::fs::read_to_string(format!("/proc/sys/net/ipv4/{name}"))
            .ok()?
            .split_whitespace()
            .nth(2)?
            .parse::<usize>()
            .ok()
    };
    match (max("tcp_rmem"), max("tcp_wmem")) {
        (Some(receiving), Some(sending)) => receiving + sending,
        _ => 64 << 20,
    }
}

/// A file in the temporary directory, removed when the test ends, passed or failed.
pub struct TempFile(PathBuf);

impl TempFile {
    /// `name` is the end of the file's name, after a unique prefix.
    pub fn new(name: &str, contents: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "idnow-attempts-{}-{name}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::write(&path, contents).expect("the temporary file is written");
        Self(path)
    }

    pub fn path(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temporary path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        drop(std::fs::remove_file(&self.0));
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// Polls `condition`, every 20 ms, until it holds; fails the test after thirty seconds.
pub async fn wait_until<F, Fut>(mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !condition().await {
        assert!(
            std::time::Instant::now() < deadline,
            "the condition held within 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Every personal value of the fixtures: what `userdata`, `contactdata` and
/// `identificationdocument` hold.
pub fn personal_values() -> Vec<String> {
    fn leaves(value: &serde_json::Value, into: &mut Vec<String>) {
        match value {
            serde_json::Value::String(s) if s.chars().count() >= 4 => into.push(s.clone()),
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    if key != "status" {
                        leaves(value, into);
                    }
                }
            }
            _ => {}
        }
    }
    let mut values = Vec::new();
    for file in FIXTURES {
        let payload: serde_json::Value =
            serde_json::from_slice(&fixture(file)).expect("fixture is JSON");
        for section in ["userdata", "contactdata", "identificationdocument"] {
            leaves(&payload[section], &mut values);
        }
    }
    values.sort();
    values.dedup();
    values
}

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures_dir().join(name)).expect("fixture exists")
}

/// A distinct, minimal but real-shaped webhook body.
pub fn webhook_body(transaction_number: &str, result: &str, identification_time: &str) -> Vec<u8> {
    serde_json::json!({
        "identificationprocess": {
            "result": result,
            "companyid": "solarisbankvideoidenttesting",
            "agentname": "TROBOT",
            "identificationtime": identification_time,
            "id": "TST-ABCDE",
            "type": "WEB",
            "transactionnumber": transaction_number,
        },
        "customdata": {"custom1": null},
    })
    .to_string()
    .into_bytes()
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

/// How a test signs a delivery.
pub enum Signed<'a> {
    Plain(&'a str),
    Standard {
        secret: &'a str,
        id: &'a str,
        timestamp: i64,
    },
    /// Exactly these headers, nothing computed.
    Headers(Vec<(&'a str, String)>),
}

pub fn key(secret: &str) -> SigningKey {
    SigningKey::parse(&SecretString::from(secret)).expect("valid secret")
}

impl TestApp {
    /// The port the server listens on, for clients of the test's own making.
    pub fn port(&self) -> u16 {
        self.address
            .rsplit(':')
            .next()
            .and_then(|port| port.parse().ok())
            .expect("the address ends in the port")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    pub async fn post_webhook(&self, body: &[u8], signed: Signed<'_>) -> Response {
        let mut request = self
            .client
            .post(self.url("/v1/webhooks/idnow"))
            .header("content-type", "application/json");
        let headers = match signed {
            Signed::Plain(secret) => vec![("x-idnow-signature", key(secret).hmac_signature(body))],
            Signed::Standard {
                secret,
                id,
                timestamp,
            } => vec![
                ("webhook-id", id.to_owned()),
                ("webhook-timestamp", timestamp.to_string()),
                (
                    "webhook-signature",
                    key(secret).standard_signature(id, timestamp, body),
                ),
            ],
            Signed::Headers(headers) => headers,
        };
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request
            .body(body.to_vec())
            .send()
            .await
            .expect("request sent")
    }

    /// Posts `body` with Standard Webhooks headers whose `webhook-id` is `id`, byte for byte
    /// (HTTP allows bytes above 0x7f), correctly signed with the current secret.
    pub async fn post_with_webhook_id(&self, body: &[u8], id: &[u8]) -> Response {
        let timestamp = unix_now();
        let id_header = reqwest::header::HeaderValue::from_bytes(id).expect("a valid header value");
        self.client
            .post(self.url("/v1/webhooks/idnow"))
            .header("content-type", "application/json")
            .header("webhook-id", id_header)
            .header("webhook-timestamp", timestamp.to_string())
            .header(
                "webhook-signature",
                key(WEBHOOK_SECRET).standard_signature(id, timestamp, body),
            )
            .body(body.to_vec())
            .send()
            .await
            .expect("request sent")
    }

    /// Posts `body` as a stream, without a declared length, signed with the current secret
    /// as the whole of `signed` (the bytes the stream will carry if it completes).
    pub async fn deliver_streamed(&self, signed: &[u8], body: reqwest::Body) -> Response {
        delivery_request(&self.client, &self.address, signed, body)
            .send()
            .await
            .expect("request sent")
    }

    /// Posts a delivery signed with the current secret.
    pub async fn deliver(&self, body: &[u8]) -> Response {
        self.post_webhook(body, Signed::Plain(WEBHOOK_SECRET)).await
    }

    pub async fn register(&self, person: &str, signing: &str, identification: &str) -> Response {
        self.client
            .put(self.url(&format!("/v1/persons/{person}/signings/{signing}")))
            .bearer_auth(WRITE_TOKEN)
            .json(&serde_json::json!({ "identification_id": identification }))
            .send()
            .await
            .expect("request sent")
    }

    /// `DELETE /v1/persons/{person}` with `token`.
    pub async fn erase_as(&self, token: &str, person: &str) -> Response {
        self.client
            .delete(self.url(&format!("/v1/persons/{person}")))
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent")
    }

    /// `query` is appended as it is, e.g. `?page[size]=5`.
    pub async fn list(&self, person: &str, signing: &str, query: &str) -> Response {
        self.list_as(READ_TOKEN, person, signing, query).await
    }

    pub async fn list_as(&self, token: &str, person: &str, signing: &str, query: &str) -> Response {
        self.client
            .get(self.url(&format!(
                "/v1/persons/{person}/signings/{signing}/idnow_attempts{query}"
            )))
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn attempt_count(&self) -> i64 {
        sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM attempts"#)
            .fetch_one(&self.db)
            .await
            .expect("count attempts")
    }

    /// Every kept rejected delivery: status, code, `webhook-id` and body (opened with the
    /// test key), oldest first.
    pub async fn rejected(&self) -> Vec<(i16, String, Option<String>, Vec<u8>)> {
        let keys = payload_keys();
        sqlx::query!(
            r#"SELECT id, status, error_code, webhook_id, key_id AS "key_id!",
                      sealed AS "sealed!"
               FROM rejected_deliveries ORDER BY received_at"#
        )
        .fetch_all(&self.db)
        .await
        .expect("read rejected deliveries")
        .into_iter()
        .map(|row| {
            let body = keys
                .open(&row.key_id, Binding::Rejected { id: row.id }, row.sealed)
                .expect("a kept body opens with the key that sealed it");
            (row.status, row.error_code, row.webhook_id, body)
        })
        .collect()
    }

    /// The payload of the stored attempt `id` (its `…cida` form), opened with the test key.
    pub async fn stored_payload(&self, id: &str) -> Vec<u8> {
        let uuid = uuid::Uuid::parse_str(&id[..32]).expect("an attempt id");
        let row = sqlx::query!(
            r#"SELECT transaction_number, key_id AS "key_id!", sealed AS "sealed!"
               FROM attempts WHERE id = $1"#,
            uuid
        )
        .fetch_one(&self.db)
        .await
        .expect("the attempt is stored, sealed");
        let binding = Binding::Attempt {
            id: uuid,
            transaction_number: &row.transaction_number,
        };
        payload_keys()
            .open(&row.key_id, binding, row.sealed)
            .expect("a payload opens with the key that sealed it")
    }

    /// As [`TestApp::rejected`], without the `webhook-id`.
    pub async fn rejected_bodies(&self) -> Vec<(i16, String, Vec<u8>)> {
        self.rejected()
            .await
            .into_iter()
            .map(|(status, code, _, body)| (status, code, body))
            .collect()
    }
}

/// An attempt as listed, with the payload kept as raw text so that key order can be compared.
#[derive(Debug, Deserialize)]
pub struct ListedAttempt {
    pub id: String,
    pub result: String,
    pub reason: Option<String>,
    pub payload: Box<RawValue>,
}

pub async fn listed(response: Response) -> Vec<ListedAttempt> {
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.expect("body");
    serde_json::from_str(&text).expect("an array of attempts")
}

/// The attempt id of a 2xx webhook answer.
pub async fn acknowledged_id(response: Response) -> String {
    assert!(response.status().is_success(), "{}", response.status());
    let body: serde_json::Value = response.json().await.expect("json body");
    let id = body["id"].as_str().expect("id").to_owned();
    assert_eq!(body, serde_json::json!({ "id": id }));
    assert_eq!(id.len(), 36);
    assert!(id.ends_with("cida"));
    assert!(id[..32]
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    id
}

/// Asserts a 503 that asks the client to retry.
pub async fn assert_unavailable(response: Response) -> serde_json::Value {
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some(RETRY_AFTER_SECONDS.to_string().as_str()),
    );
    assert_error(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
    )
    .await
}

/// The `Content-Type` of an answer, when it has a readable one.
pub fn content_type(response: &Response) -> Option<&str> {
    response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
}

/// Asserts the contract's error body and returns its one error object.
pub async fn assert_error(response: Response, status: StatusCode, code: &str) -> serde_json::Value {
    assert_eq!(response.status(), status);
    assert_eq!(content_type(&response), Some("application/json"));
    let body: serde_json::Value = response.json().await.expect("json error body");
    assert_error_document(&body, status, code)
}

/// The first value of the header field `name` in an answer's head read off the socket as
/// text (status line and fields, without the blank line).
pub fn raw_header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (field, value) = line.split_once(':')?;
        field.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// Reads what the server sends until it closes the connection, for at most five seconds:
/// the text, and how long it took.
pub async fn read_until_closed(stream: &mut tokio::net::TcpStream) -> (String, Duration) {
    use tokio::io::AsyncReadExt as _;

    let started = Instant::now();
    let mut received = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut received))
        .await
        .expect("the server closes the connection")
        .expect("read");
    (
        String::from_utf8_lossy(&received).into_owned(),
        started.elapsed(),
    )
}

/// Sends `request`, raw bytes, on a new connection to the server on `port`, and returns what
/// it answers until it closes the connection ([`read_until_closed`]).
pub async fn exchange(port: u16, request: &[u8]) -> String {
    use tokio::io::AsyncWriteExt as _;

    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    stream.write_all(request).await.expect("sent");
    read_until_closed(&mut stream).await.0
}

/// [`assert_error`] for an answer read off the socket as text (status line, head and body),
/// as the answers actix-http gives before any route, where no HTTP client would read on.
pub fn assert_raw_error(answer: &str, status: StatusCode, code: &str) -> serde_json::Value {
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("a head and a body: {answer:?}"));
    let status_line = head.split("\r\n").next().unwrap_or_default();
    assert!(
        status_line.starts_with(&format!("HTTP/1.1 {} ", status.as_str())),
        "{answer:?}"
    );
    assert_eq!(
        raw_header(head, "content-type"),
        Some("application/json"),
        "{answer:?}"
    );
    assert_eq!(
        raw_header(head, "content-length"),
        Some(body.len().to_string().as_str()),
        "the whole body, and nothing after it: {answer:?}"
    );
    let body: serde_json::Value = serde_json::from_str(body).expect("json error body");
    assert_error_document(&body, status, code)
}

fn assert_error_document(
    body: &serde_json::Value,
    status: StatusCode,
    code: &str,
) -> serde_json::Value {
    let errors = body["errors"].as_array().expect("errors array");
    assert_eq!(errors.len(), 1, "{body}");
    let error = &errors[0];
    assert_eq!(error["status"], status.as_str(), "{body}");
    assert_eq!(error["code"], code, "{body}");
    assert!(
        uuid::Uuid::parse_str(error["id"].as_str().expect("id")).is_ok(),
        "{body}"
    );
    assert!(!error["title"].as_str().expect("title").is_empty());
    assert!(!error["detail"].as_str().expect("detail").is_empty());
    assert_eq!(
        error.as_object().map(|o| o.len()),
        Some(5),
        "exactly id, status, code, title, detail: {body}"
    );
    error.clone()
}
