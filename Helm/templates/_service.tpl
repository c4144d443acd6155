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
