"""The token path's fast formulations give exactly what the straightforward ones give: JSON built from
fragments equals `json.dumps`, the form splitter equals `parse_qsl`, the loop-based policy equals the
comprehension-based one, and remembered token decisions follow every registry change."""

from __future__ import annotations

import io
import json
import string
from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from warden.core.api import Api
from warden.core.client import Grant
from warden.core.clock import FixedClock
from warden.core.policy import PolicyRefusal, TokenDecision, decide_token
from warden.protocol.access_token import AccessTokenClaims, render_claims
from warden.protocol.client_credentials import TokenRequest
from warden.protocol.form import _pairs
from warden.server.render import render_token
from warden.server.runtime import SecretUseRecorder
from warden.services.admin import Admin, GrantSpec
from warden.services.audit import AuditSink
from warden.services.kek import KeyMaterial
from warden.services.keyring import Keyring
from warden.services.registry import Registry
from warden.services.tokens import issue_token
from warden.storage.memory import MemoryStore

text = st.text(max_size=40)
compact = {"separators": (",", ":")}


@given(iss=text, client_id=text, aud=st.lists(text, min_size=1, max_size=3), scope=text,
       iat=st.integers(0, 2**40), ttl=st.integers(0, 86400), jti=text, tenant=st.none() | text,
       cnf=st.none() | st.dictionaries(text, text, max_size=2))
def test_claims_are_byte_for_byte_json_dumps(iss, client_id, aud, scope, iat, ttl, jti, tenant, cnf):
    claims = AccessTokenClaims(iss, client_id, tuple(aud), scope, iat, iat + ttl, jti, tenant, cnf)
    body = {"iss": iss, "sub": client_id, "client_id": client_id, "aud": aud[0] if len(aud) == 1 else aud,
            "scope": scope, "iat": iat, "exp": iat + ttl, "jti": jti}
    if tenant is not None:
        body["tenant"] = tenant
    if cnf is not None:
        body["cnf"] = cnf
    assert render_claims(claims) == json.dumps(body, **compact).encode()


@given(token=text, expires_in=st.integers(0, 10**6), scope=text, token_type=st.sampled_from(["Bearer", "DPoP"]))
def test_token_response_is_byte_for_byte_json_dumps(token, expires_in, scope, token_type):
    body = {"access_token": token, "token_type": token_type, "expires_in": expires_in, "scope": scope}
    response = render_token(token, expires_in, scope, token_type)
    assert response.body == json.dumps(body, **compact).encode()
    assert (b"cache-control", b"no-store") in response.headers


scalar = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text


@given(event=text, outcome=text, reason=st.none() | text, client_id=st.none() | text,
       details=st.dictionaries(st.sampled_from(["jti", "aud", "scope", "kid", "n", "ok", "é"]),
                               scalar | st.lists(text, max_size=3) | st.lists(scalar, max_size=3)))
def test_audit_line_is_byte_for_byte_json_dumps(event, outcome, reason, client_id, details):
    stream = io.StringIO()
    sink = AuditSink(stream=stream)
    sink.emit(event, outcome=outcome, reason=reason, client_id=client_id, **details)
    sink.flush()
    line = stream.getvalue()
    record = json.loads(line)
    expected = {"time": record["time"], "event": event, "outcome": outcome}
    fields = {"reason": reason, "actor": None, "client_id": client_id, "source": None, **details}
    expected.update((k, v) for k, v in fields.items() if v is not None)
    assert line == json.dumps(expected, **compact) + "\n"
    assert len(record["time"]) == 24 and record["time"].endswith("Z")


def test_audit_time_cannot_be_set_by_callers():
    with pytest.raises(TypeError):
        AuditSink(stream=io.StringIO()).emit("x", time="yesterday")


@given(st.text(alphabet=string.ascii_letters + string.digits + "=&+%._-~", max_size=80))
def test_form_splitter_equals_parse_qsl(body):
    try:
        expected = parse_qsl(body, keep_blank_values=True, encoding="utf-8", errors="strict", max_num_fields=64)
    except ValueError as exc:
        with pytest.raises(type(exc)):
            _pairs(body)
    else:
        assert _pairs(body) == expected


def reference_decision(grants, apis, scopes, resources) -> TokenDecision | str:
    """The policy as first written, with comprehensions: the specification the fast loop must match."""
    by_api = {g.api: g for g in grants if g.api in apis}
    if resources:
        if any(r not in by_api for r in resources):
            return "resource_not_granted"
        audiences = resources
    else:
        if not by_api:
            return "no_grants"
        audiences = (min(by_api.values(), key=lambda g: g.position).api,)
    first = [s for s in by_api[audiences[0]].scopes if s in apis[audiences[0]].scopes]
    allowed = [s for i, s in enumerate(first) if s not in first[:i]
               and all(s in by_api[a].scopes and s in apis[a].scopes for a in audiences)]
    several = len(audiences) > 1
    if scopes is None and several and not allowed:
        return "no_common_scope"
    if scopes is not None and any(s not in allowed for s in scopes):
        return "scope_not_granted_everywhere" if several else "scope_not_granted"
    if len({apis[a].alg for a in audiences}) > 1:
        return "mixed_algorithms"
    return TokenDecision(tuple(audiences), tuple(allowed) if scopes is None else scopes,
                         min(apis[a].token_ttl for a in audiences), apis[audiences[0]].alg,
                         dpop_required=any(apis[a].dpop_required for a in audiences),
                         cert_bound=any(apis[a].cert_bound for a in audiences))


names = st.sampled_from(["a", "b", "c", "d"])
scope_names = st.lists(st.sampled_from(["read", "write", "admin"]), unique=True, max_size=3)


@given(apis=st.dictionaries(names, st.tuples(scope_names, st.sampled_from(["ES256", "RS256"]),
                                             st.integers(60, 900), st.booleans(), st.booleans()), max_size=4),
       grants=st.lists(st.tuples(names, scope_names, st.integers(0, 3)), max_size=4),
       scopes=st.none() | st.lists(st.sampled_from(["read", "write", "admin"]), unique=True, min_size=1).map(tuple),
       resources=st.none() | st.lists(names, unique=True, min_size=1, max_size=3).map(tuple))
def test_policy_loop_decides_like_the_reference(apis, grants, scopes, resources):
    api_map = {name: Api(name, tuple(s), ttl, alg, dpop_required=dpop, cert_bound=cert)
               for name, (s, alg, ttl, dpop, cert) in apis.items()}
    grant_list = [Grant("c", api, tuple(s), pos) for api, s, pos in grants]
    expected = reference_decision(grant_list, api_map, scopes, resources)
    try:
        got: TokenDecision | str = decide_token(grant_list, api_map, scopes, resources)
    except PolicyRefusal as exc:
        got = exc.reason
    assert got == expected


MATERIAL = KeyMaterial.from_kek(b"k" * 32)


def test_remembered_decisions_follow_api_and_grant_changes():
    store, clock = MemoryStore(), FixedClock()
    admin = Admin(store, MATERIAL, clock, AuditSink())
    Keyring(store, MATERIAL, clock, AuditSink()).ensure_keys(["ES256", "RS256"])
    admin.save_api("https://api.example", ["read", "write"])
    client, _ = admin.create_client("x", [GrantSpec("https://api.example", ("read", "write"))])
    registry = Registry(store, MATERIAL)
    registry.load(clock.now())
    request = TokenRequest("client_credentials", None, None)

    def issue() -> tuple[str, int]:
        issued = issue_token(registry.clients[client.client_id], request, registry, "https://issuer", clock.now())
        return issued.scope, issued.expires_in

    assert issue() == ("read write", 900)
    assert issue() == ("read write", 900)  # remembered
    admin.save_api("https://api.example", ["read", "write"], ttl=300)
    registry.refresh(clock.now())
    assert issue() == ("read write", 300)
    admin.update_client(client.client_id, grants=[GrantSpec("https://api.example", ("read",))])
    registry.refresh(clock.now())
    assert issue() == ("read", 300)
    admin.save_api("https://other.example", ["write"], ttl=600)
    admin.update_client(client.client_id, grants=[GrantSpec("https://other.example", ("write",))])
    registry.refresh(clock.now())
    assert issue() == ("write", 600)
    admin.save_api("https://other.example", ["write"], ttl=600, alg="RS256")
    registry.refresh(clock.now())
    issued = issue_token(registry.clients[client.client_id], request, registry, "https://issuer", clock.now())
    assert issued.kid.startswith("rs256-")


def test_secret_use_is_recorded_at_most_once_a_minute_per_secret():
    recorder = SecretUseRecorder(resolution=60)
    recorder.record("s1", 1000.0)
    recorder.record("s1", 1001.0)
    recorder.record("s2", 1002.0)
    assert recorder.drain(1003.0) == {"s1": 1000.0, "s2": 1002.0}
    recorder.record("s1", 1030.0)
    assert recorder.drain(1031.0) == {}
    recorder.record("s1", 1060.0)
    assert recorder.drain(1061.0) == {"s1": 1060.0}
    recorder.record("s2", 1200.0)  # long after: recorded again, and old entries are forgotten
    assert recorder.drain(1201.0) == {"s2": 1200.0}


def test_remembered_forms_are_shared_read_only_and_never_hold_credentials():
    from warden.protocol import form as form_module
    from warden.protocol.form import parse_form

    body = b"grant_type=client_credentials&resource=https://a.example&resource=https://b.example"
    first = parse_form(body)
    first.multi("resource").append("https://evil.example")
    again = parse_form(body)
    assert again is first and again.multi("resource") == ["https://a.example", "https://b.example"]
    with_secret = b"grant_type=client_credentials&client_id=c&client_secret=wsec_x"
    parse_form(with_secret)
    parse_form(b"token=eyJhbGciOi.x.y")
    assert not any(b"client_secret" in key or b"token=" in key for key, _ in form_module._REMEMBERED)
