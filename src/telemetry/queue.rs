//! Spans and log records on their way out: a bounded queue, drained by a
//! thread of its own that exports a batch at a time. A request only ever
//! pushes (a lock and a push, never a wait); when the queue is full the
//! item is dropped and counted, so an exporter that is down or slow costs
//! neither latency nor memory. Dropped items, and those of exports that
//! failed, are reported as a metric and in a warning at most once a minute.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Condvar, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

/// Most items exported in one request.
const MAX_BATCH: usize = 512;
/// How often a growing drop count is logged at most.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// The sizes and pace of a queue.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pace {
    /// Items held at most.
    pub capacity: usize,
    /// Longest an item waits before its batch is exported.
    pub delay: Duration,
}

/// A bounded queue of `T` and the thread exporting it.
pub(super) struct ExportQueue<T> {
    shared: Arc<Shared<T>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

struct Shared<T> {
    signal: &'static str,
    capacity: usize,
    state: Mutex<State<T>>,
    /// Wakes the thread: a batch is full, a flush is asked, or it stops.
    wake: Condvar,
    /// Wakes the flushers: a flush generation is done.
    flushed: Condvar,
    /// Items dropped because the queue was full.
    dropped: AtomicU64,
    /// Items in exports that failed or timed out.
    failed: AtomicU64,
}

struct State<T> {
    items: VecDeque<T>,
    /// Flushes asked for, and done: a flush waits until `done` reaches the
    /// number it was given.
    asked: u64,
    done: u64,
    stopping: bool,
}

impl<T: Send + 'static> ExportQueue<T> {
    /// Starts the thread `telemetry-{signal}`, which calls `export` with each
    /// batch (it must return within its own deadline, and say whether the
    /// batch was delivered).
    pub(super) fn start(
        signal: &'static str,
        pace: Pace,
        export: impl FnMut(Vec<T>) -> bool + Send + 'static,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            signal,
            capacity: pace.capacity,
            state: Mutex::new(State {
                items: VecDeque::new(),
                asked: 0,
                done: 0,
                stopping: false,
            }),
            wake: Condvar::new(),
            flushed: Condvar::new(),
            dropped: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        });
        let thread = std::thread::Builder::new()
            .name(format!("telemetry-{signal}"))
            .spawn({
                let shared = shared.clone();
                move || drain(&shared, pace.delay, export)
            })?;
        Ok(Self {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues `item`, or drops and counts it when the queue is full.
    pub(super) fn push(&self, item: T) {
        let mut state = self.shared.lock();
        if state.stopping || state.items.len() >= self.shared.capacity {
            drop(state);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        state.items.push_back(item);
        if state.items.len() == MAX_BATCH {
            self.shared.wake.notify_one();
        }
    }

    /// Exports everything queued now; waits at most `within`. False when
    /// the time ran out first.
    pub(super) fn flush(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut state = self.shared.lock();
        state.asked += 1;
        let ticket = state.asked;
        self.shared.wake.notify_one();
        while state.done < ticket {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self
                .shared
                .flushed
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    /// Flushes (at most `within`) and stops the thread; items pushed later
    /// are dropped. The thread is left behind if its export hangs.
    pub(super) fn stop(&self, within: Duration) -> bool {
        let flushed = self.flush(within);
        self.shared.lock().stopping = true;
        self.shared.wake.notify_one();
        if flushed
            && let Some(thread) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take()
        {
            let _ = thread.join();
        }
        flushed
    }
}

impl<T> Shared<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The thread: waits for a full batch, a flush or the delay, and exports.
fn drain<T>(shared: &Shared<T>, delay: Duration, mut export: impl FnMut(Vec<T>) -> bool) {
    let mut warned = (None, 0);
    loop {
        let (batch, ticket, stopping) = {
            let mut state = shared.lock();
            let due = Instant::now() + delay;
            while state.items.len() < MAX_BATCH && state.asked == state.done && !state.stopping {
                let left = due.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                state = shared
                    .wake
                    .wait_timeout(state, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            // A flush takes everything; otherwise one batch.
            let take = if state.asked > state.done {
                state.items.len()
            } else {
                state.items.len().min(MAX_BATCH)
            };
            let batch: Vec<T> = state.items.drain(..take).collect();
            (batch, state.asked, state.stopping)
        };
        for chunk in chunks(batch) {
            let len = chunk.len() as u64;
            if !export(chunk) {
                shared.failed.fetch_add(len, Ordering::Relaxed);
            }
        }
        {
            let mut state = shared.lock();
            state.done = state.done.max(ticket);
            shared.flushed.notify_all();
        }
        warn_of_drops(shared, &mut warned);
        if stopping {
            return;
        }
    }
}

fn chunks<T>(mut items: Vec<T>) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    while items.len() > MAX_BATCH {
        let rest = items.split_off(MAX_BATCH);
        out.push(std::mem::replace(&mut items, rest));
    }
    if !items.is_empty() {
        out.push(items);
    }
    out
}

/// Logs the items lost since the last warning, at most once per
/// [`WARN_EVERY`]; `warned` is when it last did and the count it gave.
fn warn_of_drops<T>(shared: &Shared<T>, warned: &mut (Option<Instant>, u64)) {
    let lost = shared.lost();
    if lost.total() > warned.1 && warned.0.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
        tracing::warn!(
            signal = shared.signal,
            queue_full = lost.queue_full,
            export_failed = lost.export_failed,
            "telemetry items were lost: the destination is down, slow or refusing"
        );
        *warned = (Some(Instant::now()), lost.total());
    }
}

/// Items a queue lost so far, by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Lost {
    /// Dropped because the queue was full.
    pub queue_full: u64,
    /// In exports that failed or timed out.
    pub export_failed: u64,
}

impl Lost {
    /// Both reasons.
    pub(super) fn total(&self) -> u64 {
        self.queue_full + self.export_failed
    }
}

impl<T> Shared<T> {
    fn lost(&self) -> Lost {
        Lost {
            queue_full: self.dropped.load(Ordering::Relaxed),
            export_failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

/// What the pipelines do with a queue, whatever it holds.
pub(super) trait Drain: Send + Sync {
    /// Exports everything queued now; waits at most `within`. False when
    /// the time ran out first.
    fn flush(&self, within: Duration) -> bool;
    /// The signal (`spans`, `logs`) and the items it lost so far.
    fn lost(&self) -> (&'static str, Lost);
}

impl<T: Send + 'static> Drain for ExportQueue<T> {
    fn flush(&self, within: Duration) -> bool {
        ExportQueue::flush(self, within)
    }
    fn lost(&self) -> (&'static str, Lost) {
        (self.shared.signal, self.shared.lost())
    }
}

impl<T> std::fmt::Debug for ExportQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportQueue")
            .field("signal", &self.shared.signal)
            .field("capacity", &self.shared.capacity)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn pace(capacity: usize) -> Pace {
        Pace {
            capacity,
            delay: Duration::from_millis(20),
        }
    }

    #[test]
    fn items_are_exported_in_batches_after_the_delay_or_a_flush() {
        let (sent, got) = mpsc::channel();
        let queue = ExportQueue::start("test", pace(10_000), move |batch: Vec<u32>| {
            sent.send(batch).unwrap();
            true
        })
        .unwrap();
        for i in 0..1200 {
            queue.push(i);
        }
        assert!(queue.flush(Duration::from_secs(5)));
        let batches: Vec<Vec<u32>> = got.try_iter().collect();
        assert!(
            batches.iter().all(|b| b.len() <= MAX_BATCH),
            "{:?}",
            batches.len()
        );
        let all: Vec<u32> = batches.into_iter().flatten().collect();
        assert_eq!(all, (0..1200).collect::<Vec<_>>());
        assert_eq!(Drain::lost(&queue).1, Lost::default());
        queue.push(7);
        let late = got.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(late, [7], "exported after the delay without a flush");
        assert!(queue.stop(Duration::from_secs(5)));
    }

    #[test]
    fn a_failed_export_counts_its_items() {
        let queue = ExportQueue::start("test", pace(100), |_batch: Vec<u32>| false).unwrap();
        for i in 0..30 {
            queue.push(i);
        }
        assert!(queue.flush(Duration::from_secs(5)));
        assert_eq!(Drain::lost(&queue).1.export_failed, 30);
    }

    /// An export that never returns blocks nobody: pushes beyond the bound
    /// are dropped and counted, and a flush gives up at its deadline.
    #[test]
    fn a_hanging_export_drops_and_counts_instead_of_waiting() {
        let (entered, started) = mpsc::channel();
        let queue = ExportQueue::start("test", pace(8), move |_batch: Vec<u32>| {
            let _ = entered.send(());
            std::thread::sleep(Duration::from_secs(3600));
            true
        })
        .unwrap();
        queue.push(0);
        started.recv_timeout(Duration::from_secs(5)).unwrap();
        let pushing = Instant::now();
        for i in 0..100 {
            queue.push(i);
        }
        assert!(pushing.elapsed() < Duration::from_secs(1));
        assert!(!queue.flush(Duration::from_millis(50)));
        let (signal, lost) = Drain::lost(&queue);
        assert_eq!(
            (signal, lost.queue_full, lost.export_failed),
            ("test", 92, 0)
        );
    }
}
