//! What the request handlers of one HTTP worker share, and the process' draining flag.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix_web::web::Bytes;

use crate::at_rest::PayloadKeys;
use crate::edge::client_address::TrustedProxies;
use crate::edge::EdgeLimits;
use crate::metrics::Metrics;
use crate::persistence::keys::UnusedKeys;
use crate::persistence::writer::AttemptWriter;
use crate::persistence::Database;
use crate::webhook_auth::WebhookAuth;

/// One HTTP worker's share of the application, made on the worker's own thread.
#[derive(Debug)]
pub struct AppState {
    /// This worker's own pool (see `persistence::WorkerPools`).
    pub database: Database,
    /// Stores the attempts of this worker's webhooks, in batches under load.
    pub writer: AttemptWriter,
    pub webhook_auth: WebhookAuth,
    /// Seal what is stored, open what is read.
    pub payload_keys: Arc<PayloadKeys>,
    /// Unregisters key ids that readiness finds not configured, once no row uses them.
    pub unused_keys: UnusedKeys,
    /// Whose `X-Forwarded-For` tells the client's address.
    pub trusted_proxies: TrustedProxies,
    pub limits: EdgeLimits,
    pub metrics: Metrics,
    /// `GET /openapi.json`'s answer: the description of this configuration.
    pub openapi: Bytes,
    pub draining: Draining,
}

/// Set once the process has been asked to stop. From then on readiness answers 503, so the
/// load balancer takes this replica out while it drains.
#[derive(Debug, Clone, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    pub fn start(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}
