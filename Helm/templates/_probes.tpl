{{/* The container's three probes (why each checks what it checks: the comment they render with). */}}
{{- define "btc-price.probes" -}}
{{- $probes := .root.Values.probes }}
{{- $port := ternary "http" "ops" .frontend -}}
# startup: the process answers at all; liveness: it still answers (no NATS, no exchanges,
# so a NATS outage never restarts pods); readiness: this pod can serve (bitcoin-api: NATS
# connected and the state watched; rest-api: listening; workers: set up), never the
# price's freshness, which every replica shares. The frontends are probed on their API
# port: the one that must answer for the pod to get traffic.
startupProbe:
  httpGet:
    path: /liveness
    port: {{ $port }}
  {{- toYaml $probes.startup | nindent 2 }}
livenessProbe:
  httpGet:
    path: /liveness
    port: {{ $port }}
  {{- toYaml $probes.liveness | nindent 2 }}
readinessProbe:
  httpGet:
    path: /readiness
    port: {{ $port }}
  {{- toYaml $probes.readiness | nindent 2 }}
{{- end }}
