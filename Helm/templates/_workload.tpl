{{/*
Builders shared by the four components. Each component's files (templates/<component>/*.yaml) call
them with the context that "btc-price.context" describes (as JSON) plus root and values:
  root       the top-level context ($)
  component  publisher | aggregator | bitcoin-api | rest-api (also the binary's name)
  values     that component's values (.Values.publisher, ...)
  port       the API port (frontends; named `http`), or the ops port (publisher, aggregator)
  opsPort    the ops port, named `ops`: /metrics, /liveness, /readiness (every component)
  role       the NATS user it connects as: publisher | aggregator | frontend
  frontend   true for bitcoin-api and rest-api
  nats       true for the components that use NATS (all but rest-api, whose `/` needs nothing)
*/}}

{{- define "btc-price.context" -}}
{{- $key := get (dict "publisher" "publisher" "aggregator" "aggregator" "bitcoin-api" "bitcoinApi" "rest-api" "restApi") .component -}}
{{- $v := index .root.Values $key -}}
{{- $frontend := hasKey $v "port" -}}
{{- $port := ternary $v.port $v.opsPort $frontend | int -}}
{{- $opsPort := $v.opsPort | int -}}
{{- $role := ternary "frontend" .component $frontend -}}
{{- $nats := ne .component "rest-api" -}}
{{- toJson (dict "component" .component "key" $key "port" $port "opsPort" $opsPort "role" $role "frontend" $frontend "nats" $nats) -}}
{{- end }}

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

{{/* Deployment of one component. */}}
{{- define "btc-price.deployment" -}}
{{- $root := .root }}
{{- $v := .values }}
{{- $probes := $root.Values.probes }}
{{- if and .frontend (eq (int .port) (int .opsPort)) }}
{{- fail (printf "%s: port and opsPort must differ: /metrics is served on the ops port only" .key) }}
{{- end }}
{{- if le (int $probes.liveness.failureThreshold) (int $probes.readiness.failureThreshold) }}
{{- fail "probes.liveness.failureThreshold must be above probes.readiness.failureThreshold: a pod must stop getting traffic long before it is restarted" }}
{{- end }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "btc-price.componentName" . }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "btc-price.labels" . | nindent 4 }}
spec:
  {{- if not (and $v.autoscaling $v.autoscaling.enabled) }}
  replicas: {{ $v.replicaCount }}
  {{- end }}
  revisionHistoryLimit: 5
  strategy:
    type: RollingUpdate
    rollingUpdate:
      # Start the new pod before stopping an old one: capacity never drops during a rollout.
      maxSurge: 1
      maxUnavailable: 0
  selector:
    matchLabels:
      {{- include "btc-price.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      annotations:
        # Pods roll when their configuration or credentials change (env is read only at start).
        checksum/config: {{ include "btc-price.configmap" . | sha256sum }}
        {{- if and $root.Values.nats.auth.enabled (not $root.Values.nats.auth.existingSecret) }}
        checksum/secret: {{ include "btc-price.secret" $root | sha256sum }}
        {{- end }}
        {{- with $v.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      labels:
        {{- include "btc-price.labels" . | nindent 8 }}
        {{- with $v.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "btc-price.serviceAccountName" $root }}
      # No pod talks to the Kubernetes API: no token in the pod.
      automountServiceAccountToken: false
      # Keep the environment to what the app reads (no <SERVICE>_PORT_... variables).
      enableServiceLinks: false
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- range . }}
        - name: {{ . }}
        {{- end }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      # The frontends fail readiness at SIGTERM, serve SHUTDOWN_DELAY more, then drain for at most
      # 10 s; the grace period must cover both (Kubernetes 1.24 has no preStop sleep, and the image
      # has no shell for an exec one).
      terminationGracePeriodSeconds: {{ $root.Values.terminationGracePeriodSeconds }}
      containers:
        - name: {{ .component }}
          image: {{ include "btc-price.image" (dict "image" $root.Values.image "defaultTag" $root.Chart.AppVersion) | quote }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          command: [{{ printf "/usr/local/bin/%s" .component | quote }}]
          ports:
            {{- if .frontend }}
            - name: http
              containerPort: {{ .port }}
              protocol: TCP
            {{- end }}
            - name: ops
              containerPort: {{ .opsPort }}
              protocol: TCP
          envFrom:
            - configMapRef:
                name: {{ include "btc-price.componentName" . }}
          env:
            # The publisher names itself in its lease with it.
            - name: POD_NAME
              valueFrom:
                fieldRef:
                  apiVersion: v1
                  fieldPath: metadata.name
            - name: POD_NAMESPACE
              valueFrom:
                fieldRef:
                  apiVersion: v1
                  fieldPath: metadata.namespace
            {{- if eq .component "aggregator" }}
            # Each replica needs its own durable consumer: name it after the pod.
            - name: CONSUMER_NAME
              valueFrom:
                fieldRef:
                  apiVersion: v1
                  fieldPath: metadata.name
            {{- end }}
            {{- if $root.Values.tracing.otlpEndpoint }}
            - name: OTEL_RESOURCE_ATTRIBUTES
              value: {{ printf "service.version=%s,k8s.namespace.name=$(POD_NAMESPACE),k8s.pod.name=$(POD_NAME),k8s.deployment.name=%s" $root.Chart.AppVersion (include "btc-price.componentName" .) | quote }}
            {{- end }}
            {{- with $v.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          # startup: the process answers at all; liveness: it still answers (no NATS, no exchanges,
          # so a NATS outage never restarts pods); readiness: this pod can serve (bitcoin-api: NATS
          # connected and the state watched; rest-api: listening; workers: set up), never the
          # price's freshness, which every replica shares. The frontends are probed on their API
          # port: the one that must answer for the pod to get traffic.
          startupProbe:
            httpGet:
              path: /liveness
              port: {{ ternary "http" "ops" .frontend }}
            {{- toYaml $probes.startup | nindent 12 }}
          livenessProbe:
            httpGet:
              path: /liveness
              port: {{ ternary "http" "ops" .frontend }}
            {{- toYaml $probes.liveness | nindent 12 }}
          readinessProbe:
            httpGet:
              path: /readiness
              port: {{ ternary "http" "ops" .frontend }}
            {{- toYaml $probes.readiness | nindent 12 }}
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- if .nats }}
            {{- include "btc-price.natsVolumeMounts" (dict "root" $root) | trim | nindent 12 }}
            {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            medium: Memory
            sizeLimit: {{ $root.Values.tmpSizeLimit }}
        {{- if .nats }}
        {{- include "btc-price.natsVolumes" (dict "root" $root "role" .role "secret" (include "btc-price.natsSecretName" $root)) | trim | nindent 8 }}
        {{- end }}
      {{- if $root.Values.topologySpread.enabled }}
      topologySpreadConstraints:
        {{- range list "topology.kubernetes.io/zone" "kubernetes.io/hostname" }}
        - maxSkew: {{ $root.Values.topologySpread.maxSkew }}
          topologyKey: {{ . }}
          whenUnsatisfiable: {{ $root.Values.topologySpread.whenUnsatisfiable }}
          labelSelector:
            matchLabels:
              {{- include "btc-price.selectorLabels" $ | nindent 14 }}
        {{- end }}
      {{- end }}
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}

{{/* ClusterIP Service: the API port `http` (frontends) and the ops port `ops` (/metrics, every component). */}}
{{- define "btc-price.service" -}}
{{- $root := .root }}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "btc-price.componentName" . }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "btc-price.labels" . | nindent 4 }}
spec:
  type: {{ .values.serviceType | default "ClusterIP" }}
  selector:
    {{- include "btc-price.selectorLabels" . | nindent 4 }}
  ports:
    {{- if .frontend }}
    - name: http
      port: {{ .port }}
      targetPort: http
      protocol: TCP
    {{- end }}
    - name: ops
      port: {{ .opsPort }}
      targetPort: ops
      protocol: TCP
{{- end }}

{{/* PodDisruptionBudget: maxUnavailable, so a drain never blocks (minAvailable = replicas would). */}}
{{- define "btc-price.pdb" -}}
{{- if .values.pdb.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "btc-price.componentName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "btc-price.labels" . | nindent 4 }}
spec:
  maxUnavailable: {{ .values.pdb.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "btc-price.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end }}

{{/* HorizontalPodAutoscaler (frontends). */}}
{{- define "btc-price.hpa" -}}
{{- $a := .values.autoscaling }}
{{- if $a.enabled }}
{{- if lt (int $a.maxReplicas) (int $a.minReplicas) }}
{{- fail (printf "%s.autoscaling: maxReplicas is below minReplicas" .key) }}
{{- end }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "btc-price.componentName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "btc-price.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "btc-price.componentName" . }}
  minReplicas: {{ $a.minReplicas }}
  maxReplicas: {{ $a.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $a.targetCPUUtilizationPercentage }}
{{- end }}
{{- end }}

{{/*
Ingress side of a component's NetworkPolicy: the ops port (/metrics) from Prometheus only, and for
the frontends the API port from the ingress controller and from the release's `helm test` pod.
*/}}
{{- define "btc-price.networkpolicy" -}}
{{- $root := .root }}
{{- $np := $root.Values.networkPolicy }}
{{- if $np.enabled }}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "btc-price.componentName" . }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "btc-price.labels" . | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "btc-price.selectorLabels" . | nindent 6 }}
  policyTypes:
    - Ingress
    {{- if eq .component "publisher" }}
    - Egress
    {{- end }}
  ingress:
    # Prometheus scrapes /metrics on the ops port.
    - from:
        {{- include "btc-price.peer" $np.monitoring | nindent 8 }}
      ports:
        - port: ops
          protocol: TCP
    {{- if .frontend }}
    # The ingress controller's pods (namespace AND pod labels: one element).
    - from:
        {{- include "btc-price.peer" $np.ingressController | nindent 8 }}
      ports:
        - port: http
          protocol: TCP
    # The release's `helm test` pod.
    - from:
        - podSelector:
            matchLabels:
              {{- include "btc-price.selectorLabels" (dict "root" $root "component" "test") | nindent 14 }}
      ports:
        - port: http
          protocol: TCP
    {{- end }}
  {{- if eq .component "publisher" }}
  egress:
    # The exchanges, over HTTPS only, anywhere but private ranges and the cloud metadata service.
    - to:
        - ipBlock:
            cidr: {{ $np.exchanges.cidr }}
            {{- with $np.exchanges.except }}
            except:
              {{- toYaml . | nindent 14 }}
            {{- end }}
      ports:
        - port: {{ $np.exchanges.port }}
          protocol: TCP
  {{- end }}
{{- end }}
{{- end }}

{{/* Secret with one NATS password per role of the services (see nats-values.yaml for their
permissions); the admin's is in the setup Job's own Secret. */}}
{{- define "btc-price.secret" -}}
{{- $a := .Values.nats.auth }}
{{- if eq $a.mode "creds" }}
{{- fail "nats.auth.mode=creds needs nats.auth.existingSecret (keys publisher.creds, aggregator.creds, frontend.creds, admin.creds): credentials files do not belong in values" }}
{{- end }}
apiVersion: v1
kind: Secret
metadata:
  name: {{ include "btc-price.natsSecretName" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "btc-price.labels" (dict "root" . "component" "nats-credentials") | nindent 4 }}
type: Opaque
data:
  {{- range $role := list "publisher" "aggregator" "frontend" }}
  {{- $u := index $a $role }}
  {{ $role }}-password: {{ required (printf "nats.auth.%s.password is required (or set nats.auth.existingSecret)" $role) $u.password | b64enc | quote }}
  {{- end }}
{{- end }}
