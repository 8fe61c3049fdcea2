"""The Kubernetes manifests, checked without a cluster (none runs on this machine).

``kubectl kustomize`` renders each overlay; ``kubernetes-validate`` checks every built-in object
against Kubernetes' own schema (strict: an unknown field fails), the Prometheus Operator's CRD
schemas check its two objects; the services' settings classes and the Compose file check names,
ports and probes; and the NetworkPolicies are evaluated, pod by pod, against the hybrid rule.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from itertools import product
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.deploy.conftest import DEPLOY
from tests.deploy.test_compose import COMPOSE, SETTINGS

KUBERNETES = DEPLOY / "kubernetes"
SCHEMAS = Path(__file__).with_name("schemas")
VERSIONS = ("1.32.0", kubernetes_validate.latest_version())  # kubectl here; the newest schemas bundled
type Manifest = dict[str, Any]


def render(kubectl: str, overlay: str) -> list[Manifest]:
    out = subprocess.run(
        [kubectl, "kustomize", str(KUBERNETES / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return [m for m in yaml.safe_load_all(out.stdout) if m]


@pytest.fixture(scope="module")
def local(kubectl: str) -> list[Manifest]:
    return render(kubectl, "local")


@pytest.fixture(scope="module")
def production(kubectl: str) -> list[Manifest]:
    return render(kubectl, "production")


def of_kind(manifests: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def closed(schema: Any) -> Any:
    """``schema`` refusing properties it does not name, as kubernetes-validate's strict mode does:
    the API server would drop a misspelt field of a custom resource without a word."""
    if isinstance(schema, dict):
        schema = {key: closed(value) for key, value in schema.items()}
        open_ = "additionalProperties" in schema or schema.get("x-kubernetes-preserve-unknown-fields")
        if "properties" in schema and not open_:
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        schema = [closed(item) for item in schema]
    return schema


def custom_resource_errors(manifest: Manifest) -> list[str]:
    schema = closed(json.loads((SCHEMAS / f"{manifest['kind']}.json").read_text()))
    validator = jsonschema.Draft7Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(manifest)]


@pytest.mark.parametrize("overlay", ["local", "production"])
def test_every_object_of_every_overlay_is_valid_for_current_kubernetes(kubectl: str, overlay: str) -> None:
    problems: list[str] = []
    for manifest in render(kubectl, overlay):
        name = f"{manifest['kind']}/{manifest['metadata']['name']}"
        if manifest["apiVersion"].startswith("monitoring.coreos.com/"):
            problems += [f"{name}: {error}" for error in custom_resource_errors(manifest)]
            continue
        for version in VERSIONS:
            try:
                kubernetes_validate.validate(manifest, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                problems.append(f"{name} (Kubernetes {version}): {error.message} at {list(error.path)}")
    assert problems == []


def test_the_custom_resource_check_refuses_a_misspelt_field(local: list[Manifest]) -> None:
    monitor = of_kind(local, "ServiceMonitor")["hybrid-services"]
    endpoint = monitor["spec"]["endpoints"][0]
    misspelt = monitor | {
        "spec": monitor["spec"] | {"endpoints": [endpoint | {"authorisation": {"type": "Bearer"}}]}
    }
    assert custom_resource_errors(monitor) == []
    assert any("authorisation" in error for error in custom_resource_errors(misspelt))


def test_the_prometheus_rule_is_the_rules_file_compose_loads() -> None:
    spec = importlib.util.spec_from_file_location("prometheus_rules", KUBERNETES / "prometheus_rules.py")
    assert spec is not None
    assert spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)  # a script, not a package: imported from its path
    assert script.TARGET.read_text() == script.prometheus_rule(), f"run: uv run python {spec.origin}"
    groups = yaml.safe_load(script.TARGET.read_text())["spec"]["groups"]
    assert any(rule.get("alert") == "ServiceDown" for group in groups for rule in group["rules"])


# --- names, ports and probes: the manifests, Compose and the settings classes agree -----------------

SERVICES = {name.replace("_", "-"): name for name in SETTINGS}
# Read by uvicorn itself, not by a settings class: behind the ingress, the API trusts X-Forwarded-For
UVICORN = {"FORWARDED_ALLOW_IPS"}


def container(deployment: Manifest) -> Manifest:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(only)


def environment(manifests: list[Manifest], deployment: Manifest) -> set[str]:
    """The variables the service reads: its own, and those of the ConfigMaps it loads that it has."""
    own = {variable["name"] for variable in container(deployment).get("env", [])}
    maps = of_kind(manifests, "ConfigMap")
    loaded = {
        key
        for source in container(deployment).get("envFrom", [])
        for key in maps[source["configMapRef"]["name"]]["data"]
    }
    fields = {name.upper() for name in SETTINGS[SERVICES[deployment["metadata"]["name"]]].model_fields}
    return own | (loaded & fields)


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_gets_the_variables_compose_gives_it_and_its_settings_accept(
    local: list[Manifest], production: list[Manifest], name: str
) -> None:
    settings = SETTINGS[SERVICES[name]]
    accepted = {field.upper() for field in settings.model_fields}
    required = {field.upper() for field, info in settings.model_fields.items() if info.is_required()}
    for manifests in (local, production):
        deployment = of_kind(manifests, "Deployment")[name]
        variables = environment(manifests, deployment)
        assert {v["name"] for v in container(deployment).get("env", [])} - UVICORN <= accepted
        assert required <= variables, f"{name} starts without {required - variables} and exits 2"
        assert variables - UVICORN == set(COMPOSE["services"][SERVICES[name]]["environment"])


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_listens_probes_and_is_reached_where_its_settings_say(
    local: list[Manifest], name: str
) -> None:
    port = SETTINGS[SERVICES[name]].model_fields["port"].default
    deployment = of_kind(local, "Deployment")[name]
    main = container(deployment)
    assert main["ports"] == [{"name": "http", "containerPort": port}]
    assert {"name": "PORT", "value": str(port)} in main["env"]
    assert COMPOSE["services"][SERVICES[name]]["environment"]["PORT"] == str(port)
    probes = {probe: main[probe]["httpGet"] for probe in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert probes == {
        "startupProbe": {"path": "/health/live", "port": "http"},
        "livenessProbe": {"path": "/health/live", "port": "http"},
        "readinessProbe": {"path": "/health/ready", "port": "http"},
    }
    service = of_kind(local, "Service")[name]
    assert service["spec"]["ports"] == [{"name": "http", "port": port, "targetPort": "http"}]
    assert service["metadata"]["labels"]["hybrid.example/job"] == SERVICES[name]  # the rules' job label


def secret_keys_named(manifests: list[Manifest]) -> set[str]:
    def walk(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if "secretKeyRef" in node:
                yield node["secretKeyRef"]["key"]
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)

    return set(walk(manifests)) | {"metrics-token"}  # and the ServiceMonitor's bearer token


def test_the_local_secret_holds_every_key_a_container_names_and_production_commits_none(
    local: list[Manifest], production: list[Manifest]
) -> None:
    (secret,) = of_kind(local, "Secret").values()
    missing = secret_keys_named(local) - set(secret["data"])
    assert missing == set(), f"overlays/local/secrets.env lacks {sorted(missing)}"
    assert of_kind(production, "Secret") == {}


def test_the_bot_runs_one_poller_and_nothing_stops_a_drain(production: list[Manifest]) -> None:
    bot = of_kind(production, "Deployment")["bot-service"]
    assert (bot["spec"]["replicas"], bot["spec"]["strategy"]["type"]) == (1, "Recreate")
    assert "bot-service" not in of_kind(production, "HorizontalPodAutoscaler")
    for budget in of_kind(production, "PodDisruptionBudget").values():
        assert budget["spec"]["maxUnavailable"] == 1


# --- the hybrid rule at the network ------------------------------------------------------------------
# Evaluated here, not by a library: none on PyPI evaluates NetworkPolicies (the Go analysers, e.g.
# np-guard's netpol-analyzer, are not installable on this machine). The subset the manifests use:
# label selectors, namespace selectors, ipBlocks, numbered and named ports; TCP only.

NAMESPACE = "hybrid"
# Pods the policies name outside the namespace, and the stores of production, outside the cluster
ELSEWHERE = [
    ("otel-collector", "observability", {"otlp": 4318}, "10.244.1.1"),
    ("prometheus", "monitoring", {}, "10.244.1.2"),
    ("ingress-controller", "ingress-nginx", {}, "10.244.1.3"),
    ("api.telegram.org", "", {"https": 443}, "149.154.167.220"),
]
MANAGED = [  # the production overlay's example ranges
    ("postgres", "", {"5432": 5432}, "10.20.1.10"),
    ("mongodb", "", {"27017": 27017}, "10.20.2.10"),
    ("rabbitmq", "", {"5672": 5672}, "10.20.3.10"),
    ("redis-cache", "", {"6379": 6379}, "10.20.4.10"),
    ("redis-events", "", {"6379": 6379}, "10.20.4.11"),
]
BUSINESS = ("api-service", "worker-service", "bot-service")
SERVICE_PORTS = {"pg-data-service": 8001, "mongo-data-service": 8002, "api-service": 8000}
SERVICE_PORTS |= {"worker-service": 9101, "bot-service": 9102}
# Every connection the system makes; any other is refused.
OPEN = (
    {("pg-data-service", "postgres", 5432), ("pg-migrate", "postgres", 5432)}
    | {("pg-data-service", "rabbitmq", 5672), ("mongo-data-service", "mongodb", 27017)}
    | {(b, d, SERVICE_PORTS[d]) for b in BUSINESS for d in ("pg-data-service", "mongo-data-service")}
    | {(b, "rabbitmq", 5672) for b in BUSINESS}
    | {(b, r, 6379) for b in BUSINESS for r in ("redis-cache", "redis-events")}
    | {(s, "otel-collector", 4318) for s in (*SERVICE_PORTS, "pg-migrate")}
    | {("prometheus", s, port) for s, port in SERVICE_PORTS.items()}
    | {("ingress-controller", "api-service", 8000), ("bot-service", "api.telegram.org", 443)}
)


def matches(selector: Manifest, labels: dict[str, str]) -> bool:
    """A label selector (matchLabels and matchExpressions) against a pod's or a namespace's labels."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, values = expression["key"], expression.get("values", [])
        held = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[expression["operator"]]
        if not held:
            return False
    return True


@dataclass(frozen=True)
class Pod:
    name: str
    namespace: str  # "": outside the cluster
    labels: dict[str, str]
    ports: dict[str, int]
    ip: IPv4Address


def pods(manifests: list[Manifest], outside: list[tuple[str, str, dict[str, int], str]]) -> list[Pod]:
    """A pod per workload of the overlay (IPs from kind's default pod range), and those ``outside``."""
    found = [
        Pod(name, namespace, {"app": name} if namespace else {}, ports, IPv4Address(ip))
        for name, namespace, ports, ip in outside
    ]
    for number, manifest in enumerate(m for m in manifests if m["kind"] in ("Deployment", "Job")):
        template = manifest["spec"]["template"]
        ports = {
            port.get("name", str(port["containerPort"])): port["containerPort"]
            for container in template["spec"]["containers"]
            for port in container.get("ports", [])
        }
        labels = template["metadata"]["labels"]
        found.append(
            Pod(manifest["metadata"]["name"], NAMESPACE, labels, ports, IPv4Address(f"10.244.0.{number + 1}"))
        )
    return found


def peer_admits(peer: Manifest, pod: Pod) -> bool:
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        excepted = any(pod.ip in IPv4Network(cidr) for cidr in block.get("except", []))
        return pod.ip in IPv4Network(block["cidr"]) and not excepted
    if not pod.namespace:  # outside the cluster: only an ipBlock names it
        return False
    if "namespaceSelector" in peer:
        if not matches(peer["namespaceSelector"], {"kubernetes.io/metadata.name": pod.namespace}):
            return False
    elif pod.namespace != NAMESPACE:
        return False
    return matches(peer.get("podSelector", {}), pod.labels)


def passes(policies: list[Manifest], pod: Pod, direction: str, peer: Pod, target: Pod, port: int) -> bool:
    """Whether ``pod``'s policies let the connection through in ``direction`` (Egress or Ingress):
    open unless a policy selects the pod for it, then only what one of their rules admits."""
    rules_key, peers_key = ("egress", "to") if direction == "Egress" else ("ingress", "from")
    selecting = [
        policy
        for policy in policies
        if pod.namespace == NAMESPACE
        and direction in policy["spec"]["policyTypes"]
        and matches(policy["spec"]["podSelector"], pod.labels)
    ]
    if not selecting:
        return True
    return any(
        (not rule.get(peers_key) or any(peer_admits(p, peer) for p in rule[peers_key]))
        and (
            not rule.get("ports")
            or any(target.ports.get(str(p["port"]), p["port"]) == port for p in rule["ports"])
        )
        for policy in selecting
        for rule in policy["spec"].get(rules_key, [])
    )


def violations(manifests: list[Manifest], outside: list[tuple[str, str, dict[str, int], str]]) -> list[str]:
    """Every connection whose fate differs from :data:`OPEN`'s, as ``source → target:port``."""
    policies = list(of_kind(manifests, "NetworkPolicy").values())
    wrong = []
    everyone = pods(manifests, outside)
    for source, target in product(everyone, everyone):
        if NAMESPACE not in (source.namespace, target.namespace):
            continue  # neither end is ours: our policies have no say
        for port in set(target.ports.values()) if source is not target else ():
            open_ = passes(policies, source, "Egress", target, target, port) and passes(
                policies, target, "Ingress", source, target, port
            )
            if open_ != ((source.name, target.name, port) in OPEN):
                wrong.append(f"{source.name} → {target.name}:{port} {'open' if open_ else 'refused'}")
    return sorted(wrong)


def test_locally_each_pod_reaches_exactly_what_the_hybrid_rule_allows(local: list[Manifest]) -> None:
    assert violations(local, ELSEWHERE) == []


def test_in_production_the_managed_stores_are_reached_only_by_their_clients(
    production: list[Manifest],
) -> None:
    assert violations(production, ELSEWHERE + MANAGED) == []


def test_a_hole_in_both_walls_is_seen(local: list[Manifest]) -> None:
    """The check can fail. Two walls keep a business service out of PostgreSQL: its own egress, and
    the database's ingress (with default-deny behind it). Loosen one and it holds; loosen both and
    the check names the hole."""
    loose = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "loose"},
        "spec": {
            "podSelector": {"matchLabels": {"hybrid.example/tier": "business"}},
            "policyTypes": ["Egress"],
            "egress": [{"ports": [{"protocol": "TCP", "port": 5432}]}],
        },
    }
    hole = "api-service → postgres:5432 open"
    ingress = ("default-deny", "postgresql-answers-its-data-service")
    assert hole not in violations([*local, loose], ELSEWHERE)
    assert hole not in violations([m for m in local if m["metadata"]["name"] not in ingress], ELSEWHERE)
    assert hole in violations([*(m for m in local if m["metadata"]["name"] not in ingress), loose], ELSEWHERE)


def test_the_data_service_at_its_most_replicas_stays_within_postgresql_connections(
    production: list[Manifest],
) -> None:
    """Each replica's pools at their fullest (writes: pool and overflow; reads by id: a pool of
    ``pool_size``), times the autoscaler's maximum, plus the migration Job, under PostgreSQL's
    default ``max_connections`` less its 3 superuser slots."""
    fields = SETTINGS["pg_data_service"].model_fields
    per_replica = 2 * fields["pool_size"].default + fields["pool_max_overflow"].default
    most = of_kind(production, "HorizontalPodAutoscaler")["pg-data-service"]["spec"]["maxReplicas"]
    assert most * per_replica + 1 <= 100 - 3, f"{most} replicas x {per_replica} connections"
