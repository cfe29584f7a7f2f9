//! What the request in progress has cost so far: its time in the store and,
//! on Cosmos DB, the requests it sent and the request units they were
//! charged. The API (or the Functions side) runs each request inside
//! [`measure`]; the stores report with [`store_time`] and [`cosmos`],
//! from inside the request's task. Outside a request (a CLI job) nothing
//! is counted here.

use std::{
    cell::Cell,
    future::Future,
    time::{Duration, Instant},
};

tokio::task_local! {
    static COST: Tally;
}

/// What the stores report during one request, as it adds up (in the
/// request's task only, so plain cells).
#[derive(Default)]
struct Tally {
    store_nanos: Cell<u64>,
    /// Request units × 100, summed without rounding drift.
    centi_units: Cell<u64>,
    cosmos_requests: Cell<u64>,
}

/// The cost of one request.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cost {
    store_nanos: u64,
    centi_units: u64,
    cosmos_requests: u64,
}

impl Cost {
    /// Time spent waiting for the store (summed over its calls).
    pub fn store_time(&self) -> Duration {
        Duration::from_nanos(self.store_nanos)
    }

    /// Requests sent to Cosmos DB.
    pub fn cosmos_requests(&self) -> u64 {
        self.cosmos_requests
    }

    /// Request units charged by Cosmos DB; `None` when it was not asked.
    pub fn request_charge(&self) -> Option<f64> {
        (self.cosmos_requests > 0).then(|| self.centi_units as f64 / 100.0)
    }

    /// The `Server-Timing` header value: the request's whole time, the
    /// store's part, and on Cosmos DB the request units (as a description,
    /// since they are not a duration).
    pub fn server_timing(&self, total: Duration) -> String {
        // Whole numbers, written by hand: `format!` (floats above all)
        // would cost more than the rest of this middleware together.
        let mut value = String::with_capacity(96);
        value.push_str("total;dur=");
        millis(&mut value, total);
        value.push_str(", store;dur=");
        millis(&mut value, self.store_time());
        if self.cosmos_requests > 0 {
            let mut n = itoa::Buffer::new();
            value.push_str(", cosmos;desc=\"");
            value.push_str(n.format(self.centi_units / 100));
            value.push('.');
            push_padded(&mut value, self.centi_units % 100, 2);
            value.push_str(" RU in ");
            value.push_str(n.format(self.cosmos_requests));
            value.push_str(" requests\"");
        }
        value
    }
}

/// `elapsed` in milliseconds with three decimals (`1.234`).
fn millis(out: &mut String, elapsed: Duration) {
    let micros = elapsed.as_micros() as u64;
    out.push_str(itoa::Buffer::new().format(micros / 1000));
    out.push('.');
    push_padded(out, micros % 1000, 3);
}

/// `n` (below 10^`width`) with leading zeros to `width` digits.
fn push_padded(out: &mut String, n: u64, width: usize) {
    let mut buffer = itoa::Buffer::new();
    let digits = buffer.format(n);
    for _ in digits.len()..width {
        out.push('0');
    }
    out.push_str(digits);
}

/// Runs `work` as a request whose cost is counted; answers its output and
/// the cost.
pub async fn measure<F: Future>(work: F) -> (F::Output, Cost) {
    COST.scope(Tally::default(), async move {
        let output = work.await;
        let cost = COST.with(|t| Cost {
            store_nanos: t.store_nanos.get(),
            centi_units: t.centi_units.get(),
            cosmos_requests: t.cosmos_requests.get(),
        });
        (output, cost)
    })
    .await
}

/// Adds `elapsed` to the current request's store time.
pub fn store_time(elapsed: Duration) {
    let _ = COST.try_with(|t| add(&t.store_nanos, elapsed.as_nanos() as u64));
}

/// Adds a Cosmos DB operation (its requests, charge and time) to the
/// current request.
pub fn cosmos(requests: usize, request_charge: f64, elapsed: Duration) {
    let _ = COST.try_with(|t| {
        add(&t.cosmos_requests, requests as u64);
        add(&t.centi_units, (request_charge * 100.0).round() as u64);
        add(&t.store_nanos, elapsed.as_nanos() as u64);
    });
}

fn add(cell: &Cell<u64>, n: u64) {
    cell.set(cell.get().saturating_add(n));
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
