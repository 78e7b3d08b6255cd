//! W3C trace context between the roles: the current span travels as `traceparent` in gRPC
//! metadata and HTTP headers, and can be kept on a document (a proton) for work that continues
//! later (the scheduler's launch of what a REST call created). Without a tracer installed
//! (`--otlp-endpoint` unset) the propagator is a no-op and nothing travels.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector};
use tonic::metadata::{KeyRef, MetadataKey, MetadataMap, MetadataValue};
use tracing_opentelemetry::OpenTelemetrySpanExt;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Called once a tracer exporting spans is installed (the roles' `--otlp-endpoint`).
pub fn set_enabled() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether spans are exported: the gateway then serves every invoke through its traced path.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

struct MetadataInjector<'a>(&'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (MetadataKey::from_bytes(key.as_bytes()), MetadataValue::try_from(value.as_str())) {
            self.0.insert(key, value);
        }
    }
}

struct MetadataExtractor<'a>(&'a MetadataMap);

impl Extractor for MetadataExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|key| match key {
                KeyRef::Ascii(key) => Some(key.as_str()),
                KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Puts the current span's context in a gRPC request's metadata.
pub fn inject<T>(request: &mut tonic::Request<T>) {
    if !enabled() {
        return;
    }
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut MetadataInjector(request.metadata_mut()));
    });
}

/// Makes the context a gRPC request carries the parent of `span`.
pub fn continue_grpc(span: &tracing::Span, metadata: &MetadataMap) {
    let context = opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(&MetadataExtractor(metadata)));
    let _ = span.set_parent(context);
}

/// Makes the context an HTTP request carries (`traceparent`) the parent of `span`.
pub fn continue_http(span: &tracing::Span, headers: &http::HeaderMap) {
    let context = opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(&HeaderExtractor(headers)));
    let _ = span.set_parent(context);
}

/// Makes a `traceparent` kept on a document the parent of `span`.
pub fn continue_from(span: &tracing::Span, traceparent: &str) {
    let _ = span.set_parent(context_of(traceparent));
}

fn context_of(traceparent: &str) -> Context {
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(&carrier))
}

/// `span`'s `traceparent`, when it is traced.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    let mut carrier: HashMap<String, String> = HashMap::new();
    opentelemetry::global::get_text_map_propagator(|propagator| propagator.inject_context(&context, &mut carrier));
    carrier.remove("traceparent")
}

/// The current span's `traceparent`, when it is traced.
pub fn current_traceparent() -> Option<String> {
    traceparent_of(&tracing::Span::current())
}
