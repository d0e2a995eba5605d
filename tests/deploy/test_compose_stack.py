"""deploy/compose: the local stack (two Warden nodes, PostgreSQL, Redis, Prometheus with the
shipped rules) is well formed and kept in step with deploy/kubernetes and the Containerfile.

No container engine runs here, so the stack is read, not started: same image recipe, same
settings file, same secret files and variables, same migration command, the settings load with
Warden's own loader, and Prometheus's configuration passes `promtool check config` (which also
checks every rule file under deploy/prometheus/ that it loads).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tests.deploy.conftest import DEPLOY, REPO, containerfile_uid, load_yaml_documents

from warden.services.kek import load_kek
from warden.settings import load_settings

COMPOSE = DEPLOY / "compose"
K8S = DEPLOY / "kubernetes"


def stack() -> dict[str, Any]:
    (doc,) = load_yaml_documents(COMPOSE / "compose.yaml")
    return doc


def warden_nodes() -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in stack()["services"].items() if name.startswith("warden-")}


def k8s_server() -> tuple[dict[str, Any], dict[str, Any]]:
    (deployment,) = load_yaml_documents(K8S / "deployment.yaml")
    spec = deployment["spec"]["template"]["spec"]
    return spec, spec["containers"][0]


def test_the_stack_has_two_warden_nodes_and_their_dependencies():
    services = stack()["services"]
    assert len(warden_nodes()) == 2
    assert {"postgres", "redis", "prometheus", "migrate"} <= set(services)
    for node in warden_nodes().values():
        assert node["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_nodes_are_built_from_the_containerfile_and_run_like_the_pods():
    for node in warden_nodes().values():
        build = node["build"]
        assert (COMPOSE / build["context"]).resolve() == REPO and build["dockerfile"] == "Containerfile"
        assert node["read_only"] is True and node["cap_drop"] == ["ALL"]
        assert node["user"] == f"{containerfile_uid()}:{containerfile_uid()}"
        assert {"/tmp", "/var/lib/warden"} <= set(node["tmpfs"])


def test_nodes_get_the_same_settings_and_secrets_as_the_kubernetes_pods():
    spec, container = k8s_server()
    pod_env = {e["name"]: e["value"] for e in container["env"]}
    (kustomization,) = load_yaml_documents(K8S / "kustomization.yaml")
    (config_file,) = kustomization["configMapGenerator"][0]["files"]
    config_mount = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "config")
    secret_volume = next(v for v in spec["volumes"] if "secret" in v)
    secret_keys = {i["key"] for i in secret_volume["secret"]["items"]}
    for node in warden_nodes().values():
        env = node["environment"]
        assert {k: env[k] for k in pod_env} == pod_env  # every variable the pods get, with the same value
        mounts = {target: source for source, target, *_ in (v.split(":") for v in node["volumes"])}
        assert (COMPOSE / mounts[f"{config_mount}/{config_file}"]).resolve() == K8S / config_file
        assert set(node["secrets"]) == secret_keys == set(stack()["secrets"])
    (job,) = load_yaml_documents(K8S / "migration-job.yaml")
    assert stack()["services"]["migrate"]["command"] == job["spec"]["template"]["spec"]["containers"][0]["command"]


def test_warden_accepts_the_stacks_settings_and_secrets(tmp_path: Path):
    env = dict(warden_nodes()["warden-1"]["environment"])
    for name, secret in stack()["secrets"].items():
        shutil.copy(COMPOSE / secret["file"], tmp_path / name)
    env = {k: v.replace("/run/secrets", str(tmp_path)) for k, v in env.items()}
    config = env.pop("WARDEN_CONFIG")
    settings = load_settings(str(K8S / Path(config).name), env)
    assert settings.issuer_url == "http://localhost:8080"  # loopback plain HTTP is allowed without dev_mode
    assert settings.database_url is not None and "@postgres:5432/" in settings.database_url.reveal()
    assert settings.keys.encryption_key is not None
    load_kek(settings.keys.encryption_key.reveal(), str(tmp_path))  # a well-formed key-encryption key


def test_load_balancer_and_prometheus_reach_both_nodes():
    _, container = k8s_server()
    port = container["ports"][0]["containerPort"]
    nginx = (COMPOSE / "nginx.conf").read_text()
    (prometheus,) = load_yaml_documents(COMPOSE / "prometheus.yml")
    targets = prometheus["scrape_configs"][0]["static_configs"][0]["targets"]
    for name in warden_nodes():
        assert f"server {name}:{port}" in nginx
        assert f"{name}:{port}" in targets
    assert prometheus["scrape_configs"][0]["metrics_path"] == "/metrics"


def test_prometheus_loads_the_shipped_rules_by_the_same_relative_path():
    (prometheus,) = load_yaml_documents(COMPOSE / "prometheus.yml")
    (rules,) = prometheus["rule_files"]
    assert (COMPOSE / Path(rules).parent).resolve() == DEPLOY / "prometheus" and rules.endswith("*.rules.yml")
    service = stack()["services"]["prometheus"]
    config_flag = next(a for a in service["command"] if a.startswith("--config.file="))
    config_dir = Path(config_flag.split("=", 1)[1]).parent
    mounts = {source: target for source, target, *_ in (v.split(":") for v in service["volumes"])}
    assert Path(mounts["./prometheus.yml"]).parent == config_dir
    assert Path(mounts["../prometheus"]) == (config_dir / Path(rules).parent).resolve()


def promtool() -> str:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    return tool


def test_promtool_accepts_the_prometheus_configuration():
    proc = subprocess.run([promtool(), "check", "config", str(COMPOSE / "prometheus.yml")], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_checks_the_rules_the_configuration_loads(tmp_path: Path):
    """The check above covers the rule files: a broken one beside the configuration is reported."""
    (tmp_path / "compose").mkdir()
    (tmp_path / "prometheus").mkdir()
    shutil.copy(COMPOSE / "prometheus.yml", tmp_path / "compose" / "prometheus.yml")
    (tmp_path / "prometheus" / "broken.rules.yml").write_text("groups:\n  - name: x\n    rules:\n      - record: a\n"
                                                              "        expr: sum(\n")
    proc = subprocess.run([promtool(), "check", "config", str(tmp_path / "compose" / "prometheus.yml")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode != 0 and "broken.rules.yml" in proc.stdout + proc.stderr
