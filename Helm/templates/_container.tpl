{{/* The component's container (a list item): image, ports, environment, probes (_probes.tpl), limits. */}}
{{- define "btc-price.container" -}}
{{- $root := .root }}
{{- $v := .values -}}
- name: {{ .component }}
  image: {{ include "btc-price.image" (dict "image" $root.Values.image "defaultTag" $root.Chart.AppVersion) | quote }}
  imagePullPolicy: {{ $root.Values.image.pullPolicy }}
  command: [{{ printf "/usr/local/bin/%s" .component | quote }}]
  ports:
    {{- if .frontend }}
    - name: http
      containerPort: {{ .port }}
      protocol: TCP
    {{- end }}
    - name: ops
      containerPort: {{ .opsPort }}
      protocol: TCP
  envFrom:
    - configMapRef:
        name: {{ include "btc-price.componentName" . }}
  env:
    # The publisher names itself in its lease with it.
    - name: POD_NAME
      valueFrom:
        fieldRef:
          apiVersion: v1
          fieldPath: metadata.name
    - name: POD_NAMESPACE
      valueFrom:
        fieldRef:
          apiVersion: v1
          fieldPath: metadata.namespace
    {{- if eq .component "aggregator" }}
    # Each replica needs its own durable consumer: name it after the pod.
    - name: CONSUMER_NAME
      valueFrom:
        fieldRef:
          apiVersion: v1
          fieldPath: metadata.name
    {{- end }}
    {{- if $root.Values.tracing.otlpEndpoint }}
    - name: OTEL_RESOURCE_ATTRIBUTES
      value: {{ printf "service.version=%s,k8s.namespace.name=$(POD_NAMESPACE),k8s.pod.name=$(POD_NAME),k8s.deployment.name=%s" $root.Chart.AppVersion (include "btc-price.componentName" .) | quote }}
    {{- end }}
    {{- with $v.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- include "btc-price.probes" . | nindent 2 }}
  resources:
    {{- toYaml $v.resources | nindent 4 }}
  securityContext:
    {{- toYaml $root.Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: tmp
      mountPath: /tmp
    {{- if .nats }}
    {{- include "btc-price.natsVolumeMounts" (dict "root" $root) | trim | nindent 4 }}
    {{- end }}
{{- end }}
