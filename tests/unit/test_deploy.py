"""Offline checks of the Kubernetes manifests, the alerting rules and the Grafana dashboard.

Core Kubernetes kinds are validated against the Kubernetes OpenAPI JSON schemas bundled in the
``kubernetes-validate`` package (strict: unknown fields fail). The CRDs (ServiceMonitor,
ScaledObject, TriggerAuthentication) have no schema there and are checked structurally, together
with the references between the manifests (selectors, port names, ConfigMap/Secret keys).
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from casewatch.kafka.config import consumer_config, producer_config
from casewatch.settings import (
    KAFKA_ENV_PREFIX,
    Settings,
    env_name,
    is_secret_property,
    kafka_property,
    load_settings,
    unknown_env_names,
)
from casewatch.telemetry.metrics import Telemetry

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy"
CONFIG = ROOT / "config"
ALERTS = CONFIG / "alerts.yml"
ALERTS_TEST = CONFIG / "alerts.test.yml"
DASHBOARDS = CONFIG / "grafana" / "dashboards"
DASHBOARD = DASHBOARDS / "casewatch.json"
PROVISIONING = CONFIG / "grafana" / "provisioning"
COMPOSE = ROOT / "docker-compose.yml"

# Oldest Kubernetes minor the manifests claim to support (deploy/README.md), and the newest.
KUBERNETES_VERSIONS = ("1.27.0", kubernetes_validate.latest_version())
CRD_KINDS = {"ServiceMonitor", "ScaledObject", "TriggerAuthentication"}
SETTINGS_ENV = {env_name(name) for name in Settings.model_fields if name != "kafka"}
ENV_NAME = re.compile(r"\bCASEWATCH_[A-Z0-9_]+")


# --- loading -------------------------------------------------------------------------------


def manifest_files() -> list[Path]:
    return sorted(p for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml")


@cache
def manifests() -> tuple[dict[str, Any], ...]:
    docs: list[dict[str, Any]] = []
    for path in manifest_files():
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc is not None:
                doc["__file__"] = path.name
                docs.append(doc)
    return tuple(docs)


def strip(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "__file__"}


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in manifests() if doc["kind"] == kind]


def one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in by_kind(kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def statefulset() -> dict[str, Any]:
    return one("StatefulSet", "casewatch")


def pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = statefulset()["spec"]["template"]["spec"]
    return spec


def container() -> dict[str, Any]:
    containers = pod_spec()["containers"]
    assert len(containers) == 1
    found: dict[str, Any] = containers[0]
    return found


def pod_labels() -> dict[str, str]:
    labels: dict[str, str] = statefulset()["spec"]["template"]["metadata"]["labels"]
    return labels


def config_data() -> dict[str, str]:
    data: dict[str, str] = one("ConfigMap", "casewatch-config")["data"]
    return data


def secret_keys(name: str) -> set[str]:
    secret = one("Secret", name)
    return set(secret.get("stringData", {})) | set(secret.get("data", {}))


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def doc_id(doc: dict[str, Any]) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


# --- kustomization -------------------------------------------------------------------------


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text(encoding="utf-8"))
    assert kustomization["kind"] == "Kustomization"
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    resources = kustomization["resources"]
    assert len(resources) == len(set(resources))
    assert set(resources) == {p.name for p in manifest_files()}
    assert kustomization["namespace"] == one("Namespace")["metadata"]["name"]
    images = {image["name"] for image in kustomization.get("images", [])}
    assert container()["image"].split(":")[0] in images


def test_every_manifest_is_namespaced_by_kustomize_only() -> None:
    for doc in manifests():
        assert "namespace" not in doc["metadata"], f"{doc_id(doc)}: kustomize sets the namespace"
        assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == "casewatch", doc_id(doc)


# --- Kubernetes JSON schemas ----------------------------------------------------------------


CORE_DOCS = [d for d in manifests() if d["kind"] not in CRD_KINDS]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("doc", CORE_DOCS, ids=[doc_id(d) for d in CORE_DOCS])
def test_core_kinds_match_the_kubernetes_schema(doc: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(strip(doc), version, strict=True)


def test_every_core_kind_was_validated() -> None:
    kinds = {d["kind"] for d in CORE_DOCS}
    assert kinds >= {
        "Namespace",
        "ServiceAccount",
        "ConfigMap",
        "Secret",
        "Service",
        "StatefulSet",
        "PodDisruptionBudget",
    }
    assert {d["kind"] for d in manifests()} - kinds == CRD_KINDS


def test_the_schema_check_rejects_broken_manifests() -> None:
    """The validator is strict: a misspelt field and a wrong type both fail."""
    version = KUBERNETES_VERSIONS[-1]
    misspelt = copy.deepcopy(strip(statefulset()))
    misspelt["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(misspelt, version, strict=True)
    wrong_type = copy.deepcopy(strip(statefulset()))
    wrong_type["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "x"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong_type, version, strict=True)


# --- StatefulSet -----------------------------------------------------------------------------


def test_statefulset_selector_service_and_replicas() -> None:
    spec = statefulset()["spec"]
    assert selects(spec["selector"]["matchLabels"], pod_labels())
    headless = one("Service", spec["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert selects(headless["spec"]["selector"], pod_labels())
    # The ScaledObject owns the replica count; a fixed one would fight it on every apply.
    assert "replicas" not in spec


def test_statefulset_runs_non_root_with_a_read_only_root() -> None:
    pod = pod_spec()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    assert one("ServiceAccount", pod["serviceAccountName"])["automountServiceAccountToken"] is False
    context = container()["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert "add" not in context["capabilities"]
    assert context["seccompProfile"]["type"] == "RuntimeDefault"
    # The image's user (Dockerfile: USER 10001:10001).
    assert context["runAsUser"] == 10001
    mounts = {m["mountPath"] for m in container()["volumeMounts"]}
    assert "/tmp" in mounts


def test_statefulset_disables_service_links() -> None:
    """Service links would set CASEWATCH_METRICS_PORT=tcp://... from the casewatch-metrics
    Service, which is a casewatch setting and would stop the daemon at start-up."""
    assert pod_spec()["enableServiceLinks"] is False
    service_env = {
        f"{doc['metadata']['name'].upper().replace('-', '_')}_PORT" for doc in by_kind("Service")
    }
    assert "CASEWATCH_METRICS_PORT" in service_env


def quantity(value: str) -> float:
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * factor
    return float(value)


def test_statefulset_resources_and_probes() -> None:
    c = container()
    resources = c["resources"]
    for kind in ("cpu", "memory"):
        request, limit = resources["requests"][kind], resources["limits"][kind]
        assert quantity(limit) >= quantity(request) > 0, kind
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports["metrics"] == int(config_data()["CASEWATCH_METRICS_PORT"])
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    # Liveness tolerates at least the daemon's own 30 s liveness timeout.
    live = c["livenessProbe"]
    assert live["periodSeconds"] * live["failureThreshold"] >= 30
    grace = pod_spec()["terminationGracePeriodSeconds"]
    assert grace > float(config_data()["CASEWATCH_SHUTDOWN_TIMEOUT_SECONDS"])


def test_statefulset_env_static_membership_and_credentials() -> None:
    c = container()
    assert [ref["configMapRef"]["name"] for ref in c["envFrom"]] == ["casewatch-config"]
    env = {e["name"]: e for e in c["env"]}
    instance = env["CASEWATCH_KAFKA__GROUP_INSTANCE_ID"]
    assert instance["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert kafka_property("GROUP_INSTANCE_ID") == "group.instance.id"
    for name in ("CASEWATCH_KAFKA__SASL_USERNAME", "CASEWATCH_KAFKA__SASL_PASSWORD"):
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref["key"] in secret_keys(ref["name"]), name
        assert "value" not in env[name]


# --- configuration ---------------------------------------------------------------------------


def manifest_env_names() -> set[str]:
    names = set(config_data())
    names |= {e["name"] for e in container()["env"]}
    for path in manifest_files():
        names |= set(ENV_NAME.findall(path.read_text(encoding="utf-8")))
    return names


def test_every_casewatch_env_name_is_a_setting() -> None:
    names = manifest_env_names()
    assert names
    unknown = {n for n in names if n not in SETTINGS_ENV and not n.startswith(KAFKA_ENV_PREFIX)}
    assert not unknown, f"CASEWATCH_* names that are not settings: {sorted(unknown)}"
    assert unknown_env_names(dict.fromkeys(names, "")) == []


def test_config_map_holds_no_secret() -> None:
    for name in config_data():
        if name.startswith(KAFKA_ENV_PREFIX):
            prop = kafka_property(name.removeprefix(KAFKA_ENV_PREFIX))
            assert not is_secret_property(prop), f"{name} belongs in the Secret"
    assert all(isinstance(value, str) for value in config_data().values())


def test_pod_environment_loads_as_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ConfigMap plus the pod's own variables are a valid configuration."""
    for name in list(os.environ):
        if name.startswith("CASEWATCH_"):
            monkeypatch.delenv(name)
    for name, value in config_data().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CASEWATCH_KAFKA__GROUP_INSTANCE_ID", "casewatch-0")
    monkeypatch.setenv("CASEWATCH_KAFKA__SASL_USERNAME", "user")
    monkeypatch.setenv("CASEWATCH_KAFKA__SASL_PASSWORD", "s3cr3t-value")
    settings = load_settings()
    consumer = consumer_config(settings.client_options())
    assert consumer["group.instance.id"] == "casewatch-0"
    assert consumer["group.id"] == config_data()["CASEWATCH_GROUP_ID"]
    assert consumer["security.protocol"] == "SASL_SSL"
    assert consumer["sasl.password"] == "s3cr3t-value"
    assert int(consumer["session.timeout.ms"]) >= 30_000
    producer = producer_config(settings.client_options())
    assert "group.instance.id" not in producer
    assert producer["sasl.username"] == "user"
    assert "s3cr3t-value" not in json.dumps(settings.redacted())


# --- Services, PDB, ServiceMonitor -------------------------------------------------------------


def test_services_select_the_pods_by_port_name() -> None:
    container_ports = {p["name"] for p in container()["ports"]}
    for service in by_kind("Service"):
        assert selects(service["spec"]["selector"], pod_labels()), doc_id(service)
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in container_ports, doc_id(service)
    assert one("Service", "casewatch-headless")["spec"]["publishNotReadyAddresses"] is True


def test_pdb_selects_the_pods() -> None:
    spec = one("PodDisruptionBudget")["spec"]
    assert selects(spec["selector"]["matchLabels"], pod_labels())
    assert spec["maxUnavailable"] == 1
    assert "minAvailable" not in spec


SERVICE_MONITOR_SPEC_KEYS = {
    "jobLabel",
    "selector",
    "endpoints",
    "namespaceSelector",
    "podTargetLabels",
    "targetLabels",
    "sampleLimit",
}
SERVICE_MONITOR_ENDPOINT_KEYS = {
    "port",
    "path",
    "interval",
    "scrapeTimeout",
    "scheme",
    "relabelings",
    "metricRelabelings",
    "honorLabels",
}


def test_service_monitor_structure() -> None:
    monitor = one("ServiceMonitor", "casewatch")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    spec = monitor["spec"]
    assert set(spec) <= SERVICE_MONITOR_SPEC_KEYS
    matched = [
        s
        for s in by_kind("Service")
        if selects(spec["selector"]["matchLabels"], s["metadata"]["labels"])
    ]
    assert [s["metadata"]["name"] for s in matched] == ["casewatch-metrics"]
    service = matched[0]
    # The job label becomes "casewatch", the job config/alerts.yml matches.
    assert service["metadata"]["labels"][spec["jobLabel"]] == "casewatch"
    port_names = {p["name"] for p in service["spec"]["ports"]}
    assert spec["endpoints"]
    for endpoint in spec["endpoints"]:
        assert set(endpoint) <= SERVICE_MONITOR_ENDPOINT_KEYS
        assert endpoint["port"] in port_names
        assert endpoint["path"] == "/metrics"
        assert re.fullmatch(r"\d+[smh]", endpoint["interval"])
        assert quantity(endpoint["scrapeTimeout"][:-1]) < quantity(endpoint["interval"][:-1])
        for relabel in endpoint.get("relabelings", []):
            assert set(relabel) <= {"sourceLabels", "targetLabel", "action", "regex", "replacement"}


# --- KEDA ------------------------------------------------------------------------------------


def test_scaled_object_structure() -> None:
    scaled = one("ScaledObject", "casewatch")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    assert set(spec) <= {
        "scaleTargetRef",
        "minReplicaCount",
        "maxReplicaCount",
        "pollingInterval",
        "cooldownPeriod",
        "idleReplicaCount",
        "fallback",
        "advanced",
        "triggers",
    }
    target = spec["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"]) == ("apps/v1", "StatefulSet")
    assert target["name"] == statefulset()["metadata"]["name"]
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    # maxReplicaCount is the partition count of the input topic, stated where it is set.
    text = (DEPLOY / "keda-scaledobject.yaml").read_text(encoding="utf-8")
    stated = re.search(r"maxReplicaCount = (\d+) = the number of partitions", text)
    assert stated, "the ScaledObject must say how maxReplicaCount follows from the partitions"
    assert spec["maxReplicaCount"] == int(stated.group(1))
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert set(behavior) <= {"scaleUp", "scaleDown"}


def test_scaled_object_kafka_trigger_matches_the_daemon() -> None:
    (trigger,) = one("ScaledObject", "casewatch")["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    metadata = trigger["metadata"]
    # KEDA's trigger metadata is a map of strings: a bare YAML number or boolean is rejected.
    assert all(isinstance(v, str) for v in metadata.values()), metadata
    data = config_data()
    assert metadata["topic"] == data["CASEWATCH_INPUT_TOPIC"]
    assert metadata["consumerGroup"] == data["CASEWATCH_GROUP_ID"]
    assert metadata["bootstrapServers"] == data["CASEWATCH_BOOTSTRAP_SERVERS"]
    default_reset = Settings.model_fields["auto_offset_reset"].default
    assert metadata["offsetResetPolicy"] == data.get("CASEWATCH_AUTO_OFFSET_RESET", default_reset)
    assert metadata["allowIdleConsumers"] == "false"
    assert int(metadata["lagThreshold"]) > int(metadata["activationLagThreshold"]) >= 0
    auth = one("TriggerAuthentication", trigger["authenticationRef"]["name"])
    assert auth["apiVersion"] == "keda.sh/v1alpha1"
    refs = auth["spec"]["secretTargetRef"]
    assert {r["parameter"] for r in refs} == {"sasl", "tls", "username", "password"}
    for ref in refs:
        assert ref["key"] in secret_keys(ref["name"]), ref
    secret = one("Secret", "casewatch-kafka")["stringData"]
    # KEDA names the daemon's SASL mechanism and TLS switch its own way.
    keda_sasl = {
        "PLAIN": "plaintext",
        "SCRAM-SHA-256": "scram_sha256",
        "SCRAM-SHA-512": "scram_sha512",
    }
    assert secret["keda-sasl"] == keda_sasl[data["CASEWATCH_KAFKA__SASL_MECHANISM"]]
    tls = "SSL" in data["CASEWATCH_KAFKA__SECURITY_PROTOCOL"]
    assert secret["keda-tls"] == ("enable" if tls else "disable")


def test_deploy_readme_explains_static_membership_and_scaling() -> None:
    text = (DEPLOY / "README.md").read_text(encoding="utf-8")
    for phrase in ("group.instance.id", "rebalance", "maxReplicaCount", "partitions", "promtool"):
        assert phrase in text, phrase


# --- metric names ----------------------------------------------------------------------------

PROMQL_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (no full parser: strings, label matchers, ranges
    and grouping clauses are removed, then every identifier not called as a function is one)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\$\w+", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.$])([A-Za-z_:][\w:]*)(\s*\()?", text):
        name, called = match.group(1), match.group(2)
        if called or name.lower() in PROMQL_KEYWORDS:
            continue
        names.add(name)
    return names


def test_promql_metric_names() -> None:
    assert promql_metric_names(
        "histogram_quantile(0.99, sum by (le) (rate(casewatch_batch_duration_seconds_bucket"
        '{job="casewatch", instance=~"$instance"}[$__rate_interval])))'
    ) == {"casewatch_batch_duration_seconds_bucket"}
    assert promql_metric_names(
        "sum by (job) (rate(a_total[5m])) / on (job) group_left (x) b > 0.5 unless c offset 5m"
    ) == {"a_total", "b", "c"}
    assert promql_metric_names('absent(up{job="x"})') == {"up"}
    assert promql_metric_names('kafka_lag{topic="a{b}"} > 3 * 1e3') == {"kafka_lag"}


@cache
def exported_metric_names() -> frozenset[str]:
    """Every series name a fresh daemon's registry can expose, labelled children or not."""
    names: set[str] = set()
    for family in Telemetry().registry.collect():
        names |= {sample.name for sample in family.samples}
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names |= {f"{family.name}_{s}" for s in ("bucket", "sum", "count")}
        elif family.type == "info":
            names.add(f"{family.name}_info")
        else:
            names.add(family.name)
    return frozenset(names)


def test_exported_metric_names_are_read_from_the_registry() -> None:
    names = exported_metric_names()
    assert {
        "casewatch_events_consumed_total",
        "casewatch_evaluations_total",
        "casewatch_invalid_events_total",
        "casewatch_trace_score_bucket",
        "casewatch_open_cases",
        "casewatch_model_info",
        "casewatch_threshold",
        "casewatch_anomalies_total",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "python_gc_collections_total",
    } <= names
    # The _created twins are switched off.
    assert not {name for name in names if name.endswith("_created")}


# --- dashboard -------------------------------------------------------------------------------


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def dashboard_panels() -> list[dict[str, Any]]:
    panels = []
    for panel in dashboard()["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return [p for p in panels if p["type"] != "row"]


def test_dashboard_parses_with_unique_ids_and_the_provisioned_datasource() -> None:
    board = dashboard()
    assert board["uid"] == "casewatch"
    assert board["title"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    datasources = yaml.safe_load(
        (PROVISIONING / "datasources" / "prometheus.yml").read_text(encoding="utf-8")
    )["datasources"]
    uids = {d["uid"] for d in datasources if d["type"] == "prometheus"}
    for panel in dashboard_panels():
        assert panel["datasource"]["uid"] in uids, panel["title"]
        assert panel["targets"], panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] in uids
            assert target["expr"].strip()


def test_dashboard_queries_use_only_exported_metrics() -> None:
    exported = exported_metric_names()
    used: set[str] = set()
    for panel in dashboard_panels():
        for target in panel["targets"]:
            names = promql_metric_names(target["expr"])
            assert names, f"{panel['title']}: no metric in {target['expr']}"
            unknown = names - exported
            assert not unknown, f"{panel['title']}: {sorted(unknown)} are not exported"
            used |= names
    for variable in dashboard()["templating"]["list"]:
        query = variable["query"]["query"]
        selector = re.fullmatch(r"label_values\((.+),\s*\w+\)", query)
        assert selector, query
        assert promql_metric_names(selector.group(1)) <= exported
    assert len(used) >= 10


def test_dashboard_has_the_operational_views() -> None:
    panels = dashboard_panels()

    def exprs(predicate: Any) -> list[str]:
        return [t["expr"] for p in panels if predicate(p) for t in p["targets"]]

    every = exprs(lambda p: True)
    assert any("casewatch_events_consumed_total" in e for e in every)  # throughput
    assert any("sum by (trigger)" in e and "casewatch_evaluations_total" in e for e in every)
    quantiles = [e for e in every if e.startswith("histogram_quantile(")]
    assert {q.split(",")[0] for q in quantiles} >= {
        "histogram_quantile(0.5",
        "histogram_quantile(0.95",
        "histogram_quantile(0.99",
    }
    assert all("_bucket" in q and "by (le" in q for q in quantiles)
    assert any("casewatch_open_cases" in e for e in every)
    assert any("casewatch_consumer_lag" in e for e in every)
    assert any('anomalous="true"' in e for e in every)
    assert any("casewatch_dlq_records_total" in e for e in every)
    assert any("casewatch_threshold" in e for e in every)
    assert any("sum by (activity)" in e and "casewatch_anomalies_total" in e for e in every)
    assert any("process_resident_memory_bytes" in e for e in every)
    heatmaps = [p for p in panels if p["type"] == "heatmap"]
    assert heatmaps
    for target in heatmaps[0]["targets"]:
        assert target["format"] == "heatmap"
        assert "casewatch_trace_score_bucket" in target["expr"]


def test_dashboard_provisioning_matches_the_compose_mounts() -> None:
    grafana = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"]["grafana"]
    mounts = {}
    for volume in grafana["volumes"]:
        source, target = volume.split(":")[:2]
        mounts[target] = (ROOT / source).resolve()
    assert mounts["/etc/grafana/provisioning"] == PROVISIONING.resolve()
    providers_files = sorted((PROVISIONING / "dashboards").glob("*.yml"))
    assert providers_files
    for path in providers_files:
        provisioning = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert provisioning["apiVersion"] == 1
        for provider in provisioning["providers"]:
            assert provider["type"] == "file"
            container_path = provider["options"]["path"]
            assert container_path in mounts, f"{container_path} is not mounted into grafana"
            host_dir = mounts[container_path]
            assert host_dir == DASHBOARDS.resolve()
            assert (host_dir / DASHBOARD.name).is_file()


# --- alerting rules --------------------------------------------------------------------------


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_alert_rules_have_severity_summary_and_description() -> None:
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert rule["annotations"]["description"].strip(), rule["alert"]
        assert 'job="casewatch"' in rule["expr"], rule["alert"]


def test_alert_rules_use_only_exported_metrics() -> None:
    # up is Prometheus's own per-target series.
    allowed = exported_metric_names() | {"up"}
    for rule in alert_rules():
        names = promql_metric_names(rule["expr"])
        assert names, rule["alert"]
        assert names <= allowed, f"{rule['alert']}: {sorted(names - allowed)}"


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    tests = yaml.safe_load(ALERTS_TEST.read_text(encoding="utf-8"))
    assert tests["rule_files"] == [ALERTS.name]
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in tests["tests"]:
        for check in case["alert_rule_test"]:
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert firing == names, sorted(names ^ firing)
    assert quiet >= names, sorted(names - quiet)
    prometheus = yaml.safe_load((CONFIG / "prometheus.yml").read_text(encoding="utf-8"))
    assert ALERTS.name in prometheus["rule_files"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_runs_the_alert_unit_tests() -> None:
    promtool = shutil.which("promtool")
    assert promtool is not None
    for args in (
        ["test", "rules", str(ALERTS_TEST)],
        ["check", "config", str(CONFIG / "prometheus.yml")],
    ):
        result = subprocess.run(
            [promtool, *args], capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr
