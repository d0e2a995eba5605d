"""JOSE input of the wrong JSON type and non-canonical base64url over HTTP (issue 8 #5, #10).

A `client_assertion` whose header `typ` is a list or an object, or whose `exp` is too large for a
float, answered 500 with a traceback on stderr, was not counted by the failed-auth throttle and
was not audited. Now it is one more failed client authentication at every endpoint that
authenticates clients: 401 `invalid_client`, counted, audited, nothing on stderr. A token or an
assertion respelled with non-zero unused base64url bits is not the same token.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import httpx
import pytest
from tests.integration.conftest import LiveServer
from tests.jose_strategies import signed
from tests.unit.test_base64url_canonical import siblings

from warden.core.client_metadata import parse_client_metadata
from warden.jose import generate_private_key, public_jwk
from warden.services.admin import GrantSpec

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
KEY = generate_private_key("ES256")
ENDPOINTS = ("/oauth2/token", "/oauth2/introspect", "/oauth2/revoke")
BUDGET = 3


def register(server: LiveServer, api: str) -> str:
    meta = parse_client_metadata({"jwks": {"keys": [public_jwk(KEY, kid="k1", alg="ES256")]}})
    client, _ = server.admin.create_client("pkjwt", [GrantSpec(api, ("read",))], auth_method="private_key_jwt",
                                           metadata=meta)
    server.wait_for_client(client.client_id)
    return client.client_id


def assertion(server: LiveServer, cid: str, header: dict[str, Any] | None = None, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": cid, "sub": cid, "aud": server.issuer, "iat": now, "exp": now + 60, "jti": uuid.uuid4().hex,
            **claims}
    return signed({"alg": "ES256", "kid": "k1", **(header or {})}, body, KEY, "ES256")


def present(server: LiveServer, path: str, cid: str, token: str) -> httpx.Response:
    data = {"client_assertion_type": ASSERTION_TYPE, "client_assertion": token, "client_id": cid}
    data.update({"grant_type": "client_credentials"} if path == "/oauth2/token" else {"token": "anything"})
    return server.post(path, data=data)


@pytest.fixture
def throttled_server(start_server) -> LiveServer:
    return start_server("sqlite", **{"limits.failed_auth_per_minute": BUDGET})


@pytest.mark.parametrize("bad", [
    pytest.param({"header": {"typ": ["JWT"]}}, id="typ-list"),
    pytest.param({"header": {"typ": {"typ": "JWT"}}}, id="typ-object"),
    pytest.param({"exp": 10**400}, id="exp-10**400"),
])
def test_jose_values_of_the_wrong_type_are_a_counted_audited_invalid_client(
        throttled_server: LiveServer, bad: dict[str, Any], capfd: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    server = throttled_server
    api = server.api("read")
    caplog.set_level(logging.WARNING)
    for path in ENDPOINTS:
        cid = register(server, api)
        # The right assertion passes first: what follows is about the bad values only.
        assert present(server, path, cid, assertion(server, cid)).status_code == 200
        answers = [present(server, path, cid, assertion(server, cid, **bad)) for _ in range(BUDGET)]
        assert [a.status_code for a in answers] == [401] * BUDGET, (path, [a.text for a in answers])
        assert all(a.json()["error"] == "invalid_client" for a in answers)
        assert answers[0].headers["content-type"].startswith("application/json")
        # counted by the failed-auth throttle: the budget of (source, client) is spent
        spent = present(server, path, cid, assertion(server, cid))
        assert spent.status_code == 429 and spent.json()["error"] == "slow_down", path
        failures = [e for e in server.audit_events()
                    if e.get("event") == "client.authentication_failed" and e.get("client_id") == cid]
        assert len(failures) == BUDGET, (path, failures)
        assert {e["reason"] for e in failures} == {"assertion_typ" if "header" in bad else "assertion_claims"}
    err = capfd.readouterr().err
    assert not [w for w in ("Traceback", "TypeError", "OverflowError") if w in err], err
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], caplog.records


def test_an_assertion_with_a_respelled_signature_is_invalid_client(sqlite_server: LiveServer) -> None:
    server = sqlite_server
    cid = register(server, server.api("read"))
    head, payload, signature = assertion(server, cid).split(".")
    respelled = f"{head}.{payload}.{siblings(signature)[0]}"
    resp = present(server, "/oauth2/token", cid, respelled)
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_client"
    reasons = [e["reason"] for e in server.audit_events() if e.get("event") == "client.authentication_failed"]
    assert reasons == ["assertion_malformed"]


def test_a_respelled_access_token_is_not_active_and_cannot_be_revoked_for_the_original(
        sqlite_server: LiveServer) -> None:
    server = sqlite_server
    api = server.api("read")
    creds = server.client({api: "read"})
    token = server.token(*creds).json()["access_token"]
    head, payload, signature = token.split(".")
    for variant in siblings(signature)[:4]:
        respelled = f"{head}.{payload}.{variant}"
        answer = server.post("/oauth2/introspect", data={"token": respelled}, auth=creds)
        assert answer.status_code == 200 and answer.json() == {"active": False}
    assert server.post("/oauth2/introspect", data={"token": token}, auth=creds).json()["active"] is True
