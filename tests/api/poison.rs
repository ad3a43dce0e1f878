//! One delivery never fails another: a value the store cannot hold is refused with that
//! delivery alone (422, kept for operators), while the deliveries stored beside it, in the same
//! batch even, are stored as if they had come alone.

use futures_util::StreamExt as _;
use proptest::prelude::*;
use proptest::strategy::ValueTree as _;
use proptest::test_runner::TestRunner;
use reqwest::StatusCode;
use sqlx::PgPool;

use crate::helpers::*;

const TN: &str = "tn-poison";

/// A good delivery, or one poisoned the way the case says, distinct by `n`.
fn delivery(n: usize, poison: Option<&str>) -> Vec<u8> {
    let time = format!("2026-10-02T{:02}:{:02}:00+02:00", n / 60, n % 60);
    let mut body: serde_json::Value =
        serde_json::from_slice(&webhook_body(TN, "ABORTED", &time)).expect("json");
    let process = &mut body["identificationprocess"];
    match poison {
        None => {}
        // PostgreSQL's `text` cannot hold a NUL character: the parser refuses these.
        Some("result") => process["result"] = "ABORTED\u{0}".into(),
        Some("reason") => process["reason"] = "TECH\u{0}LIGHTING".into(),
        Some("id") => process["id"] = "TST-\u{0}".into(),
        // Refused by a constraint the test adds, standing for whatever the parser does not
        // know of: only the batch writer can isolate these.
        Some("constraint") => process["result"] = "POISON".into(),
        Some(other) => unreachable!("no poison {other}"),
    }
    serde_json::to_vec(&body).expect("serialises")
}

#[sqlx::test(migrations = false)]
async fn poisoned_deliveries_fail_alone_among_concurrent_good_ones(pool: PgPool) {
    let app = spawn_app(pool).await;
    assert_eq!(
        app.register(PERSON, "sig-poison", TN).await.status(),
        StatusCode::CREATED
    );
    sqlx::query("ALTER TABLE attempts ADD CONSTRAINT refuses_poison CHECK (result <> 'POISON')")
        .execute(&app.db)
        .await
        .expect("constraint added");

    // 100 good deliveries, and after every second one a poisoned one: 50 in all.
    let poisons = ["result", "reason", "id", "constraint"];
    let mut deliveries = Vec::new();
    for n in 0..100 {
        deliveries.push((None, delivery(n, None)));
        if n % 2 == 1 {
            let poison = poisons[(n / 2) % poisons.len()];
            deliveries.push((Some(poison), delivery(1000 + n, Some(poison))));
        }
    }
    let answers: Vec<(Option<&str>, Vec<u8>, StatusCode, serde_json::Value)> =
        futures_util::stream::iter(deliveries)
            .map(|(poison, body)| {
                let app = &app;
                async move {
                    let response = app.deliver(&body).await;
                    let status = response.status();
                    let answer = response.json().await.expect("a JSON answer");
                    (poison, body, status, answer)
                }
            })
            .buffer_unordered(32)
            .collect()
            .await;

    let good: Vec<_> = answers.iter().filter(|a| a.0.is_none()).collect();
    let poisoned: Vec<_> = answers.iter().filter(|a| a.0.is_some()).collect();
    let stored = good.iter().filter(|a| a.2 == StatusCode::CREATED).count();
    let refused = poisoned
        .iter()
        .filter(|a| {
            a.2 == StatusCode::UNPROCESSABLE_ENTITY
                && a.3["errors"][0]["code"] == "invalid_webhook_payload"
        })
        .count();
    eprintln!(
        "poison: {} good, {stored} stored (201); {} poisoned, {refused} refused (422); others {:?}",
        good.len(),
        poisoned.len(),
        answers
            .iter()
            .filter(|a| !matches!(a.2.as_u16(), 201 | 422))
            .map(|a| (a.0, a.2.as_u16()))
            .collect::<Vec<_>>(),
    );
    assert_eq!(stored, 100, "every good delivery is stored");
    assert_eq!(refused, 50, "every poisoned delivery is refused alone");
    assert_eq!(app.attempt_count().await, 100);
    let listed = listed(app.list(PERSON, "sig-poison", "?page[size]=1000").await).await;
    assert_eq!(listed.len(), 100);

    // Each poisoned body is kept verbatim, once.
    let mut kept: Vec<Vec<u8>> = app
        .rejected()
        .await
        .into_iter()
        .map(|(status, code, _, body)| {
            assert_eq!((status, code.as_str()), (422, "invalid_webhook_payload"));
            body
        })
        .collect();
    let mut sent: Vec<Vec<u8>> = poisoned.iter().map(|a| a.1.clone()).collect();
    kept.sort();
    sent.sort();
    assert_eq!(kept, sent);
}

/// A JSON string literal, as a sender could write it: any Unicode text (control characters
/// and NUL escaped), escapes of lone surrogates, long runs.
fn json_string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any::<String>().prop_map(|s| serde_json::to_string(&s).expect("serialises")),
        2 => "\\PC{0,40}".prop_map(|s| serde_json::to_string(&s).expect("serialises")),
        1 => prop_oneof![
            Just(r#""\u0000""#.to_owned()),
            Just(r#""\ud800""#.to_owned()),
            Just(r#""a\udc00b""#.to_owned()),
            Just(r#""\ud83d\ude00""#.to_owned()),
            Just(r#""2026-10-02T09:31:47+02:00""#.to_owned()),
            Just(r#""0000-01-01T00:00:00Z""#.to_owned()),
            Just(r#""9999-12-31T23:59:60+23:59""#.to_owned()),
        ],
        1 => (0usize..4_000).prop_map(|n| format!("\"{}\"", "é".repeat(n))),
    ]
}

/// A field of `identificationprocess`: absent, `null`, or a string.
fn field() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some("null".to_owned())),
        6 => json_string().prop_map(Some),
    ]
}

/// A `webhook-id` header's bytes: what HTTP lets through, without the surrounding white space
/// that is not part of a header value.
fn webhook_id() -> impl Strategy<Value = Option<Vec<u8>>> {
    let byte =
        prop_oneof![8 => 0x21u8..=0x7e, 1 => 0x80u8..=0xff, 1 => Just(b' '), 1 => Just(b'\t')];
    proptest::option::of(
        proptest::collection::vec(byte, 0..1_100).prop_map(|mut id| {
            while id.last().is_some_and(|b| b.is_ascii_whitespace()) {
                id.pop();
            }
            while id.first().is_some_and(|b| b.is_ascii_whitespace()) {
                id.remove(0);
            }
            id
        }),
    )
}

#[derive(Debug)]
struct Case {
    fields: [Option<String>; 5],
    personal: String,
    webhook_id: Option<Vec<u8>>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        [field(), field(), field(), field(), field()],
        json_string(),
        webhook_id(),
    )
        .prop_map(|(fields, personal, webhook_id)| Case {
            fields,
            personal,
            webhook_id,
        })
}

impl Case {
    fn body(&self) -> Vec<u8> {
        let names = [
            "transactionnumber",
            "result",
            "reason",
            "id",
            "identificationtime",
        ];
        let process: Vec<String> = names
            .iter()
            .zip(&self.fields)
            .filter_map(|(name, value)| value.as_ref().map(|value| format!("\"{name}\":{value}")))
            .collect();
        format!(
            r#"{{"identificationprocess":{{{}}},"userdata":{{"firstname":{{"value":{}}}}}}}"#,
            process.join(","),
            self.personal
        )
        .into_bytes()
    }
}

/// Arbitrary strings through every field the service stores or reads — the transaction
/// number, result, reason, ident id, identification time, the `webhook-id` and the payload
/// around them — into the real database: each delivery is stored (and listed back byte for
/// byte) or refused with a 4xx and kept, never a 5xx, never a false 401.
#[sqlx::test(migrations = false)]
async fn arbitrary_strings_in_every_stored_field_are_stored_or_refused_never_5xx(pool: PgPool) {
    let app = spawn_app(pool).await;
    let mut runner = TestRunner::default();
    let strategy = case();
    let mut seen = std::collections::BTreeMap::<u16, usize>::new();
    for _ in 0..300 {
        let case = strategy
            .new_tree(&mut runner)
            .expect("a case is generated")
            .current();
        let body = case.body();
        let rejected_before = app.rejected().await.len();
        let response = match &case.webhook_id {
            Some(id) => app.post_with_webhook_id(&body, id).await,
            None => app.deliver(&body).await,
        };
        let status = response.status();
        *seen.entry(status.as_u16()).or_default() += 1;
        let text = response.text().await.expect("a body");
        match status.as_u16() {
            201 | 202 => {
                let answer: serde_json::Value = serde_json::from_str(&text).expect("json");
                let id = answer["id"].as_str().expect("an id");
                let stored = app.stored_payload(id).await;
                assert_eq!(stored, body, "stored byte for byte: {case:?}");
            }
            200 => {}
            400 | 409 | 422 => {
                assert_eq!(
                    app.rejected().await.len(),
                    rejected_before + 1,
                    "an authentic refusal is kept: {case:?}"
                );
            }
            _ => panic!("{status} {text} for {case:?}"),
        }
    }
    eprintln!("arbitrary fields: answers by status {seen:?}");
    assert!(
        (seen.contains_key(&201) || seen.contains_key(&202)) && seen.contains_key(&422),
        "the cases reach both the store and the refusals: {seen:?}"
    );
}
