//! `idnow-attempts`: takes IDnow's result webhooks in, authenticates them, keeps every
//! identification attempt in PostgreSQL, and serves each signing's attempt history.

pub mod api_auth;
pub mod at_rest;
pub mod cli;
pub mod configuration;
pub mod digest;
pub mod domain;
pub mod edge;
pub mod error;
pub mod ingest;
pub mod metrics;
pub mod networks;
pub mod operations;
pub mod persistence;
pub mod retention;
pub mod routes;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod webhook_auth;
