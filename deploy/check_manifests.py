"""Offline checks of deploy/ that the generic validators cannot make (deploy/check runs it).

* KEDA objects (ScaledObject, TriggerAuthentication), whose schema kubernetes-validate does not
  know, against the fields KEDA documents (keda.sh/v1alpha1), with types and required fields.
* Herald's own rules for every workload: non-root, read-only root file system, no privilege
  escalation, secrets only from Kubernetes Secrets, a termination grace longer than the worker's
  shutdown grace, probes on /healthz, the SQL functions KEDA calls exist in sql/migrations.
* Every metric an alert or the Grafana dashboard uses is one Herald exposes (Metrics.swift).

Usage: python check_manifests.py REPO_ROOT     exits 1 and lists every problem found.
"""
import json
import pathlib
import re
import sys

import yaml

root = pathlib.Path(sys.argv[1])
kube = root / "deploy" / "kubernetes"
problems: list[str] = []


def problem(where: str, what: str) -> None:
    problems.append(f"{where}: {what}")


def check_fields(where: str, obj, allowed: dict) -> None:
    """allowed maps each documented key to its type, or to a nested dict of the same form."""
    if not isinstance(obj, dict):
        problem(where, f"expected a mapping, got {type(obj).__name__}")
        return
    for key, value in obj.items():
        if key not in allowed:
            problem(where, f"unknown field {key!r} (documented: {', '.join(sorted(allowed))})")
            continue
        kind = allowed[key]
        if isinstance(kind, dict):
            check_fields(f"{where}.{key}", value, kind)
        elif isinstance(kind, list):  # a list of mappings of the given form
            if not isinstance(value, list):
                problem(f"{where}.{key}", "expected a list")
            else:
                for i, item in enumerate(value):
                    check_fields(f"{where}.{key}[{i}]", item, kind[0])
        elif kind is not None and not isinstance(value, kind):
            problem(f"{where}.{key}", f"expected {kind}, got {type(value).__name__}")


# KEDA v2 ScaledObject and TriggerAuthentication, as documented (keda.sh/docs/2.x/concepts/).
METADATA = {"name": str, "namespace": str, "labels": dict, "annotations": dict}
HPA_BEHAVIOR = {"scaleUp": dict, "scaleDown": dict}
SCALED_OBJECT_SPEC = {
    "scaleTargetRef": {"name": str, "apiVersion": str, "kind": str, "envSourceContainerName": str},
    "pollingInterval": int, "cooldownPeriod": int, "initialCooldownPeriod": int, "idleReplicaCount": int,
    "minReplicaCount": int, "maxReplicaCount": int,
    "fallback": {"failureThreshold": int, "replicas": int, "behavior": str},
    "advanced": {"restoreToOriginalReplicaCount": bool,
                 "horizontalPodAutoscalerConfig": {"name": str, "behavior": HPA_BEHAVIOR},
                 "scalingModifiers": dict},
    "triggers": [{"type": str, "name": str, "metadata": dict, "metricType": str, "useCachedMetrics": bool,
                  "authenticationRef": {"name": str, "kind": str}}],
}
# The postgresql scaler's metadata and its TriggerAuthentication parameters.
POSTGRESQL_METADATA = {"query", "targetQueryValue", "activationTargetQueryValue", "connectionFromEnv", "host",
                       "port", "userName", "passwordFromEnv", "dbName", "sslmode", "metricName"}
POSTGRESQL_AUTH_PARAMETERS = {"connection", "password", "host", "port", "userName", "dbName", "sslmode"}
TRIGGER_AUTH_SPEC = {
    "secretTargetRef": [{"parameter": str, "name": str, "key": str}],
    "env": [{"parameter": str, "name": str, "containerName": str}],
    "podIdentity": dict, "hashiCorpVault": dict, "azureKeyVault": dict, "awsSecretManager": dict,
}


def number(text) -> bool:
    try:
        float(text)
        return isinstance(text, str)
    except (TypeError, ValueError):
        return False


documents = []
for path in sorted(kube.glob("*.yaml")):
    if path.name == "kustomization.yaml":
        continue
    for doc in yaml.safe_load_all(path.read_text()):
        if doc:
            documents.append((path.name, doc))

listed = set(yaml.safe_load((kube / "kustomization.yaml").read_text())["resources"])
for name in listed:
    if not (kube / name).exists():
        problem("kustomization.yaml", f"lists {name}, which does not exist")
for name in {n for n, _ in documents} - listed - {"secrets.example.yaml"}:
    problem("kustomization.yaml", f"does not list {name}")

by_kind: dict[str, dict[str, dict]] = {}
for name, doc in documents:
    if doc.get("kind"):
        by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc

migrations = "\n".join(p.read_text() for p in (root / "sql" / "migrations").glob("*.sql"))

def keda_spec(where: str, doc: dict, spec_fields: dict) -> dict:
    """Checks a KEDA object's apiVersion, metadata and spec fields; returns its spec."""
    if doc.get("apiVersion") != "keda.sh/v1alpha1":
        problem(where, "apiVersion must be keda.sh/v1alpha1")
    check_fields(f"{where} metadata", doc.get("metadata"), METADATA)
    spec = doc.get("spec") or {}
    check_fields(f"{where} spec", spec, spec_fields)
    return spec


for name, doc in documents:
    kind = doc.get("kind")
    where = f"{name} {kind}/{doc.get('metadata', {}).get('name')}"
    if kind == "ScaledObject":
        spec = keda_spec(where, doc, SCALED_OBJECT_SPEC)
        target = spec.get("scaleTargetRef", {}).get("name")
        if target not in by_kind.get("Deployment", {}):
            problem(where, f"scaleTargetRef {target!r} is no Deployment here")
        elif "replicas" in by_kind["Deployment"][target]["spec"]:
            problem(where, f"Deployment {target} sets replicas, which fights the autoscaler")
        if not spec.get("triggers"):
            problem(where, "needs at least one trigger")
        if spec.get("minReplicaCount", 0) > spec.get("maxReplicaCount", 100):
            problem(where, "minReplicaCount above maxReplicaCount")
        for i, trigger in enumerate(spec.get("triggers", [])):
            at = f"{where} triggers[{i}]"
            meta = trigger.get("metadata", {})
            if trigger.get("type") != "postgresql":
                problem(at, "Herald scales on its database: type must be postgresql")
                continue
            for key in meta:
                if key not in POSTGRESQL_METADATA:
                    problem(at, f"unknown postgresql metadata {key!r}")
            if "query" not in meta or "targetQueryValue" not in meta:
                problem(at, "postgresql needs query and targetQueryValue")
            for key in ("targetQueryValue", "activationTargetQueryValue"):
                if key in meta and not number(meta[key]):
                    problem(at, f"{key} must be a number in a string, not {meta[key]!r}")
            for function in re.findall(r"herald\.(\w+)\(", meta.get("query", "")):
                if f"CREATE FUNCTION herald.{function}(" not in migrations:
                    problem(at, f"calls herald.{function}(), which no migration creates")
            auth = trigger.get("authenticationRef", {}).get("name")
            if auth is None and "connectionFromEnv" not in meta and "host" not in meta:
                problem(at, "no connection: authenticationRef, connectionFromEnv or host")
            if auth is not None and auth not in by_kind.get("TriggerAuthentication", {}):
                problem(at, f"authenticationRef {auth!r} is no TriggerAuthentication here")
    elif kind == "TriggerAuthentication":
        spec = keda_spec(where, doc, TRIGGER_AUTH_SPEC)
        for ref in spec.get("secretTargetRef", []):
            if ref.get("parameter") not in POSTGRESQL_AUTH_PARAMETERS:
                problem(where, f"parameter {ref.get('parameter')!r} is not one the postgresql scaler reads")
            if not all(ref.get(k) for k in ("parameter", "name", "key")):
                problem(where, "secretTargetRef needs parameter, name and key")

# Herald's rules for its pods.
worker_grace = None
for kind in ("Deployment", "Job"):
    for name, doc in by_kind.get(kind, {}).items():
        where = f"{kind}/{name}"
        pod = doc["spec"]["template"]["spec"]
        pod_security = pod.get("securityContext", {})
        if not pod_security.get("runAsNonRoot"):
            problem(where, "pod must set securityContext.runAsNonRoot")
        for c in pod["containers"]:
            sec = c.get("securityContext", {})
            if not sec.get("readOnlyRootFilesystem"):
                problem(where, f"container {c['name']}: readOnlyRootFilesystem must be true")
            if sec.get("allowPrivilegeEscalation") is not False:
                problem(where, f"container {c['name']}: allowPrivilegeEscalation must be false")
            for env in c.get("env", []):
                secret_like = re.search(r"(URL|TOKEN|SECRET|PASSWORD)$", env["name"]) and env["name"] != "HERALD_PUBLIC_URL"
                if secret_like and "value" in env:
                    problem(where, f"{env['name']} must come from a Secret, not a literal value")
            args = c.get("args", [])
            if kind == "Deployment":
                for probe in ("readinessProbe", "livenessProbe"):
                    path = c.get(probe, {}).get("httpGet", {}).get("path")
                    if path != "/healthz":
                        problem(where, f"{probe} must be an HTTP GET of /healthz (is {path!r})")
                if args and args[0] != "webhooks" and "--metrics-port" not in args:
                    problem(where, "needs --metrics-port for /metrics and /healthz")
            if args[:1] == ["worker"]:
                grace = int(args[args.index("--shutdown-grace") + 1]) if "--shutdown-grace" in args else 10
                timeout = int(args[args.index("--request-timeout") + 1]) if "--request-timeout" in args else 15
                worker_grace = pod.get("terminationGracePeriodSeconds", 30)
                if worker_grace <= grace + timeout:
                    problem(where, f"terminationGracePeriodSeconds {worker_grace} must exceed --shutdown-grace "
                                   f"{grace} + --request-timeout {timeout}")
if worker_grace is None:
    problem("worker.yaml", "no worker Deployment found")
scheduler = by_kind.get("Deployment", {}).get("herald-scheduler")
if not scheduler or scheduler["spec"].get("replicas", 1) < 2:
    problem("scheduler.yaml", "the scheduler needs 2 replicas (one leads, one stands by)")
if "PodDisruptionBudget" not in by_kind:
    problem("webhooks.yaml", "the webhooks need a PodDisruptionBudget")

# Metrics used by alerts and the dashboard exist.
metrics_source = (root / "Sources" / "HeraldServices" / "Metrics.swift").read_text()
exposed = set(re.findall(r"`(herald_[a-z_]+)`", metrics_source))
histograms = {m for m in exposed if m.endswith("_seconds")}
exposed |= {f"{h}_{s}" for h in histograms for s in ("bucket", "sum", "count")}
expressions = []
for rules in (root / "deploy" / "prometheus").glob("*alerts.yml"):
    for group in yaml.safe_load(rules.read_text())["groups"]:
        expressions += [(rules.name, r["expr"]) for r in group["rules"]]
for board in (root / "deploy" / "grafana").rglob("*.json"):
    dashboard = json.loads(board.read_text())
    for panel in dashboard.get("panels", []):
        expressions += [(board.name, t["expr"]) for t in panel.get("targets", []) if "expr" in t]
for where, expr in expressions:
    for metric in set(re.findall(r"\b(herald_[a-z_]+)", expr)):
        if metric not in exposed:
            problem(where, f"uses {metric}, which Herald does not expose (Metrics.swift)")

for p in problems:
    print(f"deploy check: {p}", file=sys.stderr)
print(f"deploy check: {len(documents)} manifests, {len(expressions)} expressions, "
      f"{'no problems' if not problems else f'{len(problems)} problem(s)'}")
sys.exit(1 if problems else 0)
