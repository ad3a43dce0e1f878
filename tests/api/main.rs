//! Black-box tests: the real server on port 0, a fresh PostgreSQL database per test.

mod at_rest;
mod binary;
mod cluster;
mod database;
mod erasure;
mod errors;
mod faults;
mod helpers;
mod hostile;
mod limits;
mod listing;
mod logs;
mod memory;
mod metrics;
mod openapi;
mod operator;
mod outage;
mod poison;
mod process;
mod retention;
mod shutdown;
mod signings;
mod sources;
mod webhooks;
