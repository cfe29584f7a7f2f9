//! What the writer thread spends its time on, reported at debug level every
//! [`REPORT_EVERY`] while writes come in:
//!
//! ```text
//! RUST_LOG=info,chat_sessions::store::sqlite::writer_load=debug
//! ```
//!
//! Appends on the embedded store are bound by the single writer (see
//! `writer`), so these few figures say where an append's time goes and
//! whether the writer is the bottleneck: how busy it was, how many writes
//! each group commit took in, and the writer's time per write, with the
//! shares of the group's search index upkeep and of its commit. Timing a
//! group costs a few clock reads.

use std::time::{Duration, Instant};

/// Time between two reports.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// The writer's work since its last report.
#[derive(Debug)]
pub(super) struct WriterLoad {
    since: Instant,
    groups: u64,
    writes: u64,
    busy: Duration,
    index: Duration,
    commit: Duration,
}

/// How long each part of one group took.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct GroupTimes {
    /// The whole group, from its transaction's start to its commit's end.
    pub busy: Duration,
    /// Applying the group's queued search index changes.
    pub index: Duration,
    /// The commit.
    pub commit: Duration,
}

/// Marks the parts of one group as the writer reaches them.
pub(super) struct GroupClock {
    started: Instant,
    index: Option<Instant>,
    commit: Option<Instant>,
}

impl GroupClock {
    /// The group's transaction starts.
    pub(super) fn start() -> Self {
        Self {
            started: Instant::now(),
            index: None,
            commit: None,
        }
    }

    /// The group's search index changes are being applied.
    pub(super) fn index(&mut self) {
        self.index = Some(Instant::now());
    }

    /// The group commits.
    pub(super) fn commit(&mut self) {
        self.commit = Some(Instant::now());
    }

    /// The group has ended (a part it never reached took no time).
    pub(super) fn stop(self) -> GroupTimes {
        let ended = Instant::now();
        GroupTimes {
            busy: ended - self.started,
            index: self
                .index
                .map_or(Duration::ZERO, |i| self.commit.unwrap_or(ended) - i),
            commit: self.commit.map_or(Duration::ZERO, |c| ended - c),
        }
    }
}

/// One report: the writer's work over `period`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct LoadReport {
    pub period: Duration,
    pub groups: u64,
    pub writes: u64,
    /// Writes per group commit.
    pub writes_per_group: f64,
    /// Share of the period the writer spent running groups.
    pub busy_percent: f64,
    /// The writer's time per write, and the parts of it spent on the search
    /// index and on commits (µs).
    pub us_per_write: f64,
    pub index_us_per_write: f64,
    pub commit_us_per_write: f64,
}

impl WriterLoad {
    pub(super) fn new(now: Instant) -> Self {
        Self {
            since: now,
            groups: 0,
            writes: 0,
            busy: Duration::ZERO,
            index: Duration::ZERO,
            commit: Duration::ZERO,
        }
    }

    /// Counts one group of `writes` writes.
    pub(super) fn record(&mut self, writes: usize, times: GroupTimes) {
        self.groups += 1;
        self.writes += writes as u64;
        self.busy += times.busy;
        self.index += times.index;
        self.commit += times.commit;
    }

    /// The report on the work since the last one, once [`REPORT_EVERY`] has
    /// passed and there was any; the count starts again.
    pub(super) fn report_if_due(&mut self, now: Instant) -> Option<LoadReport> {
        let period = now.saturating_duration_since(self.since);
        if period < REPORT_EVERY {
            return None;
        }
        let done = std::mem::replace(self, Self::new(now));
        if done.writes == 0 {
            return None;
        }
        let per_write = |d: Duration| d.as_secs_f64() * 1e6 / done.writes as f64;
        Some(LoadReport {
            period,
            groups: done.groups,
            writes: done.writes,
            writes_per_group: done.writes as f64 / done.groups as f64,
            busy_percent: 100.0 * done.busy.as_secs_f64() / period.as_secs_f64(),
            us_per_write: per_write(done.busy),
            index_us_per_write: per_write(done.index),
            commit_us_per_write: per_write(done.commit),
        })
    }
}

impl LoadReport {
    pub(super) fn log(&self) {
        tracing::debug!(
            period_s = self.period.as_secs_f64(),
            groups = self.groups,
            writes = self.writes,
            writes_per_group = format!("{:.1}", self.writes_per_group),
            busy_percent = format!("{:.0}", self.busy_percent),
            us_per_write = format!("{:.1}", self.us_per_write),
            index_us_per_write = format!("{:.1}", self.index_us_per_write),
            commit_us_per_write = format!("{:.1}", self.commit_us_per_write),
            "SQLite writer load"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A group's parts add up to no more than the group; a part it never
    /// reached (a transaction that failed to start) took no time.
    #[test]
    fn a_group_s_parts_lie_within_it() {
        let mut clock = GroupClock::start();
        std::thread::sleep(ms(2));
        clock.index();
        std::thread::sleep(ms(2));
        clock.commit();
        std::thread::sleep(ms(2));
        let times = clock.stop();
        assert!(times.index >= ms(2) && times.commit >= ms(2), "{times:?}");
        assert!(
            times.busy >= times.index + times.commit + ms(2),
            "{times:?}"
        );

        let times = GroupClock::start().stop();
        assert_eq!(
            (times.index, times.commit),
            (Duration::ZERO, Duration::ZERO)
        );
    }

    #[test]
    fn reports_the_period_s_work_once_it_has_passed_then_starts_again() {
        let start = Instant::now();
        let mut load = WriterLoad::new(start);
        load.record(
            10,
            GroupTimes {
                busy: ms(2),
                index: ms(1),
                commit: Duration::from_micros(500),
            },
        );
        load.record(
            30,
            GroupTimes {
                busy: ms(3),
                index: ms(1),
                commit: Duration::from_micros(500),
            },
        );
        assert_eq!(load.report_if_due(start + ms(9_999)), None);

        let report = load.report_if_due(start + ms(10_000)).unwrap();
        assert_eq!(report.period, ms(10_000));
        assert_eq!((report.groups, report.writes), (2, 40));
        assert_eq!(report.writes_per_group, 20.0);
        assert!((report.busy_percent - 0.05).abs() < 1e-9, "{report:?}");
        assert!((report.us_per_write - 125.0).abs() < 1e-9, "{report:?}");
        assert!(
            (report.index_us_per_write - 50.0).abs() < 1e-9,
            "{report:?}"
        );
        assert!(
            (report.commit_us_per_write - 25.0).abs() < 1e-9,
            "{report:?}"
        );

        // Counted afresh from the report on; a quiet period reports nothing.
        assert_eq!(load.report_if_due(start + ms(19_999)), None);
        assert_eq!(load.report_if_due(start + ms(20_000)), None);
        load.record(
            1,
            GroupTimes {
                busy: ms(1),
                ..GroupTimes::default()
            },
        );
        let report = load.report_if_due(start + ms(30_000)).unwrap();
        assert_eq!((report.groups, report.writes), (1, 1));
        assert_eq!(report.us_per_write, 1_000.0);
    }
}
