//! Settings, read once from the environment into one typed value.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use anyhow::{Context as _, bail};

use crate::{
    auth::AuthMode,
    limits::LimitSettings,
    origins::AllowedOrigins,
    retention::{MAX_DAYS, RetentionPolicy},
    settings::Settings,
    store::{
        cosmos::{self, CosmosConfig, SealPolicy},
        sqlite::{DEFAULT_WAL_MAX_BYTES, Durability, SqliteSettings},
    },
    telemetry::TelemetrySettings,
};

/// Port of a Functions app run locally, so frontend URLs don't change.
pub const DEFAULT_PORT: u16 = 7071;
/// Default request body limit: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Default limit of an import file: 256 MiB (an import streams the file
/// from disk, so its size does not bound its memory).
pub const DEFAULT_IMPORT_MAX_BYTES: usize = 256 * 1024 * 1024;

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Where the user of a request comes from (`AUTH_MODE`).
    pub auth_mode: AuthMode,
    /// The embedded store's directory (`DATA_DIR`, default `./data`).
    pub data_dir: PathBuf,
    /// The embedded store's durability (`SQLITE_SYNCHRONOUS`).
    pub durability: Durability,
    /// The most of the disk the embedded store's WAL keeps once
    /// checkpoints catch up (`SQLITE_WAL_MAX_BYTES`).
    pub wal_max_bytes: u64,
    /// Largest request body (`MAX_BODY_BYTES`).
    pub max_body_bytes: usize,
    /// Largest import file (`IMPORT_MAX_BYTES`).
    pub import_max_bytes: usize,
    /// Serve the benchmark's ceiling route (`BENCH_ROUTES=1`).
    pub bench_routes: bool,
    /// Origins whose pages may call the API from a browser
    /// (`CORS_ALLOWED_ORIGINS`); unset: no CORS answers.
    pub cors_allowed_origins: Option<AllowedOrigins>,
    /// Let the `MigrationSweep` timer enqueue runs (`MIGRATION_SWEEP_ENABLED`).
    pub migration_sweep_enabled: bool,
    /// Cosmos DB, when `COSMOS_ENDPOINT` is set; else the embedded store.
    pub cosmos: Option<CosmosConfig>,
    /// Time budget of one migration invocation (`MIGRATION_INVOCATION_SECONDS`).
    pub migration_budget: Duration,
    /// A JSONL file of old messages for the queue-triggered migration when
    /// there is no Cosmos DB (`MIGRATION_JSONL`; local use).
    pub migration_jsonl: Option<PathBuf>,
    /// The retention rules (`RETENTION_ARCHIVE_AFTER_DAYS`,
    /// `RETENTION_DELETE_AFTER_DAYS`); off by default.
    pub retention: RetentionPolicy,
    /// Let the `RetentionSweep` timer apply them (`RETENTION_SWEEP_ENABLED`).
    pub retention_sweep_enabled: bool,
    /// Log format, exporters, `Server-Timing` (`LOG_FORMAT`, `OTEL_*`,
    /// `APPLICATIONINSIGHTS_*`, `SERVER_TIMING`).
    pub telemetry: TelemetrySettings,
    /// The limits under load and abuse (`MAX_*_IN_FLIGHT`, `USER_WRITE_*`,
    /// `*_READ_TIMEOUT_SECONDS`).
    pub limits: LimitSettings,
}

/// Overrides given on the command line; they beat the environment, except
/// that the Functions host's port always wins.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--port`.
    pub port: Option<u16>,
    /// `--host`.
    pub host: Option<IpAddr>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
}

impl Config {
    /// The embedded store's settings.
    pub fn sqlite(&self) -> SqliteSettings {
        SqliteSettings {
            durability: self.durability,
            wal_max_bytes: self.wal_max_bytes,
        }
    }

    /// Reads the process environment.
    pub fn from_env(overrides: Overrides) -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok(), overrides)
    }

    /// Reads settings through `lookup` (testable without touching the
    /// process environment). Empty values count as unset.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        overrides: Overrides,
    ) -> anyhow::Result<Self> {
        let s = Settings::new(&lookup);
        Ok(Self {
            listen: listen(&s, &overrides)?,
            auth_mode: parsed::<AuthMode>(&s, "AUTH_MODE")?.unwrap_or_default(),
            data_dir: overrides
                .data_dir
                .or_else(|| s.get("DATA_DIR").map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from("data")),
            durability: durability(&s)?,
            wal_max_bytes: wal_max_bytes(&s)?,
            max_body_bytes: positive_bytes(&s, "MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)?,
            import_max_bytes: positive_bytes(&s, "IMPORT_MAX_BYTES", DEFAULT_IMPORT_MAX_BYTES)?,
            bench_routes: s.flag("BENCH_ROUTES", false)?,
            cors_allowed_origins: parsed::<AllowedOrigins>(&s, "CORS_ALLOWED_ORIGINS")?,
            migration_sweep_enabled: s.flag("MIGRATION_SWEEP_ENABLED", false)?,
            cosmos: cosmos(&s)?,
            migration_budget: migration_budget(&s)?,
            migration_jsonl: s.get("MIGRATION_JSONL").map(PathBuf::from),
            retention: RetentionPolicy {
                archive_after_days: days(&s, "RETENTION_ARCHIVE_AFTER_DAYS")?,
                delete_after_days: days(&s, "RETENTION_DELETE_AFTER_DAYS")?,
            },
            retention_sweep_enabled: s.flag("RETENTION_SWEEP_ENABLED", false)?,
            telemetry: TelemetrySettings::from_lookup(&lookup)?,
            limits: LimitSettings::from_lookup(&lookup)?,
        })
    }
}

/// A setting whose type says what is wrong with a value in its own words.
fn parsed<T>(s: &Settings<'_>, name: &str) -> anyhow::Result<Option<T>>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    s.get(name)
        .map(|v| v.parse::<T>().map_err(|e| anyhow::anyhow!("{e}")))
        .transpose()
}

/// Where to listen: the Functions host's port on loopback when it gives
/// one (it talks to us there), else `--port`/`PORT` on `--host`/`HOST`.
fn listen(s: &Settings<'_>, overrides: &Overrides) -> anyhow::Result<SocketAddr> {
    if let Some(port) = s.parse::<u16>("FUNCTIONS_CUSTOMHANDLER_PORT", "a port")? {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    let port = match overrides.port {
        Some(port) => port,
        None => s.parse::<u16>("PORT", "a port")?.unwrap_or(DEFAULT_PORT),
    };
    let host = match overrides.host {
        Some(host) => host,
        None => s
            .parse::<IpAddr>("HOST", "an IP address")?
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
    };
    Ok(SocketAddr::new(host, port))
}

/// `SQLITE_SYNCHRONOUS`: `full` (the default) or `normal`.
fn durability(s: &Settings<'_>) -> anyhow::Result<Durability> {
    match s.get("SQLITE_SYNCHRONOUS").map(|v| v.to_ascii_lowercase()) {
        None => Ok(Durability::Full),
        Some(v) if v == "full" => Ok(Durability::Full),
        Some(v) if v == "normal" => Ok(Durability::Normal),
        Some(v) => bail!("SQLITE_SYNCHRONOUS must be full or normal, not {v:?}"),
    }
}

/// `SQLITE_WAL_MAX_BYTES`: SQLite takes it as a signed 64-bit number.
fn wal_max_bytes(s: &Settings<'_>) -> anyhow::Result<u64> {
    let what = "a number of bytes";
    match s.parse::<u64>("SQLITE_WAL_MAX_BYTES", what)? {
        None => Ok(DEFAULT_WAL_MAX_BYTES),
        Some(n) if i64::try_from(n).is_ok() => Ok(n),
        Some(n) => bail!("SQLITE_WAL_MAX_BYTES={n:?} is not {what}"),
    }
}

/// A positive number of bytes, `default` when unset.
fn positive_bytes(s: &Settings<'_>, name: &str, default: usize) -> anyhow::Result<usize> {
    match s.parse::<usize>(name, "a number of bytes")? {
        None => Ok(default),
        Some(0) => bail!("{name}=0 is out of range: it must be positive"),
        Some(n) => Ok(n),
    }
}

/// `MIGRATION_INVOCATION_SECONDS`: up to an hour, 240 s by default (inside
/// the Functions host's 5-minute default timeout).
fn migration_budget(s: &Settings<'_>) -> anyhow::Result<Duration> {
    let name = "MIGRATION_INVOCATION_SECONDS";
    match s.get(name) {
        None => Ok(Duration::from_secs(240)),
        Some(v) => v
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s > 0.0 && *s <= 3600.0)
            .map(Duration::from_secs_f64)
            .with_context(|| format!("{name}={v:?} is not a number of seconds")),
    }
}

/// A retention period in days, from 1 to [`MAX_DAYS`].
fn days(s: &Settings<'_>, name: &str) -> anyhow::Result<Option<u32>> {
    s.get(name)
        .map(|v| {
            v.parse::<u32>()
                .ok()
                .filter(|d| (1..=MAX_DAYS).contains(d))
                .with_context(|| {
                    format!("{name}={v:?} is not a number of days from 1 to {MAX_DAYS}")
                })
        })
        .transpose()
}

/// How sessions are split into sealed pages (`COSMOS_SEAL_*`).
fn seal_policy(s: &Settings<'_>) -> anyhow::Result<SealPolicy> {
    let number = |name: &str| s.parse::<usize>(name, "a number");
    let max_bytes = match number("COSMOS_SEAL_MAX_BYTES")? {
        None => SealPolicy::default().max_bytes,
        Some(n) if (SealPolicy::MIN_BYTES..=SealPolicy::MAX_BYTES).contains(&n) => n,
        Some(n) => bail!(
            "COSMOS_SEAL_MAX_BYTES={n} is out of range: it must be between {} and {} (so \
             that a sealed page fits one Cosmos DB batch)",
            SealPolicy::MIN_BYTES,
            SealPolicy::MAX_BYTES
        ),
    };
    Ok(SealPolicy {
        max_bytes,
        page_bytes: match number("COSMOS_SEAL_PAGE_BYTES")? {
            None => SealPolicy::page_bytes_for(max_bytes),
            Some(n) if SealPolicy::page_bytes_range(max_bytes).contains(&n) => n,
            Some(n) => bail!(
                "COSMOS_SEAL_PAGE_BYTES={n} is out of range: it must be between {} and {max_bytes} \
                 (an eighth of COSMOS_SEAL_MAX_BYTES and all of it)",
                max_bytes / 8
            ),
        },
        max_messages: match number("COSMOS_SEAL_MAX_MESSAGES")? {
            Some(n) if n < SealPolicy::MIN_MESSAGES => bail!(
                "COSMOS_SEAL_MAX_MESSAGES={n} is out of range: it must be at least {}",
                SealPolicy::MIN_MESSAGES
            ),
            n => n,
        },
    })
}

/// Cosmos DB when `COSMOS_ENDPOINT` is set; every value that can never
/// work is refused here, so the service stops at once naming it.
fn cosmos(s: &Settings<'_>) -> anyhow::Result<Option<CosmosConfig>> {
    // Checked even without an endpoint: a bad value is a mistake either way.
    let seal = seal_policy(s)?;
    let Some(endpoint) = s.get("COSMOS_ENDPOINT") else {
        return Ok(None);
    };
    cosmos::check_endpoint(&endpoint, s.get("AZURE_COSMOS_EMULATOR_HOST").as_deref())?;
    let or = |name: &str, default: &str| s.get(name).unwrap_or_else(|| default.to_owned());
    let name = |setting: &str, default: &str| -> anyhow::Result<String> {
        let value = or(setting, default);
        cosmos::check_name(&value)
            .map_err(|why| anyhow::anyhow!("{setting}={value:?} is not a Cosmos DB name: {why}"))?;
        Ok(value)
    };
    let legacy_partition_key = or("COSMOS_LEGACY_PARTITION_KEY", "/session_id");
    if !legacy_partition_key.starts_with('/') || legacy_partition_key.len() < 2 {
        bail!(
            "COSMOS_LEGACY_PARTITION_KEY={legacy_partition_key:?} is not a partition key path \
             (like /session_id)"
        );
    }
    Ok(Some(CosmosConfig {
        endpoint,
        database: name("COSMOS_DATABASE", "chat")?,
        sessions_container: name("COSMOS_SESSIONS_CONTAINER", "chat_sessions")?,
        legacy_container: name("COSMOS_LEGACY_CONTAINER", "chat_messages")?,
        legacy_partition_key,
        key: cosmos_key(s)?,
        client_id: client_id(s)?,
        region: s
            .get("COSMOS_REGION")
            .or_else(|| s.get("REGION_NAME"))
            .unwrap_or_else(|| "East US".to_owned()),
        seal,
    }))
}

/// `COSMOS_KEY`, an account key (base64); its value is never echoed.
fn cosmos_key(s: &Settings<'_>) -> anyhow::Result<Option<azure_core::credentials::Secret>> {
    let Some(key) = s.get("COSMOS_KEY") else {
        return Ok(None);
    };
    use base64::Engine as _;
    if base64::engine::general_purpose::STANDARD
        .decode(&key)
        .is_err()
    {
        bail!("COSMOS_KEY is not an account key (a base64 string); its value is not shown");
    }
    Ok(Some(azure_core::credentials::Secret::new(key)))
}

/// `AZURE_CLIENT_ID`: the user-assigned managed identity, a GUID.
fn client_id(s: &Settings<'_>) -> anyhow::Result<Option<String>> {
    let id = s.get("AZURE_CLIENT_ID");
    if let Some(id) = &id
        && uuid::Uuid::try_parse(id).is_err()
    {
        bail!(
            "AZURE_CLIENT_ID={id:?} is not a client id (a GUID such as \
             00000000-0000-0000-0000-000000000000)"
        );
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)], overrides: Overrides) -> anyhow::Result<Config> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned(), overrides)
    }

    #[test]
    fn defaults_are_local() {
        let c = config(&[], Overrides::default()).unwrap();
        assert_eq!(c.listen, "127.0.0.1:7071".parse().unwrap());
        assert_eq!(c.auth_mode, AuthMode::None);
        assert_eq!(c.data_dir, PathBuf::from("data"));
        assert_eq!(c.durability, Durability::Full);
        assert_eq!(c.wal_max_bytes, 16 * 1024 * 1024);
        assert_eq!(c.max_body_bytes, 1024 * 1024);
        assert!(c.cosmos.is_none(), "no endpoint: the embedded store");
        assert!(c.retention.is_off(), "retention is off unless configured");
        assert!(c.cors_allowed_origins.is_none(), "no CORS answers");
        assert!(!c.retention_sweep_enabled);
    }

    #[test]
    fn retention_days_are_read() {
        let c = config(
            &[
                ("RETENTION_ARCHIVE_AFTER_DAYS", "90"),
                ("RETENTION_DELETE_AFTER_DAYS", " 30 "),
                ("RETENTION_SWEEP_ENABLED", "true"),
            ],
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.retention.archive_after_days, Some(90));
        assert_eq!(c.retention.delete_after_days, Some(30));
        assert!(c.retention_sweep_enabled);
    }

    #[test]
    fn an_endpoint_selects_cosmos_and_the_key_is_never_printed() {
        let c = config(
            &[
                ("COSMOS_ENDPOINT", "https://acct.documents.azure.com:443/"),
                ("COSMOS_KEY", "c2VjcmV0LWtleQ=="),
            ],
            Overrides::default(),
        )
        .unwrap();
        let cosmos = c.cosmos.as_ref().unwrap();
        assert_eq!(cosmos.database, "chat");
        assert_eq!(cosmos.sessions_container, "chat_sessions");
        assert_eq!(cosmos.legacy_container, "chat_messages");
        assert_eq!(cosmos.auth_kind(), "account key (emulator)");
        let printed = format!("{c:?}");
        assert!(!printed.contains("c2VjcmV0LWtleQ"), "{printed}");
    }

    #[test]
    fn the_functions_port_beats_flags_and_port() {
        let c = config(
            &[("FUNCTIONS_CUSTOMHANDLER_PORT", "40001"), ("PORT", "9")],
            Overrides {
                port: Some(8),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(c.listen, "127.0.0.1:40001".parse().unwrap());
        let c = config(
            &[("PORT", "9000")],
            Overrides {
                port: Some(8000),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(c.listen.port(), 8000);
        let c = config(&[("PORT", "9000")], Overrides::default()).unwrap();
        assert_eq!(c.listen.port(), 9000);
    }

    #[test]
    fn bad_values_are_errors_that_name_the_setting() {
        for (k, v) in [
            ("AUTH_MODE", "magic"),
            ("PORT", "http"),
            ("MAX_BODY_BYTES", "1MB"),
            ("SQLITE_SYNCHRONOUS", "off"),
            ("SQLITE_WAL_MAX_BYTES", "16MB"),
            ("SQLITE_WAL_MAX_BYTES", "-1"),
            ("MIGRATION_SWEEP_ENABLED", "maybe"),
            ("RETENTION_ARCHIVE_AFTER_DAYS", "0"),
            ("RETENTION_DELETE_AFTER_DAYS", "30d"),
            ("RETENTION_SWEEP_ENABLED", "sometimes"),
            ("CORS_ALLOWED_ORIGINS", "http://localhost:5173/"),
        ] {
            let err = config(&[(k, v)], Overrides::default()).unwrap_err();
            assert!(format!("{err:#}").contains(k), "{k}: {err:#}");
        }
        let c = config(&[("AUTH_MODE", "EasyAuth")], Overrides::default()).unwrap();
        assert_eq!(c.auth_mode, AuthMode::EasyAuth);
    }

    #[test]
    fn settings_that_can_never_work_are_refused_naming_setting_and_value() {
        let account = ("COSMOS_ENDPOINT", "https://acct.documents.azure.com:443/");
        for (vars, named) in [
            (vec![("MAX_BODY_BYTES", "0")], "MAX_BODY_BYTES=0"),
            (
                vec![("COSMOS_SEAL_MAX_BYTES", "1000")],
                "COSMOS_SEAL_MAX_BYTES=1000",
            ),
            (
                vec![("COSMOS_SEAL_MAX_BYTES", "2000000")],
                "COSMOS_SEAL_MAX_BYTES=2000000",
            ),
            (
                vec![("COSMOS_SEAL_MAX_MESSAGES", "1")],
                "COSMOS_SEAL_MAX_MESSAGES=1",
            ),
            (
                vec![("COSMOS_ENDPOINT", "acct")],
                "COSMOS_ENDPOINT=\"acct\"",
            ),
            (
                vec![("COSMOS_ENDPOINT", "http://acct.documents.azure.com/")],
                "plain http://",
            ),
            (
                vec![("COSMOS_ENDPOINT", "ftp://acct/")],
                "COSMOS_ENDPOINT=\"ftp://acct/\"",
            ),
            (
                vec![account, ("AZURE_CLIENT_ID", "me")],
                "AZURE_CLIENT_ID=\"me\"",
            ),
            (
                vec![account, ("COSMOS_DATABASE", "a#b")],
                "COSMOS_DATABASE=\"a#b\"",
            ),
            (
                vec![account, ("COSMOS_SESSIONS_CONTAINER", "a?")],
                "COSMOS_SESSIONS_CONTAINER",
            ),
            (
                vec![account, ("COSMOS_LEGACY_PARTITION_KEY", "id")],
                "COSMOS_LEGACY_PARTITION_KEY",
            ),
        ] {
            let err = format!("{:#}", config(&vars, Overrides::default()).unwrap_err());
            assert!(err.contains(named), "{vars:?}: {err}");
        }
        // A bad key is named, its value never shown.
        let err = config(&[account, ("COSMOS_KEY", "s3cret!")], Overrides::default()).unwrap_err();
        let err = format!("{err:#}");
        assert!(
            err.contains("COSMOS_KEY") && !err.contains("s3cret!"),
            "{err}"
        );
    }

    #[test]
    fn emulators_may_use_plain_http() {
        for (endpoint, emulator_host) in [
            ("http://localhost:8081/", None),
            ("http://127.0.0.1:8081/", None),
            ("http://[::1]:8081/", None),
            ("http://cosmos-emulator:8081/", Some("cosmos-emulator")),
        ] {
            let mut vars = vec![("COSMOS_ENDPOINT", endpoint)];
            vars.extend(emulator_host.map(|h| ("AZURE_COSMOS_EMULATOR_HOST", h)));
            let c = config(&vars, Overrides::default()).unwrap();
            assert_eq!(c.cosmos.unwrap().endpoint, endpoint);
        }
        let c = config(
            &[
                ("COSMOS_ENDPOINT", "https://acct.documents.azure.com:443/"),
                ("AZURE_CLIENT_ID", "6f1c1b7e-2f4a-4d7e-9a53-1c2b3d4e5f60"),
            ],
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.cosmos.unwrap().auth_kind(), "managed identity");
    }

    /// The settings this module reads, with `lookup` recording each name it
    /// is asked for: once for the local defaults, once under the Functions
    /// host with Cosmos DB and every exporter (which reads the `COSMOS_*`
    /// names and the exporters' own, and skips `PORT`/`HOST`).
    fn names_read() -> std::collections::BTreeSet<String> {
        use std::{cell::RefCell, collections::BTreeSet};
        let asked = RefCell::new(BTreeSet::new());
        for set in [
            &[][..],
            &[
                ("FUNCTIONS_CUSTOMHANDLER_PORT", "40001"),
                ("COSMOS_ENDPOINT", "https://acct.documents.azure.com:443/"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
                ("OTEL_TRACES_SAMPLER", "traceidratio"),
                (
                    "APPLICATIONINSIGHTS_CONNECTION_STRING",
                    "InstrumentationKey=00000000-0000-0000-0000-000000000000",
                ),
            ][..],
        ] {
            Config::from_lookup(
                |name| {
                    asked.borrow_mut().insert(name.to_owned());
                    set.iter()
                        .find(|(k, _)| *k == name)
                        .map(|(_, v)| (*v).to_owned())
                },
                Overrides::default(),
            )
            .unwrap();
        }
        asked.into_inner()
    }

    /// Settings the app reads outside this module: the log filter (read by
    /// the logger) and the platform's managed-identity endpoint (read when
    /// choosing a Cosmos DB credential).
    const READ_ELSEWHERE: &[&str] = &["RUST_LOG", "IDENTITY_ENDPOINT"];

    #[test]
    fn the_settings_table_lists_exactly_what_the_app_reads() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/configuration.md");
        let text = std::fs::read_to_string(path).unwrap();
        let mut rows = text.lines().filter(|l| l.starts_with('|'));
        let header: Vec<&str> = rows.next().unwrap().split('|').map(str::trim).collect();
        let read_by = header
            .iter()
            .position(|h| h.starts_with("read by"))
            .expect("a \"read by\" column");
        let mut documented = std::collections::BTreeSet::new();
        let mut by_app = std::collections::BTreeSet::new();
        for row in rows {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let Some(name) = cells[1].strip_prefix('`').and_then(|c| c.strip_suffix('`')) else {
                continue;
            };
            assert!(
                documented.insert(name.to_owned()),
                "{name} is listed twice in docs/configuration.md"
            );
            if cells[read_by].starts_with("app") {
                by_app.insert(name.to_owned());
            }
        }
        let mut read = names_read();
        read.extend(READ_ELSEWHERE.iter().map(|s| (*s).to_owned()));
        let undocumented: Vec<_> = read.difference(&by_app).collect();
        assert!(
            undocumented.is_empty(),
            "read by the app but not in docs/configuration.md as read by the app: {undocumented:?}"
        );
        let unread: Vec<_> = by_app.difference(&read).collect();
        assert!(
            unread.is_empty(),
            "documented as read by the app, but the app never reads: {unread:?}"
        );
    }
}
