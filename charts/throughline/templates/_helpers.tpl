{{/* The five services, in start order, and the gRPC name each reports health under. */}}
{{- define "throughline.allServices" -}}
profile interaction feedback orchestration distribution
{{- end }}

{{- define "throughline.grpcName" -}}
{{- $names := dict "profile" "throughline.profile.v1.ProfileService" "interaction" "throughline.interaction.v1.InteractionService" "feedback" "throughline.feedback.v1.FeedbackService" "orchestration" "throughline.orchestration.v1.OrchestrationService" "distribution" "throughline.distribution.v1.DistributionService" -}}
{{- get $names . -}}
{{- end }}

{{- define "throughline.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{/* Release-scoped base name; at most 45 characters so "-orchestration" still fits 63. */}}
{{- define "throughline.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 45 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 45 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 45 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end }}

{{- define "throughline.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{/* Selectors use name, instance and component only: they are immutable on a Deployment. */}}
{{- define "throughline.selectorLabels" -}}
app.kubernetes.io/name: {{ include "throughline.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "throughline.labels" -}}
{{ include "throughline.selectorLabels" . }}
helm.sh/chart: {{ include "throughline.chart" .root }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: throughline
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The workload name of a component: "<fullname>-<service>", or "<fullname>" for all-in-one. */}}
{{- define "throughline.componentName" -}}
{{- if eq .component "all-in-one" -}}
{{- include "throughline.fullname" .root -}}
{{- else -}}
{{- printf "%s-%s" (include "throughline.fullname" .root) .component -}}
{{- end -}}
{{- end }}

{{/* Enabled services, comma-separated, in start order. */}}
{{- define "throughline.enabledServices" -}}
{{- $enabled := list -}}
{{- range (include "throughline.allServices" . | splitList " ") -}}
{{- if (get $.Values.services .).enabled -}}
{{- $enabled = append $enabled . -}}
{{- end -}}
{{- end -}}
{{- join "," $enabled -}}
{{- end }}

{{- define "throughline.secretName" -}}
{{- default (include "throughline.fullname" .) .Values.secrets.existingSecret -}}
{{- end }}

{{- define "throughline.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "throughline.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end }}

{{- define "throughline.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end }}

{{/*
Where each service answers, as a dict service -> URL: a service enabled here at its in-cluster
Service, otherwise its externalEndpoint, otherwise absent.
*/}}
{{- define "throughline.endpoints" -}}
{{- $scheme := ternary "https" "http" .Values.tls.enabled -}}
{{- $out := dict -}}
{{- range (include "throughline.allServices" . | splitList " ") -}}
{{- $svc := get $.Values.services . -}}
{{- if $svc.enabled -}}
{{- $component := ternary "all-in-one" . $.Values.allInOne.enabled -}}
{{- $host := include "throughline.componentName" (dict "root" $ "component" $component) -}}
{{- $_ := set $out . (printf "%s://%s.%s.svc:%d" $scheme $host $.Release.Namespace (int $.Values.grpcService.port)) -}}
{{- else if $svc.externalEndpoint -}}
{{- $_ := set $out . $svc.externalEndpoint -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end }}

{{/* The configuration file the binary reads; only keys it knows. */}}
{{- define "throughline.config" -}}
{{- $c := .Values.config -}}
server:
  listen_addr: "0.0.0.0:{{ .Values.grpcService.port }}"
  metrics_listen_addr: "0.0.0.0:{{ .Values.metrics.port }}"
  request_timeout: {{ $c.requestTimeout | quote }}
  max_in_flight: {{ $c.maxInFlight }}
  shutdown_grace: "{{ $c.shutdownGraceSeconds }}s"
telemetry:
  log_format: json
  log_level: {{ $c.logLevel | quote }}
  {{- if $c.otlpEndpoint }}
  otlp_endpoint: {{ $c.otlpEndpoint | quote }}
  {{- end }}
  trace_sample_ratio: {{ $c.traceSampleRatio }}
  metrics_export_interval: {{ $c.metricsExportInterval | quote }}
database:
  max_connections: {{ $c.database.maxConnections }}
  min_connections: {{ $c.database.minConnections }}
  connect_timeout: {{ $c.database.connectTimeout | quote }}
  acquire_timeout: {{ $c.database.acquireTimeout | quote }}
  # Migrations run in the chart's pre-install/pre-upgrade Job, once, not in every replica.
  migrate_on_start: false
feedback:
  fatigue_interval: {{ $c.feedback.fatigueInterval | quote }}
  invitation_ttl: {{ $c.feedback.invitationTtl | quote }}
  survey_base_url: {{ $c.feedback.surveyBaseUrl | quote }}
  min_sample_size: {{ $c.feedback.minSampleSize }}
orchestration:
  engine:
    poll_interval: {{ $c.orchestration.engine.pollInterval | quote }}
    lease: {{ $c.orchestration.engine.lease | quote }}
    batch_size: {{ $c.orchestration.engine.batchSize }}
    concurrency: {{ $c.orchestration.engine.concurrency }}
auth:
  {{- with .Values.auth.publicKeys.keys }}
  public_key_files:
    {{- range . }}
    - "/etc/throughline/keys/{{ . }}"
    {{- end }}
  {{- end }}
  {{- if .Values.auth.jwks.existingSecret }}
  jwks_file: "/etc/throughline/jwks/{{ .Values.auth.jwks.key }}"
  {{- end }}
  {{- with .Values.auth.issuer }}
  issuer: {{ . | quote }}
  {{- end }}
  {{- with .Values.auth.audience }}
  audience: {{ . | quote }}
  {{- end }}
  leeway_seconds: {{ .Values.auth.leewaySeconds }}
{{- end }}

{{/*
Environment shared by the servers and the migration Job: the secret parts of the config.
Arguments: root, services (comma-separated; a service's own database URL only where it runs).
*/}}
{{- define "throughline.secretEnv" -}}
{{- $root := .root -}}
- name: THROUGHLINE__DATABASE__URL
  valueFrom:
    secretKeyRef:
      name: {{ include "throughline.secretName" $root }}
      key: {{ $root.Values.secrets.databaseUrlKey }}
{{- range (splitList "," .services) }}
{{- $svc := get $root.Values.services . }}
{{- if $svc.databaseUrlKey }}
- name: THROUGHLINE__{{ upper . }}__DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "throughline.secretName" $root }}
      key: {{ $svc.databaseUrlKey }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The pod template of one server Deployment.
Arguments: root, component (a service name or "all-in-one"), services (comma-separated),
health (the grpc.health.v1 name probed), block (the component's values).
*/}}
{{- define "throughline.podTemplate" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
metadata:
  labels:
    {{- include "throughline.labels" . | nindent 4 }}
    {{- with .block.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    # Roll the pods when the configuration changes.
    checksum/config: {{ include "throughline.config" $root | sha256sum }}
    {{- with .block.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "throughline.serviceAccountName" $root }}
  # The services never call the Kubernetes API.
  automountServiceAccountToken: false
  {{- with $v.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $v.podSecurityContext | nindent 4 }}
  # Longer than preStop sleep + server.shutdown_grace, so calls in flight finish before SIGKILL.
  terminationGracePeriodSeconds: {{ add $v.config.preStopSleepSeconds $v.config.shutdownGraceSeconds 10 }}
  containers:
    - name: throughline
      image: {{ include "throughline.image" $root | quote }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      args:
        - --config
        - /etc/throughline/config/config.yaml
        - serve
        - --services
        - {{ .services | quote }}
      env:
        - name: THROUGHLINE__TELEMETRY__SERVICE_NAME
          value: {{ printf "throughline-%s" .component | quote }}
        {{- include "throughline.secretEnv" (dict "root" $root "services" .services) | nindent 8 }}
        {{- if $v.auth.hs256.enabled }}
        - name: THROUGHLINE__AUTH__HS256_SECRET
          valueFrom:
            secretKeyRef:
              name: {{ default (include "throughline.secretName" $root) $v.secrets.hs256ExistingSecret }}
              key: {{ $v.secrets.hs256SecretKey }}
        {{- end }}
        {{- if $v.nats.enabled }}
        - name: THROUGHLINE__EVENTS__TRANSPORT
          value: "nats"
        - name: THROUGHLINE__EVENTS__NATS__URL
          value: {{ required "nats.url is required when nats.enabled" $v.nats.url | quote }}
        - name: THROUGHLINE__EVENTS__NATS__PREFIX
          value: {{ $v.nats.prefix | quote }}
        {{- end }}
        {{- if $v.endpoints.emitEnv }}
        {{- range $name, $url := (include "throughline.endpoints" $root | fromJson) }}
        - name: THROUGHLINE__ENDPOINTS__{{ upper $name }}
          value: {{ $url | quote }}
        {{- end }}
        {{- end }}
        {{- with .block.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      ports:
        - name: grpc
          containerPort: {{ $v.grpcService.port }}
          protocol: TCP
        - name: metrics
          containerPort: {{ $v.metrics.port }}
          protocol: TCP
      {{- $probe := dict "grpc" (dict "port" (int $v.grpcService.port) "service" .health) }}
      {{- if $v.tls.enabled }}
      {{- $probe = dict "tcpSocket" (dict "port" "grpc") }}
      {{- end }}
      startupProbe:
        {{- toYaml $probe | nindent 8 }}
        periodSeconds: {{ $v.probes.startup.periodSeconds }}
        failureThreshold: {{ $v.probes.startup.failureThreshold }}
      readinessProbe:
        {{- toYaml $probe | nindent 8 }}
        periodSeconds: {{ $v.probes.readiness.periodSeconds }}
        failureThreshold: {{ $v.probes.readiness.failureThreshold }}
      livenessProbe:
        {{- toYaml $probe | nindent 8 }}
        periodSeconds: {{ $v.probes.liveness.periodSeconds }}
        failureThreshold: {{ $v.probes.liveness.failureThreshold }}
      {{- if gt (int $v.config.preStopSleepSeconds) 0 }}
      lifecycle:
        preStop:
          sleep:
            seconds: {{ $v.config.preStopSleepSeconds }}
      {{- end }}
      resources:
        {{- toYaml .block.resources | nindent 8 }}
      securityContext:
        {{- toYaml $v.securityContext | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: /etc/throughline/config
          readOnly: true
        - name: tmp
          mountPath: /tmp
        {{- if $v.auth.publicKeys.existingSecret }}
        - name: jwt-public-keys
          mountPath: /etc/throughline/keys
          readOnly: true
        {{- end }}
        {{- if $v.auth.jwks.existingSecret }}
        - name: jwks
          mountPath: /etc/throughline/jwks
          readOnly: true
        {{- end }}
        {{- if and $v.providers.existingSecret (has "distribution" (splitList "," .services)) }}
        - name: providers
          mountPath: /etc/throughline/providers
          readOnly: true
        {{- end }}
        {{- if $v.tls.enabled }}
        - name: tls
          mountPath: /etc/throughline/tls
          readOnly: true
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "throughline.fullname" $root }}
        items:
          - key: config.yaml
            path: config.yaml
    # The root filesystem is read-only; the process gets a small scratch directory.
    - name: tmp
      emptyDir:
        sizeLimit: 64Mi
    {{- if $v.auth.publicKeys.existingSecret }}
    - name: jwt-public-keys
      secret:
        secretName: {{ $v.auth.publicKeys.existingSecret }}
    {{- end }}
    {{- if $v.auth.jwks.existingSecret }}
    - name: jwks
      secret:
        secretName: {{ $v.auth.jwks.existingSecret }}
    {{- end }}
    {{- if and $v.providers.existingSecret (has "distribution" (splitList "," .services)) }}
    - name: providers
      secret:
        secretName: {{ $v.providers.existingSecret }}
    {{- end }}
    {{- if $v.tls.enabled }}
    - name: tls
      secret:
        secretName: {{ $v.tls.existingSecret }}
    {{- end }}
  {{- with .block.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .block.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .block.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .block.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/*
The components this release renders as workloads: a list of dicts with component, services,
health and block. Either one per enabled service, or one "all-in-one".
*/}}
{{- define "throughline.components" -}}
{{- $out := list -}}
{{- if .Values.allInOne.enabled -}}
{{- $out = append $out (dict "component" "all-in-one" "services" (include "throughline.enabledServices" .) "health" "" "block" .Values.allInOne) -}}
{{- else -}}
{{- range (include "throughline.allServices" . | splitList " ") -}}
{{- $svc := get $.Values.services . -}}
{{- if $svc.enabled -}}
{{- $out = append $out (dict "component" . "services" . "health" (include "throughline.grpcName" .) "block" $svc) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toJson (dict "items" $out) -}}
{{- end }}
