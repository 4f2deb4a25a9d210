"""The Helm chart (helm/enclave) renders offline with Helm's Go library (helm-python-sdk, no helm binary or
cluster) in four configurations, and every rendered object meets the appliance's rules: resources, probes and
a locked-down securityContext on every container, egress that never leaves the cluster, offline serving, the
Serve applications the gateway expects, and sticky SIP signalling."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

helm = pytest.importorskip("helm_python")

CHART = Path(__file__).resolve().parents[2] / "helm" / "enclave"
RELEASE, NAMESPACE = "rel", "enclave"
ROUTES = {"llm": "/", "stt": "/v1/audio/transcriptions", "tts": "/v1/audio/speech", "embed": "/v1/embeddings"}

MINIMAL: dict[str, Any] = {"secrets": {"vaultKey": {"existingSecret": "enclave-vault-key"}}, "sip": {"enabled": False}}
GPU: dict[str, Any] = yaml.safe_load((CHART / "values-gpu.yaml").read_text())
EXTERNAL_DB: dict[str, Any] = {"database": {"mode": "external", "external": {"existingSecret": "enclave-db", "key": "uri"}}}
SIP_TLS: dict[str, Any] = {
    "gateway": {"tls": {"enabled": True, "secretName": "gateway-tls"}},
    "sip": {"enabled": True, "rtpHost": "192.0.2.40", "trunkPeers": ["192.0.2.10/32"],
            "auth": {"existingSecret": "enclave-sip-auth"}, "tls": {"enabled": True, "secretName": "sip-tls"}},
}


def merged(*layers: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge values layers, later ones winning (as repeated `helm -f` does)."""
    out: dict[str, Any] = {}

    def into(dst: dict[str, Any], src: dict[str, Any]) -> None:
        for key, value in src.items():
            if isinstance(value, dict) and isinstance(dst.get(key), dict):
                into(dst[key], value)
            else:
                dst[key] = copy.deepcopy(value)

    for layer in layers:
        into(out, layer)
    return out


SCENARIOS: dict[str, dict[str, Any]] = {
    "defaults": merged(MINIMAL),
    "gpu": merged(MINIMAL, GPU),
    "external-db": merged(MINIMAL, EXTERNAL_DB),
    "sip-tls": merged(MINIMAL, SIP_TLS),
}


def render_raw(values: dict[str, Any]) -> dict[str, str]:
    with helm.Chart.load(CHART) as chart:
        return chart.render(values, name=RELEASE, namespace=NAMESPACE)


@cache
def rendered(scenario: str) -> tuple[dict[str, Any], ...]:
    """Every object the scenario renders (NOTES.txt and empty documents left out)."""
    docs: list[dict[str, Any]] = []
    for path, text in render_raw(SCENARIOS[scenario]).items():
        if path.endswith("NOTES.txt"):
            continue
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    return tuple(docs)


def of_kind(scenario: str, kind: str) -> list[dict[str, Any]]:
    return [d for d in rendered(scenario) if d["kind"] == kind]


def one(scenario: str, kind: str, name_suffix: str = "") -> dict[str, Any]:
    found = [d for d in of_kind(scenario, kind) if d["metadata"]["name"].endswith(name_suffix)]
    assert len(found) == 1, f"{scenario}: expected one {kind} *{name_suffix}, got {[d['metadata']['name'] for d in found]}"
    return found[0]


def pod_specs(scenario: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, pod spec) of the gateway Deployment, the Ray head and every Ray worker group."""
    for dep in of_kind(scenario, "Deployment"):
        yield f"Deployment/{dep['metadata']['name']}", dep["spec"]["template"]["spec"]
    for svc in of_kind(scenario, "RayService"):
        cluster = svc["spec"]["rayClusterConfig"]
        yield "RayService head", cluster["headGroupSpec"]["template"]["spec"]
        for group in cluster["workerGroupSpecs"]:
            yield f"RayService worker group {group['groupName']}", group["template"]["spec"]


def ray_containers(scenario: str) -> list[dict[str, Any]]:
    return [c for where, spec in pod_specs(scenario) if where.startswith("RayService") for c in spec["containers"]]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def serve_config(scenario: str) -> dict[str, Any]:
    return yaml.safe_load(one(scenario, "RayService")["spec"]["serveConfigV2"])


def worker_group(scenario: str, role: str) -> dict[str, Any]:
    groups = one(scenario, "RayService")["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    return next(g for g in groups if g["groupName"] == role)


# ------------------------------------------------------------------------------------------- the chart itself


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_helm_lint_has_no_errors(scenario: str) -> None:
    report = helm.lint(CHART, SCENARIOS[scenario])
    errors = [m for m in report["messages"] if m["severity"] >= 3]
    assert report["errors"] == [] and errors == [], report


def test_chart_metadata_and_files() -> None:
    with helm.Chart.load(CHART) as chart:
        meta = chart.metadata
        assert chart.schema is not None
    assert (meta["apiVersion"], meta["name"], meta["version"], meta["appVersion"]) == ("v2", "enclave", "0.1.0", "0.1.0")
    for name in ("values.yaml", "values-gpu.yaml", "values.schema.json", "README.md",
                 "templates/_helpers.tpl", "templates/NOTES.txt"):
        assert (CHART / name).is_file(), name


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_manifest_parses_and_names_its_kind(scenario: str) -> None:
    for doc in rendered(scenario):
        assert doc.get("apiVersion") and doc.get("kind") and doc["metadata"].get("name"), doc


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_expected_kinds_are_rendered(scenario: str) -> None:
    kinds = {d["kind"] for d in rendered(scenario)}
    expected = {"RayService", "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
                "NetworkPolicy", "ConfigMap", "ServiceAccount"}
    assert expected <= kinds, expected - kinds
    clusters = of_kind(scenario, "Cluster")
    if scenario == "external-db":
        assert clusters == []
    else:
        (cluster,) = clusters
        assert cluster["apiVersion"] == "postgresql.cnpg.io/v1"
        assert cluster["spec"]["instances"] == 3
        initdb = cluster["spec"]["bootstrap"]["initdb"]
        assert (initdb["database"], initdb["owner"]) == ("enclave", "enclave")
        assert "CREATE EXTENSION IF NOT EXISTS vector" in initdb["postInitApplicationSQL"]
    for sa in of_kind(scenario, "ServiceAccount"):
        assert sa["automountServiceAccountToken"] is False


# ------------------------------------------------------------------------------------------- every container


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_container_has_resources_probes_and_a_locked_down_security_context(scenario: str) -> None:
    specs = list(pod_specs(scenario))
    assert {w.split(" ")[0].split("/")[0] for w, _ in specs} == {"Deployment", "RayService"}
    assert len(specs) == 1 + 1 + 4   # the gateway, the Ray head, one worker group per role
    for where, spec in specs:
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", where
        assert "fsGroup" in spec["securityContext"], where
        init = [(c, True) for c in spec.get("initContainers", [])]
        for container, is_init in [(c, False) for c in spec["containers"]] + init:
            label = f"{where} container {container['name']}"
            resources = container.get("resources", {})
            assert resources.get("requests") and resources.get("limits"), label
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources[bound]), label
            if not is_init:
                assert container.get("readinessProbe") and container.get("livenessProbe"), label
            sc = container["securityContext"]
            assert sc["runAsNonRoot"] is True, label
            assert sc["allowPrivilegeEscalation"] is False, label
            assert sc["capabilities"]["drop"] == ["ALL"], label
            assert sc["readOnlyRootFilesystem"] is True, label
            assert "/tmp" in {m["mountPath"] for m in container["volumeMounts"]}, label


def test_the_ray_autoscaler_sidecar_is_locked_down_too() -> None:
    cluster = one("defaults", "RayService")["spec"]["rayClusterConfig"]
    assert cluster["enableInTreeAutoscaling"] is True
    options = cluster["autoscalerOptions"]
    assert options["resources"]["requests"] and options["resources"]["limits"]
    assert options["securityContext"]["runAsNonRoot"] is True
    assert options["securityContext"]["allowPrivilegeEscalation"] is False
    assert options["securityContext"]["capabilities"]["drop"] == ["ALL"]


# ------------------------------------------------------------------------------------------- serving plane


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_serving_containers_are_offline_and_mount_the_model_store_read_only(scenario: str) -> None:
    profile = SCENARIOS[scenario].get("modelProfile", "cpu-small")
    for container in ray_containers(scenario):
        env = env_of(container)
        for key, value in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0",
                           "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
                           "ENCLAVE_MODEL_PROFILE": profile, "ENCLAVE_MODELS_DIR": "/models"}.items():
            assert env.get(key) == value, (container["name"], key)
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert mounts["/models"]["readOnly"] is True
        assert "/dev/shm" in mounts
    for where, spec in pod_specs(scenario):
        if where.startswith("RayService"):
            volumes = {v["name"]: v for v in spec["volumes"]}
            assert volumes["dshm"]["emptyDir"]["medium"] == "Memory"
            assert volumes["models"]["persistentVolumeClaim"]["readOnly"] is True


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_serve_config_lists_one_app_per_role_at_its_route(scenario: str) -> None:
    config = serve_config(scenario)
    apps = {a["name"]: a for a in config["applications"]}
    assert set(apps) == set(ROUTES)
    profile = SCENARIOS[scenario].get("modelProfile", "cpu-small")
    for role, app in apps.items():
        assert app["import_path"] == "serving.builders:role_app"
        assert app["route_prefix"] == ROUTES[role]
        # pin_resource: the custom resource the role's worker group advertises (see the worker-group test).
        assert app["args"] == {"role": role, "profile": profile, "models_dir": "/models", "pin_resource": f"role_{role}"}
    assert config["http_options"]["port"] == 8000


def test_head_runs_no_replicas_and_each_role_has_its_worker_group() -> None:
    cluster = one("defaults", "RayService")["spec"]["rayClusterConfig"]
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    groups = {g["groupName"]: g for g in cluster["workerGroupSpecs"]}
    assert set(groups) == set(ROUTES)
    for role, group in groups.items():
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        assert f'\\"role_{role}\\": 1' in group["rayStartParams"]["resources"]


def test_roles_can_be_disabled() -> None:
    docs = render_raw(merged(MINIMAL, {"serving": {"roles": {"tts": False, "stt": False}}}))
    service = yaml.safe_load(docs["enclave/templates/rayservice.yaml"])
    assert [a["name"] for a in yaml.safe_load(service["spec"]["serveConfigV2"])["applications"]] == ["llm", "embed"]
    assert [g["groupName"] for g in service["spec"]["rayClusterConfig"]["workerGroupSpecs"]] == ["llm", "embed"]


def test_gpu_values_put_gpus_and_tolerations_on_the_worker_groups() -> None:
    llm = worker_group("gpu", "llm")
    spec = llm["template"]["spec"]
    assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert any(t["key"] == "nvidia.com/gpu" for t in spec["tolerations"])
    assert spec["nodeSelector"]
    assert serve_config("gpu")["applications"][0]["args"]["profile"] == "gpu"
    default_llm = worker_group("defaults", "llm")["template"]["spec"]
    assert "nvidia.com/gpu" not in default_llm["containers"][0]["resources"]["limits"]
    assert "tolerations" not in default_llm


# ------------------------------------------------------------------------------------------- gateway


def gateway_container(scenario: str) -> dict[str, Any]:
    spec = one(scenario, "Deployment", "-gateway")["spec"]["template"]["spec"]
    return next(c for c in spec["containers"] if c["name"] == "gateway")


def gateway_settings(scenario: str) -> dict[str, str]:
    return one(scenario, "ConfigMap", "-gateway")["data"]


def test_gateway_runs_migrations_first_and_reads_settings_and_secrets() -> None:
    dep = one("defaults", "Deployment", "-gateway")
    spec = dep["spec"]["template"]["spec"]
    (migrate,) = spec["initContainers"]
    assert migrate["command"] == ["enclave", "db", "migrate"]
    gateway = gateway_container("defaults")
    assert gateway["command"] == ["enclave", "gateway", "run", "--production"]
    assert migrate["image"] == gateway["image"]
    assert spec["automountServiceAccountToken"] is False
    db = env_of(gateway)["ENCLAVE_DATABASE_URL"]["secretKeyRef"]
    assert db == {"name": f"{RELEASE}-enclave-db-app", "key": "uri"}
    assert env_of(migrate)["ENCLAVE_DATABASE_URL"] == env_of(gateway)["ENCLAVE_DATABASE_URL"]
    settings = gateway_settings("defaults")
    assert settings["ENCLAVE_GATEWAY_HOST"] == "0.0.0.0" and settings["ENCLAVE_GATEWAY_PORT"] == "8080"
    assert settings["ENCLAVE_SERVING_URL"] == f"http://{RELEASE}-enclave-serve-svc.{NAMESPACE}.svc:8000"
    assert settings["ENCLAVE_EXAMPLE_BANK"] == "false"
    assert settings["ENCLAVE_VAULT_KEY_FILE"] == "/etc/enclave/vault/vault.key"
    assert settings["ENCLAVE_VAR_DIR"] == "/var/lib/enclave"
    vault = next(v for v in spec["volumes"] if v["name"] == "vault-key")
    assert vault["secret"]["secretName"] == "enclave-vault-key"
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert gateway["startupProbe"]["httpGet"]["path"] == "/healthz"
    affinity = spec["affinity"]["podAntiAffinity"]
    assert affinity["preferredDuringSchedulingIgnoredDuringExecution"]


def test_external_database_uses_its_secret() -> None:
    gateway = gateway_container("external-db")
    assert env_of(gateway)["ENCLAVE_DATABASE_URL"]["secretKeyRef"] == {"name": "enclave-db", "key": "uri"}


def test_gateway_service_hpa_and_pdb() -> None:
    service = one("defaults", "Service", "-gateway")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"][0]["port"] == 8080
    hpa = one("defaults", "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["name"] == f"{RELEASE}-enclave-gateway"
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    pdb = one("defaults", "PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1" and pdb["spec"]["minAvailable"] == 1
    # With the HPA on, the Deployment leaves the replica count to it.
    assert "replicas" not in one("defaults", "Deployment", "-gateway")["spec"]


def test_gateway_tls_mounts_the_certificate_and_probes_over_https() -> None:
    gateway = gateway_container("sip-tls")
    settings = gateway_settings("sip-tls")
    assert settings["ENCLAVE_TLS_CERT_FILE"] == "/etc/enclave/tls/tls.crt"
    assert settings["ENCLAVE_TLS_KEY_FILE"] == "/etc/enclave/tls/tls.key"
    assert {m["mountPath"] for m in gateway["volumeMounts"]} >= {"/etc/enclave/tls", "/etc/enclave/sip-tls"}
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert gateway[probe]["httpGet"]["scheme"] == "HTTPS"
    assert gateway_container("defaults")["readinessProbe"]["httpGet"]["scheme"] == "HTTP"


# ------------------------------------------------------------------------------------------- SIP


def test_sip_service_is_sticky_udp_with_local_traffic_policy() -> None:
    sip = one("sip-tls", "Service", "-sip")["spec"]
    assert sip["type"] == "LoadBalancer"
    assert sip["externalTrafficPolicy"] == "Local"
    assert sip["sessionAffinity"] == "ClientIP"
    assert sip["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"] == 10800
    ports = {(p["port"], p["protocol"]) for p in sip["ports"]}
    assert ports == {(5060, "UDP"), (5061, "TCP")}
    assert sip["loadBalancerSourceRanges"] == ["192.0.2.10/32"]
    assert not [s for s in of_kind("defaults", "Service") if s["metadata"]["name"].endswith("-sip")]


def test_sip_settings_reach_the_gateway() -> None:
    settings = gateway_settings("sip-tls")
    assert settings["ENCLAVE_SIP_PORT"] == "5060" and settings["ENCLAVE_SIP_HOST"] == "0.0.0.0"
    assert settings["ENCLAVE_SIP_RTP_HOST"] == "192.0.2.40"
    assert settings["ENCLAVE_SIP_RTP_PORTS"] == "20000-20999"
    assert yaml.safe_load(settings["ENCLAVE_SIP_TRUNK_PEERS"]) == ["192.0.2.10/32"]
    assert settings["ENCLAVE_SIP_TLS_PORT"] == "5061"
    assert settings["ENCLAVE_SIP_TLS_CERT_FILE"] == "/etc/enclave/sip-tls/tls.crt"
    env = env_of(gateway_container("sip-tls"))
    assert env["ENCLAVE_SIP_AUTH_USERS"]["secretKeyRef"]["name"] == "enclave-sip-auth"
    assert not any(k.startswith("ENCLAVE_SIP") for k in gateway_settings("defaults"))


def test_sip_host_network_uses_the_node_address_and_one_pod_per_node() -> None:
    values = merged(MINIMAL, {"sip": {"enabled": True, "hostNetwork": True, "trunkPeers": ["192.0.2.10/32"]}})
    dep = yaml.safe_load(render_raw(values)["enclave/templates/gateway-deployment.yaml"])
    spec = dep["spec"]["template"]["spec"]
    assert spec["hostNetwork"] is True and spec["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    gateway = next(c for c in spec["containers"] if c["name"] == "gateway")
    assert env_of(gateway)["ENCLAVE_SIP_RTP_HOST"] == {"fieldRef": {"fieldPath": "status.hostIP"}}


# ------------------------------------------------------------------------------------------- network policy


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_network_policies_deny_by_default_and_never_open_egress_to_everywhere(scenario: str) -> None:
    policies = of_kind(scenario, "NetworkPolicy")
    deny = one(scenario, "NetworkPolicy", "-default-deny")["spec"]
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert deny["podSelector"]["matchLabels"]["app.kubernetes.io/instance"] == RELEASE
    assert not deny.get("ingress")
    for policy in policies:
        spec = policy["spec"]
        for rule in spec.get("egress", []):
            assert rule.get("to"), f"{policy['metadata']['name']}: an egress rule without `to` allows everywhere"
            for peer in rule["to"]:
                cidr = peer.get("ipBlock", {}).get("cidr")
                assert cidr not in ("0.0.0.0/0", "::/0"), policy["metadata"]["name"]
        for rule in spec.get("ingress", []):
            assert rule.get("from"), f"{policy['metadata']['name']}: an ingress rule without `from` admits everyone"
    egress_peers = [p for r in deny["egress"] for p in r["to"]]
    dns = next(p for p in egress_peers if "namespaceSelector" in p)
    assert dns["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "kube-system"}
    assert dns["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
    cnpg = [p for p in egress_peers if "cnpg.io/cluster" in p.get("podSelector", {}).get("matchLabels", {})]
    assert bool(cnpg) == (scenario != "external-db")
    assert not any("ipBlock" in p for p in egress_peers)   # no ipBlock by default


def test_sip_ports_are_open_only_to_the_trunk_peers() -> None:
    spec = one("sip-tls", "NetworkPolicy", "-gateway")["spec"]
    sip_rules = [r for r in spec["ingress"] if any(p["port"] == 5060 for p in r["ports"])]
    (rule,) = sip_rules
    assert rule["from"] == [{"ipBlock": {"cidr": "192.0.2.10/32"}}]
    assert {(p["port"], p["protocol"]) for p in rule["ports"]} == {(5060, "UDP"), (5061, "TCP")}
    rtp = next(r for r in spec["ingress"] if any(p.get("endPort") for p in r["ports"]))
    assert rtp["ports"] == [{"port": 20000, "endPort": 20999, "protocol": "UDP"}]


# ------------------------------------------------------------------------------------------- failures


def test_a_missing_vault_key_fails_the_render_with_the_fix() -> None:
    with pytest.raises(helm.HelmError) as err:
        render_raw({"sip": {"enabled": False}})
    assert "secrets.vaultKey" in str(err.value) and "existingSecret" in str(err.value)


def test_an_inline_vault_key_must_be_32_bytes_and_becomes_a_kept_secret() -> None:
    with pytest.raises(helm.HelmError, match="32 bytes"):
        render_raw({"secrets": {"vaultKey": {"value": "dG9vIHNob3J0"}}})
    key = "A" * 43 + "="   # base64 of 32 bytes
    docs = [d for d in yaml.safe_load_all(render_raw({"secrets": {"vaultKey": {"value": key}}})["enclave/templates/secrets.yaml"]) if d]
    (secret,) = docs
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


@pytest.mark.parametrize(("values", "message"), [
    ({"database": {"mode": "external"}}, "database.external.existingSecret"),
    ({"sip": {"enabled": True, "trunkPeers": ["192.0.2.10/32"]}}, "sip.rtpHost"),
    ({"sip": {"enabled": True, "rtpHost": "192.0.2.40"}}, "sip.trunkPeers"),
    ({"gateway": {"tls": {"enabled": True}}}, "gateway.tls.secretName"),
    ({"serving": {"roles": {"llm": False, "stt": False, "tts": False, "embed": False}}}, "serving.roles"),
])
def test_incomplete_values_fail_with_the_missing_key(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmError, match=re.escape(message)):
        render_raw(merged(MINIMAL, values))


@pytest.mark.parametrize("values", [
    {"gatewy": {"replicas": 3}},                                   # a typo at the top
    {"gateway": {"replica": 3}},                                   # a typo inside
    {"database": {"mode": "sqlite"}},
    {"networkPolicy": {"extraEgressCidrs": ["0.0.0.0/0"]}},       # never everywhere
    {"sip": {"trunkPeers": ["::/0"]}},
])
def test_the_schema_rejects_typos_and_open_cidrs(values: dict[str, Any]) -> None:
    with pytest.raises(helm.HelmError):
        render_raw(merged(MINIMAL, values))


# ------------------------------------------------------------------------------------------- documentation

KEY_LINE = re.compile(r"^(?P<indent> *)(?P<dash>- )?(?P<key>[A-Za-z0-9_.\-/\"']+):(?:\s|$)")


def undocumented_keys(text: str) -> list[str]:
    """Keys of a values file without a `#` comment on the line above (or at the end of their own line).

    Keys inside list items (e.g. a NetworkPolicy peer, a toleration) are part of a documented list value and
    need no comment of their own."""
    missing: list[str] = []
    previous = ""
    list_indent: int | None = None   # indent of the list whose items we are inside
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped:
            continue
        indent = len(line) - len(line.lstrip())
        if list_indent is not None and indent < list_indent:
            list_indent = None
        if stripped.startswith("#"):
            previous = stripped
            continue
        if stripped.startswith("- "):
            if list_indent is None:
                list_indent = indent
            previous = stripped
            continue
        match = KEY_LINE.match(line)
        if match and list_indent is None and not previous.startswith("#") and "#" not in line.split(":", 1)[1]:
            missing.append(f"line {number}: {match['key']}")
        previous = stripped
    return missing


@pytest.mark.parametrize("name", ["values.yaml", "values-gpu.yaml"])
def test_every_value_is_documented(name: str) -> None:
    text = (CHART / name).read_text()
    assert undocumented_keys(text) == []
    # The check does catch a key without a comment.
    assert undocumented_keys("# -- a\na: 1\nb: 2\n") == ["line 3: b"]


def test_values_yaml_documents_every_leaf_of_the_chart_defaults() -> None:
    """The comment check walked every key line; make sure it saw every leaf the chart actually has."""
    with helm.Chart.load(CHART) as chart:
        defaults = chart.values

    def leaves(node: Any, prefix: str = "") -> Iterator[str]:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                yield from leaves(value, f"{prefix}.{key}" if prefix else key)
        else:
            yield prefix

    text = (CHART / "values.yaml").read_text()
    for leaf in leaves(defaults):
        last = leaf.rsplit(".", 1)[-1]
        assert re.search(rf"^\s*{re.escape(last)}:", text, re.M), leaf
    readme = (CHART / "README.md").read_text()
    for top in ("image.repository", "modelProfile", "models.existingClaim", "serving.workerGroups", "sip.hostNetwork",
                "database.mode", "secrets.vaultKey.existingSecret", "networkPolicy.extraEgressCidrs"):
        assert top in readme, top


def test_the_chart_packages(tmp_path: Path) -> None:
    archive = Path(helm.package(CHART, destination=tmp_path))
    assert archive.name == "enclave-0.1.0.tgz" and archive.stat().st_size > 0


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_the_rendered_gateway_settings_pass_the_production_checks(scenario: str, tmp_path: Path, monkeypatch) -> None:
    """The chart runs the gateway with --production: what it renders must be what those checks accept."""
    import base64

    from deploy.production import configuration_problems
    from gateway.config import Settings

    for key in [k for k in __import__("os").environ if k.startswith("ENCLAVE_")]:
        monkeypatch.delenv(key)
    for key, value in gateway_settings(scenario).items():
        monkeypatch.setenv(key, value)
    # The mounted Secrets, stood in for by local files at the paths the chart points the settings to.
    vault = tmp_path / "vault.key"
    vault.write_text(base64.b64encode(b"v" * 32).decode())
    monkeypatch.setenv("ENCLAVE_VAULT_KEY_FILE", str(vault))
    for var in ("ENCLAVE_TLS_CERT_FILE", "ENCLAVE_TLS_KEY_FILE", "ENCLAVE_SIP_TLS_CERT_FILE", "ENCLAVE_SIP_TLS_KEY_FILE"):
        if var in gateway_settings(scenario):
            (tmp_path / var).write_text("pem")
            monkeypatch.setenv(var, str(tmp_path / var))
    if gateway_settings(scenario).get("ENCLAVE_SIP_PORT"):
        monkeypatch.setenv("ENCLAVE_SIP_AUTH_USERS", '{"pbx": "secret"}')    # from the SIP auth Secret in the pod
    assert configuration_problems(Settings()) == []


def test_plain_http_without_a_terminator_in_front_is_refused_at_render_time() -> None:
    values = merged(MINIMAL, {"gateway": {"tls": {"enabled": False, "terminatedUpstream": False}}})
    with pytest.raises(helm.HelmError, match="terminatedUpstream"):
        render_raw(values)


def test_api_keys_come_from_secrets_through_an_import_init_container() -> None:
    values = merged(MINIMAL, {"secrets": {"apiKeys": [{"existingSecret": "enclave-admin-key", "tenant": "acme",
                                                        "role": "admin", "label": "bootstrap"}]}})
    dep = yaml.safe_load(render_raw(values)["enclave/templates/gateway-deployment.yaml"])
    inits = {c["name"]: c for c in dep["spec"]["template"]["spec"]["initContainers"]}
    assert list(inits) == ["migrate", "import-key-0"]      # after the migrations, before the gateway
    imp = inits["import-key-0"]
    assert imp["command"][:3] == ["enclave", "keys", "import"] and "--create-tenant" in imp["command"]
    assert imp["command"][imp["command"].index("--tenant") + 1] == "acme"
    key_env = env_of(imp)["ENCLAVE_IMPORT_KEY"]
    assert key_env == {"secretKeyRef": {"name": "enclave-admin-key", "key": "api-key"}}   # never inline
    with pytest.raises(helm.HelmError):
        render_raw(merged(MINIMAL, {"secrets": {"apiKeys": [{"existingSecret": "k", "tenant": "acme", "role": "root"}]}}))
