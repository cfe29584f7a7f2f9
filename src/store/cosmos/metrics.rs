//! Requests sent and request units charged, counted on every call, for
//! benchmarks and logs.

use std::sync::atomic::{AtomicU64, Ordering};

use azure_data_cosmos::{CosmosError, models::ItemResponse};

use super::CosmosStore;

/// Requests sent and request units charged, for benchmarks and logs.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: AtomicU64,
    /// Request units × 100, so that they can be added atomically.
    centi_ru: AtomicU64,
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
