"""Signing keys in a PKCS#11 token (`keys.backend = "pkcs11"`), tested against SoftHSM2.

One private SoftHSM2 token per test module, in a temporary directory (SOFTHSM2_CONF names a
configuration written there): a PKCS#11 library reads its configuration once per process, so
the tests share it and tell their keys apart by kid. The real server runs with the pkcs11
backend, issues tokens over HTTP, and `warden.resource` validates them against the JWKS;
rotation, pre-publication, retirement and removal run as with database keys, and the private
keys are checked to be sensitive and not extractable.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from tests.integration.conftest import LiveServer, free_port, wait_until

from warden.core.clock import SystemClock
from warden.core.keys import KeyState
from warden.jose import parse_compact
from warden.resource import Validator
from warden.services.audit import AuditSink
from warden.services.kek import load_kek
from warden.services.key_backends import open_key_backends
from warden.services.keyring import Keyring
from warden.services.pkcs11_keys import library_lock

MODULE = next((p for p in ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
                           "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so") if os.path.exists(p)), None)
pytestmark = pytest.mark.skipif(shutil.which("softhsm2-util") is None or MODULE is None,
                                reason="SoftHSM2 is not installed (Debian: apt-get install softhsm2)")
pkcs11 = pytest.importorskip("pkcs11", reason="python-pkcs11 is not installed (pip install 'warden-m2m[hsm]')")

LABEL = "warden-test"
PIN = "4417-pin-canary"  # a distinctive value, searched for in every output
WARDEN = [sys.executable, "-m", "warden.cli.main"]


class Token:
    """The SoftHSM2 token: its settings for Warden and a session of the test's own to inspect it.

    The server under test runs in this process and calls the same library from its threads, so
    every call the test makes holds the library's lock too (`locked`), as Warden's own calls do."""

    def __init__(self, root: Path) -> None:
        (root / "tokens").mkdir()
        self.conf = root / "softhsm2.conf"
        self.conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\n"
                             "log.level = ERROR\nslots.removable = false\n")
        os.environ["SOFTHSM2_CONF"] = str(self.conf)  # before this process loads the library
        subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", LABEL, "--pin", PIN,
                        "--so-pin", "so-" + PIN], check=True, capture_output=True, env={**os.environ})
        self.pin_file = root / "pin"
        self.pin_file.write_text(PIN + "\n")
        with self.locked():
            self.session = pkcs11.lib(MODULE).get_token(token_label=LABEL).open(rw=True)

    def locked(self) -> Any:
        return library_lock(str(MODULE))

    @property
    def overrides(self) -> dict[str, Any]:
        return {"keys.backend": "pkcs11", "keys.pkcs11.module": MODULE, "keys.pkcs11.token_label": LABEL,
                "keys.pkcs11.pin_file": str(self.pin_file)}

    def env(self, data_dir: str) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
        return {**base, "SOFTHSM2_CONF": str(self.conf), "WARDEN_DATA_DIR": data_dir,
                "WARDEN_KEYS_BACKEND": "pkcs11", "WARDEN_KEYS_PKCS11_MODULE": str(MODULE),
                "WARDEN_KEYS_PKCS11_TOKEN_LABEL": LABEL, "WARDEN_KEYS_PKCS11_PIN": PIN,
                "WARDEN_AUDIT_SINK": os.path.join(data_dir, "cli-audit.jsonl")}

    def objects(self, kid: str, cls: Any = None) -> list[Any]:
        template: dict[Any, Any] = {pkcs11.Attribute.ID: kid.encode()}
        if cls is not None:
            template[pkcs11.Attribute.CLASS] = cls
        with self.locked():
            return list(self.session.get_objects(template))


@pytest.fixture(scope="module")
def token(tmp_path_factory: pytest.TempPathFactory) -> Any:
    saved = os.environ.get("SOFTHSM2_CONF")
    yield Token(tmp_path_factory.mktemp("softhsm"))
    if saved is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = saved


@pytest.fixture
def server(start_server, token: Token) -> LiveServer:
    return start_server("sqlite", **token.overrides)


def keyring(server: LiveServer, clock: Any = None) -> Keyring:
    """A keyring as `warden keys rotate` builds it: its own store, the same settings."""
    material = load_kek(None, server.settings.data_dir)
    return Keyring(server.admin.store, material, clock or SystemClock(), AuditSink(),
                   open_key_backends(server.settings.keys, material))


def fetch(server: LiveServer, alg: str) -> tuple[str, str]:
    api = server.api("read", alg=alg)
    cid, secret = server.client({api: "read"})
    resp = server.token(cid, secret)
    assert resp.status_code == 200, resp.text
    return resp.json()["access_token"], api


def kid_of(token: str) -> str:
    return str(parse_compact(token).kid)


def jwks_kids(server: LiveServer) -> set[str]:
    return {k["kid"] for k in server.http.get(f"{server.url}/oauth2/jwks").json()["keys"]}


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
def test_tokens_are_signed_inside_the_token_and_validate_against_the_jwks(server: LiveServer, token: Token,
                                                                          alg: str):
    access, api = fetch(server, alg)
    claims = Validator(issuer=server.issuer, audience=api).validate(access, scopes=["read"]).payload
    assert claims["aud"] == api and parse_compact(access).alg == alg
    stored = {k.kid: k for k in server.admin.store.load_keys()}
    key = stored[kid_of(access)]
    assert key.encrypted_private_key == f"p11:{LABEL}".encode()  # the store holds no private material at all
    (private,) = token.objects(key.kid, pkcs11.ObjectClass.PRIVATE_KEY)
    secret_part = pkcs11.Attribute.PRIVATE_EXPONENT if alg == "RS256" else pkcs11.Attribute.VALUE
    with token.locked():
        assert private[pkcs11.Attribute.SENSITIVE] is True and private[pkcs11.Attribute.EXTRACTABLE] is False
        assert private[pkcs11.Attribute.NEVER_EXTRACTABLE] is True and private[pkcs11.Attribute.TOKEN] is True
        with pytest.raises(pkcs11.exceptions.AttributeSensitive):
            private[secret_part]  # the token refuses to show the private key


def test_rotation_prepublishes_retires_and_removes_keys_in_the_token(server: LiveServer, token: Token):
    first, api = fetch(server, "ES256")
    validator = Validator(issuer=server.issuer, audience=api)
    keys = {k.state: k for k in server.admin.store.load_keys() if k.alg == "ES256"}
    active, upcoming = keys[KeyState.ACTIVE].kid, keys[KeyState.NEXT].kid
    assert kid_of(first) == active and {active, upcoming} <= jwks_kids(server)  # next published before use
    assert len(token.objects(upcoming, pkcs11.ObjectClass.PRIVATE_KEY)) == 1  # made in the token, ahead

    assert keyring(server).rotate(["ES256"]) == [upcoming]
    server.sync()
    second, api2 = fetch(server, "ES256")
    assert kid_of(second) == upcoming
    states = {k.kid: k.state for k in server.admin.store.load_keys()}
    assert states[active] is KeyState.RETIRED
    newest = next(kid for kid, state in states.items() if state is KeyState.NEXT and kid.startswith("es256"))
    assert {active, upcoming, newest} <= jwks_kids(server)  # retired stays published, the new next is out
    validator.validate(first, scopes=["read"])  # a token of the retired key still validates
    Validator(issuer=server.issuer, audience=api2).validate(second, scopes=["read"])
    assert len(token.objects(newest, pkcs11.ObjectClass.PRIVATE_KEY)) == 1

    later = type("Later", (), {"now": staticmethod(lambda: time.time() + 7200)})()  # past every token's expiry
    keyring(server, later).maintain(interval=server.settings.keys.rotation_interval,
                                    publish_lead=server.settings.keys.publish_lead, max_token_ttl=900)
    assert token.objects(active) == []  # destroyed in the token with its row
    assert wait_until(lambda: active not in jwks_kids(server), timeout=5)
    assert token.objects(upcoming, pkcs11.ObjectClass.PRIVATE_KEY)  # the active key is untouched


def test_cli_rotation_and_init_use_the_token_and_never_show_the_pin(server: LiveServer, token: Token):
    env = token.env(server.settings.data_dir)
    proc = subprocess.run([*WARDEN, "keys", "rotate", "--alg", "RS256", "--json"], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    server.sync()
    fresh = [k for k in server.admin.store.load_keys() if k.alg == "RS256" and k.state is KeyState.NEXT]
    (public,) = token.objects(fresh[0].kid, pkcs11.ObjectClass.PUBLIC_KEY)
    with token.locked():
        assert int.from_bytes(public[pkcs11.Attribute.MODULUS], "big").bit_length() == 2048
    access, _ = fetch(server, "RS256")
    assert kid_of(access) == json.loads(proc.stdout)["activated"][0]

    listed = json.loads(subprocess.run([*WARDEN, "keys", "list", "--json"], env=env, capture_output=True, text=True,
                                       timeout=120, check=True).stdout)
    assert {k["backend"] for k in listed} == {"pkcs11"}
    init = subprocess.run([*WARDEN, "init"], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert init.returncode == 0, init.stderr  # every stored key is in the token and matches the JWKS
    wrong = subprocess.run([*WARDEN, "init"], env={**env, "WARDEN_KEYS_PKCS11_PIN": "0000-" + PIN[::-1]},
                           capture_output=True, text=True, timeout=120, check=False)
    assert wrong.returncode == 2 and "refused the PIN" in wrong.stderr and wrong.stderr.count("\n") == 1
    for output in (proc.stdout, proc.stderr, init.stdout, init.stderr, wrong.stderr):
        assert PIN not in output and PIN[::-1] not in output
    audit = Path(env["WARDEN_AUDIT_SINK"]).read_text() + server.audit_path.read_text()
    assert PIN not in audit
    created = [json.loads(line) for line in audit.splitlines() if '"key.created"' in line]
    assert created and {e["backend"] for e in created} == {"pkcs11"}


def test_a_key_gone_from_the_token_answers_503_not_a_token_from_elsewhere(server: LiveServer, token: Token):
    """F18: an HSM that cannot sign is 503 with Retry-After, never a fallback to another key."""
    access, api = fetch(server, "EdDSA")
    with token.locked():
        for obj in token.objects(kid_of(access), pkcs11.ObjectClass.PRIVATE_KEY):
            obj.destroy()  # as if the HSM lost it
    cid, secret = server.client({api: "read"})
    resp = server.token(cid, secret)
    assert resp.status_code == 503 and resp.json()["error"] == "temporarily_unavailable"
    assert "retry-after" in resp.headers
    reasons = {e.get("reason") for e in server.audit_events()}
    assert "signing_key_unavailable" in reasons
    assert PIN not in server.audit_path.read_text()


def test_admin_api_rotation_makes_the_new_key_in_the_token(server: LiveServer, token: Token):
    admin_api = f"{server.issuer}/admin/v1"
    cid, secret = server.client({admin_api: "warden:admin"}, name="ops")
    bearer = server.token(cid, secret, resource=admin_api).json()["access_token"]
    before = {k.kid for k in server.admin.store.load_keys()}
    resp = server.http.post(f"{server.url}/admin/v1/keys/rotate", json={"algs": ["ES256"]},
                            headers={"authorization": f"Bearer {bearer}"})
    assert resp.status_code == 200, resp.text
    made = [k for k in server.admin.store.load_keys() if k.kid not in before]
    assert len(made) == 1 and made[0].encrypted_private_key == f"p11:{LABEL}".encode()
    assert len(token.objects(made[0].kid, pkcs11.ObjectClass.PRIVATE_KEY)) == 1


def test_a_session_the_token_closed_is_reopened_on_the_next_signature(server: LiveServer, token: Token):
    from warden.services import pkcs11_keys

    fetch(server, "ES256")
    shared = pkcs11_keys._SESSIONS[(str(MODULE), LABEL)]
    with token.locked():
        shared.session.close()  # as an HSM restart would end it
    access, api = fetch(server, "ES256")  # reopened once, transparently
    Validator(issuer=server.issuer, audience=api).validate(access, scopes=["read"])
    assert shared.session is not None


@pytest.mark.slow
def test_warden_serve_with_two_workers_signs_in_the_token(token: Token, tmp_path: Path):
    from tests.integration.test_cli_e2e import Served

    env = token.env(str(tmp_path / "data"))

    def run(*args: str) -> str:
        return subprocess.run([*WARDEN, *args], env=env, capture_output=True, text=True, timeout=120,
                              check=True).stdout
    run("init")
    run("apis", "create", "https://orders.example", "--scopes", "read", "--alg", "RS256")
    created = json.loads(run("clients", "create", "billing", "--grant", "https://orders.example=read", "--json"))
    served = Served(env, free_port(), workers=2)  # the PIN reaches each spawned worker, never its command line
    try:
        kids = set()
        for _ in range(6):
            resp = served.token(created["client_id"], created["client_secret"])
            assert resp.status_code == 200, resp.text
            Validator(issuer=served.url, audience="https://orders.example").validate(resp.json()["access_token"])
            kids.add(kid_of(resp.json()["access_token"]))
        (kid,) = kids
        assert token.objects(kid, pkcs11.ObjectClass.PRIVATE_KEY)
    finally:
        code, out, err = served.stop()
    assert code == 0, err
    assert PIN not in out + err
