//! Real OTLP trace receivers for tests, one per transport the services' exporters speak: OTLP/HTTP
//! (a protobuf body posted to `/v1/traces`) and OTLP/gRPC (`TraceService/Export`, what a collector
//! serves on port 4317). Both decode the `ExportTraceServiceRequest` and keep the spans for assertions.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use poem::endpoint::make;
use poem::http::StatusCode;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{Body, Request, Response, Route, post};
use prost::Message;

/// One span as received.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    pub service: String,
    pub name: String,
    /// `SPAN_KIND_*` number: 1 internal, 2 server, 3 client, 4 producer, 5 consumer.
    pub kind: i32,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub attributes: HashMap<String, String>,
    pub links: Vec<(String, String)>,
}

impl ReceivedSpan {
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

pub struct OtlpReceiver {
    addr: SocketAddr,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

type SpanStore = Arc<Mutex<Vec<ReceivedSpan>>>;

impl OtlpReceiver {
    /// An OTLP/HTTP receiver (`OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf`, the default).
    pub async fn start() -> Self {
        let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.expect("bind OTLP receiver");
        let addr = acceptor.local_addr().first().and_then(|a| a.as_socket_addr().copied()).expect("address");
        let spans: SpanStore = Arc::default();
        let store = spans.clone();
        let traces = make(move |request: Request| {
            let store = store.clone();
            async move { receive(request, &store).await }
        });
        // Metrics and logs are accepted and dropped, so an exporter never logs errors at us.
        let ignore = || {
            make(|_: Request| async { Response::builder().content_type("application/x-protobuf").body(Body::empty()) })
        };
        let app = Route::new()
            .at("/v1/traces", post(traces))
            .at("/v1/metrics", post(ignore()))
            .at("/v1/logs", post(ignore()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = poem::Server::new_with_acceptor(acceptor)
                .run_with_graceful_shutdown(
                    app,
                    async {
                        let _ = stopped.await;
                    },
                    None,
                )
                .await;
        });
        Self { addr, spans, stop: Some(stop) }
    }

    /// An OTLP/gRPC receiver (`OTEL_EXPORTER_OTLP_PROTOCOL=grpc`): HTTP/2 only, as a collector's
    /// port 4317, so an exporter that speaks OTLP/HTTP to it delivers nothing.
    pub async fn start_grpc() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind OTLP/gRPC receiver");
        let addr = listener.local_addr().expect("address");
        let spans: SpanStore = Arc::default();
        let service = TraceServiceServer::new(GrpcTraces(spans.clone()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let incoming = tonic::transport::server::TcpIncoming::from(listener);
            let _ = tonic::transport::Server::builder()
                .serve_with_incoming_shutdown(service, incoming, async {
                    let _ = stopped.await;
                })
                .await;
        });
        Self { addr, spans, stop: Some(stop) }
    }

    /// The value for `OTEL_EXPORTER_OTLP_ENDPOINT` (over HTTP the exporter appends `/v1/traces`;
    /// over gRPC it is the server's address).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

struct GrpcTraces(SpanStore);

#[tonic::async_trait]
impl TraceService for GrpcTraces {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        record(request.into_inner(), &self.0);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

async fn receive(request: Request, store: &Mutex<Vec<ReceivedSpan>>) -> Response {
    let Ok(body) = request.into_body().into_bytes().await else {
        return Response::builder().status(StatusCode::BAD_REQUEST).finish();
    };
    let Ok(export) = ExportTraceServiceRequest::decode(body) else {
        return Response::builder().status(StatusCode::BAD_REQUEST).body("not an ExportTraceServiceRequest");
    };
    record(export, store);
    Response::builder()
        .content_type("application/x-protobuf")
        .body(ExportTraceServiceResponse::default().encode_to_vec())
}

fn record(export: ExportTraceServiceRequest, store: &Mutex<Vec<ReceivedSpan>>) {
    let mut received = Vec::new();
    for resource_spans in export.resource_spans {
        let service = resource_spans
            .resource
            .as_ref()
            .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
            .map(value_text)
            .unwrap_or_default();
        for scope_spans in resource_spans.scope_spans {
            for span in scope_spans.spans {
                received.push(ReceivedSpan {
                    service: service.clone(),
                    name: span.name,
                    kind: span.kind,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    attributes: span.attributes.iter().map(|a| (a.key.clone(), value_text(a))).collect(),
                    links: span.links.iter().map(|l| (hex(&l.trace_id), hex(&l.span_id))).collect(),
                });
            }
        }
    }
    if let Ok(mut spans) = store.lock() {
        spans.extend(received);
    }
}

fn value_text(attribute: &KeyValue) -> String {
    match attribute.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
