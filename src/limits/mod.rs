//! Bounds under load and abuse: what one instance takes on at once, how
//! fast one user may write, and how long a client may take to send a
//! request. The settings are read here ([`LimitSettings`]); the HTTP side
//! (the admission layers, the body deadline, the answers) is
//! `crate::api::admit`, the header deadline is the server's
//! (`crate::cli::serve`), and the per-user token bucket is [`rate`].
//!
//! Every refusal has a [`Refusal`] reason: it names the problem type of
//! the answer, is counted (`chat_sessions.refused{reason}`) and logged at
//! most once a minute per reason and user ([`refusals`]).
//!
//! All of it is per instance: with several instances the effective limits
//! are these times the instance count (docs/deploy.md says what to put in
//! front for a global one).

use std::time::Duration;

use crate::settings::Settings;

pub mod rate;
pub mod refusals;

/// Default [`LimitSettings::max_in_flight`].
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;
/// Default [`LimitSettings::max_imports`].
pub const DEFAULT_MAX_IMPORTS: usize = 2;
/// Default [`LimitSettings::max_exports`].
pub const DEFAULT_MAX_EXPORTS: usize = 4;
/// Default [`LimitSettings::max_erases`].
pub const DEFAULT_MAX_ERASES: usize = 2;
/// Default [`LimitSettings::user_write_rate`]: writes per second, far above
/// what a person typing (or a chat frontend streaming answers) sends.
pub const DEFAULT_USER_WRITE_RATE: f64 = 20.0;
/// Default [`LimitSettings::user_write_burst`].
pub const DEFAULT_USER_WRITE_BURST: u32 = 100;
/// Default [`LimitSettings::header_read_timeout`] (hyper's own default).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default [`LimitSettings::body_read_timeout`]: a 64 MiB import over a
/// link of about 5 Mbit/s still arrives (a file of the whole 256 MiB
/// import limit needs about 18 Mbit/s), and Azure's front ends cut a
/// request at 230 s anyway.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(120);

/// The most seconds a timeout setting takes (a day).
const MAX_TIMEOUT_SECONDS: f64 = 86_400.0;

/// The limits, as the settings give them. A count or rate of `0` (or a
/// timeout of `0`) turns that limit off.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitSettings {
    /// Requests in flight on the instance at most (`MAX_REQUESTS_IN_FLIGHT`);
    /// beyond it, 503 at once rather than a queue.
    pub max_in_flight: usize,
    /// Imports in flight at most (`MAX_IMPORTS_IN_FLIGHT`).
    pub max_imports: usize,
    /// Whole-user exports in flight at most (`MAX_EXPORTS_IN_FLIGHT`).
    pub max_exports: usize,
    /// Erases in flight at most (`MAX_ERASES_IN_FLIGHT`).
    pub max_erases: usize,
    /// Writes per second one user may keep up (`USER_WRITE_RATE`).
    pub user_write_rate: f64,
    /// Writes one user may send at once above the rate (`USER_WRITE_BURST`).
    pub user_write_burst: u32,
    /// The longest a client may take to send a request's headers, and the
    /// longest an idle connection stays open (`HEADER_READ_TIMEOUT_SECONDS`).
    pub header_read_timeout: Option<Duration>,
    /// The longest a client may take to send a request's body, from when
    /// its headers arrived (`BODY_READ_TIMEOUT_SECONDS`).
    pub body_read_timeout: Option<Duration>,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_imports: DEFAULT_MAX_IMPORTS,
            max_exports: DEFAULT_MAX_EXPORTS,
            max_erases: DEFAULT_MAX_ERASES,
            user_write_rate: DEFAULT_USER_WRITE_RATE,
            user_write_burst: DEFAULT_USER_WRITE_BURST,
            header_read_timeout: Some(DEFAULT_HEADER_READ_TIMEOUT),
            body_read_timeout: Some(DEFAULT_BODY_READ_TIMEOUT),
        }
    }
}

impl LimitSettings {
    /// No limit at all (tests and the benchmark's baseline).
    pub fn off() -> Self {
        Self {
            max_in_flight: 0,
            max_imports: 0,
            max_exports: 0,
            max_erases: 0,
            user_write_rate: 0.0,
            user_write_burst: 0,
            header_read_timeout: None,
            body_read_timeout: None,
        }
    }

    /// Reads the settings through `lookup`; a value that can never work is
    /// an error naming the setting.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let s = Settings::new(lookup);
        let d = Self::default();
        let count = |name: &str, default: usize| -> anyhow::Result<usize> {
            Ok(s.parse::<usize>(name, "a whole number (0: no limit)")?
                .unwrap_or(default))
        };
        let seconds = |name: &str, default: Duration| -> anyhow::Result<Option<Duration>> {
            let Some(v) = s.parse::<f64>(name, "a number of seconds (0: no limit)")? else {
                return Ok(Some(default));
            };
            if !(0.0..=MAX_TIMEOUT_SECONDS).contains(&v) {
                anyhow::bail!("{name}={v} is out of range: 0 (no limit) to {MAX_TIMEOUT_SECONDS}");
            }
            Ok((v > 0.0).then(|| Duration::from_secs_f64(v)))
        };
        let rate = s
            .parse::<f64>(
                "USER_WRITE_RATE",
                "a number of writes per second (0: no limit)",
            )?
            .unwrap_or(d.user_write_rate);
        if !rate.is_finite() || rate < 0.0 {
            anyhow::bail!("USER_WRITE_RATE={rate} is out of range: it must be 0 or more");
        }
        let burst = s
            .parse::<u32>("USER_WRITE_BURST", "a whole number of writes")?
            .unwrap_or(d.user_write_burst);
        if rate > 0.0 && burst == 0 {
            anyhow::bail!(
                "USER_WRITE_BURST=0 is out of range: it must be at least 1 while USER_WRITE_RATE \
                 is on"
            );
        }
        Ok(Self {
            max_in_flight: count("MAX_REQUESTS_IN_FLIGHT", d.max_in_flight)?,
            max_imports: count("MAX_IMPORTS_IN_FLIGHT", d.max_imports)?,
            max_exports: count("MAX_EXPORTS_IN_FLIGHT", d.max_exports)?,
            max_erases: count("MAX_ERASES_IN_FLIGHT", d.max_erases)?,
            user_write_rate: rate,
            user_write_burst: burst,
            header_read_timeout: seconds(
                "HEADER_READ_TIMEOUT_SECONDS",
                DEFAULT_HEADER_READ_TIMEOUT,
            )?,
            body_read_timeout: seconds("BODY_READ_TIMEOUT_SECONDS", DEFAULT_BODY_READ_TIMEOUT)?,
        })
    }
}

/// Why a request was refused. Each names a problem type
/// (`urn:chat-sessions:problem:<slug>`) and the `reason` of the
/// `chat_sessions.refused` counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// The instance has `MAX_REQUESTS_IN_FLIGHT` requests in flight (503).
    InFlight,
    /// `MAX_IMPORTS_IN_FLIGHT` imports are running (503).
    Imports,
    /// `MAX_EXPORTS_IN_FLIGHT` whole-user exports are running (503).
    Exports,
    /// `MAX_ERASES_IN_FLIGHT` erases are running (503).
    Erases,
    /// The user wrote faster than `USER_WRITE_RATE` allows (429).
    UserRate,
    /// The body did not arrive within `BODY_READ_TIMEOUT_SECONDS` (408).
    BodyTimeout,
}

impl Refusal {
    /// The counter's `reason` attribute.
    pub fn reason(self) -> &'static str {
        match self {
            Self::InFlight => "in_flight",
            Self::Imports => "imports",
            Self::Exports => "exports",
            Self::Erases => "erases",
            Self::UserRate => "user_rate",
            Self::BodyTimeout => "body_timeout",
        }
    }

    /// The last part of the problem type.
    pub fn slug(self) -> &'static str {
        match self {
            Self::InFlight => "overloaded",
            Self::Imports => "too-many-imports",
            Self::Exports => "too-many-exports",
            Self::Erases => "too-many-erases",
            Self::UserRate => "rate-limited",
            Self::BodyTimeout => "body-timeout",
        }
    }

    /// The setting that sets this limit.
    pub fn setting(self) -> &'static str {
        match self {
            Self::InFlight => "MAX_REQUESTS_IN_FLIGHT",
            Self::Imports => "MAX_IMPORTS_IN_FLIGHT",
            Self::Exports => "MAX_EXPORTS_IN_FLIGHT",
            Self::Erases => "MAX_ERASES_IN_FLIGHT",
            Self::UserRate => "USER_WRITE_RATE",
            Self::BodyTimeout => "BODY_READ_TIMEOUT_SECONDS",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(vars: &[(&str, &str)]) -> anyhow::Result<LimitSettings> {
        let lookup = |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        };
        LimitSettings::from_lookup(&lookup)
    }

    #[test]
    fn defaults_are_on_and_zero_turns_a_limit_off() {
        assert_eq!(read(&[]).unwrap(), LimitSettings::default());
        let off = read(&[
            ("MAX_REQUESTS_IN_FLIGHT", "0"),
            ("MAX_IMPORTS_IN_FLIGHT", "0"),
            ("MAX_EXPORTS_IN_FLIGHT", "0"),
            ("MAX_ERASES_IN_FLIGHT", "0"),
            ("USER_WRITE_RATE", "0"),
            ("USER_WRITE_BURST", "0"),
            ("HEADER_READ_TIMEOUT_SECONDS", "0"),
            ("BODY_READ_TIMEOUT_SECONDS", "0"),
        ])
        .unwrap();
        assert_eq!(off, LimitSettings::off());
        let some = read(&[
            ("USER_WRITE_RATE", "2.5"),
            ("HEADER_READ_TIMEOUT_SECONDS", "1.5"),
        ]);
        let some = some.unwrap();
        assert_eq!(some.user_write_rate, 2.5);
        assert_eq!(some.header_read_timeout, Some(Duration::from_millis(1500)));
    }

    #[test]
    fn values_that_can_never_work_name_the_setting() {
        for (k, v) in [
            ("MAX_REQUESTS_IN_FLIGHT", "-1"),
            ("MAX_IMPORTS_IN_FLIGHT", "two"),
            ("USER_WRITE_RATE", "-3"),
            ("USER_WRITE_RATE", "inf"),
            ("USER_WRITE_BURST", "0"),
            ("HEADER_READ_TIMEOUT_SECONDS", "-1"),
            ("BODY_READ_TIMEOUT_SECONDS", "1e9"),
        ] {
            let e = format!("{:#}", read(&[(k, v)]).unwrap_err());
            assert!(e.contains(k), "{k}={v}: {e}");
        }
    }
}
