//! Telemetry, set up once per process: logs (human-readable, or one JSON object per line with
//! trace ids), `RUST_LOG` filtering, and OpenTelemetry traces exported by OTLP, over gRPC or
//! HTTP (protobuf).
//!
//! Traces follow the standard `OTEL_*` variables: they are on when `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, and then `OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL`,
//! `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER(_ARG)` and
//! `OTEL_EXPORTER_OTLP_HEADERS` apply. An exporter that could not deliver (a protocol other than
//! `grpc` and `http/protobuf`, an endpoint that is no http(s) URL, `https://` over gRPC) stops the
//! service at start: traces that were asked for never go missing quietly. With no endpoint (or `OTEL_SDK_DISABLED=true`) no
//! tracer is installed at all: no exporter, no connection attempts, no cost per span.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde_json::{Map, Value};

use crate::RuntimeError;
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

/// The OTLP transports the exporter speaks (`OTEL_EXPORTER_OTLP_PROTOCOL` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// `grpc`: a collector's port 4317; the endpoint is used as it is.
    Grpc,
    /// `http/protobuf`, the default: port 4318; `/v1/traces` is appended to
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` (not to `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`).
    HttpProtobuf,
}

/// The variables that choose the protocol of traces, the more specific first.
const PROTOCOL_VARIABLES: [&str; 2] = ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"];
/// The variables that give the endpoint of traces, in the exporter's order.
const ENDPOINT_VARIABLES: [&str; 2] = ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"];

impl OtlpProtocol {
    /// The accepted values, as an error message names them.
    pub const ACCEPTED: &'static str = "grpc, http/protobuf";

    /// The value of `OTEL_EXPORTER_OTLP_PROTOCOL` that selects it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::HttpProtobuf => "http/protobuf",
        }
    }

    /// The protocol of traces from the environment as `var` reads it: the first of
    /// [`PROTOCOL_VARIABLES`] set to a non-empty value (the OpenTelemetry specification counts an
    /// empty value as unset), else `http/protobuf`. Any other value is refused, `http/json`
    /// included (its exporter feature is not built in).
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Self, RuntimeError> {
        let Some((variable, value)) =
            PROTOCOL_VARIABLES.iter().find_map(|&name| var(name).filter(|v| !v.trim().is_empty()).map(|v| (name, v)))
        else {
            return Ok(Self::HttpProtobuf);
        };
        match value.trim() {
            "grpc" => Ok(Self::Grpc),
            "http/protobuf" => Ok(Self::HttpProtobuf),
            _ => Err(RuntimeError::OtlpProtocol { variable, value, accepted: Self::ACCEPTED }),
        }
    }

    /// Refuses an endpoint traces could not reach, which would fail with no log line (the SDK's
    /// internal logs are not built in): one that is no `http://` or `https://` URL with a host
    /// (the HTTP exporter would silently send to `localhost:4318` instead), and an `https://` one
    /// over gRPC (built without TLS: no `tls` feature of tonic). Judges the variable the exporter
    /// reads: the traces one, else the general one.
    pub fn check_endpoint(self, var: impl Fn(&str) -> Option<String>) -> Result<(), RuntimeError> {
        let endpoint =
            ENDPOINT_VARIABLES.iter().find_map(|&name| var(name).filter(|v| !v.trim().is_empty()).map(|v| (name, v)));
        let Some((variable, value)) = endpoint else {
            return Ok(());
        };
        let uri = value.trim().parse::<poem::http::Uri>().ok();
        let scheme = uri.as_ref().and_then(|u| u.scheme_str()).map(str::to_ascii_lowercase);
        let has_host = uri.as_ref().and_then(|u| u.host()).is_some_and(|h| !h.is_empty());
        match scheme.as_deref() {
            Some("http" | "https") if has_host => {}
            _ => return Err(RuntimeError::OtlpEndpoint { variable, value }),
        }
        if self == Self::Grpc && scheme.as_deref() == Some("https") {
            return Err(RuntimeError::OtlpGrpcTls { variable, value });
        }
        Ok(())
    }
}

/// Set once traces are exported (see [`traces_exported`]).
static TRACES_EXPORTED: AtomicBool = AtomicBool::new(false);

/// Whether this process exports traces. A span made per message only for its trace can be skipped
/// when not: at the default `info` the log layer would still build it and format its fields on
/// every message (a tenth of the aggregator's CPU while it catches up), for log lines that
/// rarely come.
pub fn traces_exported() -> bool {
    TRACES_EXPORTED.load(Ordering::Relaxed)
}

/// Installs the global subscriber (and, when requested, the OTLP trace pipeline) for `service`.
/// Call once, first thing in `main`, inside the tokio runtime (the gRPC exporter's connection
/// runs on it); keep the guard until the process ends. An error (an unsupported protocol, an
/// exporter that cannot be built) means the service must not start: traces were asked for and
/// would go nowhere.
pub fn init(service: &'static str, args: &LogArgs) -> Result<Telemetry, RuntimeError> {
    let (provider, protocol) = if tracing_requested() {
        let (provider, protocol) = tracer_provider(service)?;
        (Some(provider), Some(protocol))
    } else {
        (None, None)
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
    if let Some(protocol) = protocol {
        TRACES_EXPORTED.store(true, Ordering::Relaxed);
        tracing::info!(protocol = protocol.as_str(), "traces exported by OTLP");
    }
    Ok(Telemetry { provider })
}

fn tracer_provider(service: &'static str) -> Result<(SdkTracerProvider, OtlpProtocol), RuntimeError> {
    use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
    let var = |name: &str| std::env::var(name).ok();
    let protocol = OtlpProtocol::from_env(var)?;
    protocol.check_endpoint(var)?;
    let exporter = match protocol {
        OtlpProtocol::Grpc => SpanExporter::builder().with_tonic().build(),
        OtlpProtocol::HttpProtobuf => SpanExporter::builder().with_http().with_protocol(Protocol::HttpBinary).build(),
    }
    .map_err(|source| RuntimeError::OtlpExporter { protocol: protocol.as_str(), source })?;
    let service_named = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.is_empty())
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| v.contains("service.name="));
    let mut resource = opentelemetry_sdk::Resource::builder();
    if !service_named {
        resource = resource.with_service_name(service);
    }
    let provider = SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource.build()).build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    Ok((provider, protocol))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn the_protocol_is_http_protobuf_unless_a_variable_says_otherwise() {
        assert_eq!(OtlpProtocol::from_env(env(&[])).ok(), Some(OtlpProtocol::HttpProtobuf));
        let empty = [("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", " "), ("OTEL_EXPORTER_OTLP_PROTOCOL", "")];
        assert_eq!(OtlpProtocol::from_env(env(&empty)).ok(), Some(OtlpProtocol::HttpProtobuf));
        let grpc = [("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")];
        assert_eq!(OtlpProtocol::from_env(env(&grpc)).ok(), Some(OtlpProtocol::Grpc));
        let http = [("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")];
        assert_eq!(OtlpProtocol::from_env(env(&http)).ok(), Some(OtlpProtocol::HttpProtobuf));
    }

    #[test]
    fn the_traces_variable_wins_over_the_general_one_and_only_the_one_used_is_judged() {
        let vars = [("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")];
        assert_eq!(OtlpProtocol::from_env(env(&vars)).ok(), Some(OtlpProtocol::Grpc));
        // The general variable may name a protocol for other signals this service does not send.
        let vars = [("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "x")];
        assert_eq!(OtlpProtocol::from_env(env(&vars)).ok(), Some(OtlpProtocol::HttpProtobuf));
    }

    #[test]
    fn another_protocol_is_refused_naming_the_variable_the_value_and_the_accepted_values() {
        for (variable, value) in [
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "GRPC"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http"),
        ] {
            let error = OtlpProtocol::from_env(env(&[(variable, value)])).expect_err(value).to_string();
            for expected in [variable, value, "grpc", "http/protobuf"] {
                assert!(error.contains(expected), "{error:?} does not name {expected:?}");
            }
        }
    }

    #[test]
    fn an_endpoint_that_is_no_http_url_is_refused_by_either_protocol() {
        // The HTTP exporter would silently send to localhost:4318 instead.
        for value in ["not a url", "otel-collector:4318", "ftp://collector:4318", "http://", "collector"] {
            for protocol in [OtlpProtocol::HttpProtobuf, OtlpProtocol::Grpc] {
                let vars = [("OTEL_EXPORTER_OTLP_ENDPOINT", value)];
                let error = protocol.check_endpoint(env(&vars)).expect_err(value).to_string();
                for expected in ["OTEL_EXPORTER_OTLP_ENDPOINT", value, "http://"] {
                    assert!(error.contains(expected), "{error:?} does not name {expected:?}");
                }
            }
        }
        let vars = [("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "collector/v1/traces")];
        let error = OtlpProtocol::HttpProtobuf.check_endpoint(env(&vars)).expect_err("no scheme").to_string();
        assert!(error.contains("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), "{error}");
        for value in ["http://collector:4318", "https://collector.example.com", "http://127.0.0.1:4318/"] {
            let vars = [("OTEL_EXPORTER_OTLP_ENDPOINT", value)];
            assert!(OtlpProtocol::HttpProtobuf.check_endpoint(env(&vars)).is_ok(), "{value}");
        }
    }

    #[test]
    fn grpc_refuses_an_https_endpoint_it_could_not_reach_and_http_protobuf_takes_it() {
        let https = [("OTEL_EXPORTER_OTLP_ENDPOINT", "HTTPS://collector:4317")];
        let error = OtlpProtocol::Grpc.check_endpoint(env(&https)).expect_err("https over grpc").to_string();
        for expected in ["OTEL_EXPORTER_OTLP_ENDPOINT", "HTTPS://collector:4317", "http/protobuf"] {
            assert!(error.contains(expected), "{error:?} does not name {expected:?}");
        }
        assert!(OtlpProtocol::HttpProtobuf.check_endpoint(env(&https)).is_ok());
        let plain = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")];
        assert!(OtlpProtocol::Grpc.check_endpoint(env(&plain)).is_ok());
        // The traces endpoint is the one used, so the one judged.
        let both = [
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://collector:4317"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
        ];
        let error = OtlpProtocol::Grpc.check_endpoint(env(&both)).expect_err("https traces endpoint").to_string();
        assert!(error.contains("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), "{error}");
    }
}
