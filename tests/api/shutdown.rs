//! SIGTERM to the real binary while webhooks are in flight: readiness fails at once, requests
//! in flight finish, every 2xx is in the database, and the process exits 0.

use std::collections::HashSet;
use std::io::ErrorKind;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use reqwest::StatusCode;
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::helpers::*;
use crate::process::ServiceProcess;

/// Between SIGTERM and the listener closing; long enough to watch readiness fail first.
const SHUTDOWN_DELAY_SECONDS: u64 = 2;
/// Far more than the drain needs: an exit this late means the server gave up waiting.
const SHUTDOWN_TIMEOUT_SECONDS: u64 = 20;
/// Deliveries whose bodies are still being sent when the listener closes.
const SLOW_DELIVERIES: usize = 6;
/// Senders posting distinct deliveries back to back until the service is gone.
const STEADY_SENDERS: usize = 4;

#[sqlx::test(migrations = false)]
async fn sigterm_drains_in_flight_deliveries_and_loses_no_acknowledged_one(pool: PgPool) {
    let config = TempFile::new(
        "shutdown.toml",
        &format!(
            "[http]\nshutdown_delay_seconds = {SHUTDOWN_DELAY_SECONDS}\n\
             shutdown_timeout_seconds = {SHUTDOWN_TIMEOUT_SECONDS}\n"
        ),
    );
    let service = ServiceProcess::start(&pool, &[("APP_CONFIG", config.path())]);
    let address = service.app.address.clone();

    let mut slow = Vec::new();
    for n in 0..SLOW_DELIVERIES {
        slow.push(SlowDelivery::start(&address, &format!("slow-{n}")).await);
    }
    let steady: Vec<JoinHandle<Vec<(String, Outcome)>>> = (0..STEADY_SENDERS)
        .map(|sender| tokio::spawn(send_until_refused(address.clone(), sender)))
        .collect();
    // Let every sender have at least one delivery acknowledged before the signal.
    wait_until(|| async { stored_count(&pool).await >= STEADY_SENDERS as i64 }).await;

    let signalled = Instant::now();
    service.signal(Signal::SIGTERM);

    // Readiness fails while the service still serves...
    let mut saw_not_ready = false;
    let ended_by = loop {
        match fresh_get(&address, "/health/ready").await {
            Ok(status) if status == StatusCode::SERVICE_UNAVAILABLE => {
                saw_not_ready = true;
            }
            Ok(status) => assert!(
                !saw_not_ready && status == StatusCode::OK,
                "readiness, once failed, stays failed: {status}"
            ),
            Err(error) => break error,
        }
    };
    assert!(
        saw_not_ready,
        "readiness answered 503 before the listener closed"
    );
    let closed_after = signalled.elapsed();
    assert!(
        closed_after >= Duration::from_secs(SHUTDOWN_DELAY_SECONDS),
        "the listener closed only after the shutdown delay: {closed_after:?}"
    );
    // Then no new connection is accepted. The workers close idle connections while the
    // accept thread drops the listener, so the poll above may end a moment before it is
    // gone: wait for the refusal rather than expect it at once.
    wait_until(|| async {
        tokio::net::TcpStream::connect(("127.0.0.1", service.port()))
            .await
            .is_err_and(|error| error.kind() == ErrorKind::ConnectionRefused)
    })
    .await;
    eprintln!("shutdown: readiness polling ended by {ended_by:?}; listener closed");

    // ...and requests in flight when the listener closed are still served in full.
    let mut acknowledged = HashSet::new();
    for delivery in slow {
        let (transaction_number, response) = delivery.finish().await;
        let response = response.expect("an in-flight delivery gets its answer");
        // Stored; no signing is registered for it, hence 202 rather than 201.
        assert_eq!(
            response.status(),
            StatusCode::ACCEPTED,
            "{transaction_number}"
        );
        acknowledged.insert(transaction_number);
    }
    let mut sent = 0;
    for sender in steady {
        for (transaction_number, outcome) in sender.await.expect("the sender ends") {
            sent += 1;
            if outcome == Outcome::Acknowledged {
                acknowledged.insert(transaction_number);
            }
        }
    }

    let (exit, log) = service.wait().await;
    assert!(exit.success(), "SIGTERM ends the service with 0: {exit:?}");
    // Readiness' 503s of a stop, at every roll-out, are no fault to page anyone for.
    let readiness: Vec<&String> = log
        .iter()
        .filter(|line| line.contains(r#""http.route":"/health/ready""#))
        .filter(|line| line.contains(r#""status":503"#))
        .collect();
    assert!(!readiness.is_empty(), "{log:#?}");
    assert!(
        readiness
            .iter()
            .all(|line| line.contains(r#""level":"INFO""#)),
        "{readiness:#?}"
    );
    assert!(
        signalled.elapsed()
            < Duration::from_secs(SHUTDOWN_DELAY_SECONDS + SHUTDOWN_TIMEOUT_SECONDS),
        "the drain ended on its own, before the shutdown timeout"
    );

    let stored: HashSet<String> = sqlx::query_scalar!("SELECT transaction_number FROM attempts")
        .fetch_all(&pool)
        .await
        .expect("read attempts")
        .into_iter()
        .collect();
    let lost: Vec<_> = acknowledged.difference(&stored).collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    assert!(
        acknowledged.len() > SLOW_DELIVERIES + STEADY_SENDERS,
        "the steady senders were acknowledged during the delay too: {} of {sent}",
        acknowledged.len()
    );
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Acknowledged,
    /// Refused, reset or unanswered: the sender would retry it.
    NotAcknowledged,
}

/// Posts distinct deliveries one after the other until one cannot be sent at all.
async fn send_until_refused(address: String, sender: usize) -> Vec<(String, Outcome)> {
    let client = reqwest::Client::new();
    let mut outcomes = Vec::new();
    for n in 0.. {
        let transaction_number = format!("steady-{sender}-{n}");
        let body = webhook_body(&transaction_number, "SUCCESS", "2026-10-02T09:31:47+02:00");
        let response = delivery_request(&client, &address, &body, body.clone())
            .send()
            .await;
        let outcome = match &response {
            Ok(response) if response.status().is_success() => Outcome::Acknowledged,
            _ => Outcome::NotAcknowledged,
        };
        outcomes.push((transaction_number, outcome));
        match response {
            Ok(response) => assert!(
                response.status().is_success(),
                "a delivery answered during shutdown is accepted: {}",
                response.status()
            ),
            Err(error) if error.is_connect() => break,
            // The server closed a kept-alive connection as this request went out.
            Err(_) => {}
        }
    }
    outcomes
}

/// A delivery whose body is half sent, on a connection the server has already accepted.
struct SlowDelivery {
    transaction_number: String,
    rest: Vec<u8>,
    chunks: mpsc::Sender<Vec<u8>>,
    response: JoinHandle<reqwest::Result<reqwest::Response>>,
}

impl SlowDelivery {
    async fn start(address: &str, transaction_number: &str) -> Self {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()
            .expect("a client");
        // The same connection then carries the delivery: it is accepted before the signal.
        let live = client
            .get(format!("{address}/health/live"))
            .send()
            .await
            .expect("live");
        live.bytes()
            .await
            .expect("the body is read; the connection is idle");

        let body = webhook_body(transaction_number, "SUCCESS", "2026-10-02T09:31:47+02:00");
        let (chunks, rest, stream) = half_sent(&body).await;
        let request = delivery_request(&client, address, &body, stream);
        Self {
            transaction_number: transaction_number.to_owned(),
            rest,
            chunks,
            response: tokio::spawn(request.send()),
        }
    }

    async fn finish(self) -> (String, reqwest::Result<reqwest::Response>) {
        self.chunks
            .send(self.rest)
            .await
            .expect("the request still reads its body");
        drop(self.chunks);
        let response = self.response.await.expect("the request task ends");
        (self.transaction_number, response)
    }
}

/// A GET on a new connection, so that a closed listener shows as an error.
async fn fresh_get(address: &str, path: &str) -> reqwest::Result<StatusCode> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("a client");
    Ok(client
        .get(format!("{address}{path}"))
        .send()
        .await?
        .status())
}

async fn stored_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM attempts"#)
        .fetch_one(pool)
        .await
        .expect("count attempts")
}

/// With no subcommand the binary serves, as `serve` does, and stops on SIGTERM with exit 0.
#[sqlx::test(migrations = false)]
async fn serve_is_what_the_binary_does_without_a_subcommand(pool: PgPool) {
    let url = database_url(&pool.connect_options());
    let service = ServiceProcess::start_with_arguments(&url, &pool, &[], &[]);
    assert_eq!(
        fresh_get(&service.app.address, "/health/ready")
            .await
            .expect("answered"),
        StatusCode::OK
    );
    let body = webhook_body("tn-default", "SUCCESS", "2026-10-02T09:31:47+02:00");
    assert_eq!(
        service.app.deliver(&body).await.status(),
        StatusCode::ACCEPTED
    );
    service.signal(Signal::SIGTERM);
    let (status, _) = service.wait().await;
    assert!(status.success(), "{status}");
    assert_eq!(stored_count(&pool).await, 1);
}
