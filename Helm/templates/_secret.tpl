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
