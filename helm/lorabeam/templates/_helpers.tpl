{{/*
Names and labels.
*/}}
{{- define "lorabeam.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "lorabeam.fullname" -}}
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

{{- define "lorabeam.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every resource carries. */}}
{{- define "lorabeam.labels" -}}
helm.sh/chart: {{ include "lorabeam.chart" . }}
app.kubernetes.io/name: {{ include "lorabeam.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: lorabeam
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one component: (dict "ctx" $ "component" "coordinator"). */}}
{{- define "lorabeam.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lorabeam.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "lorabeam.coordinator.fullname" -}}
{{- printf "%s-coordinator" (include "lorabeam.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "lorabeam.redis.fullname" -}}
{{- printf "%s-redis" (include "lorabeam.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Name of one worker group's resources: (dict "ctx" $ "group" $g). */}}
{{- define "lorabeam.worker.fullname" -}}
{{- printf "%s-worker-%s" (include "lorabeam.fullname" .ctx) .group.name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "lorabeam.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "lorabeam.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Image reference: (dict "image" .Values.x.image "ctx" $). An empty tag means the appVersion. */}}
{{- define "lorabeam.image" -}}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository (default .ctx.Chart.AppVersion .image.tag) }}
{{- end }}
{{- end }}

{{/*
Worker groups: `worker` alone when `workers` is empty; otherwise each entry of `workers`
laid over a copy of `worker` (see lorabeam.overlay). Returns YAML `{groups: [...]}`; use
with fromYaml.
*/}}
{{- define "lorabeam.workerGroups" -}}
{{- $groups := list }}
{{- if .Values.workers }}
{{- range $i, $g := .Values.workers }}
{{- $merged := deepCopy $.Values.worker }}
{{- include "lorabeam.overlay" (dict "dst" $merged "src" $g) }}
{{- $groups = append $groups $merged }}
{{- end }}
{{- else }}
{{- $groups = append $groups (deepCopy .Values.worker) }}
{{- end }}
{{- $names := dict }}
{{- $models := dict }}
{{- range $groups }}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" (toString .name)) }}
{{- fail (printf "worker group name %q must be a DNS label (lower-case letters, digits, '-')" (toString .name)) }}
{{- end }}
{{- if hasKey $names .name }}
{{- fail (printf "worker group name %q is used twice" .name) }}
{{- end }}
{{- $_ := set $names .name true }}
{{- if not .modelId }}
{{- fail (printf "worker group %q needs a modelId" .name) }}
{{- end }}
{{- if and .autoscaling.keda.enabled .autoscaling.hpa.enabled }}
{{- fail (printf "worker group %q: autoscaling.keda.enabled and autoscaling.hpa.enabled are mutually exclusive" .name) }}
{{- end }}
{{- if and .autoscaling.keda.enabled (hasKey $models .modelId) }}
{{- fail (printf "worker groups %q and %q both autoscale with KEDA on model %q: KEDA would fight over one stream" (get $models .modelId) .name .modelId) }}
{{- end }}
{{- $_ := set $models .modelId .name }}
{{- if le (int .terminationGracePeriodSeconds) (int .graceSecs) }}
{{- fail (printf "worker group %q: terminationGracePeriodSeconds (%v) must exceed graceSecs (%v), or the kubelet kills a draining worker" .name .terminationGracePeriodSeconds .graceSecs) }}
{{- end }}
{{- end }}
{{- toYaml (dict "groups" $groups) }}
{{- end }}

{{/*
Lays (dict "dst" map "src" map) src over dst, in place: maps merge key by key, recursively;
anything else in src (scalars, lists, empty maps, and also false, 0 and "") replaces dst's
value. Unlike sprig's merge, a group can set `gpu: {count: 0}`, `enabled: false` or
`nodeSelector: {}`.
*/}}
{{- define "lorabeam.overlay" -}}
{{- $dst := .dst }}
{{- range $k, $v := .src }}
{{- if and (kindIs "map" $v) $v (kindIs "map" (get $dst $k)) }}
{{- include "lorabeam.overlay" (dict "dst" (get $dst $k) "src" $v) }}
{{- else }}
{{- $_ := set $dst $k $v }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Redis connection.
*/}}
{{- define "lorabeam.redis.host" -}}
{{- if .Values.redis.enabled }}
{{- include "lorabeam.redis.fullname" . }}
{{- else }}
{{- required "externalRedis.host is required when redis.enabled is false" .Values.externalRedis.host }}
{{- end }}
{{- end }}

{{- define "lorabeam.redis.port" -}}
{{- if .Values.redis.enabled }}{{ .Values.redis.service.port }}{{ else }}{{ .Values.externalRedis.port }}{{ end }}
{{- end }}

{{- define "lorabeam.redis.db" -}}
{{- if .Values.redis.enabled }}0{{ else }}{{ .Values.externalRedis.db }}{{ end }}
{{- end }}

{{- define "lorabeam.redis.tls" -}}
{{- if and (not .Values.redis.enabled) .Values.externalRedis.tls }}true{{ end }}
{{- end }}

{{- define "lorabeam.redis.username" -}}
{{- if not .Values.redis.enabled }}{{ .Values.externalRedis.username }}{{ end }}
{{- end }}

{{/* Secret and key holding the Redis password; empty name: no password. */}}
{{- define "lorabeam.redis.secretName" -}}
{{- if .Values.redis.enabled }}
{{- default (include "lorabeam.redis.fullname" .) .Values.redis.auth.existingSecret }}
{{- else }}
{{- .Values.externalRedis.existingSecret }}
{{- end }}
{{- end }}

{{- define "lorabeam.redis.secretKey" -}}
{{- if .Values.redis.enabled }}
{{- .Values.redis.auth.existingSecretPasswordKey }}
{{- else }}
{{- .Values.externalRedis.existingSecretPasswordKey }}
{{- end }}
{{- end }}

{{/*
Env vars giving LORABEAM_REDIS_URL, without the password: that is read from the Secret
mounted as a file (LORABEAM_REDIS_PASSWORD_FILE, see lorabeam.redis.passwordVolume), so it
is in no environment variable, ConfigMap or pod spec, and may hold any character.
*/}}
{{- define "lorabeam.redis.env" -}}
{{- $scheme := ternary "rediss" "redis" (eq (include "lorabeam.redis.tls" .) "true") }}
{{- $user := include "lorabeam.redis.username" . }}
{{- $hostport := printf "%s:%s/%s" (include "lorabeam.redis.host" .) (include "lorabeam.redis.port" .) (include "lorabeam.redis.db" .) }}
- name: LORABEAM_REDIS_URL
  value: {{ printf "%s://%s%s" $scheme (ternary (printf "%s@" $user) "" (ne $user "")) $hostport | quote }}
{{- if include "lorabeam.redis.secretName" . }}
- name: LORABEAM_REDIS_PASSWORD_FILE
  value: /etc/lorabeam/redis/password
{{- end }}
{{- end }}

{{/* The volumeMount of the Redis password file; nothing without a password. */}}
{{- define "lorabeam.redis.passwordVolumeMount" -}}
{{- if include "lorabeam.redis.secretName" . }}
- name: redis-password
  mountPath: /etc/lorabeam/redis
  readOnly: true
{{- end }}
{{- end }}

{{/* The volume holding the Redis password as the file `password`; nothing without one. */}}
{{- define "lorabeam.redis.passwordVolume" -}}
{{- with include "lorabeam.redis.secretName" . }}
- name: redis-password
  secret:
    secretName: {{ . }}
    defaultMode: 0440
    items:
      - key: {{ include "lorabeam.redis.secretKey" $ }}
        path: password
{{- end }}
{{- end }}

{{/*
OpenTelemetry env: (dict "ctx" $ "service" "lorabeam-coordinator" ["extraAttrs" (list "k=v")]);
nothing when no endpoint.
*/}}
{{- define "lorabeam.otel.env" -}}
{{- $otel := .ctx.Values.otel }}
{{- if $otel.endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ $otel.endpoint | quote }}
- name: OTEL_SERVICE_NAME
  value: {{ .service | quote }}
- name: OTEL_TRACES_SAMPLER
  value: {{ $otel.sampler | quote }}
{{- if $otel.samplerArg }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ $otel.samplerArg | quote }}
{{- end }}
- name: OTEL_K8S_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- $attrs := concat (list "k8s.namespace.name=$(OTEL_K8S_NAMESPACE)" "k8s.pod.name=$(OTEL_K8S_POD_NAME)") (default (list) .extraAttrs) }}
{{- range $k, $v := $otel.resourceAttributes }}
{{- $attrs = append $attrs (printf "%s=%v" $k $v) }}
{{- end }}
- name: OTEL_K8S_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ join "," $attrs | quote }}
{{- end }}
{{- end }}

{{/* Auth secret name. */}}
{{- define "lorabeam.auth.secretName" -}}
{{- default (printf "%s-auth" (include "lorabeam.fullname" .)) .Values.auth.existingSecret }}
{{- end }}

{{/* gRPC URL the workers dial. */}}
{{- define "lorabeam.coordinator.url" -}}
{{- printf "%s://%s:%v" (ternary "https" "http" .Values.tls.enabled) (include "lorabeam.coordinator.fullname" .) .Values.coordinator.service.grpcPort }}
{{- end }}

{{/* Pod disruption budget spec body: the pdb values map. */}}
{{- define "lorabeam.pdbSpec" -}}
{{- if ne (toString (default "" .minAvailable)) "" }}
minAvailable: {{ .minAvailable }}
{{- else }}
maxUnavailable: {{ .maxUnavailable }}
{{- end }}
{{- end }}

{{/*
The model ids of every worker group, sorted, each once, comma separated: the coordinator's
--serve-model-ids, so jobs for them are accepted while no worker runs yet (scale from zero).
*/}}
{{- define "lorabeam.servedModelIds" -}}
{{- $ids := list }}
{{- range (fromYaml (include "lorabeam.workerGroups" .)).groups }}
{{- $ids = append $ids (toString .modelId) }}
{{- end }}
{{- $ids | uniq | sortAlpha | join "," }}
{{- end }}

{{/*
PromQL label matchers of this release's series, for the alerts and the dashboard:
monitoring.selector, or the labels the chart's PodMonitor puts on every target.
*/}}
{{- define "lorabeam.monitoring.selector" -}}
{{- default (printf "namespace=%q,lorabeam_instance=%q" .Release.Namespace .Release.Name) .Values.monitoring.selector }}
{{- end }}

{{/*
Object storage: the env of objectStorage.endpoint/region/allowHttp, each only when set.
The same for the coordinator and every worker group.
*/}}
{{- define "lorabeam.objectStorage.env" -}}
{{- if .Values.objectStorage.existingSecret }}
- name: LORABEAM_OBJECT_STORE_CREDENTIALS_DIR
  value: {{ include "lorabeam.objectStorage.credentialsDir" . | quote }}
{{- end }}
{{- $os := .Values.objectStorage }}
{{- with $os.endpoint }}
- name: AWS_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- with $os.region }}
- name: AWS_REGION
  value: {{ . | quote }}
{{- end }}
{{- if $os.allowHttp }}
- name: AWS_ALLOW_HTTP
  value: "true"
{{- end }}
{{- end }}

{{/*
Object storage credentials: objectStorage.existingSecret mounted read-only as files named as the
providers' variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AZURE_STORAGE_ACCOUNT_KEY, ...),
which the binaries read from LORABEAM_OBJECT_STORE_CREDENTIALS_DIR, like the chart's other
secrets; nothing without one (workload identity through serviceAccount.annotations, or no
object storage).
*/}}
{{- define "lorabeam.objectStorage.credentialsDir" -}}
/etc/lorabeam/object-storage
{{- end }}

{{- define "lorabeam.objectStorage.volumeMount" -}}
{{- if .Values.objectStorage.existingSecret }}
- name: object-storage-credentials
  mountPath: {{ include "lorabeam.objectStorage.credentialsDir" . }}
  readOnly: true
{{- end }}
{{- end }}

{{- define "lorabeam.objectStorage.volume" -}}
{{- with .Values.objectStorage.existingSecret }}
- name: object-storage-credentials
  secret:
    secretName: {{ . }}
    defaultMode: 0440
{{- end }}
{{- end }}

{{/*
A quantity (e.g. worker.tmpSizeLimit) in whole MiB, rounded down, when it is simply a whole
number of bytes, Ki, Mi, Gi, Ti, k, M, G or T; empty for anything else (decimals, exponents,
E/P), which the callers then do not check.
*/}}
{{- define "lorabeam.quantityMib" -}}
{{- $q := toString . }}
{{- if regexMatch "^[0-9]+(Ki|Mi|Gi|Ti|k|M|G|T)?$" $q }}
{{- $n := regexFind "^[0-9]+" $q | int64 }}
{{- $unit := trimPrefix (toString $n) $q }}
{{- $bytes := dict "" 1 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 }}
{{- div (mul $n (get $bytes $unit)) 1048576 }}
{{- end }}
{{- end }}

{{/* Whether a model value (a checkpoint or config) is a URL, as the worker decides: `scheme://…`. */}}
{{- define "lorabeam.isUrl" -}}
{{- if regexMatch "^[A-Za-z][A-Za-z0-9+.-]*://" (toString .) }}true{{ end }}
{{- end }}
