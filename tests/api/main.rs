//! Black-box tests: the real server on port 0, a fresh PostgreSQL database per test.

mod binary;
mod cluster;
mod database;
mod errors;
mod faults;
mod helpers;
mod hostile;
mod limits;
mod listing;
mod logs;
mod memory;
mod metrics;
mod outage;
mod poison;
mod process;
mod shutdown;
mod signings;
mod sources;
mod webhooks;
