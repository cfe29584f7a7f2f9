//! What the request in progress has cost so far: its time in the store and,
//! on Cosmos DB, the requests it sent and the request units they were
//! charged. The API (or the Functions side) runs each request inside
//! [`measure`]; the stores report with [`store_time`] and [`cosmos`],
//! from inside the request's task. Outside a request (a CLI job) nothing
//! is counted here.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

tokio::task_local! {
    static COST: Arc<Cost>;
}

/// The cost of one request.
#[derive(Debug, Default)]
pub struct Cost {
    store_nanos: AtomicU64,
    /// Request units × 100, so that they can be added atomically.
    centi_units: AtomicU64,
    cosmos_requests: AtomicU64,
}

impl Cost {
    /// Time spent waiting for the store (summed over its calls).
    pub fn store_time(&self) -> Duration {
        Duration::from_nanos(self.store_nanos.load(Ordering::Relaxed))
    }

    /// Requests sent to Cosmos DB.
    pub fn cosmos_requests(&self) -> u64 {
        self.cosmos_requests.load(Ordering::Relaxed)
    }

    /// Request units charged by Cosmos DB; `None` when it was not asked.
    pub fn request_charge(&self) -> Option<f64> {
        (self.cosmos_requests() > 0)
            .then(|| self.centi_units.load(Ordering::Relaxed) as f64 / 100.0)
    }

    /// The `Server-Timing` header value: the request's whole time, the
    /// store's part, and on Cosmos DB the request units (as a description,
    /// since they are not a duration).
    pub fn server_timing(&self, total: Duration) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let mut value = format!(
            "total;dur={:.3}, store;dur={:.3}",
            ms(total),
            ms(self.store_time())
        );
        if let Some(units) = self.request_charge() {
            value.push_str(&format!(
                ", cosmos;desc=\"{units:.2} RU in {} requests\"",
                self.cosmos_requests()
            ));
        }
        value
    }
}

/// Runs `work` as a request whose cost is counted; answers its output and
/// the cost.
pub async fn measure<F: Future>(work: F) -> (F::Output, Arc<Cost>) {
    let cost = Arc::new(Cost::default());
    let output = COST.scope(cost.clone(), work).await;
    (output, cost)
}

/// Adds `elapsed` to the current request's store time.
pub fn store_time(elapsed: Duration) {
    let _ = COST.try_with(|cost| {
        cost.store_nanos
            .fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
    });
}

/// Adds a Cosmos DB operation (its requests, charge and time) to the
/// current request.
pub fn cosmos(requests: usize, request_charge: f64, elapsed: Duration) {
    let _ = COST.try_with(|cost| {
        cost.cosmos_requests
            .fetch_add(requests as u64, Ordering::Relaxed);
        cost.centi_units
            .fetch_add((request_charge * 100.0).round() as u64, Ordering::Relaxed);
        cost.store_nanos
            .fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
    });
}

/// Times a store call from its creation to its drop, into the current
/// request's store time (an embedded store's read or write).
pub struct StoreTimer(Instant);

impl StoreTimer {
    /// Starts timing.
    pub fn start() -> Self {
        Self(Instant::now())
    }
}

impl Drop for StoreTimer {
    fn drop(&mut self) {
        store_time(self.0.elapsed());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_counts_what_its_store_calls_report() {
        let ((), cost) = measure(async {
            cosmos(2, 9.52, Duration::from_millis(3));
            cosmos(1, 1.0, Duration::from_millis(1));
            let _timer = StoreTimer::start();
        })
        .await;
        assert_eq!(cost.cosmos_requests(), 3);
        assert_eq!(cost.request_charge(), Some(10.52));
        assert!(cost.store_time() >= Duration::from_millis(4));
        let header = cost.server_timing(Duration::from_millis(5));
        assert!(
            header.starts_with("total;dur=5.000, store;dur=4."),
            "{header}"
        );
        assert!(
            header.ends_with("cosmos;desc=\"10.52 RU in 3 requests\""),
            "{header}"
        );
        // Outside a request nothing is counted, and nothing fails.
        cosmos(1, 1.0, Duration::ZERO);
    }

    #[tokio::test]
    async fn without_cosmos_the_header_has_no_request_units() {
        let ((), cost) = measure(async {}).await;
        assert_eq!(cost.request_charge(), None);
        assert_eq!(
            cost.server_timing(Duration::from_micros(1500)),
            "total;dur=1.500, store;dur=0.000"
        );
    }
}
