"""Secret rotation, key rotation, rate limits and failed-authentication throttling while serving."""

from __future__ import annotations

import jwt
import pytest
from tests.integration.conftest import LiveServer, wait_until


def test_secret_rotation_keeps_old_secret_for_grace_then_refuses_and_audits(server: LiveServer):
    api = server.api("read")
    cid, old = server.client({api: "read"})
    new = server.admin.rotate_secret(cid, grace=3600).secret
    server.sync()
    assert server.token(cid, old).status_code == 200
    assert server.token(cid, new).status_code == 200
    server.admin.rotate_secret(cid, grace=0)  # both earlier secrets expire now
    server.sync()
    for secret in (old, new):
        resp = server.token(cid, secret)
        assert resp.status_code == 401 and resp.json()["error"] == "invalid_client"
    events = [e for e in server.audit_events() if e["event"] == "client.authentication_failed"]
    assert {e["reason"] for e in events} == {"secret_expired"}
    assert all(e["severity"] == "security" and e["client_id"] == cid for e in events)


def test_revoked_secret_is_refused_at_once(server: LiveServer):
    api = server.api("read")
    cid, secret = server.client({api: "read"})
    secret_id = server.admin.store.load_secrets(cid)[0].secret_id
    server.admin.revoke_secret(cid, secret_id)
    server.sync()
    assert server.token(cid, secret).status_code == 401
    assert any(e.get("reason") == "secret_revoked" for e in server.audit_events())


def test_last_used_time_is_recorded_off_the_request_path(sqlite_server: LiveServer):
    server = sqlite_server
    api = server.api("read")
    cid, secret = server.client({api: "read"})
    assert server.token(cid, secret).status_code == 200
    assert wait_until(lambda: server.admin.store.load_secrets(cid)[0].last_used_at is not None, timeout=5)


def test_key_rotation_while_serving_keeps_old_tokens_valid(server: LiveServer):
    api = server.api("read")
    cid, secret = server.client({api: "read"})
    before = server.token(cid, secret).json()["access_token"]
    old_kid = jwt.get_unverified_header(before)["kid"]
    jwks_before = {k["kid"] for k in server.http.get(f"{server.url}/oauth2/jwks").json()["keys"]}
    activated = server.admin.rotate_keys(["ES256"])
    assert activated and activated[0] in jwks_before  # the new key was published before it signed
    server.sync()
    after = server.token(cid, secret).json()["access_token"]
    assert jwt.get_unverified_header(after)["kid"] == activated[0] != old_kid
    jwks = jwt.PyJWKClient(f"{server.url}/oauth2/jwks")
    for token in (before, after):  # the retired key stays published until its tokens expire
        jwt.decode(token, jwks.get_signing_key_from_jwt(token).key, algorithms=["ES256"], audience=api)
    states = {k.kid: k.state.value for k in server.admin.keys()}
    assert states[old_kid] == "retired" and list(states.values()).count("next") == 3


def test_per_client_rate_limit_answers_429_with_retry_after(sqlite_server: LiveServer):
    server = sqlite_server
    api = server.api("read")
    cid, secret = server.client({api: "read"}, rate_limit=1.0)
    codes = [server.token(cid, secret).status_code for _ in range(4)]
    assert 429 in codes
    limited = server.token(cid, secret)
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert limited.json()["error"] == "slow_down"


def _from(source: str) -> dict[str, str]:
    return {"x-forwarded-for": source}  # the test client is the trusted proxy


def test_brute_force_of_one_clients_secret_is_cut_off_even_for_the_right_secret(start_server):
    server = start_server("sqlite", **{"limits.failed_auth_per_minute": 5, "server.trusted_proxies": ["127.0.0.1"]})
    api = server.api("read")
    cid, secret = server.client({api: "read"})
    token = f"{server.url}/oauth2/token"
    form = {"grant_type": "client_credentials"}
    attacker = _from("203.0.113.7")
    codes = [server.http.post(token, data=form, auth=(cid, f"guess-{i}"), headers=attacker).status_code
             for i in range(8)]
    assert codes == [401] * 5 + [429] * 3
    # Budget spent: the right secret is not evaluated either, so a guess cannot be confirmed ...
    resp = server.http.post(token, data=form, auth=(cid, secret), headers=attacker)
    assert resp.status_code == 429 and resp.json()["error"] == "slow_down" and int(resp.headers["retry-after"]) >= 1
    # ... whichever method carries it, at every endpoint that authenticates clients
    resp = server.http.post(token, data={**form, "client_id": cid, "client_secret": secret}, headers=attacker)
    assert resp.status_code == 429
    for path in ("/oauth2/introspect", "/oauth2/revoke"):
        assert server.http.post(f"{server.url}{path}", data={"token": "x"}, auth=(cid, secret),
                                headers=attacker).status_code == 429
    # The budget is the attacker's address's: the client itself, elsewhere, is served.
    assert server.http.post(token, data=form, auth=(cid, secret), headers=_from("198.51.100.2")).status_code == 200
    throttled = [e for e in server.audit_events() if e.get("reason") == "failed_auth_throttled"]
    assert throttled and all(e["source"] == "203.0.113.7" for e in throttled)
    assert secret not in server.audit_path.read_text()


def test_a_correct_secret_is_never_refused_for_failures_of_others_at_the_same_address(start_server):
    server = start_server("sqlite", **{"limits.failed_auth_per_minute": 5})
    api = server.api("read")
    victim, _ = server.client({api: "read"})
    legit = server.client({api: "read"})
    # 150 failures from this address: one client's secret guessed, unknown ids sprayed, no credentials at all
    guessed = [server.token(victim, f"guess-{i}").status_code for i in range(50)]
    sprayed = [server.token(f"unknown-{i}", "guess").status_code for i in range(50)]
    anonymous = [server.post("/oauth2/token", data={"grant_type": "client_credentials"}).status_code
                 for _ in range(50)]
    assert guessed[:5] == [401] * 5 and set(guessed[5:]) == {429}
    assert set(sprayed) == {401}  # each claimed identity has a budget; unknown ones answer as known ones do
    assert anonymous[:5] == [401] * 5 and set(anonymous[5:]) == {429}
    # another client with its correct secret, from the same address, is served at every endpoint
    assert server.token(*legit).status_code == 200
    assert server.post("/oauth2/introspect", data={"token": "x"}, auth=legit).status_code == 200
    assert server.post("/oauth2/revoke", data={"token": "x"}, auth=legit).status_code == 200
    # and its own budget is its own
    own = [server.token(legit[0], f"typo-{i}").status_code for i in range(6)]
    assert own == [401] * 5 + [429]


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_health_endpoints(server: LiveServer, path: str):
    assert server.http.get(f"{server.url}{path}").status_code == 200


def test_metadata_and_metrics(server: LiveServer):
    meta = server.http.get(f"{server.url}/.well-known/oauth-authorization-server").json()
    assert meta["issuer"] == server.issuer
    assert meta["token_endpoint"] == f"{server.issuer}/oauth2/token"
    assert meta["grant_types_supported"] == ["client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange"]
    assert set(meta["token_endpoint_auth_methods_supported"]) == {"client_secret_basic", "client_secret_post",
                                                                  "private_key_jwt"}
    api = server.api("read")
    cid, secret = server.client({api: "read"})
    server.token(cid, secret)
    server.token(cid, "bad")
    text = server.http.get(f"{server.url}/metrics").text
    assert 'warden_token_requests_total{outcome="issued",reason="ok"}' in text
    assert 'warden_token_requests_total{outcome="refused",reason="wrong_secret"}' in text
    assert "warden_token_issuance_seconds_bucket" in text
    # client ids only in the bounded top-N series (metrics.top_clients), nowhere else
    assert all(line.startswith("warden_client_requests_total{") for line in text.splitlines() if cid in line)
    assert secret not in text
