//! `GET /openapi.json`: the OpenAPI 3.1 description of every route, generated from the
//! handlers' `#[utoipa::path]` attributes and the types they answer with, so that it cannot
//! drift from them. A server serves it narrowed to its own webhook methods ([`served_json`]);
//! the description of every method is committed as `openapi.json` at the repository's root
//! for clients to generate from, and a test fails when it differs from the code's.

use std::borrow::Cow;

use actix_web::{web, HttpResponse};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{self, header::HeaderBuilder, ObjectBuilder, RefOr, Schema, Type};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use super::{attempts, health, metrics, persons, signings, webhooks};
use crate::error::{ErrorBody, ErrorObject};
use crate::persistence::persons::Erased;
use crate::state::AppState;
use crate::webhook_auth::{MethodName, WebhookAuth};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "idnow-attempts",
        license(name = "UNLICENSED"),
        description = "IDnow result webhooks in, authenticated and stored durably in PostgreSQL; \
            a signing's identification attempts out. Every error, on every route, has the \
            body `ErrorDocument`.",
    ),
    paths(
        webhooks::receive,
        attempts::list,
        signings::register,
        persons::erase,
        health::live,
        health::ready,
        metrics::scrape,
        document,
    ),
    components(schemas(ErrorBody, ErrorObject<'static>, Erased, ResourceId, TransactionNumberText)),
    modifiers(&SecuritySchemes, &EveryAnswer),
    tags(
        (name = "webhooks", description = "IDnow's result webhook."),
        (name = "signings", description = "Which identification a signing uses."),
        (name = "attempts", description = "A signing's attempt history."),
        (name = "persons", description = "Erasure of a person's data."),
        (name = "operations", description = "Health, metrics and this description."),
    ),
)]
struct ApiDoc;

/// The description as committed, of every webhook method: pretty JSON, ending in a newline.
pub fn document_json() -> String {
    pretty(&description())
}

/// The description as a server configured with `auth` serves it: the committed one, of the
/// webhook methods `auth` enables only, in the order they are tried, with the empty
/// requirement `{}` among them when `source` admits deliveries without credentials, and the
/// `token` scheme in the header `WEBHOOK_TOKEN_HEADER` names. A client generated from it
/// sends what this server takes. With every method but `source` and the default header, it
/// is the committed description.
pub fn served_json(auth: &WebhookAuth) -> String {
    let mut document = description();
    let enabled: Vec<MethodName> = auth.methods().collect();
    if let Some(schemes) = document
        .pointer_mut("/components/securitySchemes")
        .and_then(serde_json::Value::as_object_mut)
    {
        for method in MethodName::ALL {
            if let Some(scheme) = scheme_of(method).filter(|_| !enabled.contains(&method)) {
                schemes.remove(scheme);
            }
        }
        let header = auth.token_header().as_str();
        if let Some(name) = schemes
            .get_mut("token")
            .and_then(|token| token.get_mut("name"))
        {
            // As configured; the default keeps its capitals (header names ignore case).
            if !name
                .as_str()
                .is_some_and(|name| name.eq_ignore_ascii_case(header))
            {
                *name = header.into();
            }
        }
    }
    if let Some(operation) = document.pointer_mut("/paths/~1v1~1webhooks~1idnow/post") {
        let requirements = enabled.iter().map(|method| match scheme_of(*method) {
            Some(scheme) => serde_json::json!({ scheme: [] }),
            None => serde_json::json!({}),
        });
        operation["security"] = requirements.collect();
    }
    pretty(&document)
}

/// The security scheme of a webhook method; `None` for `source`, which asks for no
/// credentials.
fn scheme_of(method: MethodName) -> Option<&'static str> {
    match method {
        MethodName::StandardWebhooks => Some("standardWebhooks"),
        MethodName::Hmac => Some("hmac"),
        MethodName::Token => Some("token"),
        MethodName::Basic => Some("basic"),
        MethodName::Source => None,
    }
}

fn description() -> serde_json::Value {
    let mut document = ApiDoc::openapi();
    // Cargo's `UNLICENSED` is not an SPDX identifier: the name alone says it.
    if let Some(license) = &mut document.info.license {
        license.identifier = None;
    }
    let mut document = serde_json::to_value(document)
        .unwrap_or_else(|error| unreachable!("an OpenAPI document serialises: {error}"));
    camel_case_links(&mut document);
    document
}

/// Pretty JSON, ending in a newline.
fn pretty(document: &serde_json::Value) -> String {
    let mut json = serde_json::to_string_pretty(document)
        .unwrap_or_else(|error| unreachable!("a JSON value serialises: {error}"));
    json.push('\n');
    json
}

/// utoipa 5.5 writes a Link Object's fields in snake case (`operation_id`); OpenAPI names
/// them `operationId`, `operationRef` and `requestBody`, and tools (schemathesis among them)
/// ignore a link spelled otherwise.
fn camel_case_links(document: &mut serde_json::Value) {
    const FIELDS: [(&str, &str); 3] = [
        ("operation_id", "operationId"),
        ("operation_ref", "operationRef"),
        ("request_body", "requestBody"),
    ];
    let Some(paths) = document
        .get_mut("paths")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return;
    };
    let links = paths
        .values_mut()
        .filter_map(serde_json::Value::as_object_mut)
        .flat_map(|item| item.values_mut())
        .filter_map(|operation| operation.get_mut("responses")?.as_object_mut())
        .flat_map(|responses| responses.values_mut())
        .filter_map(|response| response.get_mut("links")?.as_object_mut())
        .flat_map(|links| links.values_mut())
        .filter_map(serde_json::Value::as_object_mut);
    for link in links {
        for (snake, camel) in FIELDS {
            if let Some(value) = link.remove(snake) {
                link.insert(camel.to_owned(), value);
            }
        }
    }
}

/// This description.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 description of every route.", content_type = "application/json", body = Object)),
)]
pub async fn document(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(mime::APPLICATION_JSON)
        .body(state.openapi.clone())
}

/// A person's or a signing's id in a path: what `PersonId::parse` and `SigningId::parse`
/// take, as an ECMA-262 pattern (a test holds the two together).
pub const RESOURCE_ID_PATTERN: &str = "^[A-Za-z0-9_-]{1,128}$";

/// An IDnow transaction number: what `TransactionNumber::parse` takes (1 to 255 characters,
/// none of them whitespace or a control character, as Rust's `char` defines them), as an
/// ECMA-262 pattern; `maxLength` counts the characters. A test holds the two together.
pub const TRANSACTION_NUMBER_PATTERN: &str =
    r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$";

/// The schema `ResourceId`: person and signing ids.
#[derive(Debug)]
pub struct ResourceId;

impl PartialSchema for ResourceId {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(RESOURCE_ID_PATTERN))
            .description(Some("Letters, digits, `-` and `_`, 1 to 128 of them."))
            .examples([serde_json::json!("dc1a6812a14f6cc338cd084208535bcdcper")])
            .into()
    }
}

impl ToSchema for ResourceId {}

/// The schema `TransactionNumber`: an identification's IDnow transaction number (the domain's
/// `TransactionNumber` is what parses one).
#[derive(Debug)]
pub struct TransactionNumberText;

impl PartialSchema for TransactionNumberText {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(255))
            .pattern(Some(TRANSACTION_NUMBER_PATTERN))
            .description(Some(
                "IDnow's transaction number: 1 to 255 characters, no whitespace or control \
                 character.",
            ))
            .examples([serde_json::json!("b2d949eb12ecd6798fa8e2ae66fc4a5acidt")])
            .into()
    }
}

impl ToSchema for TransactionNumberText {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("TransactionNumber")
    }
}

/// The schemes of the contract's "Webhook authentication" and of the API's bearer tokens.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let header = |name: &str, description: &str| {
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                name,
                description,
            )))
        };
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API client's token (`API_KEYS`); each operation names the scope \
                         it needs.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "standardWebhooks",
            header(
                "webhook-signature",
                "Standard Webhooks (`WEBHOOK_AUTH=standard-webhooks`): space-separated \
                 `v1,<base64 HMAC-SHA256>` of `{webhook-id}.{webhook-timestamp}.{raw body}` \
                 under any of `IDNOW_WEBHOOK_SECRETS`, sent with the headers `webhook-id` \
                 (1 to 1,024 visible ASCII characters, else 400 `invalid_webhook_id`; one id \
                 used for two different events is 409 `webhook_id_reused`) and \
                 `webhook-timestamp` (Unix seconds, within `WEBHOOK_TOLERANCE_SECONDS` of \
                 now).",
            ),
        );
        components.add_security_scheme(
            "hmac",
            header(
                "X-Idnow-Signature",
                "`WEBHOOK_AUTH=hmac`: `sha256=<lowercase hex HMAC-SHA256 of the raw body>` \
                 under any of `IDNOW_WEBHOOK_SECRETS`.",
            ),
        );
        components.add_security_scheme(
            "token",
            header(
                "X-Auth-Token",
                "`WEBHOOK_AUTH=token`: a static token whose SHA-256 is in `WEBHOOK_TOKENS`, \
                 in the header named by `WEBHOOK_TOKEN_HEADER` (`X-Auth-Token` by default).",
            ),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "`WEBHOOK_AUTH=basic`: a user of `WEBHOOK_BASIC_CREDENTIALS` and the \
                         password whose SHA-256 is listed. (`WEBHOOK_AUTH=source` admits \
                         senders by address alone, `WEBHOOK_ALLOWED_SOURCES`.)",
                    ))
                    .build(),
            ),
        );
    }
}

/// What every operation may answer, said once: `X-Request-Id` on every answer; 405 with
/// `Allow` for another method on its path, 431 for oversized header fields and 500; and 408
/// where a body is read.
struct EveryAnswer;

impl Modify for EveryAnswer {
    fn modify(&self, openapi: &mut openapi::OpenApi) {
        let request_id = HeaderBuilder::new()
            .schema(ObjectBuilder::new().schema_type(Type::String))
            .description(Some(
                "The request's id: the client's `X-Request-Id` when it is 1 to 128 visible \
                 ASCII characters, else a generated one. On the request's log line.",
            ))
            .build();
        let fault = openapi::ResponseBuilder::new()
            .description("`generic_error`: a fault of the service; the detail reveals nothing.")
            .content(
                "application/json",
                openapi::ContentBuilder::new()
                    .schema(Some(openapi::Ref::from_schema_name("ErrorDocument")))
                    .build(),
            )
            .build();
        let error = |description: &str| {
            openapi::ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    openapi::ContentBuilder::new()
                        .schema(Some(openapi::Ref::from_schema_name("ErrorDocument")))
                        .build(),
                )
        };
        let header_fields_too_large = error(
            "`request_header_fields_too_large`: the request's header fields are over 16 KiB \
             in all. (More than 96 fields are refused by the HTTP layer before routing, with \
             the same body but without `X-Request-Id`.)",
        )
        .build();
        let uri_too_long = error(
            "`uri_too_long`: the request target (path and query) is over 65,534 bytes; \
             refused by the HTTP layer before routing, without `X-Request-Id`.",
        )
        .build();
        let body_timeout = error(
            "`request_timeout`: the body did not arrive within the body read timeout; \
             nothing was stored.",
        )
        .build();
        for item in openapi.paths.paths.values_mut() {
            // The methods of this path, as the 405 answer's `Allow` names them.
            let methods = [
                ("GET", item.get.is_some()),
                // Served wherever GET is (`routes::READ`), and not described apart.
                ("HEAD", item.get.is_some()),
                ("PUT", item.put.is_some()),
                ("POST", item.post.is_some()),
                ("DELETE", item.delete.is_some()),
            ]
            .into_iter()
            .filter_map(|(method, served)| served.then_some(method))
            .collect::<Vec<_>>()
            .join(", ");
            let method_not_allowed = error(&format!(
                "`method_not_allowed`: a method other than {methods} on this path."
            ))
            .header(
                "Allow",
                HeaderBuilder::new()
                    .schema(ObjectBuilder::new().schema_type(Type::String))
                    .description(Some(format!("`{methods}`")))
                    .build(),
            )
            .build();
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
            ];
            for operation in operations.into_iter().flatten() {
                let reads_body = operation.request_body.is_some();
                let responses = &mut operation.responses.responses;
                responses
                    .entry("405".to_owned())
                    .or_insert_with(|| method_not_allowed.clone().into());
                responses
                    .entry("414".to_owned())
                    .or_insert_with(|| uri_too_long.clone().into());
                responses
                    .entry("431".to_owned())
                    .or_insert_with(|| header_fields_too_large.clone().into());
                if reads_body {
                    responses
                        .entry("408".to_owned())
                        .or_insert_with(|| body_timeout.clone().into());
                }
                responses
                    .entry("500".to_owned())
                    .or_insert_with(|| fault.clone().into());
                for (status, response) in responses.iter_mut() {
                    // The HTTP layer's 414 comes before any request has an id.
                    if let (openapi::RefOr::T(response), false) = (response, status == "414") {
                        response
                            .headers
                            .insert("X-Request-Id".to_owned(), request_id.clone());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use regex::Regex;

    use super::*;
    use crate::domain::{PersonId, TransactionNumber};

    /// Characters where the rules change: controls, whitespace of every kind, ASCII, and
    /// letters beyond it.
    fn text() -> impl Strategy<Value = String> {
        let edges = prop::sample::select(vec![
            '\0', '\t', '\n', ' ', '\u{1f}', '\u{7f}', '\u{85}', '\u{9f}', '\u{a0}', '\u{a1}',
            '\u{1680}', '\u{180e}', '\u{2000}', '\u{200a}', '\u{200b}', '\u{2028}', '\u{2029}',
            '\u{202f}', '\u{205f}', '\u{3000}', '\u{feff}', 'a', 'Z', '0', '-', '_', '.', '/', 'é',
            '€', '😀',
        ]);
        let character = prop_oneof![edges, any::<char>()];
        proptest::collection::vec(character, 0..300).prop_map(|chars| chars.into_iter().collect())
    }

    /// Every `$ref` names a schema the document has.
    #[test]
    fn every_reference_resolves() {
        fn references<'a>(value: &'a serde_json::Value, found: &mut Vec<&'a str>) {
            match value {
                serde_json::Value::Object(fields) => {
                    if let Some(serde_json::Value::String(target)) = fields.get("$ref") {
                        found.push(target);
                    }
                    fields.values().for_each(|value| references(value, found));
                }
                serde_json::Value::Array(items) => {
                    items.iter().for_each(|value| references(value, found));
                }
                _ => {}
            }
        }
        let document: serde_json::Value = serde_json::from_str(&document_json()).expect("JSON");
        let mut found = Vec::new();
        references(&document, &mut found);
        assert!(found.len() > 10, "{found:?}");
        for target in found {
            let name = target
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("a local schema: {target}"));
            assert!(
                document["components"]["schemas"][name].is_object(),
                "{target} resolves"
            );
        }
    }

    proptest! {
        /// The description's patterns are the parsers' rules: what a client generated from it
        /// sends is taken, and what it refuses is refused.
        #[test]
        fn the_patterns_take_what_the_parsers_take(raw in text()) {
            // ECMA-262's `\xHH` and `\uHHHH` mean in Rust's regex what they mean there.
            let transaction_number = Regex::new(TRANSACTION_NUMBER_PATTERN).expect("a regex");
            let described = transaction_number.is_match(&raw)
                && (1..=255).contains(&raw.chars().count());
            prop_assert_eq!(described, TransactionNumber::parse(&raw).is_ok(), "{:?}", raw);

            let resource_id = Regex::new(RESOURCE_ID_PATTERN).expect("a regex");
            prop_assert_eq!(resource_id.is_match(&raw), PersonId::parse(&raw).is_ok(), "{:?}", raw);
        }
    }

    /// The committed description, which clients generate from.
    const COMMITTED: &str = include_str!("../../openapi.json");

    #[test]
    fn the_committed_description_is_the_one_the_code_serves() {
        let current = document_json();
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(
                concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json"),
                &current,
            )
            .expect("writing openapi.json");
            return;
        }
        assert!(
            current == COMMITTED,
            "openapi.json differs from what the code describes; if the change is meant, \
             run `UPDATE_OPENAPI=1 cargo test openapi` and commit openapi.json"
        );
    }
}
