{{/*
Shared template helpers: names, labels, the security contexts, secret/claim names and the guards that
stop a render with a clear message when a required value is missing or unsafe.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "enclave.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The resource-name prefix: fullnameOverride, else "<release>-<name>" (just "<release>" when the release
name already contains the chart name). Truncated so derived names (KubeRay appends suffixes) stay valid.
*/}}
{{- define "enclave.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* "name-version" for the helm.sh/chart label. */}}
{{- define "enclave.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: every pod of the release carries them (the NetworkPolicies select on them). */}}
{{- define "enclave.selectorLabels" -}}
app.kubernetes.io/name: {{ include "enclave.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Common labels of every resource. */}}
{{- define "enclave.labels" -}}
helm.sh/chart: {{ include "enclave.chart" . }}
{{ include "enclave.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: enclave
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The image reference (tag defaults to the chart's appVersion). */}}
{{- define "enclave.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Service account names. */}}
{{- define "enclave.serviceAccountName" -}}
{{- default (include "enclave.fullname" .) .Values.serviceAccount.name }}
{{- end }}
{{- define "enclave.rayServiceAccountName" -}}
{{- default (printf "%s-ray" (include "enclave.fullname" .)) .Values.serviceAccount.rayName }}
{{- end }}

{{/* The common pod-level securityContext. */}}
{{- define "enclave.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext }}
{{- end }}

{{/* The common container-level securityContext (non-root, no escalation, no capabilities, RO root). */}}
{{- define "enclave.containerSecurityContext" -}}
{{- toYaml .Values.containerSecurityContext }}
{{- end }}

{{/* Names of the serving plane: the RayService, and the Serve Service KubeRay creates for it. */}}
{{- define "enclave.rayServiceName" -}}
{{- include "enclave.fullname" . }}
{{- end }}
{{- define "enclave.serveServiceName" -}}
{{- printf "%s-serve-svc" (include "enclave.rayServiceName" .) }}
{{- end }}
{{/* Base URL of the serving plane (Ray Serve's HTTP proxy, port 8000). */}}
{{- define "enclave.servingUrl" -}}
{{- printf "http://%s.%s.svc:8000" (include "enclave.serveServiceName" .) .Release.Namespace }}
{{- end }}

{{/* The enabled roles, in a fixed order, as a comma-separated list (fails when none is enabled). */}}
{{- define "enclave.roles" -}}
{{- $roles := list }}
{{- range $role := list "llm" "stt" "tts" "embed" }}
{{- if index $.Values.serving.roles $role }}
{{- $roles = append $roles $role }}
{{- end }}
{{- end }}
{{- if not $roles }}
{{- fail "serving.roles: enable at least one role (llm, stt, tts, embed)" }}
{{- end }}
{{- join "," $roles }}
{{- end }}

{{/* Serve route prefix of a role (models/catalog.py ROLE_ROUTES). */}}
{{- define "enclave.routePrefix" -}}
{{- get (dict "llm" "/" "stt" "/v1/audio/transcriptions" "tts" "/v1/audio/speech" "embed" "/v1/embeddings") . }}
{{- end }}

{{/* Name of the model-store PVC. */}}
{{- define "enclave.modelsClaimName" -}}
{{- default (printf "%s-models" (include "enclave.fullname" .)) .Values.models.existingClaim }}
{{- end }}

{{/* The CloudNativePG Cluster name. */}}
{{- define "enclave.dbClusterName" -}}
{{- printf "%s-db" (include "enclave.fullname" .) }}
{{- end }}

{{/* Secret and key holding the database URL: CNPG's "<cluster>-app"/uri, or the external secret. */}}
{{- define "enclave.databaseSecretName" -}}
{{- if eq .Values.database.mode "cloudnativepg" }}
{{- printf "%s-app" (include "enclave.dbClusterName" .) }}
{{- else if eq .Values.database.mode "external" }}
{{- required "database.external.existingSecret is required when database.mode is external (a Secret with the PostgreSQL URI)" .Values.database.external.existingSecret }}
{{- else }}
{{- fail (printf "database.mode must be cloudnativepg or external, not %q" .Values.database.mode) }}
{{- end }}
{{- end }}
{{- define "enclave.databaseSecretKey" -}}
{{- if eq .Values.database.mode "cloudnativepg" }}uri{{ else }}{{ .Values.database.external.key }}{{ end }}
{{- end }}

{{/* Secret and key holding the vault key; fails when neither an existing secret nor a value is given. */}}
{{- define "enclave.vaultKeySecretName" -}}
{{- if .Values.secrets.vaultKey.existingSecret }}
{{- .Values.secrets.vaultKey.existingSecret }}
{{- else if .Values.secrets.vaultKey.value }}
{{- printf "%s-vault-key" (include "enclave.fullname" .) }}
{{- else }}
{{- fail "secrets.vaultKey: set existingSecret (a Secret holding the PII vault key, recommended) or value (base64 of 32 random bytes: `head -c 32 /dev/urandom | base64`). The gateway cannot seal PII without it." }}
{{- end }}
{{- end }}
{{- define "enclave.vaultKeySecretKey" -}}
{{- if .Values.secrets.vaultKey.existingSecret }}{{ .Values.secrets.vaultKey.key }}{{ else }}vault.key{{ end }}
{{- end }}

{{/* Secret and key of the SIP digest users (empty when SIP auth is off). */}}
{{- define "enclave.sipAuthSecretName" -}}
{{- if .Values.sip.auth.existingSecret }}
{{- .Values.sip.auth.existingSecret }}
{{- else if .Values.sip.auth.users }}
{{- printf "%s-sip-auth" (include "enclave.fullname" .) }}
{{- end }}
{{- end }}
{{- define "enclave.sipAuthSecretKey" -}}
{{- if .Values.sip.auth.existingSecret }}{{ .Values.sip.auth.key }}{{ else }}users.json{{ end }}
{{- end }}

{{/*
Guard against "everywhere" CIDRs in a list that becomes NetworkPolicy ipBlocks or LB source ranges.
Call with (dict "cidrs" <list> "what" "<value path>").
*/}}
{{- define "enclave.assertNoAnyCidr" -}}
{{- range .cidrs }}
{{- if or (eq (toString .) "0.0.0.0/0") (eq (toString .) "::/0") }}
{{- fail (printf "%s must not contain %s: Enclave never opens to every address; list the peers' CIDRs" $.what .) }}
{{- end }}
{{- end }}
{{- end }}

{{/* Environment of every Ray container: offline, no telemetry, the profile, writable caches under /tmp. */}}
{{- define "enclave.rayEnv" -}}
- name: HF_HUB_OFFLINE
  value: "1"
- name: TRANSFORMERS_OFFLINE
  value: "1"
- name: HF_HUB_DISABLE_TELEMETRY
  value: "1"
- name: RAY_USAGE_STATS_ENABLED
  value: "0"
- name: VLLM_NO_USAGE_STATS
  value: "1"
- name: DO_NOT_TRACK
  value: "1"
- name: ENCLAVE_MODEL_PROFILE
  value: {{ .Values.modelProfile | quote }}
- name: ENCLAVE_MODELS_DIR
  value: /models
{{- /* The root filesystem is read-only: every cache and temp file goes to the /tmp emptyDir. */}}
- name: HOME
  value: /tmp/home
- name: TMPDIR
  value: /tmp
- name: XDG_CACHE_HOME
  value: /tmp/cache
- name: HF_HOME
  value: /tmp/hf
- name: VLLM_CACHE_ROOT
  value: /tmp/vllm
- name: TORCHINDUCTOR_CACHE_DIR
  value: /tmp/torchinductor
{{- with .Values.serving.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Volume mounts of every Ray container. */}}
{{- define "enclave.rayVolumeMounts" -}}
- name: models
  mountPath: /models
  readOnly: true
- name: dshm
  mountPath: /dev/shm
- name: tmp
  mountPath: /tmp
{{- end }}

{{/* Volumes of every Ray pod. */}}
{{- define "enclave.rayVolumes" -}}
- name: models
  persistentVolumeClaim:
    claimName: {{ include "enclave.modelsClaimName" . }}
    readOnly: true
- name: dshm
  emptyDir:
    medium: Memory
    sizeLimit: {{ .Values.serving.shmSizeLimit }}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.serving.tmpSizeLimit }}
{{- end }}

{{/*
Probes of the Ray containers (the checks KubeRay itself uses): the raylet's health on the dashboard agent,
and on the head also the GCS through the dashboard. Serve's proxy (/-/healthz on 8000) is not probed on the
head: KubeRay only submits serveConfigV2 once the head is ready, so it cannot wait for Serve.
*/}}
{{- define "enclave.rayProbeScript" -}}
{{- $raylet := "wget --tries 1 -T 2 -q -O- http://localhost:52365/api/local_raylet_healthz | grep success" }}
{{- if eq . "head" }}
{{- printf "%s && wget --tries 1 -T 2 -q -O- http://localhost:8265/api/gcs_healthz | grep success" $raylet }}
{{- else }}
{{- $raylet }}
{{- end }}
{{- end }}
{{- define "enclave.rayProbes" -}}
readinessProbe:
  exec:
    command:
      - bash
      - -c
      - {{ include "enclave.rayProbeScript" . | quote }}
  initialDelaySeconds: 10
  periodSeconds: 5
  timeoutSeconds: 2
  successThreshold: 1
  failureThreshold: 10
livenessProbe:
  exec:
    command:
      - bash
      - -c
      - {{ include "enclave.rayProbeScript" . | quote }}
  initialDelaySeconds: 30
  periodSeconds: 5
  timeoutSeconds: 2
  successThreshold: 1
  failureThreshold: 120
{{- end }}

{{/* Environment of the gateway and its migration: the database URL from a Secret, writable paths in /tmp. */}}
{{- define "enclave.gatewayDbEnv" -}}
- name: HOME
  value: /tmp
- name: TMPDIR
  value: /tmp
- name: ENCLAVE_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "enclave.databaseSecretName" . }}
      key: {{ include "enclave.databaseSecretKey" . }}
{{- end }}
