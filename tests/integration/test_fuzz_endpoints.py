"""Fuzzing the endpoints that authenticate clients (issue 8 #5, "Done when").

Generated requests go to the token, introspection and revocation endpoints of the real server
(Warden's own HTTP/1.1 server, as `warden serve` runs it) on a free port: forms with random,
duplicated and oversized fields; `Authorization` and `DPoP` headers, right, wrong and random;
`client_assertion`s and DPoP proofs signed with the registered keys whose header members and
claims take values of every JSON type (tests/jose_strategies.py). Whatever arrives, no answer is
a 5xx, and no stack trace appears in any answer or in the server's log output.

`WARDEN_FUZZ_EXAMPLES` sets the number of requests (default 300, for `make test`); the
"few thousand" run of the issue is `WARDEN_FUZZ_EXAMPLES=3000`.
"""

from __future__ import annotations

import base64
import logging
import os
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.integration.conftest import LiveServer
from tests.jose_strategies import json_values, mutated, signed

from warden.core.client_metadata import parse_client_metadata
from warden.jose import generate_private_key, public_jwk
from warden.services.admin import GrantSpec

EXAMPLES = int(os.environ.get("WARDEN_FUZZ_EXAMPLES", "300"))
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ENDPOINTS = ("/oauth2/token", "/oauth2/introspect", "/oauth2/revoke")
CLIENT_KEY = generate_private_key("ES256")
DPOP_KEY = generate_private_key("ES256")
TRACE_MARKS = ("Traceback", 'File "', "Error:")

ascii_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
header_text = ascii_text.map(str.strip)  # what HTTP lets a header value be (h11 refuses surrounding spaces)
any_text = st.text(max_size=40)
oversized = st.sampled_from(["a" * 9000, "b" * 20000, "%" * 3000, "x" * 70000])
field_names = st.sampled_from(["grant_type", "scope", "resource", "audience", "client_id", "client_secret",
                               "client_assertion", "client_assertion_type", "token", "token_type_hint",
                               "subject_token", "x"]) | any_text


class World:
    """What the requests are built from: the server, a secret client, a private_key_jwt client."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.api = server.api("read write")
        self.secret_client = server.client({self.api: "read"})
        meta = parse_client_metadata({"jwks": {"keys": [public_jwk(CLIENT_KEY, kid="k1", alg="ES256")]}})
        client, _ = server.admin.create_client("pkjwt", [GrantSpec(self.api, ("read",))],
                                               auth_method="private_key_jwt", metadata=meta)
        server.wait_for_client(client.client_id)
        self.pkjwt = client.client_id
        token = server.token(*self.secret_client).json()["access_token"]
        self.access_token: str = token


@st.composite
def client_assertions(draw: st.DrawFn, world: World) -> str:
    now = int(time.time())
    claims = {"iss": world.pkjwt, "sub": world.pkjwt, "aud": world.server.issuer, "iat": now, "exp": now + 60,
              "jti": uuid.uuid4().hex}
    header = draw(mutated({"alg": "ES256", "kid": "k1", "typ": "client-authentication+jwt"}, ["jwk", "crit", "cty"],
                          unchanged=True))
    token = signed(header, draw(mutated(claims, ["nbf"], unchanged=True)), CLIENT_KEY, "ES256")
    return draw(st.just(token) | st.just(token[:-1]) | st.just(token + ".x") | ascii_text)


@st.composite
def dpop_proofs(draw: st.DrawFn, world: World, path: str) -> str:
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": public_jwk(DPOP_KEY)}
    claims = {"jti": uuid.uuid4().hex, "htm": "POST", "htu": f"{world.server.url}{path}", "iat": int(time.time())}
    proof = signed(draw(mutated(header, ["kid", "crit"], unchanged=True)),
                   draw(mutated(claims, ["exp", "nbf", "nonce", "ath"], unchanged=True)), DPOP_KEY, "ES256")
    return draw(st.just(proof) | header_text)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@st.composite
def requests(draw: st.DrawFn, world: World) -> tuple[str, str, list[tuple[str, str]], bytes]:
    path = draw(st.sampled_from(ENDPOINTS))
    cid, secret = world.secret_client
    chaotic = draw(st.booleans())  # else close to a valid request, so the checks deep inside are reached
    method = draw(st.sampled_from(["POST"] * 8 + ["GET", "PUT"])) if chaotic else "POST"
    fields: list[tuple[str, str]] = []
    if path == "/oauth2/token" and (not chaotic or draw(st.booleans())):
        fields.append(("grant_type", draw(st.sampled_from(["client_credentials"] * 4 + ["password", ""]) | any_text)
                       if chaotic else "client_credentials"))
    if path != "/oauth2/token" or (chaotic and draw(st.booleans())):
        fields.append(("token", draw(st.sampled_from([world.access_token, "x"]) | any_text | oversized)))
    auth = draw(st.sampled_from(["assertion", "post", "basic", "none"]))
    if auth == "assertion" or (chaotic and draw(st.booleans())):
        fields += [("client_assertion_type", ASSERTION_TYPE), ("client_assertion", draw(client_assertions(world)))]
        if draw(st.booleans()):
            fields.append(("client_id", draw(st.sampled_from([world.pkjwt, cid]) | any_text)))
    if auth == "post" or (chaotic and draw(st.booleans())):
        fields += [("client_id", cid), ("client_secret", draw(st.sampled_from([secret, "wrong"])))]
    if chaotic:
        fields += draw(st.lists(st.tuples(field_names, any_text | oversized | json_values.map(str)), max_size=4))
        if fields and draw(st.booleans()):
            fields += draw(st.lists(st.sampled_from(fields), max_size=2))  # duplicated fields
    elif draw(st.booleans()):
        fields.append(draw(st.tuples(st.sampled_from(["scope", "resource", "token_type_hint"]),
                                     st.sampled_from(["read", world.api, "access_token", ""]) | any_text)))
    headers: list[tuple[str, str]] = []
    if auth == "basic" or (chaotic and draw(st.booleans())):
        headers.append(("authorization", draw(st.sampled_from([_basic(cid, secret), _basic(cid, "wrong"),
                                                                _basic(world.pkjwt, ""), "Basic !!!", "Bearer x",
                                                                f"DPoP {world.access_token}"]) | header_text)))
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2] if chaotic else [0, 1]))):
        headers.append(("dpop", draw(dpop_proofs(world, path))))
    if chaotic and draw(st.integers(0, 9)) == 0:
        headers.append(("authorization", draw(header_text)))  # repeated
    content_type = draw(st.sampled_from(["application/x-www-form-urlencoded"] * 6 + [
        "application/json", "text/plain", "application/x-www-form-urlencoded; charset=latin-1", ""])
    ) if chaotic else "application/x-www-form-urlencoded"
    if content_type:
        headers.append(("content-type", content_type))
    body = draw(st.binary(max_size=200)) if chaotic and draw(st.integers(0, 9)) == 0 else urlencode(fields).encode()
    return method, path, headers, body


@pytest.fixture
def world(start_server: Callable[..., LiveServer]) -> World:
    return World(start_server("sqlite", stack="h1"))


def test_generated_requests_never_get_a_5xx_or_a_stack_trace(world: World, capfd: pytest.CaptureFixture[str],
                                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="warden")
    statuses: dict[int, int] = {}

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.data_too_large, HealthCheck.large_base_example])
    @given(st.data())
    def one_request(data: st.DataObject) -> None:
        method, path, headers, body = data.draw(requests(world))
        answer = world.server.http.request(method, f"{world.server.url}{path}", headers=headers, content=body)
        statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
        assert answer.status_code < 500, (method, path, headers, body[:200], answer.text[:500])
        assert not [m for m in TRACE_MARKS if m in answer.text], answer.text[:2000]

    one_request()
    out, err = capfd.readouterr()
    assert not [m for m in TRACE_MARKS if m in out + err], (out + err)[-4000:]
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [r.getMessage() for r in bad]
    assert sum(statuses.values()) >= EXAMPLES and any(s == 200 for s in statuses), statuses
    print(f"fuzz: {sum(statuses.values())} requests, statuses {dict(sorted(statuses.items()))}")


def test_the_strategies_reach_every_json_type() -> None:
    kinds: set[str] = set()

    @settings(max_examples=200, database=None)
    @given(json_values)
    def collect(value: Any) -> None:
        kinds.add("huge" if type(value) is int and abs(value) > 2**1023 else type(value).__name__)

    collect()
    assert kinds >= {"NoneType", "bool", "int", "huge", "float", "str", "list", "dict"}, kinds
