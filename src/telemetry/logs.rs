//! Log lines: one per record, as text or JSON (`LOG_FORMAT`), each with the
//! trace and span ids of the request it belongs to; and, when exporting,
//! the same records to the log exporters.
//!
//! Under the Functions host the lines go where their level survives. The
//! host reads our stdout as information, and grades each stderr line by
//! its words: "warn" anywhere makes a warning, else "error", "fail" or
//! "severe" an error, else information. So information and below go to
//! stdout (an INFO line saying "failed" stays information), warnings to
//! stderr (they say WARN), and errors to stderr with any "warn" in their
//! text written "wa-rn", so that they stay errors. Elsewhere every line
//! goes to stderr, keeping stdout for what a command prints.

use std::{borrow::Cow, fmt, io};

use opentelemetry_sdk::logs::SdkLoggerProvider;
use tracing::{Event, Level, Subscriber, field::Field};
use tracing_subscriber::{
    EnvFilter, Layer as _,
    filter::Targets,
    fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter, format::Writer},
    layer::SubscriberExt as _,
    registry::LookupSpan,
    util::SubscriberInitExt as _,
};

use super::settings::{LogFormat, TelemetrySettings};

/// Installs the process's log output, and the bridge to `logger` when
/// exporting (our own records at INFO and above; the telemetry's own
/// records stay local, so an export failure cannot feed itself).
pub(super) fn install(
    settings: &TelemetrySettings,
    default_filter: &str,
    logger: Option<&SdkLoggerProvider>,
) -> anyhow::Result<()> {
    use std::io::IsTerminal as _;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let streams = Streams {
        by_level: settings.under_functions_host,
    };
    let ansi = !settings.under_functions_host
        && settings.log_format == LogFormat::Text
        && io::stderr().is_terminal();
    let lines = tracing_subscriber::fmt::layer()
        .event_format(Line {
            format: settings.log_format,
            ansi,
        })
        .with_writer(streams)
        .with_filter(filter);
    let bridge = logger.map(|provider| {
        opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(provider)
            .with_filter(
                Targets::new()
                    .with_target(
                        "chat_sessions::telemetry",
                        tracing::level_filters::LevelFilter::OFF,
                    )
                    .with_target("chat_sessions", Level::INFO),
            )
    });
    tracing_subscriber::registry()
        .with(lines)
        .with(bridge)
        .try_init()
        .map_err(|e| anyhow::anyhow!("installing the logger: {e}"))
}

/// Where a line goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Stdout,
    Stderr,
    /// Stderr, with "warn" rewritten so that the host keeps it an error.
    StderrAsError,
}

/// Which stream a record of `level` goes to (see the module's comment).
fn route(level: Level, by_level: bool) -> Stream {
    match (by_level, level) {
        (false, _) => Stream::Stderr,
        (true, Level::ERROR) => Stream::StderrAsError,
        (true, Level::WARN) => Stream::Stderr,
        (true, _) => Stream::Stdout,
    }
}

/// An error line without the word the host would take for a warning.
fn as_error(line: &str) -> Cow<'_, str> {
    let lower = line.to_ascii_lowercase();
    if !lower.contains("warn") {
        return Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len() + 4);
    let mut rest = line;
    let mut rest_lower = lower.as_str();
    while let Some(at) = rest_lower.find("warn") {
        out.push_str(&rest[..at]);
        out.push_str(&rest[at..at + 2]);
        out.push('-');
        out.push_str(&rest[at + 2..at + 4]);
        rest = &rest[at + 4..];
        rest_lower = &rest_lower[at + 4..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

#[derive(Debug, Clone, Copy)]
struct Streams {
    by_level: bool,
}

impl<'a> MakeWriter<'a> for Streams {
    type Writer = Output;

    fn make_writer(&'a self) -> Output {
        Output(Stream::Stderr)
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Output {
        Output(route(*meta.level(), self.by_level))
    }
}

/// One line's writer. The formatter writes a whole line in one call.
struct Output(Stream);

impl io::Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.0 {
            Stream::Stdout => io::stdout().lock().write_all(buf)?,
            Stream::Stderr => io::stderr().lock().write_all(buf)?,
            Stream::StderrAsError => {
                let line = String::from_utf8_lossy(buf);
                io::stderr().lock().write_all(as_error(&line).as_bytes())?;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.0 {
            Stream::Stdout => io::stdout().flush(),
            _ => io::stderr().flush(),
        }
    }
}

/// Formats a record as one line of text or JSON.
struct Line {
    format: LogFormat,
    ansi: bool,
}

impl<S, N> FormatEvent<S, N> for Line
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let record = Record {
            timestamp: chrono::Utc::now()
                .format("%Y-%m-%dT%H:%M:%S%.6fZ")
                .to_string(),
            level: *event.metadata().level(),
            target: event.metadata().target(),
            fields,
            ids: super::spans::current_ids(),
        };
        let line = match self.format {
            LogFormat::Text => record.text(self.ansi),
            LogFormat::Json => record.json(),
        };
        writeln!(writer, "{line}")
    }
}

/// A record's message and other fields, as written.
#[derive(Default)]
struct Fields {
    message: String,
    others: Vec<(&'static str, serde_json::Value)>,
}

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else {
            self.others
                .push((field.name(), serde_json::Value::String(text)));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.others.push((field.name(), value.into()));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.others.push((field.name(), value.into()));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.others.push((field.name(), value.into()));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.others.push((field.name(), value.into()));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.others.push((field.name(), value.into()));
    }
}

struct Record<'a> {
    timestamp: String,
    level: Level,
    target: &'a str,
    fields: Fields,
    ids: Option<(String, String)>,
}

impl Record<'_> {
    /// `2026-12-07T01:02:03.123456Z  INFO target: message k=v trace_id=… span_id=…`,
    /// on one line whatever the message holds.
    fn text(&self, ansi: bool) -> String {
        use std::fmt::Write as _;
        let level = match (ansi, self.level) {
            (false, level) => format!("{level:>5}"),
            (true, Level::ERROR) => format!("\x1b[31m{:>5}\x1b[0m", self.level),
            (true, Level::WARN) => format!("\x1b[33m{:>5}\x1b[0m", self.level),
            (true, level) => format!("\x1b[32m{level:>5}\x1b[0m"),
        };
        let mut line = format!(
            "{} {level} {}: {}",
            self.timestamp,
            self.target,
            one_line(&self.fields.message)
        );
        for (name, value) in &self.fields.others {
            match value {
                serde_json::Value::String(s) => {
                    let _ = write!(line, " {name}={}", one_line(s));
                }
                other => {
                    let _ = write!(line, " {name}={other}");
                }
            }
        }
        if let Some((trace, span)) = &self.ids {
            let _ = write!(line, " trace_id={trace} span_id={span}");
        }
        line
    }

    /// `{"timestamp":…,"level":…,"target":…,"message":…,<fields>,"trace_id":…,"span_id":…}`.
    fn json(&self) -> String {
        let mut object = serde_json::Map::new();
        object.insert("timestamp".into(), self.timestamp.clone().into());
        object.insert("level".into(), self.level.as_str().into());
        object.insert("target".into(), self.target.into());
        object.insert("message".into(), self.fields.message.clone().into());
        for (name, value) in &self.fields.others {
            object
                .entry(name.to_string())
                .or_insert_with(|| value.clone());
        }
        if let Some((trace, span)) = &self.ids {
            object.insert("trace_id".into(), trace.clone().into());
            object.insert("span_id".into(), span.clone().into());
        }
        serde_json::Value::Object(object).to_string()
    }
}

/// Line breaks written as `\n`, so that one record stays one line (the host
/// grades every line on its own).
fn one_line(text: &str) -> Cow<'_, str> {
    if text.contains(['\n', '\r']) {
        Cow::Owned(text.replace('\r', "\\r").replace('\n', "\\n"))
    } else {
        Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How the Functions host grades a line of ours (its
    /// `WorkerProcess.ParseErrorMessageAndLog` for stderr; stdout is always
    /// information).
    fn host_grade(stream: Stream, line: &str) -> Level {
        let lower = line.to_ascii_lowercase();
        match stream {
            Stream::Stdout => Level::INFO,
            _ if lower.contains("warn") => Level::WARN,
            _ if ["error", "fail", "severe"]
                .iter()
                .any(|w| lower.contains(w)) =>
            {
                Level::ERROR
            }
            _ => Level::INFO,
        }
    }

    fn line(level: Level, message: &str, format: LogFormat) -> String {
        let record = Record {
            timestamp: "2026-12-07T00:00:00.000000Z".into(),
            level,
            target: "chat_sessions::x",
            fields: Fields {
                message: message.into(),
                others: vec![("reason", "the upstream failed".into())],
            },
            ids: None,
        };
        match format {
            LogFormat::Text => record.text(false),
            LogFormat::Json => record.json(),
        }
    }

    #[test]
    fn under_the_host_every_line_keeps_the_level_it_was_meant_to_have() {
        let messages = [
            "all good",
            "retrying after a failed attempt",
            "an error was answered to the client",
            "a warning about a warn-ing",
            "Warned before, failed now: ERROR",
        ];
        for format in [LogFormat::Text, LogFormat::Json] {
            for level in [
                Level::TRACE,
                Level::DEBUG,
                Level::INFO,
                Level::WARN,
                Level::ERROR,
            ] {
                for message in messages {
                    let stream = route(level, true);
                    let written = line(level, message, format);
                    let written = match stream {
                        Stream::StderrAsError => as_error(&written).into_owned(),
                        _ => written,
                    };
                    // The host has no level below information.
                    let meant = match level {
                        Level::WARN | Level::ERROR => level,
                        _ => Level::INFO,
                    };
                    assert_eq!(
                        host_grade(stream, &written),
                        meant,
                        "{format:?} {level} {written}"
                    );
                }
            }
        }
    }

    #[test]
    fn away_from_the_host_every_line_goes_to_stderr() {
        for level in [Level::INFO, Level::ERROR] {
            assert_eq!(route(level, false), Stream::Stderr);
        }
    }

    #[test]
    fn a_record_is_one_line_with_its_fields_and_ids() {
        let record = Record {
            timestamp: "2026-12-07T00:00:00.000000Z".into(),
            level: Level::INFO,
            target: "chat_sessions::x",
            fields: Fields {
                message: "two\nlines".into(),
                others: vec![("n", 3.into())],
            },
            ids: Some(("ab".repeat(16), "cd".repeat(8))),
        };
        let text = record.text(false);
        assert_eq!(
            text,
            format!(
                "2026-12-07T00:00:00.000000Z  INFO chat_sessions::x: two\\nlines n=3 trace_id={} span_id={}",
                "ab".repeat(16),
                "cd".repeat(8)
            )
        );
        let json: serde_json::Value = serde_json::from_str(&record.json()).unwrap();
        assert_eq!(json["message"], "two\nlines");
        assert_eq!(json["level"], "INFO");
        assert_eq!(json["n"], 3);
        assert_eq!(json["trace_id"], "ab".repeat(16));
        assert_eq!(json["span_id"], "cd".repeat(8));
    }

    #[test]
    fn an_error_line_loses_only_the_word_warn() {
        assert_eq!(as_error("ERROR x: fine"), "ERROR x: fine");
        assert_eq!(
            as_error("ERROR x: WARNing, warned"),
            "ERROR x: WA-RNing, wa-rned"
        );
    }
}
