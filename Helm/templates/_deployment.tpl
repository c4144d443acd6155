{{/* Deployment of one component: rollout, selector and the pod's metadata; the pod is _pod.tpl's. */}}
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
      {{- include "btc-price.podSpec" . | nindent 6 }}
{{- end }}
