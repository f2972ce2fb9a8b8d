{{/*
The chart's name, or nameOverride.
*/}}
{{- define "mobility.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every resource's name: fullnameOverride, else "<release>-<chart>" (just the
release when it already contains the chart's name). Kept to 50 characters so that
"<prefix>-<role>" fits the 63 that names and labels allow.
*/}}
{{- define "mobility.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
chart label: name and version.
*/}}
{{- define "mobility.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels every resource carries.
*/}}
{{- define "mobility.labels" -}}
helm.sh/chart: {{ include "mobility.chart" . }}
{{ include "mobility.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Labels that select this release's pods; add app.kubernetes.io/component: <role> for one role.
*/}}
{{- define "mobility.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mobility.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The Secret the pods read: the chart's own, or secrets.existingSecret.
*/}}
{{- define "mobility.secretName" -}}
{{- if .Values.secrets.create }}
{{- include "mobility.fullname" . }}
{{- else }}
{{- required "secrets.existingSecret is required when secrets.create is false" .Values.secrets.existingSecret }}
{{- end }}
{{- end }}

{{/*
The image reference.
*/}}
{{- define "mobility.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
