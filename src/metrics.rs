//! Prometheus metrics: one registry per application, served at `GET /metrics` in the text
//! exposition format.
//!
//! Every label takes values from a closed set (route patterns, status codes, documented
//! results, failure reasons), so no sender can grow the number of series.

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::edge::answers::PageBudget;
use crate::edge::body::BodyBudget;
use crate::edge::refusals::PROTOCOL_REFUSALS;
use crate::persistence::{Table, WorkerPools};
use crate::webhook_auth::{AuthFailure, ForbiddenSource, MethodName, Refused};

/// The results IDnow documents; anything else is counted as `other` (and stored as sent).
const DOCUMENTED_RESULTS: [&str; 7] = [
    "SUCCESS",
    "SUCCESS_DATA_CHANGED",
    "FRAUD_SUSPICION_CONFIRMED",
    "REVIEW_PENDING",
    "FRAUD_SUSPICION_PENDING",
    "ABORTED",
    "CANCELED",
];

/// Latency buckets in seconds: a stored webhook takes about a millisecond, a 503 after the
/// acquire timeout two seconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The codes an authentic delivery is refused and kept with (`ingest`).
const REJECTION_CODES: [&str; 4] = [
    "invalid_json",
    "invalid_webhook_id",
    "invalid_webhook_payload",
    "webhook_id_reused",
];

/// Attempts per batch: 1 when idle, up to `MAX_BATCH` (64) under load.
const BATCH_SIZE_BUCKETS: [f64; 8] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 48.0, 64.0];

/// The release: Cargo.toml's version, and the revision the build was given
/// (`IDNOW_ATTEMPTS_REVISION`, set by the Dockerfile's `REVISION`), else `unknown`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const REVISION: &str = match option_env!("IDNOW_ATTEMPTS_REVISION") {
    Some(revision) => revision,
    None => "unknown",
};

/// What the batch writer (`persistence::writer`) reports: the queue in front of it, the
/// batches in flight, their sizes and how long each took. Shared by every worker's writer.
#[derive(Debug, Clone)]
pub struct WriterMetrics {
    pub queue_depth: IntGauge,
    pub batches_in_flight: IntGauge,
    pub batch_size: Histogram,
    pub batch_duration: Histogram,
}

impl WriterMetrics {
    /// Writer metrics that no registry serves: for a writer outside `serve` (a replay).
    pub fn detached() -> Self {
        Self::new().unwrap_or_else(|error| unreachable!("fixed metric options are valid: {error}"))
    }

    fn new() -> prometheus::Result<Self> {
        Ok(Self {
            queue_depth: IntGauge::new(
                "idnow_writer_queue_depth",
                "Attempts waiting for the batch writer.",
            )?,
            batches_in_flight: IntGauge::new(
                "idnow_writer_batches_in_flight",
                "Batches of attempts being inserted and committed.",
            )?,
            batch_size: Histogram::with_opts(
                HistogramOpts::new(
                    "idnow_writer_batch_size",
                    "Attempts per INSERT statement of the batch writer.",
                )
                .buckets(BATCH_SIZE_BUCKETS.to_vec()),
            )?,
            batch_duration: Histogram::with_opts(
                HistogramOpts::new(
                    "idnow_writer_batch_duration_seconds",
                    "Time of one batch: connection, INSERT and commit.",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
            )?,
        })
    }

    fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.queue_depth.clone()))?;
        registry.register(Box::new(self.batches_in_flight.clone()))?;
        registry.register(Box::new(self.batch_size.clone()))?;
        registry.register(Box::new(self.batch_duration.clone()))
    }
}

#[derive(Debug, Clone)]
pub struct Metrics {
    pub writer: WriterMetrics,
    registry: Registry,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    attempts_stored: IntCounterVec,
    duplicates: IntCounter,
    auth_failures: IntCounterVec,
    forbidden_sources: IntCounterVec,
    rejected: IntCounterVec,
    erased_deliveries: IntCounter,
    erasures: IntCounter,
    retention_deleted: IntCounterVec,
}

/// The `method` label of a 401 whose delivery sent no enabled method's credentials.
const NO_METHOD: &str = "none";

impl Metrics {
    /// Registers every metric of the service, the database pool's and the process' own;
    /// the webhook authentication `methods` enabled tell which failures can happen.
    pub fn new(
        pools: WorkerPools,
        body_budget: BodyBudget,
        page_budget: PageBudget,
        methods: &[MethodName],
    ) -> prometheus::Result<Self> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests answered."),
            &["route", "status"],
        )?;
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time from the request's arrival to its response head.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route", "status"],
        )?;
        let attempts_stored = IntCounterVec::new(
            Opts::new(
                "idnow_attempts_stored_total",
                "Identification attempts stored, by result (`other` for undocumented ones).",
            ),
            &["result"],
        )?;
        let duplicates = IntCounter::new(
            "idnow_webhook_duplicates_total",
            "Webhooks acknowledged as redeliveries of an attempt already stored.",
        )?;
        // Named when signatures were the only methods; dashboards and alerts query it.
        let auth_failures = IntCounterVec::new(
            Opts::new(
                "idnow_webhook_signature_failures_total",
                "Webhooks refused with 401, by the method whose credentials failed (`none` \
                 when they sent none of an enabled method) and reason.",
            ),
            &["method", "reason"],
        )?;
        let forbidden_sources = IntCounterVec::new(
            Opts::new(
                "idnow_webhook_forbidden_sources_total",
                "Webhooks refused with 403 forbidden_source, by reason: a client outside \
                 WEBHOOK_ALLOWED_SOURCES, or one whose address a trusted proxy forwarded \
                 unreadably.",
            ),
            &["reason"],
        )?;
        let rejected = IntCounterVec::new(
            Opts::new(
                "idnow_webhook_rejected_total",
                "Authentic webhooks refused (400/409/422) and kept in rejected_deliveries, by code.",
            ),
            &["code"],
        )?;
        let erased_deliveries = IntCounter::new(
            "idnow_webhook_erased_deliveries_total",
            "Authentic webhooks for an erased identification: answered 204, nothing stored.",
        )?;
        let erasures = IntCounter::new(
            "idnow_person_erasures_total",
            "Erasures of a person that removed something.",
        )?;
        let retention_deleted = IntCounterVec::new(
            Opts::new(
                "idnow_retention_deleted_total",
                "Rows deleted by retention, by table: unclaimed attempts and kept rejected \
                 deliveries past their retention.",
            ),
            &["table"],
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new(
                "idnow_attempts_build_info",
                "1, labelled with the running release's version and revision.",
            ),
            &["version", "revision"],
        )?;
        build_info.with_label_values(&[VERSION, REVISION]).set(1);
        let writer = WriterMetrics::new()?;
        let pool = PoolCollector::new(pools)?;
        let body_bytes = BodyBytesCollector::new(body_budget, page_budget)?;

        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(request_duration.clone()))?;
        registry.register(Box::new(attempts_stored.clone()))?;
        registry.register(Box::new(duplicates.clone()))?;
        registry.register(Box::new(auth_failures.clone()))?;
        registry.register(Box::new(forbidden_sources.clone()))?;
        registry.register(Box::new(rejected.clone()))?;
        registry.register(Box::new(erased_deliveries.clone()))?;
        registry.register(Box::new(erasures.clone()))?;
        registry.register(Box::new(retention_deleted.clone()))?;
        registry.register(Box::new(build_info))?;
        writer.register(&registry)?;
        registry.register(Box::new(pool))?;
        registry.register(Box::new(body_bytes))?;
        registry.register(Box::new(PROTOCOL_REFUSALS.clone()))?;
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;

        // Series that exist from the start, so that rates and alerts see a zero, not a gap.
        auth_failures.with_label_values(&[NO_METHOD, AuthFailure::Missing.as_str()]);
        for method in methods
            .iter()
            .filter(|&&method| method != MethodName::Source)
        {
            for failure in AuthFailure::ALL {
                auth_failures.with_label_values(&[method.as_str(), failure.as_str()]);
            }
        }
        for reason in ForbiddenSource::REASONS {
            forbidden_sources.with_label_values(&[reason]);
        }
        for result in DOCUMENTED_RESULTS.iter().chain(&["other"]) {
            attempts_stored.with_label_values(&[result]);
        }
        for table in Table::ALL {
            retention_deleted.with_label_values(&[table.label()]);
        }
        for code in REJECTION_CODES {
            rejected.with_label_values(&[code]);
        }

        Ok(Self {
            writer,
            registry,
            requests,
            request_duration,
            attempts_stored,
            duplicates,
            auth_failures,
            forbidden_sources,
            rejected,
            erased_deliveries,
            erasures,
            retention_deleted,
        })
    }

    pub fn erased_delivery(&self) {
        self.erased_deliveries.inc();
    }

    pub fn erasure(&self) {
        self.erasures.inc();
    }

    pub fn retention_deleted(&self, table: Table, rows: u64) {
        self.retention_deleted
            .with_label_values(&[table.label()])
            .inc_by(rows);
    }

    pub fn attempt_stored(&self, result: &str) {
        let label = DOCUMENTED_RESULTS
            .iter()
            .find(|documented| **documented == result)
            .map_or("other", |documented| documented);
        self.attempts_stored.with_label_values(&[label]).inc();
    }

    pub fn duplicate(&self) {
        self.duplicates.inc();
    }

    pub fn auth_failure(&self, refused: Refused) {
        let method = refused.method.map_or(NO_METHOD, MethodName::as_str);
        self.auth_failures
            .with_label_values(&[method, refused.failure.as_str()])
            .inc();
    }

    pub fn forbidden_source(&self, refused: ForbiddenSource) {
        self.forbidden_sources
            .with_label_values(&[refused.reason()])
            .inc();
    }

    /// `code` is the error code of the answer: one of a handful of constants.
    pub fn rejected(&self, code: &'static str) {
        self.rejected.with_label_values(&[code]).inc();
    }

    /// One answered request: `route` is its pattern, `status` its code.
    pub fn observe(&self, route: &str, status: &str, seconds: f64) {
        let labels = [route, status];
        self.requests.with_label_values(&labels).inc();
        self.request_duration
            .with_label_values(&labels)
            .observe(seconds);
    }

    /// Every metric, in the Prometheus text format.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut text = String::new();
        TextEncoder::new().encode_utf8(&self.registry.gather(), &mut text)?;
        Ok(text)
    }
}

/// The pool's gauges, every worker's pool summed, read from the pools at each scrape.
#[derive(Debug)]
struct PoolCollector {
    pools: WorkerPools,
    size: IntGauge,
    idle: IntGauge,
    max: IntGauge,
    waiting: IntGauge,
}

impl PoolCollector {
    fn new(pools: WorkerPools) -> prometheus::Result<Self> {
        Ok(Self {
            pools,
            size: IntGauge::new("db_pool_connections", "Connections open, idle or in use.")?,
            idle: IntGauge::new("db_pool_idle_connections", "Connections open and idle.")?,
            max: IntGauge::new(
                "db_pool_max_connections",
                "Most connections the pool opens.",
            )?,
            waiting: IntGauge::new(
                "db_pool_waiting_requests",
                "Requests waiting for a connection.",
            )?,
        })
    }

    fn gauges(&self) -> [&IntGauge; 4] {
        [&self.size, &self.idle, &self.max, &self.waiting]
    }
}

impl Collector for PoolCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.gauges()
            .into_iter()
            .flat_map(|gauge| gauge.desc())
            .collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let status = self.pools.status();
        let gauge = |value: usize| i64::try_from(value).unwrap_or(i64::MAX);
        self.size.set(gauge(status.size));
        self.idle.set(gauge(status.idle));
        self.max.set(gauge(status.max));
        self.waiting.set(gauge(status.waiting));
        self.gauges()
            .into_iter()
            .flat_map(|gauge| gauge.collect())
            .collect()
    }
}

/// What the process' two byte budgets hold, read from them at each scrape: the body bytes
/// requests hold, and the bodies the body budget refused, which it counts itself; the listing
/// answer bytes.
#[derive(Debug)]
struct BodyBytesCollector {
    budget: BodyBudget,
    in_flight: IntGauge,
    pages: PageBudget,
    answers_in_flight: IntGauge,
}

impl BodyBytesCollector {
    fn new(budget: BodyBudget, pages: PageBudget) -> prometheus::Result<Self> {
        Ok(Self {
            budget,
            in_flight: IntGauge::new(
                "http_request_body_bytes_in_flight",
                "Request body bytes held by requests now (http.body_budget_bytes at most).",
            )?,
            pages,
            answers_in_flight: IntGauge::new(
                "http_listing_answer_bytes_in_flight",
                "Listing answer bytes held now, being written or waiting for the socket \
                 (http.page_budget_bytes at most).",
            )?,
        })
    }
}

impl Collector for BodyBytesCollector {
    fn desc(&self) -> Vec<&Desc> {
        let mut descs = self.in_flight.desc();
        descs.extend(self.budget.refusals().desc());
        descs.extend(self.answers_in_flight.desc());
        descs
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let gauge = |bytes: usize| i64::try_from(bytes).unwrap_or(i64::MAX);
        self.in_flight.set(gauge(self.budget.in_use()));
        self.answers_in_flight.set(gauge(self.pages.in_use()));
        let mut families = self.in_flight.collect();
        families.extend(self.budget.refusals().collect());
        families.extend(self.answers_in_flight.collect());
        families
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persistence::Database;

    /// The metrics of a server of two workers, with the workers' pools (alive while held).
    fn metrics() -> (Metrics, [Database; 2]) {
        let pools = WorkerPools::unreachable(7, 2);
        // Opened as the workers would: 4 and 3 connections at most.
        let workers = [pools.open().0, pools.open().0];
        let methods = [MethodName::StandardWebhooks, MethodName::Hmac];
        let metrics = Metrics::new(
            pools,
            BodyBudget::new(1024, 1024),
            PageBudget::new(4096),
            &methods,
        )
        .expect("metrics register");
        (metrics, workers)
    }

    #[tokio::test]
    async fn undocumented_results_share_one_series() {
        let (metrics, _workers) = metrics();
        metrics.attempt_stored("SUCCESS");
        metrics.attempt_stored("CHECK_PENDING");
        metrics.attempt_stored("anything a sender invents");
        let text = metrics.render().expect("renders");
        assert!(text.contains("idnow_attempts_stored_total{result=\"SUCCESS\"} 1\n"));
        assert!(text.contains("idnow_attempts_stored_total{result=\"other\"} 2\n"));
        assert!(!text.contains("CHECK_PENDING"));
    }

    #[tokio::test]
    async fn the_pool_and_the_process_are_reported() {
        let (metrics, _workers) = metrics();
        let text = metrics.render().expect("renders");
        assert!(text.contains("db_pool_max_connections 7\n"), "{text}");
        assert!(text.contains("db_pool_connections 0\n"));
        assert!(text.contains("db_pool_idle_connections 0\n"));
        assert!(text.contains("db_pool_waiting_requests 0\n"));
        assert!(text.contains("process_resident_memory_bytes "));
        assert!(text.contains("http_request_body_bytes_in_flight 0\n"));
        assert!(text.contains("http_listing_answer_bytes_in_flight 0\n"));
        assert!(text.contains("http_protocol_refusals_total{kind=\"malformed_request\"} "));
    }

    #[tokio::test]
    async fn the_release_the_writer_and_every_rejection_code_are_there_from_the_start() {
        let (metrics, _workers) = metrics();
        let text = metrics.render().expect("renders");
        let build_info = format!(
            "idnow_attempts_build_info{{revision=\"{REVISION}\",version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        );
        assert!(text.contains(&build_info), "{text}");
        for code in REJECTION_CODES {
            let series = format!("idnow_webhook_rejected_total{{code=\"{code}\"}} 0\n");
            assert!(text.contains(&series), "{series}");
        }
        assert!(text.contains("idnow_writer_queue_depth 0\n"));
        assert!(text.contains("idnow_writer_batches_in_flight 0\n"));
        assert!(text.contains("idnow_writer_batch_size_count 0\n"));
        assert!(text.contains("idnow_writer_batch_duration_seconds_bucket{le=\"0.5\"} 0\n"));
    }
}
