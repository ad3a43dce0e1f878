//! How IDnow's own deliveries are admitted (CONTRACT.md "Webhook authentication"): `token`,
//! `basic` and `source`, the source gate before every method, and the client address behind
//! trusted proxies. Senders really arrive from other addresses: Linux routes all of
//! 127.0.0.0/8 to the loopback interface, so a client whose socket is bound to 127.0.0.2
//! reaches the server as 127.0.0.2.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use idnow_attempts::configuration::Settings;
use idnow_attempts::startup::Application;
use nix::sys::signal::Signal;
use reqwest::{Response, StatusCode};
use sqlx::PgPool;

use crate::helpers::*;
use crate::metrics::{grew, scrape};
use crate::process::ServiceProcess;

const TOKEN: &str = "idnow-static-token-0123456789";
const NEXT_TOKEN: &str = "idnow-static-token-rotated";
const BASIC_USER: &str = "idnow";
const BASIC_PASSWORD: &str = "correct horse battery staple";
const CHALLENGE: &str = r#"Basic realm="idnow-webhooks""#;

/// A client whose connections leave from `source`, an address of 127.0.0.0/8 or `::1`.
fn client_from(source: &str) -> reqwest::Client {
    let source: IpAddr = source.parse().expect("an address");
    reqwest::Client::builder()
        .local_address(source)
        .build()
        .expect("a client")
}

/// A sender: a client at a source address, posting to the server at `base`.
struct Sender {
    client: reqwest::Client,
    url: String,
}

impl Sender {
    fn at(source: &str, app: &TestApp) -> Self {
        Self::to(source, &app.address)
    }

    fn to(source: &str, base: &str) -> Self {
        Self {
            client: client_from(source),
            url: format!("{base}/v1/webhooks/idnow"),
        }
    }

    /// Posts `body` as JSON with exactly `headers`.
    async fn post(&self, body: &[u8], headers: &[(&str, String)]) -> Response {
        let mut request = self
            .client
            .post(&self.url)
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        request
            .body(body.to_vec())
            .send()
            .await
            .expect("request sent")
    }
}

fn token(value: &str) -> (&'static str, String) {
    ("x-auth-token", value.to_owned())
}

fn basic(user: &str, password: &str) -> (&'static str, String) {
    let encoded = BASE64.encode(format!("{user}:{password}"));
    ("authorization", format!("Basic {encoded}"))
}

fn hmac(body: &[u8]) -> (&'static str, String) {
    (
        "x-idnow-signature",
        key(WEBHOOK_SECRET).hmac_signature(body),
    )
}

fn standard(body: &[u8]) -> Vec<(&'static str, String)> {
    // An id of its own: one id for two events is 409 `webhook_id_reused`.
    let (id, timestamp) = (format!("msg_{}", uuid::Uuid::new_v4().simple()), unix_now());
    vec![
        ("webhook-id", id.clone()),
        ("webhook-timestamp", timestamp.to_string()),
        (
            "webhook-signature",
            key(WEBHOOK_SECRET).standard_signature(&id, timestamp, body),
        ),
    ]
}

fn forwarded_for(chain: &str) -> (&'static str, String) {
    ("x-forwarded-for", chain.to_owned())
}

/// A delivery of its own for each call, so that every accepted one is a new attempt.
fn body(n: usize) -> Vec<u8> {
    webhook_body(
        &format!("tn-sources-{n}"),
        "SUCCESS",
        "2026-10-02T09:30:00Z",
    )
}

fn challenge(response: &Response) -> Option<&str> {
    response
        .headers()
        .get("www-authenticate")
        .and_then(|value| value.to_str().ok())
}

async fn assert_refused_source(response: Response) {
    let error = assert_error(response, StatusCode::FORBIDDEN, "forbidden_source").await;
    assert_eq!(error["title"], "Forbidden Source");
}

async fn assert_unauthenticated(response: Response) {
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_signature").await;
}

/// Nothing of a refused delivery is stored or kept.
async fn assert_nothing_kept(app: &TestApp, attempts: i64) {
    assert_eq!(app.attempt_count().await, attempts);
    assert!(app.rejected().await.is_empty(), "nothing is kept");
}

#[sqlx::test(migrations = false)]
async fn token_admits_the_listed_tokens_in_the_configured_header(pool: PgPool) {
    let tokens = format!("{},{}", sha256_hex(TOKEN), sha256_hex(NEXT_TOKEN));
    let app = spawn_app_adding(
        pool,
        &[
            ("WEBHOOK_AUTH", "token"),
            ("WEBHOOK_TOKENS", &tokens),
            ("WEBHOOK_TOKEN_HEADER", "X-IDnow-Token"),
        ],
    )
    .await;
    let before = scrape(&app).await;
    let sender = Sender::at("127.0.0.1", &app);
    let header = |value: &str| ("x-idnow-token", value.to_owned());

    // Both tokens of the rotation; no signing is registered, so 202.
    for (n, value) in [TOKEN, NEXT_TOKEN].into_iter().enumerate() {
        let response = sender.post(&body(n), &[header(value)]).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED, "{value}");
        acknowledged_id(response).await;
    }
    for headers in [
        vec![header("not-the-token")],
        vec![header(&TOKEN[..TOKEN.len() - 1])],
        vec![header("")],
        vec![header(TOKEN), header(TOKEN)],
        // The right token in the default header, which this server does not read.
        vec![token(TOKEN)],
        // A signature: `hmac` is not enabled here.
        vec![hmac(&body(9))],
        vec![],
    ] {
        let response = sender.post(&body(9), &headers).await;
        assert_eq!(challenge(&response), None);
        assert_unauthenticated(response).await;
    }
    assert_nothing_kept(&app, 2).await;

    let after = scrape(&app).await;
    let failures = |labels: &str| {
        let series = format!("idnow_webhook_signature_failures_total{{{labels}}}");
        grew(&before, &after, &series)
    };
    assert_eq!(failures(r#"method="token",reason="mismatch""#), 2.0);
    assert_eq!(failures(r#"method="token",reason="malformed""#), 2.0);
    assert_eq!(failures(r#"method="none",reason="missing""#), 3.0);
}

#[sqlx::test(migrations = false)]
async fn basic_admits_listed_users_and_challenges_everyone_else(pool: PgPool) {
    let credentials = format!(
        "{BASIC_USER}:{},other:{}",
        sha256_hex(BASIC_PASSWORD),
        sha256_hex("other password")
    );
    let app = spawn_app_adding(
        pool,
        &[
            ("WEBHOOK_AUTH", "basic"),
            ("WEBHOOK_BASIC_CREDENTIALS", &credentials),
        ],
    )
    .await;
    let sender = Sender::at("127.0.0.1", &app);

    let response = sender
        .post(&body(0), &[basic(BASIC_USER, BASIC_PASSWORD)])
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(challenge(&response), None);
    for headers in [
        vec![basic(BASIC_USER, "other password")],
        vec![basic("other", BASIC_PASSWORD)],
        vec![basic(BASIC_USER, "")],
        vec![basic(BASIC_USER, &BASIC_PASSWORD[..5])],
        vec![("authorization", "Basic".to_owned())],
        vec![("authorization", format!("Bearer {BASIC_PASSWORD}"))],
        vec![hmac(&body(9))],
        vec![],
    ] {
        let response = sender.post(&body(9), &headers).await;
        assert_eq!(challenge(&response), Some(CHALLENGE), "{headers:?}");
        assert_unauthenticated(response).await;
    }
    assert_nothing_kept(&app, 1).await;
}

#[sqlx::test(migrations = false)]
async fn source_admits_only_allowed_addresses_and_refuses_others_before_reading_them(pool: PgPool) {
    let app = spawn_app_adding(
        pool,
        &[
            ("WEBHOOK_AUTH", "source"),
            ("WEBHOOK_ALLOWED_SOURCES", "127.0.0.2/32, 2001:db8::/32"),
        ],
    )
    .await;
    let before = scrape(&app).await;
    let (allowed, outside) = (Sender::at("127.0.0.2", &app), Sender::at("127.0.0.3", &app));

    // No credentials at all: the address suffices.
    let response = allowed.post(&body(0), &[]).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    // Authentic, so a refused body from an allowed source is kept for operators.
    assert_eq!(
        allowed.post(b"{not json", &[]).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(app.rejected().await.len(), 1);

    // From elsewhere, whatever it carries: 403, before its type, size or JSON is looked at.
    assert_refused_source(outside.post(&body(1), &[hmac(&body(1))]).await).await;
    assert_refused_source(outside.post(b"{not json", &[]).await).await;
    let oversized = vec![b' '; 2 * 1024 * 1024];
    assert_refused_source(outside.post(&oversized, &[]).await).await;
    let typed = outside
        .client
        .post(&outside.url)
        .header("content-type", "text/plain")
        .body(body(2))
        .send()
        .await
        .expect("request sent");
    assert_refused_source(typed).await;
    assert_eq!(app.attempt_count().await, 1);
    assert_eq!(app.rejected().await.len(), 1, "nothing more is kept");

    let after = scrape(&app).await;
    let refused = r#"idnow_webhook_forbidden_sources_total{reason="outside_allowed_sources"}"#;
    assert_eq!(grew(&before, &after, refused), 4.0);
}

/// Any one enabled method suffices: with `source` enabled, an allowed address needs no
/// credential, and a wrong one does not spoil it.
#[sqlx::test(migrations = false)]
async fn with_source_enabled_an_allowed_address_suffices_whatever_else_is_sent(pool: PgPool) {
    let app = spawn_app_adding(
        pool,
        &[
            ("WEBHOOK_AUTH", "source,token"),
            ("WEBHOOK_TOKENS", &sha256_hex(TOKEN)),
            ("WEBHOOK_ALLOWED_SOURCES", "127.0.0.2"),
        ],
    )
    .await;
    let allowed = Sender::at("127.0.0.2", &app);
    for (n, headers) in [vec![token("wrong")], vec![token(TOKEN)], vec![]]
        .into_iter()
        .enumerate()
    {
        let response = allowed.post(&body(n), &headers).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED, "{headers:?}");
    }
    let outside = Sender::at("127.0.0.3", &app);
    assert_refused_source(outside.post(&body(9), &[token(TOKEN)]).await).await;
    assert_nothing_kept(&app, 3).await;
}

/// The contract refuses an unparsable forwarding chain from a trusted proxy "like an outside
/// source", with or without allowed sources.
#[sqlx::test(migrations = false)]
async fn an_unparsable_chain_from_a_trusted_proxy_is_refused_without_allowed_sources_too(
    pool: PgPool,
) {
    let app = spawn_app_adding(pool, &[("TRUSTED_PROXIES", "127.0.0.1")]).await;
    let before = scrape(&app).await;
    let (proxy, untrusted) = (Sender::at("127.0.0.1", &app), Sender::at("127.0.0.3", &app));
    let (first, second, third) = (body(0), body(1), body(2));
    let forwarded = proxy
        .post(&first, &[hmac(&first), forwarded_for("203.0.113.5")])
        .await;
    assert_eq!(forwarded.status(), StatusCode::ACCEPTED);
    let garbage = forwarded_for("203.0.113.5, garbage");
    assert_refused_source(proxy.post(&second, &[hmac(&second), garbage]).await).await;
    // From a peer that is no proxy, the header is not read at all.
    let ignored = untrusted
        .post(&third, &[hmac(&third), forwarded_for("garbage")])
        .await;
    assert_eq!(ignored.status(), StatusCode::ACCEPTED);
    assert_nothing_kept(&app, 2).await;

    let after = scrape(&app).await;
    let refused = r#"idnow_webhook_forbidden_sources_total{reason="unknown_client"}"#;
    assert_eq!(grew(&before, &after, refused), 1.0);
}

#[sqlx::test(migrations = false)]
async fn the_source_gate_stands_before_every_method(pool: PgPool) {
    let tokens = sha256_hex(TOKEN);
    let credentials = format!("{BASIC_USER}:{}", sha256_hex(BASIC_PASSWORD));
    let app = spawn_app_adding(
        pool,
        &[
            ("WEBHOOK_AUTH", "standard-webhooks,hmac,token,basic"),
            ("WEBHOOK_TOKENS", &tokens),
            ("WEBHOOK_BASIC_CREDENTIALS", &credentials),
            ("WEBHOOK_ALLOWED_SOURCES", "127.0.0.2"),
        ],
    )
    .await;
    let (allowed, outside) = (Sender::at("127.0.0.2", &app), Sender::at("127.0.0.3", &app));
    type Credentials = fn(&[u8]) -> Vec<(&'static str, String)>;
    let methods: [(&str, Credentials); 4] = [
        ("standard-webhooks", standard),
        ("hmac", |body| vec![hmac(body)]),
        ("token", |_| vec![token(TOKEN)]),
        ("basic", |_| vec![basic(BASIC_USER, BASIC_PASSWORD)]),
    ];
    for (n, (method, credentials)) in methods.into_iter().enumerate() {
        let delivery = body(n);
        let refused = outside.post(&delivery, &credentials(&delivery)).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{method}");
        assert_refused_source(refused).await;
        let accepted = allowed.post(&delivery, &credentials(&delivery)).await;
        assert_eq!(accepted.status(), StatusCode::ACCEPTED, "{method}");
    }
    // Passing the gate is not authenticating: without `source`, credentials are needed.
    assert_unauthenticated(allowed.post(&body(9), &[]).await).await;
    assert_unauthenticated(allowed.post(&body(9), &[token("wrong")]).await).await;
    assert_nothing_kept(&app, 4).await;
}

#[sqlx::test(migrations = false)]
async fn a_trusted_proxy_forwards_the_client_address_and_nobody_else_does(pool: PgPool) {
    // The test's own 127.0.0.1 is the ingress; 10.0.0.0/8 are proxies behind it.
    let app = spawn_app_adding(
        pool,
        &[
            ("WEBHOOK_AUTH", "source"),
            ("WEBHOOK_ALLOWED_SOURCES", "192.0.2.0/24,127.0.0.3"),
            ("TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8"),
        ],
    )
    .await;
    let (proxy, untrusted) = (Sender::at("127.0.0.1", &app), Sender::at("127.0.0.3", &app));
    let cases: [(&Sender, &[&str], StatusCode); 13] = [
        // An allowed client, as the ingress saw it.
        (&proxy, &["192.0.2.10"], StatusCode::ACCEPTED),
        // Through an inner proxy too.
        (&proxy, &["192.0.2.11, 10.0.0.5"], StatusCode::ACCEPTED),
        // A refused client.
        (&proxy, &["198.51.100.1"], StatusCode::FORBIDDEN),
        // A refused client that prepended an allowed address: the ingress appended its own.
        (&proxy, &["192.0.2.10, 198.51.100.1"], StatusCode::FORBIDDEN),
        // The same chain across two headers, in the order they came.
        (
            &proxy,
            &["192.0.2.10", "198.51.100.1"],
            StatusCode::FORBIDDEN,
        ),
        (
            &proxy,
            &["198.51.100.1", "192.0.2.12"],
            StatusCode::ACCEPTED,
        ),
        // Nothing forwarded: the proxy itself is the client, and it is not allowed.
        (&proxy, &[], StatusCode::FORBIDDEN),
        // Unparsable chains are refused like an outside source.
        (&proxy, &["unknown"], StatusCode::FORBIDDEN),
        (&proxy, &["192.0.2.10:443"], StatusCode::FORBIDDEN),
        (&proxy, &["192.0.2.10,"], StatusCode::FORBIDDEN),
        (&proxy, &["garbage, 192.0.2.10"], StatusCode::FORBIDDEN),
        // From a peer that is not a trusted proxy the header is ignored, either way.
        (&untrusted, &["198.51.100.1"], StatusCode::ACCEPTED),
        (&untrusted, &["garbage"], StatusCode::ACCEPTED),
    ];
    let mut accepted = 0;
    for (n, (sender, chain, status)) in cases.into_iter().enumerate() {
        let headers: Vec<_> = chain.iter().map(|hop| forwarded_for(hop)).collect();
        let response = sender.post(&body(n), &headers).await;
        assert_eq!(response.status(), status, "{chain:?}");
        if status == StatusCode::FORBIDDEN {
            assert_refused_source(response).await;
        } else {
            accepted += 1;
        }
    }
    let from_outside = Sender::at("127.0.0.4", &app);
    assert_refused_source(
        from_outside
            .post(&body(99), &[forwarded_for("192.0.2.10")])
            .await,
    )
    .await;
    assert_nothing_kept(&app, accepted).await;
}

#[sqlx::test(migrations = false)]
async fn behind_a_proxy_credentials_and_the_forwarded_source_are_both_needed(pool: PgPool) {
    let app = spawn_app_adding(
        pool,
        &[
            ("WEBHOOK_AUTH", "token"),
            ("WEBHOOK_TOKENS", &sha256_hex(TOKEN)),
            ("WEBHOOK_ALLOWED_SOURCES", "192.0.2.0/24"),
            ("TRUSTED_PROXIES", "127.0.0.1"),
        ],
    )
    .await;
    let proxy = Sender::at("127.0.0.1", &app);
    let response = proxy
        .post(&body(0), &[forwarded_for("192.0.2.10"), token(TOKEN)])
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_refused_source(
        proxy
            .post(&body(1), &[forwarded_for("198.51.100.1"), token(TOKEN)])
            .await,
    )
    .await;
    assert_unauthenticated(
        proxy
            .post(&body(2), &[forwarded_for("192.0.2.10"), token("wrong")])
            .await,
    )
    .await;
    assert_nothing_kept(&app, 1).await;
}

/// The default `host`, `::`: one socket for IPv6 and IPv4 clients, and IPv4 clients matched
/// against IPv4 ranges although they arrive as `::ffff:127.0.0.2`.
#[sqlx::test(migrations = false)]
async fn all_interfaces_are_ipv6_and_ipv4_and_mapped_clients_match_ipv4_ranges(pool: PgPool) {
    let mut environment = test_environment();
    environment.insert("WEBHOOK_AUTH".into(), "source".into());
    environment.insert("WEBHOOK_ALLOWED_SOURCES".into(), "127.0.0.2/32, ::1".into());
    let mut settings = Settings::from_env_map(&environment).expect("valid settings");
    assert_eq!(settings.http.host, IpAddr::V6(Ipv6Addr::UNSPECIFIED));
    settings.http.port = 0;
    let application = Application::embedded(settings, (*pool.connect_options()).clone())
        .await
        .expect("the application starts");
    assert_eq!(
        application.address().ip(),
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    );
    let port = application.port();
    let app = TestApp {
        address: format!("http://127.0.0.1:{port}"),
        db: pool,
        client: reqwest::Client::new(),
        server: Some(application.handle()),
        database: Some(application.pools()),
    };
    tokio::spawn(application.run_until_stopped());
    let ipv6 = format!("http://{}", SocketAddr::from((Ipv6Addr::LOCALHOST, port)));

    for base in [&app.address, &ipv6] {
        let ready = reqwest::get(format!("{base}/health/live"))
            .await
            .expect("reachable");
        assert_eq!(ready.status(), StatusCode::OK, "{base}");
    }
    let ipv4_allowed = Sender::to("127.0.0.2", &app.address);
    assert_eq!(
        ipv4_allowed.post(&body(0), &[]).await.status(),
        StatusCode::ACCEPTED
    );
    let ipv6_allowed = Sender::to("::1", &ipv6);
    assert_eq!(
        ipv6_allowed.post(&body(1), &[]).await.status(),
        StatusCode::ACCEPTED
    );
    assert_refused_source(
        Sender::to("127.0.0.3", &app.address)
            .post(&body(2), &[])
            .await,
    )
    .await;
    assert_nothing_kept(&app, 2).await;
}

#[sqlx::test(migrations = false)]
async fn refusals_are_logged_with_method_reason_and_address_but_never_a_credential(pool: PgPool) {
    let tokens = sha256_hex(TOKEN);
    let credentials = format!("{BASIC_USER}:{}", sha256_hex(BASIC_PASSWORD));
    let service = ServiceProcess::start(
        &pool,
        &[
            ("WEBHOOK_AUTH", "token,basic"),
            ("WEBHOOK_TOKENS", &tokens),
            ("WEBHOOK_BASIC_CREDENTIALS", &credentials),
            ("WEBHOOK_ALLOWED_SOURCES", "127.0.0.2"),
            ("TRUSTED_PROXIES", "127.0.0.1"),
        ],
    );
    let (allowed, outside, proxy) = (
        Sender::at("127.0.0.2", &service.app),
        Sender::at("127.0.0.3", &service.app),
        Sender::at("127.0.0.1", &service.app),
    );
    let sent = [
        (allowed.post(&body(0), &[token(TOKEN)]).await, 202),
        (
            allowed.post(&body(1), &[token("wrong-token-value")]).await,
            401,
        ),
        (
            allowed
                .post(&body(2), &[basic(BASIC_USER, "wrong basic password")])
                .await,
            401,
        ),
        (allowed.post(&body(3), &[]).await, 401),
        (outside.post(&body(4), &[token(TOKEN)]).await, 403),
        (
            proxy
                .post(&body(5), &[token(TOKEN), forwarded_for("127.0.0.2:80")])
                .await,
            403,
        ),
    ];
    for (response, status) in sent {
        assert_eq!(response.status().as_u16(), status);
    }
    service.signal(Signal::SIGTERM);
    let (exit, log) = service.wait().await;
    assert!(exit.success(), "{exit:?}");

    let webhooks: Vec<serde_json::Value> = log
        .iter()
        .map(|line| serde_json::from_str(line).expect("a JSON log line"))
        .filter(|event: &serde_json::Value| event["http.route"] == "/v1/webhooks/idnow")
        .collect();
    // Sorted: each HTTP worker writes its own lines, so that lines of requests answered by
    // different workers can come in either order.
    let mut logged: Vec<_> = webhooks
        .iter()
        .map(|event| {
            (
                event["status"].as_u64().expect("a status"),
                event["auth.method"].as_str(),
                event["auth.failure"].as_str(),
                event["client.address"].as_str(),
                event["client.peer"].as_str(),
            )
        })
        .collect();
    logged.sort_unstable();
    let (outside, proxy) = (Some("127.0.0.3"), Some("127.0.0.1"));
    let mut expected = [
        (202, Some("token"), None, None, None),
        (401, Some("token"), Some("mismatch"), None, None),
        (401, Some("basic"), Some("mismatch"), None, None),
        (401, None, Some("missing"), None, None),
        (403, None, Some("outside_allowed_sources"), outside, outside),
        (403, None, Some("unknown_client"), None, proxy),
    ];
    expected.sort_unstable();
    assert_eq!(logged, expected);
    let text = log.join("\n");
    for credential in [
        TOKEN.to_owned(),
        "wrong-token-value".to_owned(),
        BASIC_PASSWORD.to_owned(),
        "wrong basic password".to_owned(),
        basic(BASIC_USER, "wrong basic password").1,
        sha256_hex(TOKEN),
    ] {
        assert!(!text.contains(&credential), "the log holds {credential:?}");
    }
}

/// How one request of the matrix reaches the server.
#[derive(Debug, Clone, Copy)]
enum Route {
    /// Straight from an address inside `WEBHOOK_ALLOWED_SOURCES`, forging a forwarded
    /// outside address that must be ignored.
    DirectInside,
    /// Straight from outside, forging a forwarded inside address.
    DirectOutside,
    /// Through the trusted proxy, for a client inside.
    ProxiedInside,
    /// Through the trusted proxy, for a client outside.
    ProxiedOutside,
}

impl Route {
    const ALL: [Self; 4] = [
        Self::DirectInside,
        Self::DirectOutside,
        Self::ProxiedInside,
        Self::ProxiedOutside,
    ];

    /// The peer's address and the `X-Forwarded-For` it sends.
    fn peer_and_chain(self) -> (&'static str, &'static str) {
        match self {
            Self::DirectInside => ("127.0.0.2", "198.51.100.1"),
            Self::DirectOutside => ("127.0.0.3", "192.0.2.10"),
            Self::ProxiedInside => ("127.0.0.1", "192.0.2.10"),
            Self::ProxiedOutside => ("127.0.0.1", "198.51.100.1"),
        }
    }

    fn is_inside(self) -> bool {
        matches!(self, Self::DirectInside | Self::ProxiedInside)
    }
}

/// The contract's admission as a table: every method, with valid and with wrong credentials,
/// from inside and outside the allowed sources, straight or through a trusted proxy. Inside
/// means 192.0.2.0/24 (behind the proxy 127.0.0.1) or 127.0.0.2 (direct).
#[sqlx::test(migrations = false)]
async fn the_admission_matrix(pool: PgPool) {
    let tokens = sha256_hex(TOKEN);
    let basic_pairs = format!("{BASIC_USER}:{}", sha256_hex(BASIC_PASSWORD));
    type Credentials = fn(&[u8], bool) -> Vec<(&'static str, String)>;
    type Variables<'a> = &'a [(&'a str, &'a str)];
    let methods: [(&str, Variables<'_>, Credentials); 5] = [
        ("standard-webhooks", &[], |body, valid| {
            let mut headers = standard(body);
            if !valid {
                headers[2].1 = "v1,AAAA".to_owned();
            }
            headers
        }),
        ("hmac", &[], |body, valid| {
            let signed: &[u8] = if valid { body } else { b"another body" };
            vec![hmac(signed)]
        }),
        ("token", &[("WEBHOOK_TOKENS", &tokens)], |_, valid| {
            vec![token(if valid { TOKEN } else { "wrong" })]
        }),
        (
            "basic",
            &[("WEBHOOK_BASIC_CREDENTIALS", &basic_pairs)],
            |_, valid| {
                vec![basic(
                    BASIC_USER,
                    if valid { BASIC_PASSWORD } else { "wrong" },
                )]
            },
        ),
        // `source` has no credentials: "wrong" ones are a token it does not read.
        ("source", &[], |_, valid| {
            if valid {
                vec![]
            } else {
                vec![token("wrong")]
            }
        }),
    ];
    let mut matrix = Vec::new();
    for (method, extra, credentials) in methods {
        let db = pool.clone();
        let mut variables = vec![
            ("WEBHOOK_AUTH", method),
            ("WEBHOOK_ALLOWED_SOURCES", "192.0.2.0/24, 127.0.0.2"),
            ("TRUSTED_PROXIES", "127.0.0.1"),
        ];
        variables.extend_from_slice(extra);
        let app = spawn_app_adding(db, &variables).await;
        for route in Route::ALL {
            for valid in [true, false] {
                let (peer, chain) = route.peer_and_chain();
                let delivery = webhook_body(
                    &format!("tn-matrix-{method}-{route:?}-{valid}"),
                    "SUCCESS",
                    "2026-10-02T09:30:00Z",
                );
                let mut headers = credentials(&delivery, valid);
                headers.push(forwarded_for(chain));
                let status = Sender::at(peer, &app)
                    .post(&delivery, &headers)
                    .await
                    .status();
                let expected = match (route.is_inside(), valid || method == "source") {
                    (false, _) => StatusCode::FORBIDDEN,
                    (true, true) => StatusCode::ACCEPTED,
                    (true, false) => StatusCode::UNAUTHORIZED,
                };
                matrix.push(format!("{method} {route:?} valid={valid}: {status}"));
                assert_eq!(status, expected, "{method} {route:?} valid={valid}");
            }
        }
    }
    assert_eq!(matrix.len(), 5 * 4 * 2);
    // With --nocapture, the matrix as it was observed.
    eprintln!("{}", matrix.join("\n"));
}
