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
