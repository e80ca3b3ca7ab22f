{{/*
Names and labels shared by every template, and the operator's RBAC rules (defined once here,
rendered as a ClusterRole or as a Role per watched namespace by rbac.yaml).
*/}}

{{- define "ember.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every object's name: the release name when it already contains the chart's
name ("ember" for `helm install ember ...`), otherwise "<release>-ember".
*/}}
{{- define "ember.fullname" -}}
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

{{- define "ember.operatorName" -}}
{{- printf "%s-operator" (include "ember.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ember.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels of the operator's pods. The component label keeps them apart from the pods of a
Cluster, which also carry app.kubernetes.io/name=ember and app.kubernetes.io/instance=<cluster>:
without it a Cluster named like the release would fall under the operator's Service.
*/}}
{{- define "ember.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ember.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "ember.labels" -}}
helm.sh/chart: {{ include "ember.chart" . }}
{{ include "ember.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ember
{{- end }}

{{- define "ember.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ember.operatorName" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name must name an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ember.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
What the operator does in a namespace it watches: the Cluster resources and their status, the
pods, services, secrets and volumes it renders from them, the events kopf posts, and kopf's
namespaced peering. Rendered into the ClusterRole when watching all namespaces, or into a Role
in each watched namespace.
*/}}
{{- define "ember.namespacedRules" -}}
- apiGroups: [ember.dev]
  resources: [clusters]
  verbs: [get, list, watch, patch, update]
- apiGroups: [ember.dev]
  resources: [clusters/status]
  verbs: [get, patch, update]
# Children carry blockOwnerDeletion in their owner reference; where the API server enforces
# OwnerReferencesPermissionEnforcement (OpenShift does) that takes update on the owner's
# finalizers subresource.
- apiGroups: [ember.dev]
  resources: [clusters/finalizers]
  verbs: [update]
- apiGroups: [""]
  resources: [pods, services, secrets, persistentvolumeclaims]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [kopf.dev]
  resources: [kopfpeerings]
  verbs: [get, list, watch, patch]
{{- end }}

{{/*
What kopf reads cluster-wide in either mode: CustomResourceDefinitions (it watches them to learn
when clusters.ember.dev appears or changes) and namespaces (with --namespace it lists and
watches namespaces to match the names it was given; without the permission it falls back to
assuming they exist, with a warning).
*/}}
{{- define "ember.clusterScopedRules" -}}
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [namespaces]
  verbs: [get, list, watch]
{{- end }}

{{/* Cluster-wide peering: used by kopf only when it watches all namespaces. */}}
{{- define "ember.clusterPeeringRules" -}}
- apiGroups: [kopf.dev]
  resources: [clusterkopfpeerings]
  verbs: [get, list, watch, patch]
{{- end }}
