{{/*
Names and labels shared by every template of the chart.
*/}}

{{/* The chart name, or .Values.nameOverride. */}}
{{- define "llm-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The fully qualified name of the release's objects: .Values.fullnameOverride, or
<release>-<chart name> (just <release> when it already contains the chart name).
*/}}
{{- define "llm-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* chart name and version, for the helm.sh/chart label. */}}
{{- define "llm-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object of the release. */}}
{{- define "llm-operator.labels" -}}
helm.sh/chart: {{ include "llm-operator.chart" . }}
{{ include "llm-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: llm-operator
{{- end }}

{{/* Labels that select the operator's Pods (immutable once installed). */}}
{{- define "llm-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "llm-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The operator's ServiceAccount. */}}
{{- define "llm-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "llm-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* An image reference: repository@digest when a digest is set, repository:tag otherwise. */}}
{{- define "llm-operator.imageRef" -}}
{{- if .digest }}
{{- printf "%s@%s" .repository .digest }}
{{- else }}
{{- printf "%s:%s" .repository .tag }}
{{- end }}
{{- end }}

{{/* The operator image. */}}
{{- define "llm-operator.image" -}}
{{- include "llm-operator.imageRef" .Values.image }}
{{- end }}

{{/* The default gateway sidecar image the operator puts into LLMDeployments. */}}
{{- define "llm-operator.gatewayImage" -}}
{{- include "llm-operator.imageRef" .Values.gateway.image }}
{{- end }}

{{/* The metrics Service. */}}
{{- define "llm-operator.metricsServiceName" -}}
{{- printf "%s-metrics" (include "llm-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The namespaces the operator watches; empty means every namespace (ClusterRole mode). */}}
{{- define "llm-operator.namespaced" -}}
{{- if .Values.watchNamespaces }}true{{ end }}
{{- end }}
