//! Bearer-token authentication of internal API clients. Routes require a scope through the
//! `routes::extract::Authorized` extractor.
//!
//! Tokens are never stored: `API_KEYS` holds the SHA-256 of each token, and a presented token
//! is hashed and compared against every digest in constant time.

use std::fmt;

use actix_web::http::header::{HeaderMap, AUTHORIZATION};
use serde::Deserialize;

use crate::digest::SecretDigest;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    IdnowAttemptsRead,
    SigningsWrite,
    PersonsErase,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::IdnowAttemptsRead => "idnow_attempts:read",
            Self::SigningsWrite => "signings:write",
            Self::PersonsErase => "persons:erase",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        [
            Self::IdnowAttemptsRead,
            Self::SigningsWrite,
            Self::PersonsErase,
        ]
        .into_iter()
        .find(|scope| scope.as_str() == raw)
    }
}

/// The scopes as types, for the `Authorized<scopes::SigningsWrite>` extractor.
pub mod scopes {
    use super::Scope;

    /// A scope a route requires.
    pub trait Required {
        const SCOPE: Scope;
    }

    /// `idnow_attempts:read`: read attempt histories.
    #[derive(Debug)]
    pub struct IdnowAttemptsRead;

    impl Required for IdnowAttemptsRead {
        const SCOPE: Scope = Scope::IdnowAttemptsRead;
    }

    /// `signings:write`: register signings.
    #[derive(Debug)]
    pub struct SigningsWrite;

    impl Required for SigningsWrite {
        const SCOPE: Scope = Scope::SigningsWrite;
    }

    /// `persons:erase`: erase everything held for a person.
    #[derive(Debug)]
    pub struct PersonsErase;

    impl Required for PersonsErase {
        const SCOPE: Scope = Scope::PersonsErase;
    }
}

/// One entry of `API_KEYS`, as configured.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyEntry {
    pub name: String,
    pub sha256: String,
    #[serde(default)]
    pub scopes: Vec<String>,
}

#[derive(Clone)]
struct ApiClient {
    name: String,
    digest: SecretDigest,
    scopes: Vec<Scope>,
}

/// The configured API clients.
#[derive(Clone, Default)]
pub struct ApiKeys {
    clients: Vec<ApiClient>,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.clients.iter().map(|client| &client.name))
            .finish()
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No token, or one no client has: 401.
    Unauthenticated,
    /// A known client without the scope: 403.
    Forbidden,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeysError {
    #[error("API client #{index} has an empty name")]
    EmptyName { index: usize },
    #[error("API client {name:?}: sha256 must be 64 hex characters")]
    BadDigest { name: String },
    #[error("API client {name:?}: unknown scope {scope:?}")]
    UnknownScope { name: String, scope: String },
    #[error("API client {name:?} is configured twice")]
    DuplicateName { name: String },
    /// Two clients with one token: one's scopes would silently be the other's.
    #[error("API clients {first:?} and {second:?} have the same sha256")]
    DuplicateDigest { first: String, second: String },
}

impl ApiKeys {
    pub fn from_entries(entries: &[ApiKeyEntry]) -> Result<Self, ApiKeysError> {
        let mut clients: Vec<ApiClient> = Vec::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            if entry.name.trim().is_empty() {
                return Err(ApiKeysError::EmptyName { index });
            }
            if clients.iter().any(|client| client.name == entry.name) {
                return Err(ApiKeysError::DuplicateName {
                    name: entry.name.clone(),
                });
            }
            let digest =
                SecretDigest::from_hex(&entry.sha256).ok_or_else(|| ApiKeysError::BadDigest {
                    name: entry.name.clone(),
                })?;
            if let Some(first) = clients
                .iter()
                .find(|client| bool::from(client.digest.ct_matches(&digest)))
            {
                return Err(ApiKeysError::DuplicateDigest {
                    first: first.name.clone(),
                    second: entry.name.clone(),
                });
            }
            let scopes = entry
                .scopes
                .iter()
                .map(|scope| {
                    Scope::parse(scope).ok_or_else(|| ApiKeysError::UnknownScope {
                        name: entry.name.clone(),
                        scope: scope.clone(),
                    })
                })
                .collect::<Result<_, _>>()?;
            clients.push(ApiClient {
                name: entry.name.clone(),
                digest,
                scopes,
            });
        }
        Ok(Self { clients })
    }

    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// The name of the client whose token authorises `scope`.
    pub fn authorize(&self, headers: &HeaderMap, scope: Scope) -> Result<&str, Denied> {
        let token = bearer_token(headers).ok_or(Denied::Unauthenticated)?;
        let presented = SecretDigest::of(token.as_bytes());
        // Every digest is compared, so the time taken does not tell which one matched.
        let mut found = None;
        for client in &self.clients {
            if bool::from(client.digest.ct_matches(&presented)) {
                found = Some(client);
            }
        }
        let client = found.ok_or(Denied::Unauthenticated)?;
        if client.scopes.contains(&scope) {
            Ok(&client.name)
        } else {
            Err(Denied::Forbidden)
        }
    }
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(AUTHORIZATION);
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let value = value.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;
    use sha2::{Digest as _, Sha256};

    fn keys() -> ApiKeys {
        ApiKeys::from_entries(&[ApiKeyEntry {
            name: "loan-backend".into(),
            sha256: hex::encode(Sha256::digest(b"s3cret")),
            scopes: vec!["idnow_attempts:read".into()],
        }])
        .expect("valid keys")
    }

    fn headers(authorization: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in authorization {
            map.append(
                AUTHORIZATION,
                HeaderValue::from_str(value).expect("valid header"),
            );
        }
        map
    }

    #[test]
    fn a_known_token_with_the_scope_is_authorised() {
        assert_eq!(
            keys()
                .authorize(&headers(&["Bearer s3cret"]), Scope::IdnowAttemptsRead)
                .ok(),
            Some("loan-backend")
        );
        assert!(keys()
            .authorize(&headers(&["bearer s3cret"]), Scope::IdnowAttemptsRead)
            .is_ok());
    }

    #[test]
    fn a_known_token_without_the_scope_is_forbidden() {
        assert!(matches!(
            keys().authorize(&headers(&["Bearer s3cret"]), Scope::SigningsWrite),
            Err(Denied::Forbidden)
        ));
    }

    #[test]
    fn anything_else_is_unauthenticated() {
        for value in [
            &[][..],
            &["Bearer wrong"],
            &["Bearer "],
            &["Basic czNjcmV0"],
            &["s3cret"],
            &["Bearer s3cret", "Bearer s3cret"],
        ] {
            assert!(
                matches!(
                    keys().authorize(&headers(value), Scope::IdnowAttemptsRead),
                    Err(Denied::Unauthenticated)
                ),
                "{value:?}"
            );
        }
    }

    #[test]
    fn bad_configuration_is_refused() {
        let entry = |name: &str, sha256: &str, scope: &str| ApiKeyEntry {
            name: name.into(),
            sha256: sha256.into(),
            scopes: vec![scope.into()],
        };
        let digest = "a".repeat(64);
        assert!(matches!(
            ApiKeys::from_entries(&[entry("x", "abc", "signings:write")]),
            Err(ApiKeysError::BadDigest { .. })
        ));
        assert!(matches!(
            ApiKeys::from_entries(&[entry("x", &digest, "signings:read")]),
            Err(ApiKeysError::UnknownScope { .. })
        ));
        assert!(matches!(
            ApiKeys::from_entries(&[entry(" ", &digest, "signings:write")]),
            Err(ApiKeysError::EmptyName { .. })
        ));
        assert!(matches!(
            ApiKeys::from_entries(&[
                entry("x", &digest, "signings:write"),
                entry("x", &digest, "signings:write")
            ]),
            Err(ApiKeysError::DuplicateName { .. })
        ));
        // A red-team session found the later client's scopes silently replacing the earlier's.
        let other = "b".repeat(64);
        assert_eq!(
            ApiKeys::from_entries(&[
                entry("reader", &digest, "idnow_attempts:read"),
                entry("other", &other, "signings:write"),
                entry("eraser", &digest.to_uppercase(), "persons:erase")
            ])
            .err(),
            Some(ApiKeysError::DuplicateDigest {
                first: "reader".to_owned(),
                second: "eraser".to_owned()
            })
        );
    }
}
