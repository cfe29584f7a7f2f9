//! The telemetry settings: the standard names of OpenTelemetry
//! (`OTEL_*`) and Application Insights (`APPLICATIONINSIGHTS_*`), plus our
//! own `LOG_FORMAT` and `SERVER_TIMING`. Every name is documented in
//! docs/configuration.md.

use std::{fmt, time::Duration};

use anyhow::{Context as _, bail};

use crate::settings::Settings;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One human-readable line per record.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Which traces are kept (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// Every trace.
    AlwaysOn,
    /// None.
    AlwaysOff,
    /// This share of traces, by trace id.
    Ratio(f64),
    /// As the caller's `traceparent` says, else the inner rule.
    ParentBased(ParentlessRule),
}

/// What a [`Sampling::ParentBased`] sampler does for a trace that starts here.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParentlessRule {
    /// Keep it.
    AlwaysOn,
    /// Drop it.
    AlwaysOff,
    /// Keep this share.
    Ratio(f64),
}

/// The OTLP wire format (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// `http/protobuf` (the default).
    HttpProtobuf,
    /// `http/json`.
    HttpJson,
}

/// Where OTLP goes. `headers` may hold credentials: `Debug` leaves them out.
#[derive(Clone)]
pub struct Otlp {
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: the base URL; `/v1/traces`,
    /// `/v1/metrics` and `/v1/logs` are added to it.
    pub endpoint: String,
    /// The wire format.
    pub protocol: OtlpProtocol,
    /// `OTEL_EXPORTER_OTLP_HEADERS`: sent with every export.
    pub headers: Vec<(String, String)>,
}

impl fmt::Debug for Otlp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Otlp")
            .field("endpoint", &self.endpoint)
            .field("protocol", &self.protocol)
            .field("headers", &self.headers.len())
            .finish()
    }
}

/// Where Application Insights telemetry goes. The connection string holds
/// the instrumentation key: `Debug` shows only the ingestion endpoint.
#[derive(Clone)]
pub struct AppInsights {
    /// `APPLICATIONINSIGHTS_CONNECTION_STRING`.
    pub connection_string: String,
    /// `APPLICATIONINSIGHTS_AUTHENTICATION_STRING` says `Authorization=AAD`:
    /// ingestion takes a Microsoft Entra token of the app's managed
    /// identity (this user-assigned one, by client id, when it names one).
    pub entra: Option<EntraIdentity>,
    /// The `host:port` of an `IngestionEndpoint=http://…` on loopback (a
    /// local ingestion endpoint): kept plain HTTP.
    pub loopback_http: Option<String>,
}

/// The managed identity that signs telemetry in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntraIdentity {
    /// The app's system-assigned identity.
    SystemAssigned,
    /// A user-assigned identity, by client id.
    UserAssigned(String),
}

impl fmt::Debug for AppInsights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppInsights")
            .field("entra", &self.entra)
            .finish_non_exhaustive()
    }
}

/// Everything the telemetry needs to start.
#[derive(Debug, Clone)]
pub struct TelemetrySettings {
    /// `LOG_FORMAT`: `text` (default) or `json`.
    pub log_format: LogFormat,
    /// Whether the Functions host runs us (`FUNCTIONS_CUSTOMHANDLER_PORT` is
    /// set): it grades stderr lines by their words and stdout lines as
    /// information, so log lines are sent where their level survives.
    pub under_functions_host: bool,
    /// `SERVER_TIMING`: answers carry a `Server-Timing` header (default on).
    pub server_timing: bool,
    /// `OTEL_SERVICE_NAME` (default `chat-sessions`).
    pub service_name: String,
    /// `OTEL_RESOURCE_ATTRIBUTES`: more attributes of this process.
    pub resource_attributes: Vec<(String, String)>,
    /// Which traces are kept.
    pub sampling: Sampling,
    /// OTLP, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
    pub otlp: Option<Otlp>,
    /// Application Insights, when its connection string is set.
    pub app_insights: Option<AppInsights>,
    /// `OTEL_EXPORTER_OTLP_TIMEOUT`: the longest one export may take
    /// (default 10 s), for every exporter.
    pub export_timeout: Duration,
    /// `OTEL_METRIC_EXPORT_INTERVAL` (default 60 s).
    pub metric_interval: Duration,
    /// `OTEL_BSP_MAX_QUEUE_SIZE`: spans (and, separately, log records)
    /// waiting for export at most; beyond it they are dropped and counted.
    pub max_queue: usize,
    /// `OTEL_BSP_SCHEDULE_DELAY`: how long a span waits for its batch at most.
    pub schedule_delay: Duration,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            log_format: LogFormat::Text,
            under_functions_host: false,
            server_timing: true,
            service_name: "chat-sessions".into(),
            resource_attributes: Vec::new(),
            sampling: Sampling::ParentBased(ParentlessRule::AlwaysOn),
            otlp: None,
            app_insights: None,
            export_timeout: Duration::from_secs(10),
            metric_interval: Duration::from_secs(60),
            max_queue: 2048,
            schedule_delay: Duration::from_secs(5),
        }
    }
}

impl TelemetrySettings {
    /// Reads the process environment.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup`. `OTEL_SDK_DISABLED=true` turns
    /// every exporter off.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let s = Settings::new(lookup);
        let defaults = Self::default();
        let log_format = match s.choice("LOG_FORMAT", &["text", "json"])? {
            Some("json") => LogFormat::Json,
            _ => LogFormat::Text,
        };
        let disabled = s.flag("OTEL_SDK_DISABLED", false)?;
        let mut settings = Self {
            log_format,
            under_functions_host: s.is_set("FUNCTIONS_CUSTOMHANDLER_PORT"),
            server_timing: s.flag("SERVER_TIMING", true)?,
            service_name: s.get("OTEL_SERVICE_NAME").unwrap_or(defaults.service_name),
            resource_attributes: s
                .get("OTEL_RESOURCE_ATTRIBUTES")
                .map(|v| resource_attributes(&v))
                .transpose()?
                .unwrap_or_default(),
            sampling: sampling(&s)?,
            otlp: otlp(&s)?,
            app_insights: app_insights(&s)?,
            export_timeout: s
                .millis("OTEL_EXPORTER_OTLP_TIMEOUT", Duration::from_secs(300))?
                .unwrap_or(defaults.export_timeout),
            metric_interval: s
                .millis("OTEL_METRIC_EXPORT_INTERVAL", Duration::from_secs(3600))?
                .unwrap_or(defaults.metric_interval),
            max_queue: match s.parse::<usize>("OTEL_BSP_MAX_QUEUE_SIZE", "a number")? {
                Some(0) => bail!("OTEL_BSP_MAX_QUEUE_SIZE must be positive"),
                Some(n) => n,
                None => defaults.max_queue,
            },
            schedule_delay: s
                .millis("OTEL_BSP_SCHEDULE_DELAY", Duration::from_secs(300))?
                .unwrap_or(defaults.schedule_delay),
        };
        if disabled {
            settings.otlp = None;
            settings.app_insights = None;
        }
        Ok(settings)
    }

    /// Whether anything is exported (else telemetry costs nothing).
    pub fn exports(&self) -> bool {
        self.otlp.is_some() || self.app_insights.is_some()
    }
}

fn sampling(s: &Settings<'_>) -> anyhow::Result<Sampling> {
    let ratio = || -> anyhow::Result<f64> {
        match s.parse::<f64>("OTEL_TRACES_SAMPLER_ARG", "a ratio from 0 to 1")? {
            None => Ok(1.0),
            Some(r) if (0.0..=1.0).contains(&r) => Ok(r),
            Some(r) => bail!("OTEL_TRACES_SAMPLER_ARG={r} is out of range: it must be from 0 to 1"),
        }
    };
    let choices = [
        "always_on",
        "always_off",
        "traceidratio",
        "parentbased_always_on",
        "parentbased_always_off",
        "parentbased_traceidratio",
    ];
    Ok(match s.choice("OTEL_TRACES_SAMPLER", &choices)? {
        Some("always_on") => Sampling::AlwaysOn,
        Some("always_off") => Sampling::AlwaysOff,
        Some("traceidratio") => Sampling::Ratio(ratio()?),
        Some("parentbased_always_off") => Sampling::ParentBased(ParentlessRule::AlwaysOff),
        Some("parentbased_traceidratio") => Sampling::ParentBased(ParentlessRule::Ratio(ratio()?)),
        _ => Sampling::ParentBased(ParentlessRule::AlwaysOn),
    })
}

fn otlp(s: &Settings<'_>) -> anyhow::Result<Option<Otlp>> {
    let Some(endpoint) = s.get("OTEL_EXPORTER_OTLP_ENDPOINT") else {
        return Ok(None);
    };
    let url = reqwest::Url::parse(&endpoint)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .with_context(|| {
            format!("OTEL_EXPORTER_OTLP_ENDPOINT={endpoint:?} is not an http(s) URL")
        })?;
    let protocol = match s.choice(
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        &["http/protobuf", "http/json", "grpc"],
    )? {
        Some("grpc") => bail!(
            "OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not supported: use http/protobuf (the default) \
             or http/json"
        ),
        Some("http/json") => OtlpProtocol::HttpJson,
        _ => OtlpProtocol::HttpProtobuf,
    };
    let headers = match s.get("OTEL_EXPORTER_OTLP_HEADERS") {
        None => Vec::new(),
        // Never echo the value: it usually holds a key.
        Some(v) => key_values(&v).map_err(|_| {
            anyhow::anyhow!(
                "OTEL_EXPORTER_OTLP_HEADERS is not a list of name=value pairs; its value is not \
                 shown"
            )
        })?,
    };
    Ok(Some(Otlp {
        endpoint: url.as_str().trim_end_matches('/').to_owned(),
        protocol,
        headers,
    }))
}

fn app_insights(s: &Settings<'_>) -> anyhow::Result<Option<AppInsights>> {
    let Some(connection_string) = s.get("APPLICATIONINSIGHTS_CONNECTION_STRING") else {
        return Ok(None);
    };
    // Never echo the value: it holds the instrumentation key.
    let fields = connection_fields(&connection_string);
    if !fields
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("InstrumentationKey") && !v.is_empty())
    {
        bail!(
            "APPLICATIONINSIGHTS_CONNECTION_STRING is not a connection string (no \
             InstrumentationKey); its value is not shown"
        );
    }
    let entra = match s.get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING") {
        None => None,
        Some(auth) => {
            let fields = connection_fields(&auth);
            let field = |name: &str| {
                fields
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.as_str())
            };
            if !field("Authorization").is_some_and(|a| a.eq_ignore_ascii_case("AAD")) {
                bail!(
                    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING={auth:?} must say \
                     Authorization=AAD (optionally with ClientId=<client id>)"
                );
            }
            Some(match field("ClientId") {
                None | Some("") => EntraIdentity::SystemAssigned,
                Some(id) if uuid::Uuid::try_parse(id).is_ok() => {
                    EntraIdentity::UserAssigned(id.to_owned())
                }
                Some(id) => bail!(
                    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING names ClientId={id:?}, which is \
                     not a client id (a GUID)"
                ),
            })
        }
    };
    let loopback_http = fields
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("IngestionEndpoint"))
        .and_then(|(_, v)| reqwest::Url::parse(v).ok())
        .filter(|url| {
            url.scheme() == "http"
                && matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"))
        })
        .map(|url| url[url::Position::BeforeHost..url::Position::AfterPort].to_owned());
    Ok(Some(AppInsights {
        connection_string,
        entra,
        loopback_http,
    }))
}

/// `Key=Value;Key=Value` (Azure connection strings).
fn connection_fields(text: &str) -> Vec<(String, String)> {
    text.split(';')
        .filter_map(|part| part.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// `key=value,key=value` with percent-encoded values (the W3C Baggage form
/// the OpenTelemetry settings use).
fn key_values(text: &str) -> Result<Vec<(String, String)>, ()> {
    text.split(',')
        .filter(|part| !part.trim().is_empty())
        .map(|part| {
            let (k, v) = part.split_once('=').ok_or(())?;
            let k = k.trim();
            if k.is_empty() {
                return Err(());
            }
            Ok((k.to_owned(), percent_decode(v.trim())?))
        })
        .collect()
}

fn resource_attributes(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    key_values(text).map_err(|_| {
        anyhow::anyhow!("OTEL_RESOURCE_ATTRIBUTES={text:?} is not a list of key=value pairs")
    })
}

fn percent_decode(text: &str) -> Result<String, ()> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3).ok_or(())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| ())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(vars: &[(&str, &str)]) -> anyhow::Result<TelemetrySettings> {
        TelemetrySettings::from_lookup(&|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn nothing_set_exports_nothing() {
        let s = read(&[]).unwrap();
        assert!(!s.exports());
        assert!(s.server_timing);
        assert_eq!(s.log_format, LogFormat::Text);
        assert_eq!(s.service_name, "chat-sessions");
    }

    #[test]
    fn the_standard_otlp_settings_are_read() {
        let s = read(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=s%3Dcret,x=1"),
            ("OTEL_SERVICE_NAME", "chat-eu"),
            ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ])
        .unwrap();
        let otlp = s.otlp.unwrap();
        assert_eq!(otlp.endpoint, "http://127.0.0.1:4318");
        assert_eq!(otlp.protocol, OtlpProtocol::HttpJson);
        assert_eq!(otlp.headers[0], ("api-key".into(), "s=cret".into()));
        assert!(!format!("{otlp:?}").contains("s=cret"));
        assert_eq!(s.service_name, "chat-eu");
        assert_eq!(
            s.resource_attributes,
            [("deployment.environment".into(), "prod".into())]
        );
        assert_eq!(
            s.sampling,
            Sampling::ParentBased(ParentlessRule::Ratio(0.25))
        );
    }

    #[test]
    fn application_insights_with_entra_ingestion() {
        let conn =
            "InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=https://x/";
        let s = read(&[
            ("APPLICATIONINSIGHTS_CONNECTION_STRING", conn),
            (
                "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
                "ClientId=6f1c1b7e-2f4a-4d7e-9a53-1c2b3d4e5f60;Authorization=AAD",
            ),
        ])
        .unwrap();
        let ai = s.app_insights.unwrap();
        assert_eq!(
            ai.entra,
            Some(EntraIdentity::UserAssigned(
                "6f1c1b7e-2f4a-4d7e-9a53-1c2b3d4e5f60".into()
            ))
        );
        assert!(!format!("{ai:?}").contains("00000000-0000-0000-0000-000000000001"));
    }

    #[test]
    fn settings_that_can_never_work_are_refused_without_their_secrets() {
        for (vars, expected) in [
            (
                vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318")],
                "not an http(s) URL",
            ),
            (
                vec![
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://h:4317"),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ],
                "grpc is not supported",
            ),
            (
                vec![("APPLICATIONINSIGHTS_CONNECTION_STRING", "secret-ish")],
                "its value is not shown",
            ),
            (
                vec![
                    ("OTEL_TRACES_SAMPLER_ARG", "2"),
                    ("OTEL_TRACES_SAMPLER", "traceidratio"),
                ],
                "out of range",
            ),
            (
                vec![("LOG_FORMAT", "xml")],
                "LOG_FORMAT must be one of text, json",
            ),
        ] {
            let e = format!("{:#}", read(&vars).unwrap_err());
            assert!(e.contains(expected), "{e}");
            assert!(!e.contains("secret-ish"), "{e}");
        }
    }

    #[test]
    fn the_sdk_can_be_switched_off() {
        let s = read(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_SDK_DISABLED", "true"),
        ])
        .unwrap();
        assert!(!s.exports());
    }
}
