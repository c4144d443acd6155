//! Errors of the service runtime: NATS, JetStream, telemetry.

/// What went wrong while connecting to NATS, setting up JetStream or the trace exporter.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot read NATS credentials file {path}: {source}")]
    Credentials { path: String, source: std::io::Error },
    #[error("cannot connect to NATS at {url}: {source}")]
    Connect { url: String, source: async_nats::ConnectError },
    #[error("cannot create or update JetStream stream {stream}: {reason}")]
    Stream { stream: String, reason: String },
    #[error("cannot open, create or update KV bucket {bucket}: {reason}")]
    Bucket { bucket: String, reason: String },
    #[error(
        "{what} does not exist, and this service's NATS user may not create it: waiting for the setup \
         step (`publisher setup` as the NATS admin; in Kubernetes the chart's setup Job, run again by \
         `helm upgrade`)"
    )]
    Missing { what: String },
    #[error("the setup step did not finish within {timeout:?}: {last}")]
    SetupTimeout { timeout: std::time::Duration, last: String },
    #[error("{variable}={value:?} is not a supported OTLP protocol; accepted values: {accepted}")]
    OtlpProtocol { variable: &'static str, value: String, accepted: &'static str },
    #[error(
        "{variable}={value:?} is not an OTLP endpoint: give an http:// or https:// URL, e.g. http://otel-collector:4318"
    )]
    OtlpEndpoint { variable: &'static str, value: String },
    #[error(
        "{variable}={value:?}: OTLP over grpc is built without TLS; use an http:// endpoint, or \
         OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf for an https:// one"
    )]
    OtlpGrpcTls { variable: &'static str, value: String },
    #[error("cannot build the OTLP trace exporter ({protocol}): {source}")]
    OtlpExporter { protocol: &'static str, source: opentelemetry_otlp::ExporterBuildError },
}
