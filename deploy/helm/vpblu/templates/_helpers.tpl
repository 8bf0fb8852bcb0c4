{{/*
Names are fixed: one vpblu per cluster, and the binaries' defaults use the
same names (the agent's ServiceAccount, the CA ConfigMap, the Lease).
*/}}
{{- define "vpblu.controllerName" -}}vpblu-controller{{- end }}
{{- define "vpblu.agentName" -}}vpblu-agent{{- end }}
{{- define "vpblu.caConfigMap" -}}vpblu-ca{{- end }}
{{- define "vpblu.agentAudience" -}}vpblu.io/agent{{- end }}

{{/* The stream Service's DNS names: the serving certificate's SANs. */}}
{{- define "vpblu.streamHost" -}}
{{ include "vpblu.controllerName" . }}.{{ .Release.Namespace }}.svc
{{- end }}

{{- define "vpblu.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: vpblu
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: vpblu
{{- end }}

{{/* Selector labels of one component; call with (dict "root" $ "component" "agent"). */}}
{{- define "vpblu.selectorLabels" -}}
app.kubernetes.io/name: vpblu
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Image reference; call with (dict "root" $ "image" .Values.agent.image). */}}
{{- define "vpblu.image" -}}
{{- if .image.digest -}}
{{ .image.repository }}@{{ .image.digest }}
{{- else -}}
{{ .image.repository }}:{{ .image.tag | default .root.Chart.AppVersion }}
{{- end -}}
{{- end }}
