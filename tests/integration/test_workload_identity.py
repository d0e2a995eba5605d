"""Workload identity federation: a real local issuer (discovery + JWKS over HTTP) minting tokens
shaped like Kubernetes service-account tokens and CI (GitHub Actions) OIDC tokens."""

from __future__ import annotations

import time
import uuid

import jwt as pyjwt
import pytest
from tests.integration.conftest import JsonDocuments, LiveServer

from warden.core.client_metadata import parse_client_metadata
from warden.jose import generate_private_key, public_jwk
from warden.services.admin import GrantSpec

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ISSUER_KEY = generate_private_key("RS256")
SPIFFE_KEY = generate_private_key("ES256")
SA = "system:serviceaccount:payments:billing"


class Issuer:
    """The platform: publishes discovery and JWKS, mints tokens."""

    def __init__(self, docs: JsonDocuments) -> None:
        self.url = docs.url
        docs.documents["/.well-known/openid-configuration"] = {"issuer": docs.url, "jwks_uri": f"{docs.url}/keys"}
        docs.documents["/keys"] = {"keys": [public_jwk(ISSUER_KEY, kid="cluster-1", alg="RS256")]}

    def kubernetes(self, sub: str = SA, namespace: str = "payments", aud: object = ("warden",), ttl: int = 3600,
                   jti: bool = True, key: object = ISSUER_KEY, **over: object) -> str:
        now = int(time.time())
        claims = {"iss": self.url, "sub": sub, "aud": list(aud) if isinstance(aud, tuple) else aud, "iat": now,
                  "nbf": now, "exp": now + ttl,
                  "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": "billing", "uid": "u-1"}}}
        if jti:
            claims["jti"] = uuid.uuid4().hex
        claims.update(over)
        return pyjwt.encode(claims, key, algorithm="RS256", headers={"kid": "cluster-1"})

    def github(self, repository: str = "acme/billing", ref: str = "refs/heads/main") -> str:
        now = int(time.time())
        claims = {"iss": self.url, "sub": f"repo:{repository}:ref:{ref}", "aud": "warden", "iat": now,
                  "exp": now + 300, "jti": uuid.uuid4().hex, "repository": repository, "ref": ref,
                  "event_name": "push"}
        return pyjwt.encode(claims, ISSUER_KEY, algorithm="RS256", headers={"kid": "cluster-1"})


@pytest.fixture
def platform(json_documents: JsonDocuments) -> Issuer:
    return Issuer(json_documents)


@pytest.fixture
def server(start_server, platform: Issuer) -> LiveServer:
    spiffe = {"issuer": "https://spiffe.example", "audience": "warden",
              "jwks": {"keys": [public_jwk(SPIFFE_KEY, kid="spire-1", alg="ES256")]}, "max_token_lifetime": 300}
    return start_server("sqlite", dev_mode=True, trusted_issuers=[
        {"issuer": platform.url, "audience": "warden", "max_token_lifetime": "2h"}, spiffe])


def bind(server: LiveServer, federated: list[dict], **kw: object) -> tuple[str, str]:
    api = server.api("read")
    meta = parse_client_metadata({"federated": federated})
    client, secret = server.admin.create_client("workload", [GrantSpec(api, ("read",))], auth_method="private_key_jwt",
                                                metadata=meta, **kw)
    assert secret is None  # no static secret exists
    server.wait_for_client(client.client_id)
    return client.client_id, api


def present(server: LiveServer, token: str, client_id: str | None = None):
    data = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE, "client_assertion": token}
    if client_id:
        data["client_id"] = client_id
    return server.post("/oauth2/token", data=data)


def test_kubernetes_service_account_token_authenticates_the_bound_client(server: LiveServer, platform: Issuer):
    cid, api = bind(server, [{"issuer": platform.url, "subject": SA,
                              "claims": {"kubernetes.io/namespace": "payments"}}])
    resp = present(server, platform.kubernetes())
    assert resp.status_code == 200, resp.text
    claims = pyjwt.decode(resp.json()["access_token"], options={"verify_signature": False})
    assert claims["client_id"] == cid and claims["aud"] == api
    assert present(server, platform.kubernetes(), cid).status_code == 200  # client_id may be given too


def test_ci_token_with_required_claims(server: LiveServer, platform: Issuer):
    sub = "repo:acme/billing:ref:refs/heads/main"
    bind(server, [{"issuer": platform.url, "subject": sub, "claims": {"event_name": "push"}}])
    assert present(server, platform.github()).status_code == 200
    assert present(server, platform.github(ref="refs/heads/evil")).status_code == 401  # another subject


def test_every_check_of_the_platform_token(server: LiveServer, platform: Issuer):
    _cid, _ = bind(server, [{"issuer": platform.url, "subject": SA, "claims": {"kubernetes.io/namespace": "payments"}}])
    other_key = generate_private_key("RS256")
    cases = {
        "wrong_namespace": platform.kubernetes(namespace="default"),
        "unbound_subject": platform.kubernetes(sub="system:serviceaccount:payments:other"),
        "wrong_audience": platform.kubernetes(aud=("kubernetes",)),
        "expired": platform.kubernetes(exp=int(time.time()) - 300),
        "too_long_lived": platform.kubernetes(ttl=86400),
        "forged_signature": platform.kubernetes(key=other_key),
        "untrusted_issuer": platform.kubernetes(iss="https://evil.example"),
        "wrong_client_id": None,
    }
    for name, token in cases.items():
        resp = present(server, token or platform.kubernetes(), "someone-else" if name == "wrong_client_id" else None)
        assert resp.status_code == 401 and resp.json()["error"] == "invalid_client", (name, resp.text)
    reasons = {e.get("reason") for e in server.audit_events() if e["event"] == "client.authentication_failed"}
    assert {"federation_claims", "federation_not_bound", "assertion_aud", "assertion_expired", "assertion_lifetime",
            "assertion_signature"} <= reasons


def test_platform_token_with_jti_is_accepted_once_and_without_jti_reused(server: LiveServer, platform: Issuer):
    bind(server, [{"issuer": platform.url, "subject": SA}])
    token = platform.kubernetes()
    assert present(server, token).status_code == 200
    assert present(server, token).status_code == 401
    reusable = platform.kubernetes(jti=False)
    assert present(server, reusable).status_code == 200 and present(server, reusable).status_code == 200


def test_identity_bound_to_two_clients_needs_client_id(server: LiveServer, platform: Issuer):
    _first, _ = bind(server, [{"issuer": platform.url, "subject": SA}])
    second, _ = bind(server, [{"issuer": platform.url, "subject": SA}])
    assert present(server, platform.kubernetes()).status_code == 401
    resp = present(server, platform.kubernetes(), second)
    assert resp.status_code == 200
    assert pyjwt.decode(resp.json()["access_token"], options={"verify_signature": False})["client_id"] == second


def test_spiffe_jwt_svid_with_inline_trust_bundle(server: LiveServer):
    spiffe_id = "spiffe://example.org/ns/payments/sa/billing"
    bind(server, [{"issuer": "https://spiffe.example", "subject": spiffe_id}])
    now = int(time.time())
    svid = pyjwt.encode({"iss": "https://spiffe.example", "sub": spiffe_id, "aud": ["warden"], "iat": now,
                         "exp": now + 120}, SPIFFE_KEY, algorithm="ES256", headers={"kid": "spire-1", "typ": "JWT"})
    assert present(server, svid).status_code == 200
    long = pyjwt.encode({"iss": "https://spiffe.example", "sub": spiffe_id, "aud": "warden", "exp": now + 3600},
                        SPIFFE_KEY, algorithm="ES256", headers={"kid": "spire-1"})
    assert present(server, long).status_code == 401  # over this issuer's lifetime cap


def test_disabled_federated_client_is_refused(server: LiveServer, platform: Issuer):
    cid, _ = bind(server, [{"issuer": platform.url, "subject": SA}])
    server.admin.update_client(cid, enabled=False)
    server.sync()
    assert present(server, platform.kubernetes()).status_code == 401


def test_workload_identity_with_a_registry_larger_than_its_cache(start_server, platform: Issuer):
    # A partial registry finds the client bound to (iss, sub) through the store's index, and follows
    # changes of the binding and of the client after its poll.
    server = start_server("sqlite", dev_mode=True, trusted_issuers=[
        {"issuer": platform.url, "audience": "warden", "max_token_lifetime": "2h"}], **{"registry.cache_size": 2})
    api = server.api("read")
    for i in range(4):
        server.admin.create_client(f"filler {i}", [GrantSpec(api, ("read",))])
    meta = parse_client_metadata({"federated": [{"issuer": platform.url, "subject": SA}]})
    client, _ = server.admin.create_client("workload", [GrantSpec(api, ("read",))], auth_method="private_key_jwt",
                                           metadata=meta)
    server.sync()
    assert not server.app.runtime.registry.complete
    resp = present(server, platform.kubernetes())
    assert resp.status_code == 200, resp.text
    assert pyjwt.decode(resp.json()["access_token"], options={"verify_signature": False})["client_id"] == \
        client.client_id
    other = "system:serviceaccount:payments:other"
    server.admin.update_client(client.client_id, metadata=parse_client_metadata(
        {"federated": [{"issuer": platform.url, "subject": other}]}))
    server.sync()
    assert present(server, platform.kubernetes()).status_code == 401
    assert present(server, platform.kubernetes(sub=other)).status_code == 200
    server.admin.update_client(client.client_id, enabled=False)
    server.sync()
    assert present(server, platform.kubernetes(sub=other)).status_code == 401
