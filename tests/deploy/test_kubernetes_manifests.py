"""deploy/kubernetes: schema-valid for the Kubernetes versions we support, and consistent.

Every manifest is validated strictly (unknown fields are errors) with the `kubernetes-validate`
package, which ships the schemas, so no cluster or network is needed. The checks after that are
the ones a schema cannot make: selectors that match, probes on the right paths, secrets that
are mounted where the settings expect them, settings files that Warden itself accepts.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from tests.deploy.conftest import DEPLOY, containerfile_uid, load_yaml_documents

from warden.agent.config import parse_agent_config
from warden.settings import load_settings

K8S = DEPLOY / "kubernetes"
# The oldest release we support (native sidecars need 1.29) and a current one.
KUBERNETES_VERSIONS = ("1.29.0", "1.34.0")
MANIFESTS = sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")


def docs(name: str) -> list[dict[str, Any]]:
    return load_yaml_documents(K8S / name)


def by_kind() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for path in MANIFESTS:
        if "examples" in path.parts:
            continue
        for doc in load_yaml_documents(path):
            out[doc["kind"]] = doc
    return out


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(K8S)))
def test_manifest_is_valid_for_kubernetes(path: Path, version: str):
    kv = pytest.importorskip("kubernetes_validate.utils", reason="kubernetes-validate is in the test extra")
    for doc in load_yaml_documents(path):
        try:
            kv.validate(doc, version, strict=True)  # raises on an invalid document or a kind it has no schema for
        except kv.ValidationError as exc:
            pytest.fail(f"{path.name}: {doc['kind']}/{doc['metadata']['name']} at "
                        f"{'.'.join(map(str, exc.path))}: {exc.message}")


def test_kustomization_lists_every_manifest_but_the_examples():
    (kustomization,) = docs("kustomization.yaml")
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert listed == on_disk
    generated = {f for gen in kustomization["configMapGenerator"] for f in gen["files"]}
    assert all((K8S / f).is_file() for f in generated)


def pod_spec(kind: str) -> dict[str, Any]:
    return by_kind()[kind]["spec"]["template"]["spec"]


def test_deployment_probes_health_and_readiness_on_the_http_port():
    (container,) = pod_spec("Deployment")["containers"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    (port,) = container["ports"]
    assert port["name"] == "http" and port["containerPort"] == 8080


@pytest.mark.parametrize("kind", ["Deployment", "Job"])
def test_pods_run_unprivileged_on_a_read_only_root(kind: str):
    spec = pod_spec(kind)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == containerfile_uid()
    assert spec["automountServiceAccountToken"] is False
    for container in spec["containers"]:
        ctx = container["securityContext"]
        assert ctx["readOnlyRootFilesystem"] is True and ctx["allowPrivilegeEscalation"] is False
        assert ctx["capabilities"]["drop"] == ["ALL"]
        mounted = {m["mountPath"] for m in container["volumeMounts"]}
        assert {"/tmp", "/var/lib/warden"} <= mounted  # the image's VOLUMEs stay writable


def environment(kind: str) -> dict[str, str]:
    (container,) = pod_spec(kind)["containers"]
    return {e["name"]: e["value"] for e in container["env"]}


@pytest.mark.parametrize("kind", ["Deployment", "Job"])
def test_database_url_and_encryption_key_come_from_the_secret(kind: str, tmp_path: Path):
    spec = pod_spec(kind)
    (container,) = spec["containers"]
    env = environment(kind)
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    secret_volume = next(name for name, v in volumes.items() if "secret" in v)
    items = {i["key"]: i["path"] for i in volumes[secret_volume]["secret"]["items"]}
    (example,) = docs("secret.example.yaml")
    assert volumes[secret_volume]["secret"]["secretName"] == example["metadata"]["name"]
    assert set(items) == set(example["stringData"])
    for variable, key in (("WARDEN_DATABASE_URL_FILE", "database-url"),
                          ("WARDEN_KEYS_ENCRYPTION_KEY_FILE", "encryption-key")):
        assert env[variable] == f"{mounts[secret_volume]}/{items[key]}"
    assert not any(name in env for name in ("WARDEN_DATABASE_URL", "WARDEN_KEYS_ENCRYPTION_KEY"))
    # the mode must let the pod's group (fsGroup) read the files: the server is not root
    assert volumes[secret_volume]["secret"]["defaultMode"] & 0o040


def test_warden_accepts_the_settings_the_pods_get(tmp_path: Path):
    """The ConfigMap's settings file plus the pod's environment load with Warden's own loader."""
    (tmp_path / "database-url").write_text("postgresql://warden:pw@postgres.example:5432/warden\n")
    (tmp_path / "encryption-key").write_text("A" * 43 + "\n")
    env = {k: v.replace("/run/secrets", str(tmp_path)) for k, v in environment("Deployment").items()}
    config = env.pop("WARDEN_CONFIG")
    assert config == "/etc/warden/" + "warden.toml"
    settings = load_settings(str(K8S / "warden.toml"), env)
    assert settings.issuer_url.startswith("https://") and settings.server.port == 8080
    assert settings.database_url is not None and settings.keys.encryption_key is not None
    assert settings.server.graceful_timeout < pod_spec("Deployment")["terminationGracePeriodSeconds"]


def test_migration_job_runs_warden_init_with_the_servers_image_and_settings():
    (job,) = pod_spec("Job")["containers"]
    (server,) = pod_spec("Deployment")["containers"]
    assert job["command"] == ["warden", "init"] and job["image"] == server["image"]
    assert job["env"] == server["env"]


def test_service_budget_autoscaler_and_policy_point_at_the_server_pods():
    kinds = by_kind()
    labels = kinds["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert kinds["Deployment"]["spec"]["selector"]["matchLabels"].items() <= labels.items()

    def selects(selector: dict[str, str]) -> bool:
        return selector.items() <= labels.items()

    assert selects(kinds["Service"]["spec"]["selector"])
    assert kinds["Service"]["spec"]["ports"][0]["targetPort"] == "http"
    assert selects(kinds["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"])
    assert kinds["PodDisruptionBudget"]["spec"]["minAvailable"] < kinds["HorizontalPodAutoscaler"]["spec"][
        "minReplicas"]
    target = kinds["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", kinds["Deployment"]["metadata"]["name"])
    policy = kinds["NetworkPolicy"]["spec"]
    assert selects(policy["podSelector"]["matchLabels"])
    assert [p["port"] for rule in policy["ingress"] for p in rule["ports"]] == [8080]
    egress = {p["port"] for rule in policy["egress"] for p in rule["ports"]}
    assert {53, 5432, 6379} <= egress  # DNS, PostgreSQL and Redis as external dependencies


def test_agent_sidecar_shares_its_token_file_with_the_application(tmp_path: Path):
    config_map, deployment = load_yaml_documents(K8S / "examples" / "agent-sidecar.yaml")
    spec = deployment["spec"]["template"]["spec"]
    (agent,) = spec["initContainers"]
    (app,) = spec["containers"]
    assert agent["restartPolicy"] == "Always"  # a native sidecar: up before the application
    assert agent["command"][:2] == ["warden", "agent"]
    config_path = Path(agent["command"][agent["command"].index("--config") + 1])
    agent_mounts = {m["mountPath"]: m["name"] for m in agent["volumeMounts"]}
    assert agent_mounts[str(config_path.parent)] == "agent-config"
    # the agent checks that the token file's directory exists: stand in for the pod's mounts
    text = config_map["data"][config_path.name].replace('"/run/', f'"{tmp_path}/run/')
    for mount in agent_mounts:
        (tmp_path / mount.lstrip("/")).mkdir(parents=True, exist_ok=True)
    config = parse_agent_config(tomllib.loads(text), config_path.parent)
    (credential,) = config.credentials

    def in_pod(path: object) -> str:
        return "/" + str(Path(str(path)).relative_to(tmp_path))

    token_dir = in_pod(Path(str(credential.token_file)).parent)
    app_mounts = {m["mountPath"]: m for m in app["volumeMounts"]}
    assert agent_mounts[token_dir] == app_mounts[token_dir]["name"] and app_mounts[token_dir]["readOnly"]
    token_volume = next(v for v in spec["volumes"] if v["name"] == agent_mounts[token_dir])
    assert token_volume["emptyDir"]["medium"] == "Memory"  # the token never touches the node's disk
    assert {e["name"]: e["value"] for e in app["env"]}["WARDEN_TOKEN_FILE"] == in_pod(credential.token_file)
    assert in_pod(Path(str(credential.client_secret_file)).parent) in agent_mounts
