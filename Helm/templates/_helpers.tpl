{{/*
Names, labels and image references, as `helm create` and the NATS chart shape them.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "btc-price.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The object-name prefix: fullnameOverride, else "<release>-<name>", or just the release name when it
already contains the chart name. Truncated to leave room for "-bitcoin-api" (63 - 12).
*/}}
{{- define "btc-price.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 51 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 51 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 51 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* "name-version" for the helm.sh/chart label. */}}
{{- define "btc-price.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of a component's objects. Call with (dict "root" $ "component" "publisher").
*/}}
{{- define "btc-price.labels" -}}
helm.sh/chart: {{ include "btc-price.chart" .root }}
{{ include "btc-price.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: {{ include "btc-price.name" .root }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels: name, instance and component. Never change them in an upgrade: a Deployment's
selector is immutable.
*/}}
{{- define "btc-price.selectorLabels" -}}
app.kubernetes.io/name: {{ include "btc-price.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Labels every pod of the release has (the NetworkPolicies' "all my pods"). */}}
{{- define "btc-price.releaseSelectorLabels" -}}
app.kubernetes.io/name: {{ include "btc-price.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The name of a component's objects: "<fullname>-<component>". */}}
{{- define "btc-price.componentName" -}}
{{- printf "%s-%s" (include "btc-price.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "btc-price.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "btc-price.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding the NATS credentials: the operator's, or the one this chart creates. */}}
{{- define "btc-price.natsSecretName" -}}
{{- default (printf "%s-nats" (include "btc-price.fullname" .)) .Values.nats.auth.existingSecret }}
{{- end }}

{{/*
An image reference from {repository, tag, digest}: "repo:tag", or "repo:tag@sha256:..." when a digest
is given (the runtime then pulls by digest; the tag only documents). Call with
(dict "image" .Values.image "defaultTag" .Chart.AppVersion). A `latest` or empty tag is refused.
*/}}
{{- define "btc-price.image" -}}
{{- $tag := toString (default .defaultTag .image.tag) }}
{{- if or (eq $tag "") (eq $tag "latest") }}
{{- fail (printf "image %s: pin a tag other than 'latest' (and preferably a digest)" .image.repository) }}
{{- end }}
{{- if .image.digest }}
{{- printf "%s:%s@%s" .image.repository $tag .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository $tag }}
{{- end }}
{{- end }}

{{/*
A namespaceSelector (+ podSelector) peer for NetworkPolicies, from {namespace, podLabels}. Both
selectors sit in ONE list element, so they are ANDed: pods with these labels in that namespace.
(Two elements would be ORed: the whole namespace, or those labels in ours.)
*/}}
{{- define "btc-price.peer" -}}
- namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: {{ .namespace | quote }}
  {{- with .podLabels }}
  podSelector:
    matchLabels:
      {{- toYaml . | nindent 6 }}
  {{- end }}
{{- end }}

{{/*
NATS credentials and TLS of one role, as files: every pod mounts only its own role's key of the
Secret, read-only (nothing secret is in the environment). Roles: publisher, aggregator, frontend,
and admin (the setup Job). Call with (dict "root" $ "role" "publisher").
*/}}

{{/* The Secret key of a role's credential: "<role>-password", or "<role>.creds" in creds mode. */}}
{{- define "btc-price.natsAuthKey" -}}
{{- if eq .root.Values.nats.auth.mode "creds" }}{{ printf "%s.creds" .role }}{{ else }}{{ printf "%s-password" .role }}{{ end }}
{{- end }}

{{/* The file the credential is mounted as, under /etc/nats-auth. */}}
{{- define "btc-price.natsAuthFile" -}}
{{- if eq .root.Values.nats.auth.mode "creds" }}nats.creds{{ else }}password{{ end }}
{{- end }}

{{/* The non-secret settings of a role's NATS connection, as a YAML map of variables. */}}
{{- define "btc-price.natsEnv" -}}
{{- $v := .root.Values.nats }}
{{- $user := (index $v.auth .role).user }}
{{- if $v.auth.enabled }}
{{- if eq $v.auth.mode "creds" }}
NATS_CREDS: /etc/nats-auth/nats.creds
{{- else }}
NATS_USER: {{ $user | quote }}
NATS_PASSWORD_FILE: /etc/nats-auth/password
{{- end }}
{{- /* The permissions let each user read replies under its own prefix only (nats-values.yaml). */}}
NATS_INBOX_PREFIX: {{ printf "_INBOX_%s" $user | quote }}
{{- end }}
{{- if $v.tls.enabled }}
NATS_TLS_CA: /etc/nats-tls/ca.crt
{{- if $v.tls.clientCert }}
NATS_TLS_CERT: /etc/nats-tls/tls.crt
NATS_TLS_KEY: /etc/nats-tls/tls.key
{{- end }}
{{- end }}
{{- end }}

{{/* Whether the chart renders the cert-manager objects of the NATS client certificates. */}}
{{- define "btc-price.natsCertManager" -}}
{{- $v := .Values.nats.tls }}
{{- if and $v.enabled $v.certManager.enabled (or $v.certManager.force (.Capabilities.APIVersions.Has "cert-manager.io/v1")) }}true{{ end }}
{{- end }}

{{/* Whether the cluster serves the Prometheus operator's API: without it, a ServiceMonitor or
PrometheusRule fails the whole release ("ensure CRDs are installed first"). */}}
{{- define "btc-price.monitoringApi" -}}
{{- if .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" }}true{{ end }}
{{- end }}

{{/* The TLS Secret of a role: its own Certificate's with cert-manager, else nats.tls.secretName. */}}
{{- define "btc-price.natsTlsSecret" -}}
{{- if .root.Values.nats.tls.certManager.enabled }}
{{- printf "%s-nats-%s-tls" (include "btc-price.fullname" .root) .role }}
{{- else }}
{{- required "nats.tls.secretName is required when nats.tls.enabled (or use nats.tls.certManager)" .root.Values.nats.tls.secretName }}
{{- end }}
{{- end }}

{{/* The Secret holding the admin's credential for the setup Job. */}}
{{- define "btc-price.natsSetupSecretName" -}}
{{- default (printf "%s-nats-setup" (include "btc-price.fullname" .)) .Values.nats.auth.existingSecret }}
{{- end }}

{{/* Volume mounts of a role's NATS files. */}}
{{- define "btc-price.natsVolumeMounts" -}}
{{- if .root.Values.nats.auth.enabled }}
- name: nats-auth
  mountPath: /etc/nats-auth
  readOnly: true
{{- end }}
{{- if .root.Values.nats.tls.enabled }}
- name: nats-tls
  mountPath: /etc/nats-tls
  readOnly: true
{{- end }}
{{- end }}

{{/* Volumes of a role's NATS files: its key of `secret` only, and its TLS Secret. Call with
(dict "root" $ "role" "publisher" "secret" "<name of the credentials Secret>"). */}}
{{- define "btc-price.natsVolumes" -}}
{{- if .root.Values.nats.auth.enabled }}
- name: nats-auth
  secret:
    secretName: {{ .secret }}
    defaultMode: 0440
    items:
      - key: {{ include "btc-price.natsAuthKey" . }}
        path: {{ include "btc-price.natsAuthFile" . }}
{{- end }}
{{- if .root.Values.nats.tls.enabled }}
- name: nats-tls
  secret:
    secretName: {{ include "btc-price.natsTlsSecret" . }}
    defaultMode: 0440
{{- end }}
{{- end }}
