//! Fault injection: a steady stream of distinct signed webhooks, retried until acknowledged as
//! IDnow does, while the database stops, the service is killed, or the pool runs dry. Every
//! scenario ends with its count (sent, acknowledged, stored, lost); lost must be 0, and every
//! acknowledged delivery is listed exactly once.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use reqwest::StatusCode;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

use crate::cluster::Cluster;
use crate::helpers::*;
use crate::process::ServiceProcess;

const SENDERS: usize = 4;
/// Acknowledged deliveries to see before a fault, and again after it.
const ACKNOWLEDGED_PER_PHASE: usize = 20;
/// The service's acquire timeout in these scenarios, and the request timeout a client uses.
const ACQUIRE_TIMEOUT: Duration = Duration::from_millis(500);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// A sender's pause before it retries, as IDnow backs off (far shorter here).
const RETRY_BACKOFF: Duration = Duration::from_millis(25);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_stops_and_comes_back() {
    let scenario = Scenario::start("outage", "").await;
    let stream = Stream::start(&scenario.address(), scenario.transaction_number);
    stream.wait_for_acknowledged(ACKNOWLEDGED_PER_PHASE).await;

    scenario.cluster.stop();
    // While it is away: 503 with Retry-After, quickly, for webhooks and for readiness.
    let started = Instant::now();
    let response = scenario.deliver_one_of_its_own().await;
    assert_unavailable(response).await;
    assert!(started.elapsed() < CLIENT_TIMEOUT, "answered, not hung");
    assert_eq!(
        scenario.service.app.get("/health/ready").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    let during_outage = stream.acknowledged();

    scenario.cluster.start_again();
    // It recovers by itself: same process, same pool.
    wait_until(|| async {
        scenario.service.app.get("/health/ready").await.status() == StatusCode::OK
    })
    .await;
    stream
        .wait_for_acknowledged(during_outage + ACKNOWLEDGED_PER_PHASE)
        .await;
    let report = stream.stop().await;
    assert!(
        report.statuses.contains_key(&503),
        "the outage was seen: {report:?}"
    );
    scenario.verify(report).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_is_killed_and_started_again() {
    let mut scenario = Scenario::start("sigkill", "").await;
    let stream = Stream::start(&scenario.address(), scenario.transaction_number);
    stream.wait_for_acknowledged(ACKNOWLEDGED_PER_PHASE).await;

    scenario.service.signal(Signal::SIGKILL);
    let before_restart = stream.acknowledged();
    scenario.restart().await;
    stream
        .wait_for_acknowledged(before_restart + ACKNOWLEDGED_PER_PHASE)
        .await;
    let report = stream.stop().await;
    assert!(report.unanswered > 0, "the kill was seen: {report:?}");
    scenario.verify(report).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_pool_answers_503_within_the_acquire_timeout() {
    // One worker, so that the writer and the slow listing draw on the same two connections
    // (each worker owns a share of the pool). Statements and requests may wait on the lock
    // below as long as the test holds it: the lock, not a timeout, decides when they end.
    let scenario = Scenario::start(
        "pool",
        "max_connections = 2\nstatement_timeout_ms = 120000\n\
         [http]\nworkers = 1\nrequest_timeout_ms = 120000\n",
    )
    .await;
    let stream = Stream::start(&scenario.address(), scenario.transaction_number);
    stream.wait_for_acknowledged(ACKNOWLEDGED_PER_PHASE).await;

    // Every statement on attempts now waits for the lock, holding its connection: the
    // writer's batch (one of the pool's two connections) and a slow listing (the other).
    let lock = AttemptsLock::take(&scenario.db.connect_options(), "ACCESS EXCLUSIVE").await;
    let slow_listing = {
        let url = scenario.service.app.url(&format!(
            "/v1/persons/{PERSON}/signings/sig-pool/idnow_attempts"
        ));
        tokio::spawn(async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(READ_TOKEN)
                .send()
                .await
                .expect("answered")
                .status()
        })
    };
    wait_until(|| async { blocked_statements(&scenario.db).await >= 2 }).await;

    let started = Instant::now();
    let response = scenario.service.app.list(PERSON, "sig-pool", "").await;
    let waited = started.elapsed();
    assert_unavailable(response).await;
    assert!(
        waited >= ACQUIRE_TIMEOUT && waited < ACQUIRE_TIMEOUT * 4,
        "503 after the acquire timeout, not before and not much later: {waited:?}"
    );

    // A delivery now waits for the writer's only slot, held by the locked batch, and is
    // told to retry once the acquire timeout has passed. (The senders' own deliveries may
    // all be in that batch, waiting with it: the test sends one of its own.)
    let started = Instant::now();
    let response = scenario.deliver_one_of_its_own().await;
    assert_unavailable(response).await;
    assert!(
        started.elapsed() < ACQUIRE_TIMEOUT * 4,
        "told to retry, not held: {:?}",
        started.elapsed()
    );

    lock.release().await;
    assert_eq!(
        slow_listing.await.expect("the listing ends"),
        StatusCode::OK,
        "the slow listing is served once the lock is gone"
    );
    let after_release = stream.acknowledged();
    stream
        .wait_for_acknowledged(after_release + ACKNOWLEDGED_PER_PHASE)
        .await;
    let report = stream.stop().await;
    scenario.verify(report).await;
}

/// A cluster, the service binary on it, and one registered signing that every delivery of
/// the scenario belongs to.
struct Scenario {
    name: &'static str,
    transaction_number: &'static str,
    cluster: Cluster,
    url: String,
    db: PgPool,
    /// Removed when the scenario ends, whether it passes or fails.
    config: TempFile,
    port: String,
    service: ServiceProcess,
}

impl Scenario {
    /// `config`: TOML added to the service's configuration, within its `[database]` table.
    async fn start(name: &'static str, config: &str) -> Self {
        let cluster = Cluster::start();
        let url = cluster.url("postgres");
        let db = PgPoolOptions::new()
            .max_connections(2)
            .connect(&url)
            .await
            .expect("the test connects");
        let config = TempFile::new(
            &format!("faults-{name}.toml"),
            &format!(
                "[database]\nacquire_timeout_ms = {}\n{config}",
                ACQUIRE_TIMEOUT.as_millis()
            ),
        );
        let port = free_port().to_string();
        let service =
            ServiceProcess::start_on(&url, &db, &[("APP_CONFIG", config.path()), ("PORT", &port)]);
        let transaction_number = match name {
            "outage" => "fault-outage-tn",
            "sigkill" => "fault-sigkill-tn",
            _ => "fault-pool-tn",
        };
        let signing = format!("sig-{name}");
        assert_eq!(
            service
                .app
                .register(PERSON, &signing, transaction_number)
                .await
                .status(),
            StatusCode::CREATED
        );
        Self {
            name,
            transaction_number,
            cluster,
            url,
            db,
            config,
            port,
            service,
        }
    }

    fn address(&self) -> String {
        self.service.app.address.clone()
    }

    /// A delivery the test sends itself, beside the senders', and none of theirs.
    async fn deliver_one_of_its_own(&self) -> reqwest::Response {
        self.service
            .app
            .deliver(&delivery(self.transaction_number, 1_000_000))
            .await
    }

    /// After a SIGKILL: the same binary, settings and port.
    async fn restart(&mut self) {
        let service = ServiceProcess::start_on(
            &self.url,
            &self.db,
            &[("APP_CONFIG", self.config.path()), ("PORT", &self.port)],
        );
        let killed = std::mem::replace(&mut self.service, service);
        let (status, _) = killed.wait().await;
        assert!(
            !status.success(),
            "the first process was killed: {status:?}"
        );
    }

    /// Lost must be 0, and the listing shows every acknowledged delivery exactly once.
    async fn verify(self, report: Report) {
        let stored: HashSet<String> = sqlx::query_scalar!(
            r#"SELECT replace(id::text, '-', '') || 'cida' AS "id!"
               FROM attempts WHERE transaction_number = $1"#,
            self.transaction_number
        )
        .fetch_all(&self.db)
        .await
        .expect("read attempts")
        .into_iter()
        .collect();
        let acknowledged: HashSet<&String> = report.acknowledged.values().collect();
        let lost = acknowledged
            .iter()
            .filter(|id| !stored.contains(id.as_str()))
            .count();
        eprintln!(
            "{}: sent {}, acknowledged {}, stored {}, lost {lost} \
             (requests {}, answers {:?}, unanswered {})",
            self.name,
            report.sent,
            acknowledged.len(),
            stored.len(),
            report.requests,
            report.statuses,
            report.unanswered,
        );
        assert_eq!(lost, 0, "acknowledged but not stored");
        assert!(
            stored.len() <= report.sent,
            "nothing stored that was not sent"
        );

        let mut listed_ids = Vec::new();
        for page in 1.. {
            let response = self
                .service
                .app
                .list(
                    PERSON,
                    &format!("sig-{}", self.name),
                    &format!("?page[number]={page}&page[size]=100"),
                )
                .await;
            let attempts = listed(response).await;
            if attempts.is_empty() {
                break;
            }
            listed_ids.extend(attempts.into_iter().map(|attempt| attempt.id));
        }
        let mut times = HashMap::new();
        for id in &listed_ids {
            *times.entry(id.as_str()).or_insert(0) += 1;
        }
        assert!(times.values().all(|n| *n == 1), "listed once each");
        for id in &acknowledged {
            assert_eq!(times.get(id.as_str()), Some(&1), "{id} is listed");
        }
        assert_eq!(listed_ids.len(), stored.len());

        self.service.signal(Signal::SIGTERM);
        let (status, _) = self.service.wait().await;
        assert!(status.success());
    }
}

#[derive(Debug, Default)]
struct Report {
    /// Distinct deliveries sent at least once.
    sent: usize,
    /// HTTP requests, retries included.
    requests: usize,
    /// Delivery number to the attempt id of its 2xx answer.
    acknowledged: HashMap<usize, String>,
    /// Answers by status, 2xx included.
    statuses: HashMap<u16, usize>,
    /// Requests that got no answer at all (refused, reset, timed out).
    unanswered: usize,
}

/// Senders posting distinct deliveries, each retried until it is acknowledged.
struct Stream {
    stop: Arc<AtomicBool>,
    report: Arc<Mutex<Report>>,
    acknowledged: Arc<AtomicUsize>,
    senders: Vec<tokio::task::JoinHandle<()>>,
}

impl Stream {
    fn start(address: &str, transaction_number: &'static str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let report = Arc::new(Mutex::new(Report::default()));
        let acknowledged = Arc::new(AtomicUsize::new(0));
        let next = Arc::new(AtomicUsize::new(0));
        let senders = (0..SENDERS)
            .map(|_| {
                let (stop, report, acknowledged, next) = (
                    stop.clone(),
                    report.clone(),
                    acknowledged.clone(),
                    next.clone(),
                );
                let address = address.to_owned();
                tokio::spawn(async move {
                    let client = reqwest::Client::builder()
                        .timeout(CLIENT_TIMEOUT)
                        .build()
                        .expect("a client");
                    while !stop.load(Ordering::Relaxed) {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        report.lock().expect("report").sent += 1;
                        let body = delivery(transaction_number, n);
                        // Until acknowledged, as IDnow retries; only the end of the test
                        // stops a delivery's retries.
                        while !stop.load(Ordering::Relaxed) {
                            let answer = delivery_request(&client, &address, &body, body.clone())
                                .send()
                                .await;
                            let status = answer.as_ref().map(|response| response.status());
                            {
                                let mut seen = report.lock().expect("report");
                                seen.requests += 1;
                                match status {
                                    Ok(status) => {
                                        *seen.statuses.entry(status.as_u16()).or_default() += 1;
                                    }
                                    Err(_) => seen.unanswered += 1,
                                }
                            }
                            let Ok(response) = answer else {
                                tokio::time::sleep(RETRY_BACKOFF).await;
                                continue;
                            };
                            let status = response.status();
                            assert!(
                                status.is_success() || status == StatusCode::SERVICE_UNAVAILABLE,
                                "a delivery is acknowledged or to be retried, never {status}"
                            );
                            if status.is_success() {
                                let id = acknowledged_id(response).await;
                                report.lock().expect("report").acknowledged.insert(n, id);
                                acknowledged.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                            tokio::time::sleep(RETRY_BACKOFF).await;
                        }
                    }
                })
            })
            .collect();
        Self {
            stop,
            report,
            acknowledged,
            senders,
        }
    }

    fn acknowledged(&self) -> usize {
        self.acknowledged.load(Ordering::Relaxed)
    }

    async fn wait_for_acknowledged(&self, count: usize) {
        wait_until(|| async { self.acknowledged() >= count }).await;
    }

    async fn stop(self) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        for sender in self.senders {
            sender.await.expect("a sender ends cleanly");
        }
        Arc::try_unwrap(self.report)
            .expect("the senders are done")
            .into_inner()
            .expect("report")
    }
}

/// The n-th delivery of a scenario: distinct by its identification time.
fn delivery(transaction_number: &str, n: usize) -> Vec<u8> {
    let time = chrono::DateTime::from_timestamp(1_790_000_000 + n as i64, 0)
        .expect("a valid time")
        .to_rfc3339();
    webhook_body(transaction_number, "ABORTED", &time)
}

async fn blocked_statements(db: &PgPool) -> i64 {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM pg_stat_activity
           WHERE application_name = 'idnow-attempts' AND wait_event_type = 'Lock'"#
    )
    .fetch_one(db)
    .await
    .expect("pg_stat_activity")
}
