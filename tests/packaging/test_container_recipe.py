"""The container recipe, checked without a container engine.

The Containerfile is parsed and held to its promises (multi-stage, non-root, read-only root
filesystem, health check, `warden serve` configured from the environment). Its build step,
deploy/container/install.sh, is run into a clean prefix; the server is started from that prefix
with the image's environment, answers the image's HEALTHCHECK command and issues a token, and
the prefix is not written to while it runs (as on a read-only root filesystem).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from tests.packaging.conftest import REPO, clean_env, run_installer

CONTAINERFILE = REPO / "Containerfile"
IMAGE_PREFIX = "/opt/warden"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def stages(text: str) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for ins in instructions(text):
        if ins[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


def env_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for word, args in stage:
        if word == "ENV":
            for item in shlex.split(args):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def one(stage: list[tuple[str, str]], word: str) -> str:
    found = [args for w, args in stage if w == word]
    assert len(found) == 1, f"{word}: {found}"
    return found[0]


RECIPE = CONTAINERFILE.read_text()
BUILD, RUNTIME = stages(RECIPE)[0], stages(RECIPE)[-1]


def test_multi_stage_build_ships_only_the_installed_prefix():
    assert len(stages(RECIPE)) >= 2
    copies = [args for w, args in RUNTIME if w == "COPY"]
    assert copies == [f"--from=build {IMAGE_PREFIX} {IMAGE_PREFIX}"]
    run = [args for w, args in BUILD if w == "RUN"]
    assert run == [f"warden-install /src {IMAGE_PREFIX}"]
    assert "deploy/container/install.sh /usr/local/bin/warden-install" in [a for w, a in BUILD if w == "COPY"]
    for w, args in BUILD:  # every file the build copies exists in the repository
        if w == "COPY":
            for source in args.split()[:-1]:
                assert (REPO / source).exists(), source


def test_runs_as_an_unprivileged_user_with_writable_volumes_only():
    user = one(RUNTIME, "USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000  # numeric, so runAsNonRoot can check it
    volumes = json.loads(one(RUNTIME, "VOLUME"))
    env = env_of(RUNTIME)
    assert env["WARDEN_DATA_DIR"] in volumes and "/tmp" in volumes
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"  # no .pyc writes into the read-only prefix


def test_entrypoint_is_warden_serve_configured_from_the_environment():
    assert json.loads(one(RUNTIME, "ENTRYPOINT")) == ["warden", "serve"]
    assert "CMD" not in [w for w, _ in RUNTIME]  # no flags baked in: WARDEN_* variables configure it
    env = env_of(RUNTIME)
    assert env["WARDEN_SERVER_HOST"] == "0.0.0.0" and env["WARDEN_SERVER_PORT"] == one(RUNTIME, "EXPOSE")
    assert "HEALTHCHECK" in [w for w, _ in RUNTIME] and "/healthz" in one(RUNTIME, "HEALTHCHECK")


def healthcheck_command(prefix: Path) -> list[str]:
    args = one(RUNTIME, "HEALTHCHECK")
    cmd = json.loads(args[args.index("CMD") + 3:].strip())
    assert cmd[0] == "python"
    return [str(prefix / "bin" / "python"), *cmd[1:]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def snapshot(tree: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(tree)): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in tree.rglob("*") if not p.is_symlink()}


@pytest.mark.slow
def test_build_steps_install_a_server_that_answers_the_healthcheck_and_issues_tokens(tmp_path: Path):
    prefix = tmp_path / "opt-warden"
    run_installer(["sh", str(REPO / "deploy" / "container" / "install.sh"), str(REPO), str(prefix)],
                  env=clean_env(PYTHON=sys.executable))
    assert not (prefix / "bin" / "pip").exists()  # the image carries no installer
    for stray in ("tests", "deploy", "docs", "bench"):
        assert not list(prefix.rglob(f"site-packages/{stray}")), stray

    port = free_port()
    image_env = env_of(RUNTIME)
    env = clean_env(**{k: v.replace(IMAGE_PREFIX, str(prefix)).replace("$PATH", os.environ["PATH"])
                       for k, v in image_env.items()})
    data = tmp_path / "var-lib-warden"  # the data volume
    env.update(WARDEN_DATA_DIR=str(data), WARDEN_SERVER_HOST="127.0.0.1", WARDEN_SERVER_PORT=str(port),
               WARDEN_AUDIT_SINK="off", TMPDIR=str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    warden = str(prefix / "bin" / "warden")

    def cli(*args: str) -> str:
        proc = subprocess.run([warden, *args], env=env, capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    cli("init")  # as the migration Job / compose's one-shot init does before anything else
    cli("apis", "create", "https://api.example", "--scopes", "read")
    created = json.loads(cli("clients", "create", "billing", "--grant", "https://api.example=read", "--json"))
    before = snapshot(prefix)

    entrypoint = json.loads(one(RUNTIME, "ENTRYPOINT"))
    server = subprocess.Popen([str(prefix / "bin" / entrypoint[0]), *entrypoint[1:]], env=env, cwd=data,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 40
        while True:
            check = subprocess.run(healthcheck_command(prefix), env=env, capture_output=True, timeout=10,
                                   check=False)
            if check.returncode == 0:
                break
            assert server.poll() is None, server.communicate()[1]
            assert time.monotonic() < deadline, "the HEALTHCHECK command never succeeded"
            time.sleep(0.3)
        base = f"http://127.0.0.1:{port}"
        reply = httpx.post(f"{base}/oauth2/token", data={"grant_type": "client_credentials"},
                           auth=(created["client_id"], created["client_secret"]), timeout=10)
        assert reply.status_code == 200, reply.text
        token = reply.json()["access_token"]
        claims = json.loads(cli("verify", token, "--issuer", base, "--audience", "https://api.example"))
        assert claims["client_id"] == created["client_id"] and claims["scope"] == "read"
        assert httpx.get(f"{base}/readyz", timeout=5).status_code == 200
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    assert snapshot(prefix) == before  # nothing written into the (read-only in the image) prefix
