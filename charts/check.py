#!/usr/bin/env python3
"""Offline checks of the Helm chart and the kustomize manifests (`make chart-check`).

No cluster is needed. In order:
  1. self-test: a deliberately broken copy of the chart must be caught, so a pass below
     means something;
  2. helm lint (strict) of the chart;
  3. every values file in charts/tests/bad-values/ must be rejected by values.schema.json;
  4. the chart rendered for each scenario (defaults, each service alone, all services with
     every option on, all-in-one, the ci/*.yaml examples): every object must pass
     kubernetes-validate --strict for each Kubernetes version in KUBE_VERSIONS, plus the
     chart's own invariants (labels, probes, one workload per enabled service);
  5. the configuration each rendered container would run with (ConfigMap file + env) must
     be accepted by the real binary: `throughline --config … config print`;
  6. `kubectl kustomize` of every overlay under k8s/overlays, validated the same way;
  7. yamllint of the hand-written YAML and of everything rendered;
  8. hadolint of the Dockerfile (the image itself is built elsewhere: no engine needed here).
Exit status is non-zero on any failure.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import helm_python as helm
import jsonschema
import kubernetes_validate.utils as kv
import yaml
from yamllint import config as yamllint_config
from yamllint import linter as yamllint_linter

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "throughline"
BAD_VALUES = ROOT / "charts" / "tests" / "bad-values"
OVERLAYS = ROOT / "k8s" / "overlays"
YAMLLINT_CONFIG = ROOT / "charts" / "yamllint.yaml"

# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest whose
# schemas kubernetes-validate ships.
KUBE_VERSIONS = ["1.30", kv.latest_version()]

SERVICES = ["profile", "interaction", "feedback", "orchestration", "distribution"]
GRPC_NAMES = {
    "profile": "throughline.profile.v1.ProfileService",
    "interaction": "throughline.interaction.v1.InteractionService",
    "feedback": "throughline.feedback.v1.FeedbackService",
    "orchestration": "throughline.orchestration.v1.OrchestrationService",
    "distribution": "throughline.distribution.v1.DistributionService",
}
STANDARD_LABELS = [
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
]

# kubernetes-validate knows only built-in kinds. The Prometheus Operator's ServiceMonitor is
# checked against this hand-written subset of its CRD schema: the fields the chart uses,
# strictly (unknown fields rejected), not the whole upstream CRD.
SERVICE_MONITOR_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}
                    },
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                            "scrapeTimeout": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                        },
                    },
                },
            },
        },
    },
}
CRD_SCHEMAS = {("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITOR_SCHEMA}

# Stand-ins for Secret values when the configuration is checked with the binary.
FAKE_SECRETS = {
    "database-url": "postgres://throughline:password@postgres:5432/throughline",
    "jwt-hs256-secret": "x" * 48,
}
FAKE_DATABASE_URL = "postgres://throughline:password@postgres:5432/throughline_extra"


class Failures:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}")

    def __bool__(self) -> bool:
        return bool(self.items)


def log(message: str) -> None:
    print(message, flush=True)


# --- rendering ------------------------------------------------------------------------


def render(chart_dir: Path, values: dict) -> dict[str, str]:
    with helm.Chart.load(chart_dir) as chart:
        return chart.render(values, name="tl", namespace="throughline", is_install=True)


def objects_of(manifests: dict[str, str]) -> list[tuple[str, dict]]:
    """Every non-empty YAML document of the rendered manifests, NOTES.txt left out."""
    out = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                out.append((path, doc))
    return out


def name_of(obj: dict) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


# --- Kubernetes schemas ---------------------------------------------------------------


def validate_objects(where: str, objects: list[tuple[str, dict]], failures: Failures) -> None:
    for path, obj in objects:
        label = f"{where} {path} {name_of(obj)}"
        key = (obj.get("apiVersion"), obj.get("kind"))
        if key in CRD_SCHEMAS:
            errors = list(jsonschema.Draft7Validator(CRD_SCHEMAS[key]).iter_errors(obj))
            for error in errors:
                failures.add(label, f"{'.'.join(map(str, error.path))}: {error.message}")
            continue
        for version in KUBE_VERSIONS:
            try:
                kv.validate(obj, version, strict=True)
            except kv.ValidationError as error:
                failures.add(
                    label, f"k8s {version}: {'.'.join(map(str, error.path))}: {error.message}"
                )
            except kv.SchemaNotFoundError as error:
                # An unknown kind is a failure, not a warning: nothing would check it.
                failures.add(label, error.message)


# --- the chart's own invariants -------------------------------------------------------


def check_invariants(where: str, values: dict, objects: list[tuple[str, dict]], failures: Failures) -> None:
    with helm.Chart.load(CHART) as chart:
        merged = chart.merge_values(values)
    enabled = [s for s in SERVICES if merged["services"][s]["enabled"]]
    all_in_one = merged["allInOne"]["enabled"]
    tls = merged["tls"]["enabled"]
    by_kind: dict[str, list[dict]] = {}
    for _, obj in objects:
        by_kind.setdefault(obj["kind"], []).append(obj)
        labels = obj.get("metadata", {}).get("labels", {})
        missing = [label for label in STANDARD_LABELS if label not in labels]
        if missing:
            failures.add(f"{where} {name_of(obj)}", f"missing labels {missing}")

    deployments = by_kind.get("Deployment", [])
    expected = ["all-in-one"] if all_in_one else enabled
    def component_of(obj: dict) -> str:
        return obj.get("metadata", {}).get("labels", {}).get("app.kubernetes.io/component", "?")

    components = sorted(component_of(d) for d in deployments)
    if components != sorted(expected):
        failures.add(where, f"Deployments for {components}, expected {sorted(expected)}")
    services = sorted(component_of(s) for s in by_kind.get("Service", []))
    if services != sorted(expected):
        failures.add(where, f"Services for {services}, expected {sorted(expected)}")

    for deployment in deployments:
        label = f"{where} {name_of(deployment)}"
        component = component_of(deployment)
        if component not in GRPC_NAMES and component != "all-in-one":
            continue
        selector = deployment["spec"]["selector"]["matchLabels"]
        pod = deployment["spec"]["template"]
        if set(selector) != {"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component"}:
            failures.add(label, f"selector must use name, instance and component only: {selector}")
        if any(pod["metadata"]["labels"].get(k) != v for k, v in selector.items()):
            failures.add(label, "selector does not match the pod labels")
        spec = pod["spec"]
        container = spec["containers"][0]
        want_health = "" if component == "all-in-one" else GRPC_NAMES[component]
        for probe_name in ("startupProbe", "readinessProbe", "livenessProbe"):
            probe = container.get(probe_name, {})
            if tls:
                if "tcpSocket" not in probe:
                    failures.add(label, f"{probe_name}: TCP expected with TLS on")
            elif probe.get("grpc", {}).get("service", None) != want_health:
                failures.add(label, f"{probe_name}: gRPC probe of {want_health!r} expected, got {probe}")
        security = container.get("securityContext", {})
        if not security.get("readOnlyRootFilesystem") or security.get("allowPrivilegeEscalation") is not False:
            failures.add(label, "container must have a read-only root and no privilege escalation")
        if not spec.get("securityContext", {}).get("runAsNonRoot"):
            failures.add(label, "pod must run as non-root")
        grace = int(merged["config"]["shutdownGraceSeconds"]) + int(merged["config"]["preStopSleepSeconds"])
        if spec.get("terminationGracePeriodSeconds", 30) <= grace:
            failures.add(label, "terminationGracePeriodSeconds must exceed preStop sleep + shutdown_grace")
        env_names = [e["name"] for e in container.get("env", [])]
        if not merged["endpoints"]["emitEnv"] and any(n.startswith("THROUGHLINE__ENDPOINTS__") for n in env_names):
            failures.add(label, "endpoint env emitted while endpoints.emitEnv is off")

    jobs = by_kind.get("Job", [])
    if merged["migrations"]["enabled"] and len(jobs) != 1:
        failures.add(where, f"expected one migration Job, got {len(jobs)}")
    for job in jobs:
        hooks = job["metadata"].get("annotations", {}).get("helm.sh/hook", "")
        if set(hooks.split(",")) != {"pre-install", "pre-upgrade"}:
            failures.add(f"{where} {name_of(job)}", f"must be a pre-install,pre-upgrade hook, is {hooks!r}")

    tests = [p for p in by_kind.get("Pod", []) if p["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"]
    if merged["tests"]["enabled"]:
        checked = sorted(
            next(a for a in c["args"] if a.startswith("-service=")).split("=", 1)[1]
            for p in tests
            for c in p["spec"]["containers"]
        )
        if checked != sorted(GRPC_NAMES[s] for s in enabled):
            failures.add(where, f"helm test checks {checked}, expected every enabled service")

    policies = by_kind.get("NetworkPolicy", [])
    if merged["networkPolicy"]["enabled"] and len(policies) != len(expected):
        failures.add(where, f"expected {len(expected)} NetworkPolicies, got {len(policies)}")
    monitors = by_kind.get("ServiceMonitor", [])
    if len(monitors) != (len(expected) if merged["metrics"]["serviceMonitor"]["enabled"] else 0):
        failures.add(where, f"unexpected number of ServiceMonitors: {len(monitors)}")


# --- the configuration, checked by the binary -----------------------------------------


class Binary:
    """The workspace's debug build of `throughline`, built once."""

    def __init__(self) -> None:
        self.path: Path | None = None

    def get(self) -> Path:
        if self.path is None:
            log("building the throughline binary (debug) to check rendered configurations")
            subprocess.run(["cargo", "build", "-q", "-p", "throughline"], cwd=ROOT, check=True)
            metadata = json.loads(
                subprocess.run(
                    ["cargo", "metadata", "--format-version", "1", "--no-deps"],
                    cwd=ROOT, check=True, capture_output=True, text=True,
                ).stdout
            )
            self.path = Path(metadata["target_directory"]) / "debug" / "throughline"
        return self.path


BINARY = Binary()


def config_files(objects: list[tuple[str, dict]]) -> dict[str, dict[str, str]]:
    """ConfigMap name -> data."""
    return {o["metadata"]["name"]: o.get("data", {}) for _, o in objects if o["kind"] == "ConfigMap"}


def containers_to_check(objects: list[tuple[str, dict]]):
    for _, obj in objects:
        if obj["kind"] in ("Deployment", "Job"):
            spec = obj["spec"]["template"]["spec"]
            for container in spec["containers"]:
                yield obj, spec, container


def check_config(where: str, objects: list[tuple[str, dict]], failures: Failures, *, hook_migrations: bool = True) -> int:
    """Runs `throughline config print` with each container's file and environment.

    Secrets rendered alongside (a development overlay's generated Secret) are used as they
    are; others get stand-in values. With hook_migrations, servers must leave migrations to
    the Job (migrate_on_start false).
    """
    maps = config_files(objects)
    secrets = {
        o["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in o.get("data", {}).items()}
        for _, o in objects
        if o["kind"] == "Secret"
    }
    checked = 0
    for obj, spec, container in containers_to_check(objects):
        label = f"{where} {name_of(obj)}/{container['name']}"
        args = list(container.get("args", []))
        env = {k: v for k, v in os.environ.items() if not k.startswith("THROUGHLINE")}
        for var in container.get("env", []):
            if "value" in var:
                env[var["name"]] = str(var["value"])
            elif "secretKeyRef" in var.get("valueFrom", {}):
                ref = var["valueFrom"]["secretKeyRef"]
                rendered = secrets.get(ref["name"], {})
                env[var["name"]] = rendered.get(ref["key"], FAKE_SECRETS.get(ref["key"], FAKE_DATABASE_URL))
        with tempfile.TemporaryDirectory() as scratch:
            command = [str(BINARY.get())]
            if "--config" in args:
                path = args[args.index("--config") + 1]
                mount = next(
                    (m for m in container.get("volumeMounts", []) if path.startswith(m["mountPath"] + "/")),
                    None,
                )
                volume = mount and next((v for v in spec.get("volumes", []) if v["name"] == mount["name"]), None)
                if not volume or "configMap" not in volume:
                    failures.add(label, f"--config {path} is not on a ConfigMap volume")
                    continue
                data = maps.get(volume["configMap"]["name"], {})
                key = path[len(mount["mountPath"]) + 1:]
                items = {i["path"]: i["key"] for i in volume["configMap"].get("items", [])}
                key = items.get(key, key)
                if key not in data:
                    failures.add(label, f"ConfigMap {volume['configMap']['name']} has no key {key}")
                    continue
                file = Path(scratch) / Path(path).name
                file.write_text(data[key])
                command += ["--config", str(file)]
            # The subcommand's --services list, checked by the binary's own validation.
            if "--services" in args:
                env["THROUGHLINE__SERVER__SERVICES"] = args[args.index("--services") + 1]
            command += ["config", "print"]
            result = subprocess.run(command, env=env, capture_output=True, text=True)
            checked += 1
            if result.returncode != 0:
                failures.add(label, "the binary rejects this configuration: " + result.stderr.strip())
                continue
            printed = result.stdout
            if "serve" in args:
                has_credential = (
                    re.search(r'^hs256_secret = "[^"]', printed, re.M)
                    or re.search(r"^public_key_files = \[\s*\"", printed, re.M)
                    or re.search(r"^jwks_file = ", printed, re.M)
                )
                if not has_credential:
                    failures.add(label, "no credential configured: `serve` would refuse to start")
                expected = [("listen_addr", '"0.0.0.0:'), ("log_format", '"json"')]
                if hook_migrations:
                    expected.append(("migrate_on_start", "false"))
                for key, want in expected:
                    if not re.search(rf"^{key} = {re.escape(want)}", printed, re.M):
                        failures.add(label, f"{key} should start with {want}")
    return checked


# --- yamllint -------------------------------------------------------------------------


def yamllint_text(where: str, text: str, failures: Failures, conf) -> None:
    for problem in yamllint_linter.run(text, conf):
        if problem.level == "error":
            failures.add(where, f"yamllint {problem.line}:{problem.column} {problem.desc} ({problem.rule})")


def yamllint_files(failures: Failures) -> None:
    conf = yamllint_config.YamlLintConfig(file=str(YAMLLINT_CONFIG))
    files = [CHART / "Chart.yaml", CHART / "values.yaml"]
    files += sorted((CHART / "ci").glob("*.yaml")) + sorted(BAD_VALUES.glob("*.yaml"))
    files += sorted((ROOT / "k8s").rglob("*.yaml"))
    for file in files:
        yamllint_text(str(file.relative_to(ROOT)), file.read_text(), failures, conf)


# --- scenarios ------------------------------------------------------------------------


def scenarios() -> list[tuple[str, dict]]:
    alone = {s: {"enabled": False} for s in SERVICES}
    out: list[tuple[str, dict]] = [("defaults", {})]
    for service in SERVICES:
        out.append((f"{service} alone", {"services": {**alone, service: {"enabled": True}}}))
    for file in sorted((CHART / "ci").glob("*.yaml")):
        out.append((f"ci/{file.name}", yaml.safe_load(file.read_text()) or {}))
    return out


def check_chart(chart_dir: Path, cases: list[tuple[str, dict]], failures: Failures, *, with_config: bool, conf) -> int:
    rendered = 0
    for where, values in cases:
        try:
            manifests = render(chart_dir, values)
        except helm.HelmError as error:
            failures.add(where, f"render failed: {error}")
            continue
        objects = objects_of(manifests)
        rendered += len(objects)
        validate_objects(where, objects, failures)
        if chart_dir == CHART:
            check_invariants(where, values, objects, failures)
        for path, text in manifests.items():
            # Helm strips the blank lines a template leaves before its first document.
            if not path.endswith("NOTES.txt") and text.strip():
                yamllint_text(f"{where} {path}", text.strip() + "\n", failures, conf)
        if with_config:
            check_config(where, objects, failures)
    return rendered


def check_bad_values(failures: Failures) -> int:
    files = sorted(BAD_VALUES.glob("*.yaml"))
    if not files:
        failures.add(str(BAD_VALUES), "no bad values files: the schema's rejections are untested")
    with helm.Chart.load(CHART) as chart:
        for file in files:
            values = yaml.safe_load(file.read_text()) or {}
            try:
                chart.validate_schema(values)
            except helm.HelmValuesError as error:
                first = str(error).strip().splitlines()[-1].strip()
                log(f"  rejected as expected: {file.name}: {first}")
                continue
            failures.add(str(file.relative_to(ROOT)), "the schema ACCEPTS this bad values file")
    return len(files)


def check_overlays(failures: Failures, conf) -> int:
    overlays = sorted(p for p in OVERLAYS.iterdir() if (p / "kustomization.yaml").exists())
    if not overlays:
        failures.add(str(OVERLAYS), "no overlays found")
    for overlay in overlays:
        where = f"k8s/overlays/{overlay.name}"
        result = subprocess.run(["kubectl", "kustomize", str(overlay)], capture_output=True, text=True)
        if result.returncode != 0:
            failures.add(where, "kubectl kustomize failed: " + result.stderr.strip())
            continue
        yamllint_text(where + " (rendered)", result.stdout, failures, conf)
        objects = [(where, d) for d in yaml.safe_load_all(result.stdout) if d]
        validate_objects(where, objects, failures)
        # The development overlay's single SQLite process migrates at start, by design.
        check_config(where, objects, failures, hook_migrations=overlay.name != "development")
        log(f"  {where}: {len(objects)} objects")
    return len(overlays)


# --- self-test ------------------------------------------------------------------------

# Two invalid objects a template could emit: a field of the wrong type, and a field
# Kubernetes does not know (caught only by --strict).
BROKEN_TEMPLATES = {
    "broken-type.yaml": """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "throughline.fullname" . }}-broken-type
  labels:
    {{- include "throughline.labels" (dict "root" . "component" "broken") | nindent 4 }}
spec:
  replicas: two
  selector:
    matchLabels: {app: broken}
  template:
    metadata:
      labels: {app: broken}
    spec:
      containers:
        - name: broken
          image: busybox
""",
    "broken-field.yaml": """\
apiVersion: v1
kind: Service
metadata:
  name: {{ include "throughline.fullname" . }}-broken-field
  labels:
    {{- include "throughline.labels" (dict "root" . "component" "broken") | nindent 4 }}
spec:
  selector: {app: broken}
  ports:
    - port: 80
      notAField: true
""",
}


def self_test(conf) -> bool:
    """The checks must catch a broken chart; returns True when they do."""
    ok = True
    with tempfile.TemporaryDirectory() as scratch:
        broken = Path(scratch) / "throughline"
        shutil.copytree(CHART, broken)
        for name, text in BROKEN_TEMPLATES.items():
            (broken / "templates" / name).write_text(text)
        failures = Failures()
        check_chart(broken, [("self-test", {})], failures, with_config=False, conf=conf)
        caught = [f for f in failures.items if "-broken-" in f]
        for name, word in (("Deployment/tl-throughline-broken-type", "replicas"), ("Service/tl-throughline-broken-field", "notAField")):
            if not any(name in f and word in f for f in caught):
                log(f"SELF-TEST FAILED: the invalid object {name} ({word}) was not reported")
                ok = False
        unrelated = [f for f in failures.items if f not in caught]
        if unrelated:
            log("SELF-TEST FAILED: the broken copy reported unrelated problems:\n  " + "\n  ".join(unrelated))
            ok = False

    # A configuration key the binary does not know (an unknown section) must be caught.
    failures = Failures()
    unknown = {"services": {"profile": {"extraEnv": [{"name": "THROUGHLINE__NOT_A_SECTION__KEY", "value": "x"}]}}}
    check_chart(CHART, [("self-test config", unknown)], failures, with_config=True, conf=conf)
    if not any("unknown field `not_a_section`" in f for f in failures.items):
        log("SELF-TEST FAILED: an unknown configuration section was not rejected by the binary")
        ok = False

    # A values file that breaks the schema must stop rendering too.
    try:
        render(CHART, {"services": {"profile": {"replicas": "two"}}})
        log("SELF-TEST FAILED: values breaking the schema rendered")
        ok = False
    except helm.HelmError:
        pass
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-self-test", action="store_true", help="skip the self-test (faster iteration)")
    args = parser.parse_args()
    started = time.monotonic()
    conf = yamllint_config.YamlLintConfig(file=str(YAMLLINT_CONFIG))
    failures = Failures()
    log(f"Kubernetes schemas: {', '.join(KUBE_VERSIONS)} (kubernetes-validate {kv.__version__}, strict)")

    if not args.skip_self_test:
        log("self-test: a broken chart must be caught")
        if not self_test(conf):
            return 1
        log("  ok: invalid objects, an unknown config section and bad values are all caught")

    log("helm lint --strict")
    report = helm.lint(CHART, {}, strict=True, kube_version=f"v{KUBE_VERSIONS[0]}.0")
    for message in report["messages"]:
        if message["severity"] >= 2:
            failures.add(f"helm lint {message['path']}", message["error"])
    for error in report.get("errors") or []:
        failures.add("helm lint", error)

    log("values.schema.json rejects every file in charts/tests/bad-values")
    bad = check_bad_values(failures)

    cases = scenarios()
    log(f"rendering {len(cases)} scenarios: " + ", ".join(name for name, _ in cases))
    objects = check_chart(CHART, cases, failures, with_config=True, conf=conf)

    log("kustomize overlays")
    overlays = check_overlays(failures, conf)

    log("yamllint")
    yamllint_files(failures)

    log("hadolint Dockerfile")
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run(
        [str(hadolint), "--failure-threshold", "warning", str(ROOT / "Dockerfile")],
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        failures.add("Dockerfile", "hadolint: " + (result.stdout + result.stderr).strip())

    elapsed = time.monotonic() - started
    if failures:
        log(f"\nchart-check FAILED ({len(failures.items)} problems):")
        for item in failures.items:
            log(f"  {item}")
        return 1
    log(
        f"\nchart-check passed in {elapsed:.0f}s: {len(cases)} scenarios, {objects} rendered objects, "
        f"{bad} bad values files rejected, {overlays} overlays"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
