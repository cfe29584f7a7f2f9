//! The export pipelines: a tracer, a meter and a logger provider, each
//! feeding every configured destination (OTLP, Application Insights).
//! Spans and log records go through this crate's bounded queues
//! ([`super::queue`]); metrics through the SDK's periodic reader, whose
//! memory is bounded by its aggregation.

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use opentelemetry::{KeyValue, trace::TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::{
    Resource,
    error::OTelSdkResult,
    logs::{LogBatch, LogExporter, LogProcessor, SdkLogRecord, SdkLoggerProvider},
    metrics::{PeriodicReader, SdkMeterProvider, exporter::PushMetricExporter},
    trace::{Sampler, SdkTracer, SdkTracerProvider, SpanData, SpanExporter, SpanProcessor},
};

use super::{
    client::ExportClient,
    otlp::ProtobufSpans,
    queue::{Drain, ExportQueue, Pace},
    settings::{AppInsights, Otlp, OtlpProtocol, ParentlessRule, Sampling, TelemetrySettings},
};

/// The running pipelines.
pub(super) struct Pipelines {
    tracer: SdkTracerProvider,
    meter: SdkMeterProvider,
    /// The log records' provider (the bridge from `tracing` feeds it).
    pub(super) logger: SdkLoggerProvider,
    destinations: String,
    /// Every span and log queue, to flush them within a deadline.
    queues: Vec<Arc<dyn Drain>>,
    /// Kept alive: the exporters' HTTP requests run on it.
    _runtime: tokio::runtime::Runtime,
}

impl Pipelines {
    /// Builds every configured destination. Fails only on a setting that
    /// can never work; an unreachable destination is found at export.
    pub(super) fn start(settings: &TelemetrySettings) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("telemetry-io")
            .enable_all()
            .build()
            .context("starting the telemetry runtime")?;
        let client = ExportClient::new(runtime.handle().clone(), settings.export_timeout)?;
        let mut builder = Builder::new(settings);
        if let Some(otlp) = &settings.otlp {
            let (spans, logs, metrics) = otlp_exporters(otlp, &client, settings.export_timeout)?;
            builder.add(
                format!("OTLP ({})", otlp.endpoint),
                spans,
                logs,
                metrics,
                &client,
            )?;
        }
        if let Some(insights) = &settings.app_insights {
            let (exporter, client) = insights_exporter(insights, &client, settings.sampling)?;
            let name = match insights.entra {
                Some(_) => "Application Insights (Entra ID)",
                None => "Application Insights",
            };
            builder.add(
                name.into(),
                exporter.clone(),
                exporter.clone(),
                exporter,
                &client,
            )?;
        }
        let meter = builder.meter.build();
        super::instruments::observe_drops(&meter, builder.queues.clone());
        Ok(Self {
            tracer: builder.tracer.build(),
            meter,
            logger: builder.logger.build(),
            destinations: builder.destinations.join(", "),
            queues: builder.queues,
            _runtime: runtime,
        })
    }

    /// The tracer spans are made with.
    pub(super) fn tracer(&self) -> SdkTracer {
        self.tracer.tracer("chat-sessions")
    }

    /// The meter instruments are made with.
    pub(super) fn meter(&self) -> opentelemetry::metrics::Meter {
        use opentelemetry::metrics::MeterProvider as _;
        self.meter.meter("chat-sessions")
    }

    /// Where telemetry goes, for the start-up log line.
    pub(super) fn destinations(&self) -> &str {
        &self.destinations
    }

    /// Exports what the queues hold, and the metrics so far, sharing
    /// `within` between them.
    pub(super) fn flush(&self, within: Duration) {
        let deadline = std::time::Instant::now() + within;
        for queue in &self.queues {
            queue.flush(deadline.saturating_duration_since(std::time::Instant::now()));
        }
        // The periodic reader's flush is bounded by its export timeout.
        let _ = self.meter.force_flush();
    }

    /// Flushes (within `within`) and stops every pipeline.
    pub(super) fn shutdown(self, within: Duration) {
        self.flush(within);
        let rest = Duration::from_millis(100);
        let _ = self.tracer.shutdown_with_timeout(rest);
        let _ = self.logger.shutdown_with_timeout(rest);
        let _ = self.meter.shutdown_with_timeout(rest);
        for queue in &self.queues {
            let (signal, lost) = queue.lost();
            if lost.total() > 0 {
                tracing::warn!(
                    signal,
                    queue_full = lost.queue_full,
                    export_failed = lost.export_failed,
                    "telemetry items were lost in this run"
                );
            }
        }
    }
}

/// The providers being built, and each destination added to them.
struct Builder {
    tracer: opentelemetry_sdk::trace::TracerProviderBuilder,
    meter: opentelemetry_sdk::metrics::MeterProviderBuilder,
    logger: opentelemetry_sdk::logs::LoggerProviderBuilder,
    resource: Resource,
    pace: Pace,
    deadline: Duration,
    metric_interval: Duration,
    destinations: Vec<String>,
    queues: Vec<Arc<dyn Drain>>,
}

impl Builder {
    fn new(settings: &TelemetrySettings) -> Self {
        let resource = resource(settings);
        Self {
            tracer: SdkTracerProvider::builder()
                .with_resource(resource.clone())
                .with_sampler(sampler(settings.sampling)),
            meter: SdkMeterProvider::builder().with_resource(resource.clone()),
            logger: SdkLoggerProvider::builder().with_resource(resource.clone()),
            resource,
            pace: Pace {
                capacity: settings.max_queue,
                delay: settings.schedule_delay,
            },
            deadline: settings.export_timeout,
            metric_interval: settings.metric_interval,
            destinations: Vec::new(),
            queues: Vec::new(),
        }
    }

    /// One destination: its spans and logs through queues of their own,
    /// its metrics through a periodic reader.
    fn add<S, L, M>(
        &mut self,
        name: String,
        spans: S,
        logs: L,
        metrics: M,
        client: &ExportClient,
    ) -> anyhow::Result<()>
    where
        S: SpanExporter + 'static,
        L: LogExporter + 'static,
        M: PushMetricExporter,
    {
        let (span_queue, log_queue) = start_queues(
            spans,
            logs,
            &self.resource,
            self.pace,
            client,
            self.deadline,
        )?;
        self.queues
            .extend([span_queue.0.clone() as Arc<dyn Drain>, log_queue.0.clone()]);
        self.tracer = std::mem::take(&mut self.tracer).with_span_processor(span_queue);
        self.logger = std::mem::take(&mut self.logger).with_log_processor(log_queue);
        let reader = PeriodicReader::builder(metrics)
            .with_interval(self.metric_interval)
            .build();
        self.meter = std::mem::take(&mut self.meter).with_reader(reader);
        self.destinations.push(name);
        Ok(())
    }
}

/// The three OTLP/HTTP exporters of `otlp`: spans encoded in place
/// ([`super::otlp`]) for protobuf, the crate's exporters for the rest.
fn otlp_exporters(
    otlp: &Otlp,
    client: &ExportClient,
    deadline: Duration,
) -> anyhow::Result<(
    OtlpSpans,
    opentelemetry_otlp::LogExporter,
    opentelemetry_otlp::MetricExporter,
)> {
    let protocol = match otlp.protocol {
        OtlpProtocol::HttpProtobuf => Protocol::HttpBinary,
        OtlpProtocol::HttpJson => Protocol::HttpJson,
    };
    let headers: std::collections::HashMap<_, _> = otlp.headers.iter().cloned().collect();
    let url = |signal: &str| format!("{}/v1/{signal}", otlp.endpoint);
    // The same settings for each signal, at its own path.
    macro_rules! exporter {
        ($exporter:ty, $signal:literal) => {
            <$exporter>::builder()
                .with_http()
                .with_http_client(client.clone())
                .with_endpoint(url($signal))
                .with_protocol(protocol)
                .with_headers(headers.clone())
                .with_timeout(deadline)
                .build()?
        };
    }
    let spans = match otlp.protocol {
        OtlpProtocol::HttpProtobuf => OtlpSpans::Protobuf(ProtobufSpans::new(
            client.clone(),
            url("traces"),
            otlp.headers.clone(),
        )),
        OtlpProtocol::HttpJson => {
            OtlpSpans::Json(exporter!(opentelemetry_otlp::SpanExporter, "traces"))
        }
    };
    Ok((
        spans,
        exporter!(opentelemetry_otlp::LogExporter, "logs"),
        exporter!(opentelemetry_otlp::MetricExporter, "metrics"),
    ))
}

/// The OTLP span exporter of the protocol configured.
#[derive(Debug)]
enum OtlpSpans {
    Protobuf(ProtobufSpans),
    Json(opentelemetry_otlp::SpanExporter),
}

impl SpanExporter for OtlpSpans {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        use futures::future::Either;
        match self {
            Self::Protobuf(exporter) => Either::Left(exporter.export(batch)),
            Self::Json(exporter) => Either::Right(exporter.export(batch)),
        }
    }

    fn set_resource(&mut self, resource: &Resource) {
        match self {
            Self::Protobuf(exporter) => exporter.set_resource(resource),
            Self::Json(exporter) => exporter.set_resource(resource),
        }
    }
}

/// The Application Insights exporter (one for all three signals), and the
/// client it sends with (signed in with Entra ID when configured).
fn insights_exporter(
    insights: &AppInsights,
    client: &ExportClient,
    sampling: Sampling,
) -> anyhow::Result<(
    opentelemetry_application_insights::Exporter<ExportClient>,
    ExportClient,
)> {
    let mut client = match &insights.entra {
        Some(identity) => client.clone().with_entra(identity)?,
        None => client.clone(),
    };
    if let Some(authority) = &insights.loopback_http {
        client = client.with_plain_http(authority.clone());
    }
    let exporter = opentelemetry_application_insights::Exporter::new_from_connection_string(
        &insights.connection_string,
        client.clone(),
    )
    .map_err(|e| {
        anyhow::anyhow!(
            "APPLICATIONINSIGHTS_CONNECTION_STRING is not a usable connection string ({e}); \
             its value is not shown"
        )
    })?
    .with_sample_rate(sample_rate(sampling))
    .with_retry_notify(|error, after| {
        tracing::debug!("an Application Insights upload failed; retrying in {after:?}: {error}");
    });
    Ok((exporter, client))
}

/// This process as every destination sees it. Built from the settings, not
/// from the SDK's own reading of the environment, so that what is read is
/// documented and tested.
fn resource(settings: &TelemetrySettings) -> Resource {
    let mut attributes = vec![
        KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
        KeyValue::new("service.instance.id", uuid::Uuid::new_v4().to_string()),
    ];
    attributes.extend(
        settings
            .resource_attributes
            .iter()
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
    );
    Resource::builder_empty()
        .with_attributes(attributes)
        .with_service_name(settings.service_name.clone())
        .build()
}

fn sampler(sampling: Sampling) -> Sampler {
    let parentless = |rule| match rule {
        ParentlessRule::AlwaysOn => Sampler::AlwaysOn,
        ParentlessRule::AlwaysOff => Sampler::AlwaysOff,
        ParentlessRule::Ratio(r) => Sampler::TraceIdRatioBased(r),
    };
    match sampling {
        Sampling::AlwaysOn => Sampler::AlwaysOn,
        Sampling::AlwaysOff => Sampler::AlwaysOff,
        Sampling::Ratio(r) => Sampler::TraceIdRatioBased(r),
        Sampling::ParentBased(rule) => Sampler::ParentBased(Box::new(parentless(rule))),
    }
}

/// The share of traces kept, which Application Insights uses to scale its
/// counts.
fn sample_rate(sampling: Sampling) -> f64 {
    match sampling {
        Sampling::AlwaysOn | Sampling::ParentBased(ParentlessRule::AlwaysOn) => 1.0,
        Sampling::AlwaysOff | Sampling::ParentBased(ParentlessRule::AlwaysOff) => 0.0,
        Sampling::Ratio(r) | Sampling::ParentBased(ParentlessRule::Ratio(r)) => r,
    }
}

/// The span and log queues of one destination.
fn start_queues<S, L>(
    mut spans: S,
    mut logs: L,
    resource: &Resource,
    pace: Pace,
    client: &ExportClient,
    deadline: Duration,
) -> anyhow::Result<(SpanQueue, LogQueue)>
where
    S: SpanExporter + 'static,
    L: LogExporter + 'static,
{
    spans.set_resource(resource);
    logs.set_resource(resource);
    let runtime = client.runtime();
    let span_queue = ExportQueue::start("spans", pace, {
        let runtime = runtime.clone();
        move |batch: Vec<SpanData>| {
            delivered(
                runtime
                    .block_on(async { tokio::time::timeout(deadline, spans.export(batch)).await }),
            )
        }
    })?;
    let log_queue = ExportQueue::start("logs", pace, move |batch: Vec<LogItem>| {
        let borrowed: Vec<(&SdkLogRecord, &opentelemetry::InstrumentationScope)> =
            batch.iter().map(|item| (&item.0, &item.1)).collect();
        delivered(runtime.block_on(async {
            tokio::time::timeout(deadline, logs.export(LogBatch::new(&borrowed))).await
        }))
    })?;
    Ok((
        SpanQueue(Arc::new(span_queue)),
        LogQueue(Arc::new(log_queue)),
    ))
}

/// Whether an export was delivered; a failure is logged at debug level
/// (the queue counts its items, and warns of them at most once a minute;
/// the telemetry's own records are not exported, so this cannot loop).
fn delivered(outcome: Result<OTelSdkResult, tokio::time::error::Elapsed>) -> bool {
    match outcome {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::debug!("a telemetry export failed: {e}");
            false
        }
        Err(_) => {
            tracing::debug!("a telemetry export timed out");
            false
        }
    }
}

type LogItem = (SdkLogRecord, opentelemetry::InstrumentationScope);

/// Feeds ended spans to a destination's queue.
#[derive(Debug)]
struct SpanQueue(Arc<ExportQueue<SpanData>>);

impl SpanProcessor for SpanQueue {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        if span.span_context.is_sampled() {
            self.0.push(span);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.flush(FLUSH_WITHIN);
        Ok(())
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.stop(timeout);
        Ok(())
    }
}

/// Feeds log records to a destination's queue.
#[derive(Debug)]
struct LogQueue(Arc<ExportQueue<LogItem>>);

impl LogProcessor for LogQueue {
    fn emit(&self, record: &mut SdkLogRecord, scope: &opentelemetry::InstrumentationScope) {
        self.0.push((record.clone(), scope.clone()));
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.flush(FLUSH_WITHIN);
        Ok(())
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.stop(timeout);
        Ok(())
    }
}

/// How long a flush waits for its queue at most.
const FLUSH_WITHIN: Duration = Duration::from_secs(5);
