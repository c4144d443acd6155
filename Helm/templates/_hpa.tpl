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
