//! `idnow-attempts`: takes IDnow's result webhooks in, verifies their signatures, keeps every
//! identification attempt in PostgreSQL, and serves each signing's attempt history.

pub mod auth;
pub mod body;
pub mod cli;
pub mod configuration;
pub mod connection;
pub mod domain;
pub mod error;
pub mod metrics;
pub mod persistence;
pub mod routes;
pub mod startup;
pub mod telemetry;
pub mod webhook_signature;
