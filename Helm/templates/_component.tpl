{{/*
The context of the builders shared by the four components, one kind per file: _configmap.tpl,
_deployment.tpl (which includes _pod.tpl, which includes _container.tpl, which includes _probes.tpl),
_service.tpl, _pdb.tpl, _hpa.tpl, _networkpolicy.tpl; _secret.tpl is the release's NATS Secret. Each
component's files (templates/<component>/<kind>.yaml) call them with the context that "btc-price.context" describes (as JSON) plus root and values:
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
