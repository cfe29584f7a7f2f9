//! What the service tells its operators: traces, metrics and logs, in
//! OpenTelemetry's terms, exported to Application Insights and/or any OTLP
//! backend, and log lines on stdout/stderr; and, to every caller, what a
//! request cost (`Server-Timing`). The names of everything emitted are in
//! docs/observability.md.
//!
//! This module is the bottom of the house: it knows nothing of the API,
//! the stores or the Functions host. They report to it:
//! - [`spans`]: server spans for requests and invocations, backdated client
//!   spans for the store's own requests;
//! - [`cost`]: the store time and request units of the request in progress;
//! - [`instruments`]: the metrics.
//!
//! With no exporter configured, no span or metric is built: each of those
//! calls costs one check of a global. Exports never block a request: spans
//! and log records wait in bounded queues drained by threads of their own
//! (beyond the bound they are dropped and counted), and each export has a
//! deadline.

use std::time::Duration;

mod client;
pub mod cost;
mod exporters;
pub mod instruments;
mod logs;
mod otlp;
mod queue;
pub mod settings;
pub mod spans;

pub use settings::{LogFormat, TelemetrySettings};

/// The running telemetry of the process. Keep it for the life of the
/// process; [`Telemetry::shutdown`] exports what is still queued.
pub struct Telemetry {
    exporting: Option<exporters::Pipelines>,
}

impl Telemetry {
    /// Installs the log output (and the exporters, when configured) for the
    /// whole process. `default_filter` is the log filter when `RUST_LOG` is
    /// unset. Must run outside the async runtime, before anything logs.
    pub fn start(settings: &TelemetrySettings, default_filter: &str) -> anyhow::Result<Self> {
        let exporting = if settings.exports() {
            Some(exporters::Pipelines::start(settings)?)
        } else {
            None
        };
        logs::install(
            settings,
            default_filter,
            exporting.as_ref().map(|p| &p.logger),
        )?;
        if let Some(pipelines) = &exporting {
            spans::install(pipelines.tracer());
            instruments::install(&pipelines.meter());
            tracing::info!(
                destinations = %pipelines.destinations(),
                "exporting traces, metrics and logs"
            );
        }
        Ok(Self { exporting })
    }

    /// Exports what is queued, waiting at most `within`; for the end of a
    /// drain, when the process is about to stop.
    pub fn flush(&self, within: Duration) {
        if let Some(pipelines) = &self.exporting {
            pipelines.flush(within);
        }
    }

    /// Exports what is queued (at most `within`) and stops the exporters.
    pub fn shutdown(self, within: Duration) {
        if let Some(pipelines) = self.exporting {
            pipelines.shutdown(within);
        }
    }
}
