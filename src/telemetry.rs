//! The process's one `tracing` subscriber: logs to stderr, filtered by
//! `WARMLANE_LOG`, and — when a collector is named by
//! `telemetry.otlp_endpoint` or `OTEL_EXPORTER_OTLP_ENDPOINT` — spans sent
//! over OTLP/HTTP (protobuf) in batches, with W3C trace context as the
//! propagation format.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};
use warmlane_host::config::TelemetryConfig;

/// What must outlive the command: the span exporter, flushed when dropped.
pub(crate) struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("warmlane: traces not all sent: {e}");
        }
    }
}

/// Installs the subscriber; traces go where `config` (or the standard
/// environment variables) say, if anywhere.
pub(crate) fn init(config: Option<&TelemetryConfig>) -> Telemetry {
    let provider = match tracer_provider(config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("warmlane: traces will not be sent: {e}");
            None
        }
    };
    let traces = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("warmlane"))
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_filter(LevelFilter::INFO)
    });
    let level = match std::env::var("WARMLANE_LOG")
        .unwrap_or_default()
        .to_ascii_lowercase()
        .as_str()
    {
        "trace" => LevelFilter::TRACE,
        "debug" => LevelFilter::DEBUG,
        "info" => LevelFilter::INFO,
        "error" => LevelFilter::ERROR,
        _ => LevelFilter::WARN,
    };
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false);
    let logs: Box<dyn Layer<Registry> + Send + Sync> =
        if std::env::var("WARMLANE_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
            logs.json()
                .with_current_span(true)
                .with_span_list(true)
                .with_filter(level)
                .boxed()
        } else {
            logs.with_filter(level).boxed()
        };
    tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .init();
    Telemetry { provider }
}

/// The tracer provider, if traces are to be sent.
fn tracer_provider(config: Option<&TelemetryConfig>) -> anyhow::Result<Option<SdkTracerProvider>> {
    let configured = config.and_then(|c| c.otlp_endpoint.clone());
    let from_env = [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .iter()
    .any(|k| std::env::var(k).is_ok_and(|v| !v.is_empty()));
    if configured.is_none() && !from_env {
        return Ok(None);
    }
    let mut exporter = SpanExporter::builder().with_http();
    if let Some(base) = configured {
        exporter = exporter.with_endpoint(format!("{}/v1/traces", base.trim_end_matches('/')));
    }
    let exporter = exporter.build()?;
    let mut resource = Resource::builder();
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        resource = resource.with_service_name("warmlane");
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    Ok(Some(provider))
}
