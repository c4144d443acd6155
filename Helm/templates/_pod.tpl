{{/* The pod spec of a component's Deployment: identity, security, the one container (_container.tpl),
volumes and placement. */}}
{{- define "btc-price.podSpec" -}}
{{- $root := .root }}
{{- $v := .values -}}
serviceAccountName: {{ include "btc-price.serviceAccountName" $root }}
# No pod talks to the Kubernetes API: no token in the pod.
automountServiceAccountToken: false
# Keep the environment to what the app reads (no <SERVICE>_PORT_... variables).
enableServiceLinks: false
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
# The frontends fail readiness at SIGTERM, serve SHUTDOWN_DELAY more, then drain for at most
# 10 s; the grace period must cover both (Kubernetes 1.24 has no preStop sleep, and the image
# has no shell for an exec one).
terminationGracePeriodSeconds: {{ $root.Values.terminationGracePeriodSeconds }}
containers:
  {{- include "btc-price.container" . | nindent 2 }}
volumes:
  - name: tmp
    emptyDir:
      medium: Memory
      sizeLimit: {{ $root.Values.tmpSizeLimit }}
  {{- if .nats }}
  {{- include "btc-price.natsVolumes" (dict "root" $root "role" .role "secret" (include "btc-price.natsSecretName" $root)) | trim | nindent 2 }}
  {{- end }}
{{- if $root.Values.topologySpread.enabled }}
topologySpreadConstraints:
  {{- range list "topology.kubernetes.io/zone" "kubernetes.io/hostname" }}
  - maxSkew: {{ $root.Values.topologySpread.maxSkew }}
    topologyKey: {{ . }}
    whenUnsatisfiable: {{ $root.Values.topologySpread.whenUnsatisfiable }}
    labelSelector:
      matchLabels:
        {{- include "btc-price.selectorLabels" $ | nindent 8 }}
  {{- end }}
{{- end }}
{{- with $v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
