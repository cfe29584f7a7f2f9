//! The metrics, by the names docs/observability.md lists. Each function
//! here records one fact; with no exporter configured it returns at once.
//! Attributes are bounded sets (function names, operations, status codes),
//! never a user, a session or anything written.

use std::{
    sync::{Arc, OnceLock, RwLock},
    time::Duration,
};

use opentelemetry::{
    KeyValue,
    metrics::{BoundCounter, BoundHistogram, Counter, Histogram, Meter},
};

use super::queue::Drain;

/// Bucket bounds of the duration histograms, in seconds (OpenTelemetry's
/// recommendation for HTTP servers).
const SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
/// Bucket bounds of the request-unit histograms.
const REQUEST_UNITS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0,
];

struct Instruments {
    function_charge: Histogram<f64>,
    http_duration: Histogram<f64>,
    invoke_duration: Histogram<f64>,
    cosmos_charge: Histogram<f64>,
    cosmos_duration: Histogram<f64>,
    cosmos_throttled: Counter<u64>,
    cosmos_retries: Counter<u64>,
    /// `chat_sessions.cache.lookups`, bound per [`Cache`] to a miss (0) and
    /// a hit (1).
    cache_lookups: [[BoundCounter<u64>; 2]; 4],
    writer_busy: Counter<f64>,
    writer_group: Histogram<u64>,
    migration_messages: Counter<u64>,
    migration_sessions: Counter<u64>,
    refused: Counter<u64>,
}

static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();

/// Creates the instruments on `meter` (once; exporting starts).
pub(super) fn install(meter: &Meter) {
    let seconds = |name: &'static str, what: &'static str| {
        meter
            .f64_histogram(name)
            .with_unit("s")
            .with_description(what)
            .with_boundaries(SECONDS.to_vec())
            .build()
    };
    let charge = |name: &'static str, what: &'static str| {
        meter
            .f64_histogram(name)
            .with_unit("{request_unit}")
            .with_description(what)
            .with_boundaries(REQUEST_UNITS.to_vec())
            .build()
    };
    let count = |name: &'static str, what: &'static str| {
        meter.u64_counter(name).with_description(what).build()
    };
    let _ = INSTRUMENTS.set(Instruments {
        function_charge: charge(
            "chat_sessions.function.request_charge",
            "Cosmos DB request units one invocation of a function spent",
        ),
        http_duration: seconds("http.server.request.duration", "Duration of HTTP requests"),
        invoke_duration: seconds(
            "faas.invoke_duration",
            "Duration of queue and timer invocations",
        ),
        cosmos_charge: charge(
            "azure.cosmosdb.client.operation.request_charge",
            "Request units of each Cosmos DB operation",
        ),
        cosmos_duration: seconds(
            "db.client.operation.duration",
            "Duration of each Cosmos DB operation, retries included",
        ),
        cosmos_throttled: count(
            "chat_sessions.cosmos.throttled",
            "Cosmos DB answers with status 429 (throttled)",
        ),
        cosmos_retries: count(
            "chat_sessions.cosmos.retries",
            "Cosmos DB requests sent again within one operation",
        ),
        cache_lookups: {
            let lookups = count(
                "chat_sessions.cache.lookups",
                "Lookups of the ETag, session and listing caches, by result",
            );
            Cache::ALL.map(|cache| {
                ["miss", "hit"].map(|result| {
                    lookups.bind(&[
                        KeyValue::new("cache", cache.name()),
                        KeyValue::new("result", result),
                    ])
                })
            })
        },
        writer_busy: meter
            .f64_counter("chat_sessions.sqlite.writer.busy_time")
            .with_unit("s")
            .with_description("Time the embedded store's writer spent running groups")
            .build(),
        writer_group: meter
            .u64_histogram("chat_sessions.sqlite.writer.group_size")
            .with_unit("{write}")
            .with_description("Writes committed together in one group")
            .with_boundaries(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0])
            .build(),
        migration_messages: count(
            "chat_sessions.migration.messages_moved",
            "Legacy messages written into sessions by the migration",
        ),
        migration_sessions: count(
            "chat_sessions.migration.sessions_written",
            "Sessions created or extended by the migration",
        ),
        refused: count(
            "chat_sessions.refused",
            "Requests refused by a limit (503, 429, 408), by reason",
        ),
    });
}

/// Reports the spans and log records each queue lost, as the counter
/// `chat_sessions.telemetry.dropped` (by `signal` and `reason`:
/// `queue_full` or `export_failed`).
pub(super) fn observe_drops(
    provider: &opentelemetry_sdk::metrics::SdkMeterProvider,
    queues: Vec<Arc<dyn Drain>>,
) {
    use opentelemetry::metrics::MeterProvider as _;
    let _counter = provider
        .meter("chat-sessions")
        .u64_observable_counter("chat_sessions.telemetry.dropped")
        .with_description("Spans and log records lost: a full export queue, a failed export")
        .with_callback(move |observer| {
            let mut by_key = std::collections::BTreeMap::<(&str, &str), u64>::new();
            for queue in &queues {
                let (signal, lost) = queue.lost();
                *by_key.entry((signal, "queue_full")).or_default() += lost.queue_full;
                *by_key.entry((signal, "export_failed")).or_default() += lost.export_failed;
            }
            for ((signal, reason), count) in by_key {
                observer.observe(
                    count,
                    &[
                        KeyValue::new("signal", signal),
                        KeyValue::new("reason", reason),
                    ],
                );
            }
        })
        .build();
}

/// Whether metrics are recorded (an exporter is configured).
pub fn recording() -> bool {
    INSTRUMENTS.get().is_some()
}

/// The metrics of one function (an HTTP route, a queue or timer
/// invocation, a CLI job), bound to its attributes the first time each is
/// recorded: a bound instrument records without the attribute lookup (a
/// hash of every attribute) an unbound one does each time.
#[derive(Debug)]
pub struct FunctionMetrics {
    function: &'static str,
    /// `faas.name`, `http.request.method` and `http.route`; or `faas.name`
    /// and `faas.trigger` for the host's queue and timer invocations and
    /// CLI jobs.
    attributes: Arc<[KeyValue]>,
    /// Request units, bound to `faas.name`.
    charge: OnceLock<BoundHistogram<f64>>,
    /// The duration histogram bound per status (HTTP; a handful per route),
    /// or once under 0 (invocations).
    durations: RwLock<Vec<(u16, BoundHistogram<f64>)>>,
}

impl FunctionMetrics {
    /// The metrics of `function`, recorded with `attributes` (see the field).
    pub fn new(function: &'static str, attributes: Arc<[KeyValue]>) -> Self {
        Self {
            function,
            attributes,
            charge: OnceLock::new(),
            durations: RwLock::default(),
        }
    }

    /// An invocation ended: its duration (by `status` for an HTTP request),
    /// and the request units it spent when it reached Cosmos DB.
    pub fn ended(&self, status: Option<u16>, elapsed: Duration, request_charge: Option<f64>) {
        let Some(m) = INSTRUMENTS.get() else { return };
        let seconds = elapsed.as_secs_f64();
        let key = status.unwrap_or(0);
        let recorded = self.durations.read().is_ok_and(|durations| {
            let bound = durations.iter().find(|(status, _)| *status == key);
            bound
                .map(|(_, histogram)| histogram.record(seconds))
                .is_some()
        });
        if !recorded {
            let bound = match status {
                Some(status) => {
                    let mut all = self.attributes.to_vec();
                    all.push(KeyValue::new(
                        "http.response.status_code",
                        i64::from(status),
                    ));
                    m.http_duration.bind(&all)
                }
                None => m.invoke_duration.bind(&self.attributes),
            };
            bound.record(seconds);
            // Another request may have bound the same status meanwhile.
            if let Ok(mut durations) = self.durations.write()
                && !durations.iter().any(|(status, _)| *status == key)
            {
                durations.push((key, bound));
            }
        }
        if let Some(charge) = request_charge {
            self.charge
                .get_or_init(|| {
                    let function = [KeyValue::new("faas.name", self.function)];
                    m.function_charge.bind(&function)
                })
                .record(charge);
        }
    }
}

/// What one Cosmos DB operation did.
#[derive(Debug, Clone)]
pub struct CosmosOperation<'a> {
    /// The SDK's operation name (`read_item`, `patch_item`, …).
    pub operation: &'a str,
    /// The container.
    pub container: &'a str,
    /// The final status code.
    pub status: u16,
    /// Request units, retries included.
    pub request_charge: f64,
    /// Its duration, retries included.
    pub elapsed: Duration,
    /// Requests sent for it.
    pub requests: usize,
    /// Of them, answered 429.
    pub throttled: usize,
}

/// A Cosmos DB operation ended.
pub fn cosmos_operation(op: &CosmosOperation<'_>) {
    let Some(m) = INSTRUMENTS.get() else { return };
    let attributes = [
        KeyValue::new("db.operation.name", op.operation.to_owned()),
        KeyValue::new("db.collection.name", op.container.to_owned()),
        KeyValue::new("db.response.status_code", op.status.to_string()),
    ];
    m.cosmos_charge.record(op.request_charge, &attributes);
    m.cosmos_duration
        .record(op.elapsed.as_secs_f64(), &attributes);
    let operation = [KeyValue::new("db.operation.name", op.operation.to_owned())];
    if op.requests > 1 {
        m.cosmos_retries.add(op.requests as u64 - 1, &operation);
    }
    if op.throttled > 0 {
        m.cosmos_throttled.add(op.throttled as u64, &operation);
    }
}

/// A cache whose lookups are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cache {
    /// The Cosmos store's known versions: a hit is an append without a read.
    Etag,
    /// Rendered session bodies.
    Session,
    /// Rendered listings.
    Listing,
    /// Rendered context answers.
    Context,
}

impl Cache {
    const ALL: [Cache; 4] = [Cache::Etag, Cache::Session, Cache::Listing, Cache::Context];

    /// Its name, the metric's `cache` attribute.
    fn name(self) -> &'static str {
        match self {
            Cache::Etag => "etag",
            Cache::Session => "session",
            Cache::Listing => "listing",
            Cache::Context => "context",
        }
    }
}

/// `cache` was asked; `hit` says whether it had the answer.
pub fn cache_lookup(cache: Cache, hit: bool) {
    let Some(m) = INSTRUMENTS.get() else { return };
    m.cache_lookups[cache as usize][usize::from(hit)].add(1);
}

/// The embedded store's writer ran a group of `writes` for `busy`.
pub fn writer_group(writes: usize, busy: Duration) {
    let Some(m) = INSTRUMENTS.get() else { return };
    m.writer_busy.add(busy.as_secs_f64(), &[]);
    m.writer_group.record(writes as u64, &[]);
}

/// The migration wrote `sessions` sessions holding `messages` moved messages.
pub fn migration_progress(messages: u64, sessions: u64) {
    let Some(m) = INSTRUMENTS.get() else { return };
    m.migration_messages.add(messages, &[]);
    m.migration_sessions.add(sessions, &[]);
}

/// A request was refused by a limit; `reason` is one of a fixed set
/// (`in_flight`, `imports`, `exports`, `erases`, `user_rate`,
/// `body_timeout`).
pub fn refused(reason: &'static str) {
    let Some(m) = INSTRUMENTS.get() else { return };
    m.refused.add(1, &[KeyValue::new("reason", reason)]);
}
