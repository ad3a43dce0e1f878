//! `GET /v1/persons/{person_id}/signings/{signing_id}/idnow_attempts`: order and pagination.

use reqwest::StatusCode;
use sqlx::PgPool;

use crate::helpers::*;

const TN: &str = "0123456789abcdef0123456789abcdefcidt";
const SIGNING: &str = "sig-history";

/// 25 attempts with distinct identification times, delivered in a scrambled order; returns
/// the ids oldest first.
async fn app_with_history(pool: PgPool) -> (TestApp, Vec<String>) {
    let app = spawn_app(pool).await;
    assert_eq!(app.register(PERSON, SIGNING, TN).await.status(), 201);
    let mut by_minute = vec![String::new(); 25];
    for minute in (0..25).map(|i| (i * 7) % 25) {
        // Mixed offsets: order is by instant, not by the text of the time.
        let time = if minute % 2 == 0 {
            format!("2026-10-02T09:{minute:02}:00+02:00")
        } else {
            format!("2026-10-02T07:{minute:02}:00Z")
        };
        let body = webhook_body(TN, "ABORTED", &time);
        by_minute[minute] = acknowledged_id(app.deliver(&body).await).await;
    }
    (app, by_minute)
}

fn ids(attempts: &[ListedAttempt]) -> Vec<&str> {
    attempts.iter().map(|a| a.id.as_str()).collect()
}

/// The expected `Link` header: the page each rel names, all of `size`.
fn links(size: u32, pages: &[(&str, u32)]) -> String {
    pages
        .iter()
        .map(|(rel, number)| {
            format!(
                "</v1/persons/{PERSON}/signings/{SIGNING}/idnow_attempts?page%5Bnumber%5D={number}&page%5Bsize%5D={size}>; rel=\"{rel}\""
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response.headers()[name].to_str().expect("ascii header")
}

#[sqlx::test(migrations = false)]
async fn the_first_page_holds_the_ten_oldest(pool: PgPool) {
    let (app, expected) = app_with_history(pool).await;
    let response = app.list(PERSON, SIGNING, "").await;
    assert_eq!(header(&response, "total"), "25");
    assert_eq!(header(&response, "per-page"), "10");
    assert_eq!(
        header(&response, "link"),
        links(10, &[("first", 1), ("next", 2), ("last", 3)])
    );
    assert_eq!(ids(&listed(response).await), expected[..10]);
}

#[sqlx::test(migrations = false)]
async fn pages_walk_the_whole_history_in_order(pool: PgPool) {
    let (app, expected) = app_with_history(pool).await;

    let response = app
        .list(PERSON, SIGNING, "?page[number]=2&page[size]=10")
        .await;
    assert_eq!(
        header(&response, "link"),
        links(10, &[("first", 1), ("prev", 1), ("next", 3), ("last", 3)])
    );
    assert_eq!(ids(&listed(response).await), expected[10..20]);

    let response = app
        .list(PERSON, SIGNING, "?page%5Bnumber%5D=3&page%5Bsize%5D=10")
        .await;
    assert_eq!(
        header(&response, "link"),
        links(10, &[("first", 1), ("prev", 2), ("last", 3)])
    );
    assert_eq!(ids(&listed(response).await), expected[20..]);

    let mut walked = Vec::new();
    for number in 1..=4 {
        let response = app
            .list(
                PERSON,
                SIGNING,
                &format!("?page[number]={number}&page[size]=7"),
            )
            .await;
        assert_eq!(header(&response, "per-page"), "7");
        assert_eq!(header(&response, "total"), "25");
        walked.extend(listed(response).await.into_iter().map(|a| a.id));
    }
    assert_eq!(walked, expected);

    let response = app.list(PERSON, SIGNING, "?page[size]=1000").await;
    assert_eq!(
        header(&response, "link"),
        links(1000, &[("first", 1), ("last", 1)])
    );
    assert_eq!(ids(&listed(response).await), expected);
}

#[sqlx::test(migrations = false)]
async fn a_page_past_the_end_is_empty(pool: PgPool) {
    let (app, _) = app_with_history(pool).await;
    let response = app.list(PERSON, SIGNING, "?page[number]=9").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "total"), "25");
    assert_eq!(
        header(&response, "link"),
        links(10, &[("first", 1), ("prev", 3), ("last", 3)])
    );
    assert_eq!(response.text().await.expect("body"), "[]");
}

#[sqlx::test(migrations = false)]
async fn a_signing_without_attempts_has_an_empty_history(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.register(PERSON, SIGNING, TN).await;
    let response = app.list(PERSON, SIGNING, "").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "total"), "0");
    assert_eq!(
        header(&response, "link"),
        links(10, &[("first", 1), ("last", 1)])
    );
    assert_eq!(response.text().await.expect("body"), "[]");
}

#[sqlx::test(migrations = false)]
async fn bad_pagination_parameters_are_refused(pool: PgPool) {
    let (app, _) = app_with_history(pool).await;
    for query in [
        "?page[size]=-1",
        "?page[size]=1e9",
        "?page[size]=abc",
        "?page[size]=0",
        "?page[size]=1001",
        "?page[number]=0",
        "?page[number]=-2",
        "?page[number]=99999999999",
        "?page[number]=1&page[number]=2",
        // A slip in the family's names would otherwise give another page than was asked for.
        "?page[Size]=3",
        "?page%5Boffset%5D=3",
        "?page=2",
    ] {
        let response = app.list(PERSON, SIGNING, query).await;
        assert_error(response, StatusCode::BAD_REQUEST, "invalid_pagination").await;
    }
}

#[sqlx::test(migrations = false)]
async fn attempts_with_the_same_time_keep_their_arrival_order(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.register(PERSON, SIGNING, TN).await;
    // The lifecycle's REVIEW_PENDING and SUCCESS_DATA_CHANGED share one identification time.
    let mut expected = Vec::new();
    for result in ["REVIEW_PENDING", "SUCCESS_DATA_CHANGED", "CANCELED"] {
        let body = webhook_body(TN, result, "2026-10-02T09:31:47+02:00");
        expected.push(acknowledged_id(app.deliver(&body).await).await);
    }
    let history = listed(app.list(PERSON, SIGNING, "").await).await;
    assert_eq!(ids(&history), expected);
}

#[sqlx::test(migrations = false)]
async fn another_persons_signing_is_not_found(pool: PgPool) {
    let (app, _) = app_with_history(pool).await;
    let response = app.list("someone-else", SIGNING, "").await;
    assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
    let response = app.list(PERSON, "sig-unknown", "").await;
    assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
}

#[sqlx::test(migrations = false)]
async fn listing_needs_the_read_scope(pool: PgPool) {
    let (app, _) = app_with_history(pool).await;
    for token in ["", "not-a-known-token"] {
        let response = app.list_as(token, PERSON, SIGNING, "").await;
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        assert_error(response, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    }
    for token in [WRITE_TOKEN, NO_SCOPE_TOKEN] {
        let response = app.list_as(token, PERSON, SIGNING, "").await;
        let error = assert_error(response, StatusCode::FORBIDDEN, "unauthorized_action").await;
        assert_eq!(error["title"], "Unauthorized Action");
    }
}

/// `HEAD` is served wherever `GET` is (RFC 9110 §9.1): the status and headers a `GET` gets,
/// with the `Content-Length` of its body but no body, so that the connection serves on in
/// step; and it needs what the `GET` needs. The page here is large enough (20 attempts) to
/// take the path where actix-http writes a body from its own bytes.
#[sqlx::test(migrations = false)]
async fn head_answers_as_get_does_without_the_body(pool: PgPool) {
    let (app, _) = app_with_history(pool).await;
    let listing = format!("/v1/persons/{PERSON}/signings/{SIGNING}/idnow_attempts?page[size]=20");
    for path in [
        listing.as_str(),
        "/health/live",
        "/health/ready",
        "/openapi.json",
    ] {
        let send = |method| {
            app.client
                .request(method, app.url(path))
                .bearer_auth(READ_TOKEN)
                .send()
        };
        // HEAD first, on the connection the GET then takes: a body sent after the HEAD's head
        // would be read as the GET's answer.
        let head = send(reqwest::Method::HEAD).await.expect("sent");
        let get = send(reqwest::Method::GET).await.expect("sent");
        assert_eq!(head.status(), StatusCode::OK, "{path}");
        assert_eq!(get.status(), StatusCode::OK, "{path}");
        for name in ["content-type", "link", "total", "per-page"] {
            assert_eq!(
                head.headers().get(name),
                get.headers().get(name),
                "{path}: {name}"
            );
        }
        let length = head.headers()["content-length"].clone();
        assert!(head.bytes().await.expect("no body").is_empty(), "{path}");
        let body = get.bytes().await.expect("body");
        assert_eq!(length, body.len().to_string(), "{path}");
    }

    let response = app
        .client
        .head(app.url(&listing))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
}
