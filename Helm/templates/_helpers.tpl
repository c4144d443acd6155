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
