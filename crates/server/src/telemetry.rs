//! Telemetry: structured logs (`tracing`), Prometheus metrics and optional OpenTelemetry traces.
//!
//! Logging and trace export are process-global, so only the binary calls [`init`]; tests build
//! [`Application`](crate::Application)s without it. The metrics recorder is installed once per
//! process by [`metrics_handle`], which every `Application` shares.

use std::{sync::OnceLock, time::Duration};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};
use tracing_subscriber::{EnvFilter, Layer, layer::SubscriberExt, util::SubscriberInitExt};

use crate::config::{LogFormat, Settings};

/// Flushes trace export on drop. Keep it alive for the life of the process, and drop it outside
/// any async runtime (the OTLP exporter uses a blocking HTTP client).
#[derive(Debug)]
pub struct TelemetryGuard {
    tracer_provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Exports buffered spans and stops the exporter.
    pub fn shutdown(mut self) {
        if let Some(provider) = self.tracer_provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("warning: trace export did not shut down cleanly: {e}");
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.tracer_provider.take() {
            let _ = provider.shutdown();
        }
    }
}

/// Failure to set up telemetry.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The `log` filter does not parse.
    #[error(
        "setting `log` is not a valid filter ({0}); try \"info\" or \"info,mobility_store=debug\""
    )]
    Filter(String),
    /// The OTLP exporter could not be built.
    #[error("cannot set up trace export to {endpoint}: {reason}")]
    Otlp {
        /// The endpoint.
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// A global subscriber was already installed.
    #[error("logging was already initialised")]
    AlreadyInitialised,
}

/// Installs the global log subscriber (stderr) and, when `otlp_endpoint` is set, trace export
/// over OTLP/HTTP. Call once, before starting the async runtime.
pub fn init(settings: &Settings) -> Result<TelemetryGuard, TelemetryError> {
    let filter =
        EnvFilter::try_new(&settings.log).map_err(|e| TelemetryError::Filter(e.to_string()))?;
    let fmt_layer = match settings.log_format {
        LogFormat::Human => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .with_target(true)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let mut tracer_provider = None;
    let otel_layer = match &settings.otlp_endpoint {
        Some(endpoint) => {
            let provider = otlp_provider(endpoint)?;
            let tracer = provider.tracer("mobility");
            tracer_provider = Some(provider);
            // Request spans are DEBUG (free for logs at info); the exporter always wants them.
            let otel_filter = EnvFilter::try_new(format!("{},mobility_api=debug", settings.log))
                .map_err(|e| TelemetryError::Filter(e.to_string()))?;
            Some(
                tracing_opentelemetry::layer()
                    .with_tracer(tracer)
                    .with_filter(otel_filter),
            )
        }
        None => None,
    };
    // Per-layer filters: what is logged and what is exported are decided separately.
    tracing_subscriber::registry()
        .with(fmt_layer.with_filter(filter))
        .with(otel_layer)
        .try_init()
        .map_err(|_| TelemetryError::AlreadyInitialised)?;
    Ok(TelemetryGuard { tracer_provider })
}

fn otlp_provider(endpoint: &str) -> Result<SdkTracerProvider, TelemetryError> {
    use opentelemetry_otlp::{SpanExporter, WithExportConfig};
    let fail = |reason: String| TelemetryError::Otlp {
        endpoint: mobility_store::redact_url(endpoint),
        reason,
    };
    // The OTLP/HTTP convention: the base endpoint plus the signal path.
    let traces_url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let exporter = SpanExporter::builder()
        .with_http()
        .with_endpoint(traces_url)
        .with_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| fail(e.to_string()))?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name("mobility")
                .with_attribute(opentelemetry::KeyValue::new(
                    "service.version",
                    env!("CARGO_PKG_VERSION"),
                ))
                .build(),
        )
        .build())
}

/// Request-latency buckets in seconds: fine-grained below 10 ms, where our API should live.
const LATENCY_BUCKETS_S: &[f64] = &[
    0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process-wide Prometheus recorder, installed on first use.
///
/// # Panics
/// Only if a different metrics recorder was installed first, which is a programming error.
#[allow(clippy::expect_used)]
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS_S)
                .expect("buckets are not empty")
                .install_recorder()
                .expect("no other metrics recorder is installed");
            describe_metrics();
            metrics::gauge!("mobility_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            handle
        })
        .clone()
}

fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(
        "mobility_build_info",
        "Always 1; the version label says which build runs."
    );
    describe_counter!(
        "http_requests_total",
        "HTTP requests answered, by method, route and status."
    );
    describe_histogram!(
        "http_request_duration_seconds",
        metrics::Unit::Seconds,
        "Time to answer an HTTP request, by method and route."
    );
    describe_counter!(
        "http_rejections_total",
        "HTTP requests refused because of client input, by reason."
    );
    describe_gauge!(
        "store_ready",
        "1 when the database answers and is fully migrated, else 0."
    );
    describe_gauge!(
        "process_start_time_seconds",
        "Start time of the process since the Unix epoch."
    );
}
