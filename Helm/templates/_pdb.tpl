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
