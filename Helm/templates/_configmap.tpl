{{/* ConfigMap: every non-secret setting of a component, as environment variables. */}}
{{- define "btc-price.configmap" -}}
{{- $root := .root }}
{{- $v := .values }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "btc-price.componentName" . }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "btc-price.labels" . | nindent 4 }}
data:
  {{- if .nats }}
  NATS_URL: {{ $root.Values.nats.url | quote }}
  {{- end }}
  LOG_FORMAT: {{ $root.Values.logging.format | quote }}
  RUST_LOG: {{ $root.Values.logging.level | quote }}
  OTEL_SERVICE_NAME: {{ .component | quote }}
  {{- with $root.Values.tracing.otlpEndpoint }}
  OTEL_EXPORTER_OTLP_ENDPOINT: {{ . | quote }}
  OTEL_EXPORTER_OTLP_PROTOCOL: {{ $root.Values.tracing.otlpProtocol | quote }}
  {{- end }}
  {{- if .nats }}
  {{- include "btc-price.natsEnv" (dict "root" $root "role" .role) | trim | nindent 2 }}
  {{- end }}
  OPS_ADDR: {{ printf "0.0.0.0:%d" (int .opsPort) | quote }}
  {{- if ne .component "rest-api" }}
  PAIRS: {{ $root.Values.pairs | quote }}
  {{- end }}
  {{- if .frontend }}
  LISTEN_ADDR: {{ printf "0.0.0.0:%d" (int .port) | quote }}
  TRUST_INCOMING_TRACE_CONTEXT: {{ $root.Values.tracing.trustIncomingContext | toString | quote }}
  {{- if eq .component "bitcoin-api" }}
  STALE_AFTER: {{ $v.staleAfter | quote }}
  {{- end }}
  SHUTDOWN_DELAY: {{ $v.shutdownDelay | quote }}
  {{- with $v.workerThreads }}
  WORKER_THREADS: {{ . | int | toString | quote }}
  {{- end }}
  {{- else }}
  NATS_REPLICAS: {{ $root.Values.nats.replicas | int | toString | quote }}
  TICKS_MAX_AGE: {{ $root.Values.stream.maxAge | quote }}
  TICKS_MAX_BYTES: {{ $root.Values.stream.maxBytes | int64 | toString | quote }}
  {{- end }}
  {{- if eq .component "publisher" }}
  SOURCES: {{ $v.sources | quote }}
  {{- with $v.sourceUrls }}
  SOURCE_URLS: {{ . | quote }}
  {{- end }}
  POLL_INTERVAL: {{ $v.pollInterval | quote }}
  ROUND_DEADLINE_FRACTION: {{ $v.roundDeadlineFraction | toString | quote }}
  LEASE_TTL: {{ $v.leaseTtl | quote }}
  REQUEST_TIMEOUT: {{ $v.requestTimeout | quote }}
  MAX_QUOTE_AGE: {{ $v.maxQuoteAge | quote }}
  QUORUM: {{ $v.quorum | int | toString | quote }}
  OUTLIER_THRESHOLD: {{ $v.outlierThreshold | toString | quote }}
  BREAKER_FAILURES: {{ $v.breakerFailures | int | toString | quote }}
  BREAKER_COOLDOWN: {{ $v.breakerCooldown | quote }}
  RATE_LIMIT_BACKOFF: {{ $v.rateLimitBackoff | quote }}
  PUBLISH_TIMEOUT: {{ $v.publishTimeout | quote }}
  {{- end }}
  {{- if eq .component "aggregator" }}
  AVERAGE_WINDOW: {{ $v.averageWindow | quote }}
  MAX_HOLD: {{ $v.maxHold | quote }}
  {{- end }}
{{- end }}
