{{/*
Chart name, truncated to 63 characters (the DNS label limit of most Kubernetes names).
*/}}
{{- define "vault-injector.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name. With the release named "vault-injector" (the documented install) it is
"vault-injector", which matches the binary's defaults for --service-name, --webhook-config-name
and (with "-tls") --cert-secret-name.
*/}}
{{- define "vault-injector.fullname" -}}
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

{{- define "vault-injector.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object.
*/}}
{{- define "vault-injector.labels" -}}
helm.sh/chart: {{ include "vault-injector.chart" . }}
{{ include "vault-injector.selectorLabels" . }}
app.kubernetes.io/version: {{ include "vault-injector.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/component: webhook
app.kubernetes.io/part-of: vault-injector
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels: immutable once a Deployment exists, so never add to them.
*/}}
{{- define "vault-injector.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vault-injector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "vault-injector.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "vault-injector.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image tag (defaults to the chart's appVersion) and full reference (a digest wins over the tag).
*/}}
{{- define "vault-injector.imageTag" -}}
{{- .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "vault-injector.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "vault-injector.imageTag" .) }}
{{- end }}
{{- end }}

{{/*
Image of the injected agent containers: webhook.agentImage, else the webhook's own image (the
same binary runs both faces, so they always match).
*/}}
{{- define "vault-injector.agentImage" -}}
{{- .Values.webhook.agentImage | default (include "vault-injector.image" .) }}
{{- end }}

{{- define "vault-injector.webhookConfigName" -}}
{{- .Values.webhookConfiguration.name | default (include "vault-injector.fullname" .) }}
{{- end }}

{{/*
Secret holding the serving certificate. selfManaged: written by the webhook itself.
certManager: written by cert-manager (a different name, so switching modes never makes one
manager adopt the other's Secret). secret: the operator's own, which the chart only mounts.
*/}}
{{- define "vault-injector.tlsSecretName" -}}
{{- if eq .Values.certs.mode "certManager" }}
{{- .Values.certs.certManager.secretName | default (printf "%s-serving-tls" (include "vault-injector.fullname" .)) }}
{{- else if eq .Values.certs.mode "secret" }}
{{- .Values.certs.secret.name }}
{{- else }}
{{- .Values.certs.selfManaged.secretName | default (printf "%s-tls" (include "vault-injector.fullname" .)) }}
{{- end }}
{{- end }}

{{/*
Modes in which the webhook reads its certificate from a mounted Secret (--cert-mode=files), and
where: certManager and secret. "" in selfManaged mode, where nothing is mounted.
*/}}
{{- define "vault-injector.tlsMountPath" -}}
{{- $mounted := dict "certManager" .Values.certs.certManager "secret" .Values.certs.secret }}
{{- with get $mounted .Values.certs.mode }}{{ .mountPath }}{{ end }}
{{- end }}

{{/*
caBundle of certs.mode=secret: PEM is encoded here, so `--set-file certs.secret.caBundle=ca.crt`
works; anything else is taken as base64 already.
*/}}
{{- define "vault-injector.secretCABundle" -}}
{{- $ca := .Values.certs.secret.caBundle | trim }}
{{- if contains "-----BEGIN" $ca }}{{ $ca | b64enc }}{{ else }}{{ $ca | nospace }}{{ end }}
{{- end }}

{{/*
--agent-uid: "auto" on OpenShift (the SCC assigns the UID), else webhook.agentUid. An integer
is printed with %d: Helm reads numbers as floats, and %v would print 1000680000 as 1.00068e+09.
*/}}
{{- define "vault-injector.agentUid" -}}
{{- $uid := .Values.webhook.agentUid }}
{{- if or .Values.openshift (eq (toString $uid) "auto") }}auto{{ else }}{{ printf "%d" (int64 $uid) }}{{ end }}
{{- end }}

{{/*
A security context without UIDs and GIDs on OpenShift, whose restricted-v2 SCC assigns them
from the namespace's range and refuses any other.
*/}}
{{- define "vault-injector.securityContext" -}}
{{- $sc := index . 0 }}
{{- if (index . 1).Values.openshift }}
{{- $sc = omit $sc "runAsUser" "runAsGroup" "fsGroup" }}
{{- end }}
{{- with $sc }}{{ toYaml . }}{{ end }}
{{- end }}

{{/* cert-manager Certificate of the serving certificate (named by inject-ca-from). */}}
{{- define "vault-injector.servingCertificateName" -}}
{{- printf "%s-serving" (include "vault-injector.fullname" .) }}
{{- end }}

{{/*
Namespaces never injected: webhook.excludedNamespaces plus the release namespace (the webhook
must never be asked about its own pods: with failurePolicy Fail it could not start again).
Used both for --excluded-namespaces and for the MutatingWebhookConfiguration's
namespaceSelector, so the API server does not even call the webhook for them.
*/}}
{{- define "vault-injector.excludedNamespaces" -}}
{{- append .Values.webhook.excludedNamespaces .Release.Namespace | uniq | join "," }}
{{- end }}

{{/*
Arguments of `vault-injector webhook`: every documented setting of .Values.webhook, plus the
certificate settings derived from .Values.certs and the object names of this release.
Values are always rendered (an empty string is meaningful for some flags, for instance
tokenAudience "" = the API server's default audiences), so the Deployment shows the effective
configuration.
*/}}
{{- define "vault-injector.args" -}}
{{- $w := .Values.webhook -}}
- webhook
- {{ printf "--listen=:%d" (int64 $w.port) | quote }}
- {{ printf "--vault-address=%s" $w.vaultAddress | quote }}
- {{ printf "--auth-path=%s" $w.authPath | quote }}
- {{ printf "--vault-ca-configmap=%s" $w.vaultCAConfigMap | quote }}
- {{ printf "--agent-image=%s" (include "vault-injector.agentImage" .) | quote }}
- {{ printf "--agent-image-pull-policy=%s" $w.agentImagePullPolicy | quote }}
- {{ printf "--sidecar-style=%s" $w.sidecarStyle | quote }}
- {{ printf "--token-audience=%s" $w.tokenAudience | quote }}
- {{ printf "--token-expiration=%s" $w.tokenExpiration | quote }}
- {{ printf "--refresh-interval=%s" $w.refreshInterval | quote }}
- {{ printf "--secrets-path=%s" $w.secretsPath | quote }}
- {{ printf "--agent-cpu-request=%s" (dig "requests" "cpu" "" ($w.agentResources | default dict) | default "" | toString) | quote }}
- {{ printf "--agent-memory-request=%s" (dig "requests" "memory" "" ($w.agentResources | default dict) | default "" | toString) | quote }}
- {{ printf "--agent-cpu-limit=%s" (dig "limits" "cpu" "" ($w.agentResources | default dict) | default "" | toString) | quote }}
- {{ printf "--agent-memory-limit=%s" (dig "limits" "memory" "" ($w.agentResources | default dict) | default "" | toString) | quote }}
- {{ printf "--agent-uid=%s" (include "vault-injector.agentUid" .) | quote }}
{{- if $w.acceptVaultAnnotations }}
- "--accept-vault-annotations"
{{- end }}
- {{ printf "--excluded-namespaces=%s" (include "vault-injector.excludedNamespaces" .) | quote }}
- {{ printf "--log-level=%s" $w.logLevel | quote }}
- {{ printf "--shutdown-grace=%s" $w.shutdownGrace | quote }}
- {{ printf "--max-requests-in-flight=%d" (int64 $w.maxRequestsInFlight) | quote }}
- {{ printf "--max-in-flight-bytes=%s" $w.maxInFlightBytes | quote }}
- {{ printf "--env-style=%s" $w.envStyle | quote }}
{{- with include "vault-injector.tlsMountPath" . }}
- "--cert-mode=files"
- {{ printf "--tls-cert-file=%s/tls.crt" . | quote }}
- {{ printf "--tls-key-file=%s/tls.key" . | quote }}
{{- else }}
- "--cert-mode=self-managed"
- {{ printf "--namespace=%s" .Release.Namespace | quote }}
- {{ printf "--service-name=%s" (include "vault-injector.fullname" .) | quote }}
- {{ printf "--cert-secret-name=%s" (include "vault-injector.tlsSecretName" .) | quote }}
- {{ printf "--webhook-config-name=%s" (include "vault-injector.webhookConfigName" .) | quote }}
{{- with .Values.certs.selfManaged.leafLifetime }}
- {{ printf "--cert-leaf-lifetime=%s" . | quote }}
{{- end }}
{{- with .Values.certs.selfManaged.caLifetime }}
- {{ printf "--cert-ca-lifetime=%s" . | quote }}
{{- end }}
{{- with .Values.certs.selfManaged.syncInterval }}
- {{ printf "--cert-sync-interval=%s" . | quote }}
{{- end }}
- {{ printf "--cluster-domain=%s" .Values.certs.selfManaged.clusterDomain | quote }}
{{- with .Values.certs.selfManaged.extraDNSNames }}
- {{ printf "--cert-dns-names=%s" (join "," .) | quote }}
{{- end }}
{{- with .Values.certs.selfManaged.ipAddresses }}
- {{ printf "--cert-ip-addresses=%s" (join "," .) | quote }}
{{- end }}
{{- end }}
{{- if .Values.policy.enabled }}
- {{ printf "--policy-configmap=%s/%s-policy" .Release.Namespace (include "vault-injector.fullname" .) | quote }}
{{- if .Values.policy.namespaceLabels }}
- "--policy-namespace-labels"
{{- end }}
{{- end }}
{{- range $w.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{/*
Fail early on settings the cluster or the other values cannot honour.
*/}}
{{- define "vault-injector.validate" -}}
{{- if not (has .Values.certs.mode (list "selfManaged" "certManager" "secret")) }}
{{- fail (printf "certs.mode=%q is invalid: expected selfManaged, certManager or secret" .Values.certs.mode) }}
{{- end }}
{{- if and (eq .Values.certs.mode "secret") (or (not .Values.certs.secret.name) (not .Values.certs.secret.caBundle)) }}
{{- fail "certs.mode=secret needs certs.secret.name (an existing kubernetes.io/tls Secret) and certs.secret.caBundle (the CA that signed it)" }}
{{- end }}
{{- if and .Values.priorityClassQuota.enabled (not .Values.priorityClassName) }}
{{- fail "priorityClassQuota.enabled=true scopes a ResourceQuota to priorityClassName, which is empty: set it (e.g. system-cluster-critical)" }}
{{- end }}
{{- if and (eq .Values.webhook.sidecarStyle "native") (semverCompare "<1.29.0-0" .Capabilities.KubeVersion.Version) }}
{{- fail (printf "webhook.sidecarStyle=native needs Kubernetes >= 1.29 (native sidecars); this cluster is %s: set webhook.sidecarStyle=classic" .Capabilities.KubeVersion.Version) }}
{{- end }}
{{- end }}
