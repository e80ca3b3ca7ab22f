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

{{/* The same labels as key=value,key=value (a label selector's text). */}}
{{- define "ember.selectorLabelList" -}}
{{- $pairs := list }}
{{- range $key, $value := include "ember.selectorLabels" . | fromYaml }}
{{- $pairs = append $pairs (printf "%s=%s" $key $value) }}
{{- end }}
{{- join "," $pairs }}
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
What the operator does in a namespace it watches, and nothing more (tests/operator records every
call of a Cluster's and an EmberJob's life and checks each is granted; tests/chart checks nothing
else is): the Cluster and EmberJob resources (kopf watches and patches them; the operator patches
their status and a Cluster's spec), the Clusters an EmberJob makes and deletes, the pods,
services, secrets, volume claims and NetworkPolicies it renders from Clusters, an EmberJob's
submitter Jobs and the ConfigMap it reads its code from, the events kopf posts, and kopf's
namespaced peering. Secrets: only read (the token and TLS Secrets it names) and create (the
token Secret it makes); they go with their Cluster by garbage collection, as volume claims do.
Rendered into the ClusterRole when watching all namespaces, or into a Role in each watched
namespace (prefer that: Secrets are then readable only where Clusters run).
*/}}
{{- define "ember.namespacedRules" -}}
- apiGroups: [ember.dev]
  resources: [clusters]
  verbs: [get, list, watch, patch, create, delete]
- apiGroups: [ember.dev]
  resources: [clusters/status]
  verbs: [patch]
- apiGroups: [ember.dev]
  resources: [emberjobs]
  verbs: [get, list, watch, patch]
- apiGroups: [ember.dev]
  resources: [emberjobs/status]
  verbs: [patch]
# Children carry blockOwnerDeletion in their owner reference; where the API server enforces
# OwnerReferencesPermissionEnforcement (OpenShift does) that takes update on the owner's
# finalizers subresource.
- apiGroups: [ember.dev]
  resources: [clusters/finalizers, emberjobs/finalizers]
  verbs: [update]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, create, delete]
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get]
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch, create, delete]
- apiGroups: [""]
  resources: [services]
  verbs: [list, create, delete]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, create]
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [list, create]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [list, create, patch, delete]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
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

{{/*
The restricted template policy's findings in one pod template, as a CEL list of strings
"<field>: <why>" in the order and words of ember.operator.cluster_policy.template_violations:
.t is the CEL expression of the template, .at that of its path in the spec. The caller binds
variables.own (the Cluster's own Secrets) and variables.volumeTypes (the allowed volume types).
*/}}
{{- define "ember.templateViolations" -}}
{{- $t := .t }}{{- $at := .at }}
{{- $notOwn := "' is not one of the cluster\\'s own (its token and TLS Secrets)'" -}}
(has({{ $t }}.volumes) ? {{ $t }}.volumes.filter(v, v.exists(k, k != 'name' && !(k in variables.volumeTypes)))
.map(v, {{ $at }} + '.volumes[' + v.name + '].' + v.filter(k, k != 'name' && !(k in variables.volumeTypes))[0]
+ ': ' + v.filter(k, k != 'name' && !(k in variables.volumeTypes))[0] + ' volumes are not allowed (allowed: '
+ 'configMap, csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, projected, secret)') : [])
+ (has({{ $t }}.volumes) ? {{ $t }}.volumes.filter(v, has(v.secret)
&& !((has(v.secret.secretName) ? v.secret.secretName : '') in variables.own))
.map(v, {{ $at }} + '.volumes[' + v.name + '].secret.secretName: Secret '
+ (has(v.secret.secretName) ? v.secret.secretName : '') + {{ $notOwn }}) : [])
+ (has({{ $t }}.volumes) ? {{ $t }}.volumes.filter(v, has(v.projected) && has(v.projected.sources)
&& v.projected.sources.exists(s, has(s.secret) && !((has(s.secret.name) ? s.secret.name : '') in variables.own)))
.map(v, {{ $at }} + '.volumes[' + v.name + '].projected.sources.secret.name: Secret '
+ v.projected.sources.filter(s, has(s.secret) && !((has(s.secret.name) ? s.secret.name : '') in variables.own))
.map(s, has(s.secret.name) ? s.secret.name : '')[0] + {{ $notOwn }}) : [])
+ (has({{ $t }}.volumes) ? {{ $t }}.volumes.filter(v, has(v.csi) && has(v.csi.nodePublishSecretRef)
&& !((has(v.csi.nodePublishSecretRef.name) ? v.csi.nodePublishSecretRef.name : '') in variables.own))
.map(v, {{ $at }} + '.volumes[' + v.name + '].csi.nodePublishSecretRef.name: Secret '
+ (has(v.csi.nodePublishSecretRef.name) ? v.csi.nodePublishSecretRef.name : '') + {{ $notOwn }}) : [])
+ (has({{ $t }}.env) ? {{ $t }}.env.filter(e, has(e.valueFrom) && has(e.valueFrom.secretKeyRef)
&& !((has(e.valueFrom.secretKeyRef.name) ? e.valueFrom.secretKeyRef.name : '') in variables.own))
.map(e, {{ $at }} + '.env[' + e.name + '].valueFrom.secretKeyRef.name: Secret '
+ (has(e.valueFrom.secretKeyRef.name) ? e.valueFrom.secretKeyRef.name : '') + {{ $notOwn }}) : [])
+ (has({{ $t }}.envFrom) ? {{ $t }}.envFrom.filter(e, has(e.secretRef)
&& !((has(e.secretRef.name) ? e.secretRef.name : '') in variables.own))
.map(e, {{ $at }} + '.envFrom.secretRef.name: Secret '
+ (has(e.secretRef.name) ? e.secretRef.name : '') + {{ $notOwn }}) : [])
+ (has({{ $t }}.serviceAccountName) && !({{ $t }}.serviceAccountName in ['', 'default'])
? [{{ $at }} + '.serviceAccountName: service account ' + {{ $t }}.serviceAccountName
+ ' is not allowed (only default)'] : [])
{{- end }}
