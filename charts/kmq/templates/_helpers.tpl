{{/* The chart name, or nameOverride. */}}
{{- define "kmq.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The prefix of every resource name: fullnameOverride, else <release>-kmq (just <release> when it contains the chart name). */}}
{{- define "kmq.fullname" -}}
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

{{- define "kmq.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kmq.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "kmq.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "kmq.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "kmq.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kmq.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository:tag of one of .Values.image.{operator,broker,sidecar}; the tag defaults to appVersion. */}}
{{- define "kmq.image" -}}
{{- printf "%s:%s" .image.repository (default .chart.AppVersion .image.tag) }}
{{- end }}

{{- define "kmq.webhookService" -}}
{{- printf "%s-webhook" (include "kmq.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The Secret holding the webhook's CA and serving certificate; the operator creates it. */}}
{{- define "kmq.webhookSecret" -}}
{{- printf "%s-webhook-tls" (include "kmq.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kmq.webhookConfiguration" -}}
{{- printf "%s-sidecar-injector" (include "kmq.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kmq.leaseName" -}}
{{- default (include "kmq.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}
