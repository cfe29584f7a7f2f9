//! Requests sent and request units charged, counted on every call, for
//! benchmarks and logs; and, when asked, the size of every item each request
//! read or wrote, for cost models.

use std::sync::{
    Mutex,
    atomic::{AtomicU64, Ordering},
};

use azure_data_cosmos::{CosmosError, models::ItemResponse};

use super::CosmosStore;

/// Requests sent and request units charged, for benchmarks and logs.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: AtomicU64,
    /// Request units × 100, so that they can be added atomically.
    centi_ru: AtomicU64,
    /// The items read and written, while someone listens.
    items: Mutex<Option<Vec<ItemIo>>>,
}

/// What one request did to one item, in bytes as stored (system properties
/// included), for a cost model: Cosmos DB charges a point operation by the
/// size of the whole item it reads or writes, a patch too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemIo {
    /// A point read of an item this large; 0 when it answered 304 (no body).
    Read(usize),
    /// A write (create, replace, upsert, patch, delete) of an item this large
    /// after the write (before it, for a delete).
    Write(usize),
    /// A query page answering this many bytes of items.
    Query(usize),
}

/// A reading of [`Metrics`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MetricsSnapshot {
    /// Requests sent to Cosmos DB.
    pub requests: u64,
    /// Request units charged.
    pub request_units: f64,
}

impl std::ops::Sub for MetricsSnapshot {
    type Output = Self;

    fn sub(self, earlier: Self) -> Self {
        Self {
            requests: self.requests - earlier.requests,
            request_units: self.request_units - earlier.request_units,
        }
    }
}

impl Metrics {
    pub(super) fn record(&self, request_units: Option<f64>) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let centi = (request_units.unwrap_or(0.0) * 100.0).round() as u64;
        self.centi_ru.fetch_add(centi, Ordering::Relaxed);
    }

    pub(super) fn item(&self, io: ItemIo) {
        if let Some(items) = self
            .items
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            items.push(io);
        }
    }

    fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            requests: self.requests.load(Ordering::Relaxed),
            request_units: self.centi_ru.load(Ordering::Relaxed) as f64 / 100.0,
        }
    }
}

/// The request charge of a point operation, for [`Metrics`].
pub(super) fn item_charge(response: &ItemResponse) -> Option<f64> {
    response.headers().request_charge().map(|c| c.value())
}

fn error_charge(e: &CosmosError) -> Option<f64> {
    e.response()
        .and_then(|r| r.headers().request_charge)
        .map(|c| c.value())
}

impl CosmosStore {
    /// Requests and request units used so far.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.metrics.snapshot()
    }

    /// From now on, keeps the size of every item read and written, until
    /// [`take_item_log`](Self::take_item_log) (for benchmarks: it grows with
    /// every request).
    pub fn start_item_log(&self) {
        *self.metrics.items.lock().unwrap_or_else(|e| e.into_inner()) = Some(Vec::new());
    }

    /// The items read and written since the log was started or last taken.
    pub fn take_item_log(&self) -> Vec<ItemIo> {
        self.metrics
            .items
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Whether the item log is on (measuring costs a little).
    pub(super) fn logging(&self) -> bool {
        self.metrics
            .items
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Decodes the item of `response`, noting its size as `io` when the
    /// item log is on.
    pub(super) fn decode_item<T: serde::de::DeserializeOwned>(
        &self,
        response: azure_data_cosmos::models::ItemResponse,
        io: fn(usize) -> ItemIo,
    ) -> anyhow::Result<T> {
        let note = |bytes| self.metrics.item(io(bytes));
        super::documents::decode(response, self.logging().then_some(&note as &dyn Fn(usize)))
    }

    /// Notes one item a request read or wrote, when the item log is on;
    /// `io` is only worked out then (sizes cost a serialisation).
    pub(super) fn io(&self, io: impl FnOnce() -> ItemIo) {
        if self.logging() {
            self.metrics.item(io());
        }
    }

    /// Counts one request and its charge, failed ones too (they cost RU).
    pub(super) fn track<T>(
        &self,
        result: azure_data_cosmos::Result<T>,
        charge: impl Fn(&T) -> Option<f64>,
    ) -> azure_data_cosmos::Result<T> {
        match &result {
            Ok(value) => self.metrics.record(charge(value)),
            Err(e) => self.metrics.record(error_charge(e)),
        }
        result
    }
}
