//! Telemetry destinations played by local servers, decoding what arrives:
//! an OTLP/HTTP receiver (`/v1/traces`, `/v1/metrics`, `/v1/logs`, protobuf
//! or JSON) and an Application Insights ingestion endpoint (`/v2/track`,
//! gzipped JSON envelopes), on one port; and one that accepts requests and
//! never answers.

use std::{
    collections::HashMap,
    io::Read as _,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use opentelemetry_proto::tonic::{
    collector::{
        logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
        trace::v1::ExportTraceServiceRequest,
    },
    common::v1::{AnyValue, KeyValue, any_value::Value as Any},
    logs::v1::LogRecord,
    metrics::v1::Metric,
    trace::v1::Span,
};
use serde_json::Value;

use super::loopback_listener;

/// Everything a receiver got.
#[derive(Default)]
pub struct Got {
    pub traces: Vec<ExportTraceServiceRequest>,
    pub metrics: Vec<ExportMetricsServiceRequest>,
    pub logs: Vec<ExportLogsServiceRequest>,
    /// Application Insights envelopes, one per telemetry item.
    pub envelopes: Vec<Value>,
    /// The `Authorization` header of every request.
    pub authorizations: Vec<String>,
    /// Every request's headers and body as received (gzip undone), for
    /// looking for what must never leave.
    pub raw: Vec<Vec<u8>>,
}

/// A local telemetry destination.
pub struct Receiver {
    /// Its base URL (`http://127.0.0.1:<port>`).
    pub url: String,
    got: Arc<Mutex<Got>>,
}

impl Receiver {
    /// Serves OTLP and Application Insights ingestion on a free port.
    pub async fn start() -> Self {
        let got = Arc::new(Mutex::new(Got::default()));
        let router = Router::new()
            .route("/v1/{signal}", post(otlp))
            .route("/v2/track", post(track))
            .with_state(got.clone());
        Self {
            url: serve(router).await,
            got,
        }
    }

    /// A destination that accepts every request and never answers.
    pub async fn hanging() -> Self {
        let hang = || async {
            std::future::pending::<()>().await;
            StatusCode::OK
        };
        let router = Router::new()
            .route("/v1/{signal}", post(hang))
            .route("/v2/track", post(hang));
        Self {
            url: serve(router).await,
            got: Arc::default(),
        }
    }

    /// What arrived so far.
    pub fn got(&self) -> MutexGuard<'_, Got> {
        self.got.lock().unwrap()
    }

    /// Every span received.
    pub fn spans(&self) -> Vec<Span> {
        self.got()
            .traces
            .iter()
            .flat_map(|t| &t.resource_spans)
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| s.spans.clone())
            .collect()
    }

    /// Every log record received.
    pub fn log_records(&self) -> Vec<LogRecord> {
        self.got()
            .logs
            .iter()
            .flat_map(|l| &l.resource_logs)
            .flat_map(|r| &r.scope_logs)
            .flat_map(|s| s.log_records.clone())
            .collect()
    }

    /// Every metric received (each export's, in order).
    pub fn metrics(&self) -> Vec<Metric> {
        self.got()
            .metrics
            .iter()
            .flat_map(|m| &m.resource_metrics)
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| s.metrics.clone())
            .collect()
    }

    /// The names of every metric received.
    pub fn metric_names(&self) -> Vec<String> {
        self.metrics().into_iter().map(|m| m.name).collect()
    }

    /// The data points of the counter (sum) `name` that arrived, each as its
    /// attributes (as text) with its value.
    pub fn counter_points(&self, name: &str) -> Vec<(HashMap<String, String>, f64)> {
        use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point::Value};
        self.metrics()
            .into_iter()
            .filter(|m| m.name == name)
            .flat_map(|m| match m.data {
                Some(Data::Sum(sum)) => sum.data_points,
                _ => Vec::new(),
            })
            .map(|p| {
                let value = match p.value {
                    Some(Value::AsInt(i)) => i as f64,
                    Some(Value::AsDouble(d)) => d,
                    None => 0.0,
                };
                (text_attributes(&p.attributes), value)
            })
            .collect()
    }

    /// The data points of the histogram `name` that arrived, each as its
    /// attributes (as text) with its count and sum.
    pub fn histogram_points(&self, name: &str) -> Vec<(HashMap<String, String>, u64, f64)> {
        use opentelemetry_proto::tonic::metrics::v1::metric::Data;
        self.metrics()
            .into_iter()
            .filter(|m| m.name == name)
            .flat_map(|m| match m.data {
                Some(Data::Histogram(h)) => h.data_points,
                _ => Vec::new(),
            })
            .map(|p| {
                (
                    text_attributes(&p.attributes),
                    p.count,
                    p.sum.unwrap_or_default(),
                )
            })
            .collect()
    }

    /// Polls `probe` over what arrived until it gives a value; panics after
    /// 20 s naming `what`.
    pub async fn eventually<T>(&self, what: &str, probe: impl Fn(&Self) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(value) = probe(self) {
                return value;
            }
            assert!(Instant::now() < deadline, "never received: {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn serve(router: Router) -> String {
    let listener = loopback_listener();
    listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

fn record_raw(got: &mut Got, headers: &HeaderMap, body: &[u8]) {
    let mut raw: Vec<u8> = headers
        .iter()
        .flat_map(|(k, v)| [k.as_str().as_bytes(), b": ", v.as_bytes(), b"\n"].concat())
        .collect();
    raw.extend_from_slice(body);
    got.raw.push(raw);
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        got.authorizations
            .push(auth.to_str().unwrap_or_default().to_owned());
    }
}

async fn otlp(
    State(got): State<Arc<Mutex<Got>>>,
    axum::extract::Path(signal): axum::extract::Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    use prost::Message as _;
    let json = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let mut got = got.lock().unwrap();
    record_raw(&mut got, &headers, &body);
    macro_rules! decode {
        ($t:ty) => {
            if json {
                serde_json::from_slice::<$t>(&body).expect("OTLP/JSON decodes")
            } else {
                <$t>::decode(body.as_ref()).expect("OTLP protobuf decodes")
            }
        };
    }
    match signal.as_str() {
        "traces" => got.traces.push(decode!(ExportTraceServiceRequest)),
        "metrics" => got.metrics.push(decode!(ExportMetricsServiceRequest)),
        "logs" => got.logs.push(decode!(ExportLogsServiceRequest)),
        _ => return StatusCode::NOT_FOUND.into_response(),
    }
    if json {
        ([(header::CONTENT_TYPE, "application/json")], "{}").into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            Vec::<u8>::new(),
        )
            .into_response()
    }
}

async fn track(State(got): State<Arc<Mutex<Got>>>, headers: HeaderMap, body: Bytes) -> Response {
    let mut text = Vec::new();
    if headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| v == "gzip")
    {
        flate2::read::GzDecoder::new(body.as_ref())
            .read_to_end(&mut text)
            .expect("gzip decodes");
    } else {
        text = body.to_vec();
    }
    let envelopes: Vec<Value> = serde_json::from_slice(&text).expect("envelopes decode");
    let count = envelopes.len();
    let mut got = got.lock().unwrap();
    record_raw(&mut got, &headers, &text);
    got.envelopes.extend(envelopes);
    axum::Json(serde_json::json!({
        "itemsReceived": count,
        "itemsAccepted": count,
        "errors": []
    }))
    .into_response()
}

/// A span's (or record's) attributes by key.
pub fn attributes(list: &[KeyValue]) -> HashMap<String, Value> {
    list.iter()
        .map(|kv| (kv.key.clone(), kv.value.as_ref().map_or(Value::Null, any)))
        .collect()
}

fn any(value: &AnyValue) -> Value {
    match &value.value {
        Some(Any::StringValue(s)) => Value::from(s.clone()),
        Some(Any::IntValue(i)) => Value::from(*i),
        Some(Any::DoubleValue(d)) => Value::from(*d),
        Some(Any::BoolValue(b)) => Value::from(*b),
        other => Value::from(format!("{other:?}")),
    }
}

/// Lower-case hex, as trace and span ids are written.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Attributes as a map of text (`"201"` for the integer 201).
fn text_attributes(attributes: &[KeyValue]) -> HashMap<String, String> {
    attributes
        .iter()
        .map(|kv| (kv.key.clone(), any_text(kv.value.as_ref())))
        .collect()
}

/// An attribute's value as text (`"201"` for the integer 201).
fn any_text(value: Option<&AnyValue>) -> String {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    match value.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        _ => String::new(),
    }
}
