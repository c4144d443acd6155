//! Telemetry, set up once per process: logs (human-readable, or one JSON object per line with
//! trace ids), `RUST_LOG` filtering, and OpenTelemetry traces exported by OTLP/HTTP.
//!
//! Traces follow the standard `OTEL_*` variables: they are on when `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, and then `OTEL_SERVICE_NAME`,
//! `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER(_ARG)` and `OTEL_EXPORTER_OTLP_HEADERS` apply.
//! With no endpoint (or `OTEL_SDK_DISABLED=true`) no tracer is installed at all: no exporter, no
//! connection attempts, no cost per span.

use std::fmt;

use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_opentelemetry::OtelData;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Logging options shared by every service.
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// Log format: `text` for people, `json` for log pipelines (one object per line, with trace ids).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Flushes and stops the trace exporter when dropped (call [`Telemetry::shutdown`] to do it explicitly).
#[must_use = "dropping the guard stops trace export"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// True when spans are exported.
    pub fn tracing_enabled(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports the spans still buffered. Idempotent.
    pub fn flush(&self) {
        if let Some(provider) = &self.provider
            && let Err(error) = provider.force_flush()
        {
            tracing::warn!(%error, "could not flush spans");
        }
    }

    pub fn shutdown(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown()
        {
            tracing::warn!(%error, "could not flush spans on shutdown");
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// True when the environment asks for trace export.
pub fn tracing_requested() -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
        || std::env::var("OTEL_TRACES_EXPORTER").is_ok_and(|v| v.eq_ignore_ascii_case("none"));
    !disabled && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

/// Installs the global subscriber (and, when requested, the OTLP trace pipeline) for `service`.
/// Call once, first thing in `main`; keep the guard until the process ends.
pub fn init(service: &'static str, args: &LogArgs) -> Telemetry {
    let (provider, exporter_error) = match tracing_requested().then(|| tracer_provider(service)) {
        Some(Ok(provider)) => (Some(provider), None),
        Some(Err(error)) => (None, Some(error)),
        None => (None, None),
    };
    let otel_layer = provider.as_ref().map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(service)));
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt_layer = match args.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer().with_writer(std::io::stderr).boxed(),
        LogFormat::Json => {
            tracing_subscriber::fmt::layer().event_format(JsonLines).with_writer(std::io::stderr).boxed()
        }
    };
    // A second init (tests start several services in one process) keeps the first subscriber.
    let _ = tracing_subscriber::registry().with(filter).with(otel_layer).with(fmt_layer).try_init();
    if let Some(error) = exporter_error {
        tracing::error!(%error, "tracing disabled: cannot build the OTLP exporter");
    }
    Telemetry { provider }
}

fn tracer_provider(service: &'static str) -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    let exporter =
        opentelemetry_otlp::SpanExporter::builder().with_http().with_protocol(Protocol::HttpBinary).build()?;
    let service_named = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.is_empty())
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| v.contains("service.name="));
    let mut resource = opentelemetry_sdk::Resource::builder();
    if !service_named {
        resource = resource.with_service_name(service);
    }
    let provider = SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource.build()).build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    Ok(provider)
}

/// One JSON object per line: `timestamp`, `level`, `target`, `message`, `fields`, and when inside a
/// span its `span` name and the OpenTelemetry `trace_id` and `span_id`, so a log line can be found
/// from a trace and back.
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut fields = Map::new();
        event.record(&mut JsonFields(&mut fields));
        let message = fields.remove("message").unwrap_or(Value::String(String::new()));
        let metadata = event.metadata();
        let mut line = Map::new();
        line.insert("timestamp".into(), Value::String(chrono::Utc::now().to_rfc3339()));
        line.insert("level".into(), Value::String(metadata.level().to_string()));
        line.insert("target".into(), Value::String(metadata.target().to_string()));
        line.insert("message".into(), message);
        line.insert("fields".into(), Value::Object(fields));
        if let Some(span) = ctx.lookup_current() {
            line.insert("span".into(), Value::String(span.name().to_string()));
            if let Some(otel) = span.extensions().get::<OtelData>() {
                let parent = otel.parent_cx.span().span_context().clone();
                let trace_id = if parent.is_valid() { Some(parent.trace_id()) } else { otel.builder.trace_id };
                if let Some(trace_id) = trace_id {
                    line.insert("trace_id".into(), Value::String(trace_id.to_string()));
                }
                if let Some(span_id) = otel.builder.span_id {
                    line.insert("span_id".into(), Value::String(span_id.to_string()));
                }
            }
        }
        writeln!(writer, "{}", Value::Object(line))
    }
}

struct JsonFields<'a>(&'a mut Map<String, Value>);

impl Visit for JsonFields<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().into(), Value::String(format!("{value:?}")));
    }
}
