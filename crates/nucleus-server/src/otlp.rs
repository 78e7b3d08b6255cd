//! The process's `tracing` subscriber: structured logs on stderr, and with `--otlp-endpoint` (or
//! `OTEL_EXPORTER_OTLP_ENDPOINT`) every span exported over OTLP/gRPC to a collector, with W3C
//! trace context propagated between the roles (see `nucleus_telemetry::trace`).

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// What must be flushed before the process exits.
pub struct Tracing {
    provider: Option<SdkTracerProvider>,
}

/// Installs the subscriber; must run within the tokio runtime (the exporter's gRPC client).
pub fn init(otlp_endpoint: Option<&str>, service: &str) -> anyhow::Result<Tracing> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,h2=warn,tower=warn,hyper=warn,openraft=warn"));
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(filter);
    let Some(endpoint) = otlp_endpoint.filter(|e| !e.is_empty()) else {
        tracing_subscriber::registry().with(logs).init();
        return Ok(Tracing { provider: None });
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .with_context(|| format!("the OTLP exporter for {endpoint}: check --otlp-endpoint (e.g. http://collector:4317)"))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(service.to_owned()).build())
        .build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    opentelemetry::global::set_tracer_provider(provider.clone());
    let spans = tracing_opentelemetry::layer().with_tracer(provider.tracer("nucleus")).with_filter(tracing_subscriber::EnvFilter::new(
        "info,h2=off,tower=off,hyper=off,hyper_util=off,tonic=off,openraft=off,opentelemetry=off,opentelemetry_sdk=off",
    ));
    tracing_subscriber::registry().with(logs).with(spans).init();
    nucleus_telemetry::trace::set_enabled();
    tracing::info!(endpoint, service, "exporting traces over OTLP");
    Ok(Tracing { provider: Some(provider) })
}

impl Tracing {
    /// Sends what is still buffered.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(err) = provider.shutdown()
        {
            eprintln!("warning: the last traces could not be exported: {err}");
        }
    }
}
