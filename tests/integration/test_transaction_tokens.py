"""Transaction Tokens (draft-ietf-oauth-transaction-tokens) over HTTP, on top of token exchange.

The edge service E (allowed to exchange) trades the caller's access token for a Txn-Token of the
trust domain; an internal service may replace it (same transaction) with a narrower one. A
Txn-Token is not an access token: no resource server and no access-token exchange accepts it.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from warden.core.client_metadata import ClientMetadata
from warden.jose import load_public_jwk, parse_compact
from warden.protocol.token_exchange import ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE
from warden.protocol.transaction_tokens import TXN_TOKEN_TYPE

LiveServer = Any
TRUST_DOMAIN = "https://trust.example"
EXCHANGE = ClientMetadata(token_exchange=True)


def _b64(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


@pytest.fixture
def txn_server(start_server: Callable[..., LiveServer]) -> LiveServer:
    return start_server(**{"transaction_tokens.enabled": True, "transaction_tokens.trust_domain": TRUST_DOMAIN,
                           "transaction_tokens.lifetime": "30s"})


def _setup(server: LiveServer) -> tuple[tuple[str, str], tuple[str, str], str, str]:
    api = server.api("read write")
    caller = server.client_when_ready({api: "read write"}, name="caller")
    edge = server.client({api: "read"}, name="edge", metadata=EXCHANGE)
    subject = server.token(*caller, resource=api).json()["access_token"]
    return caller, edge, api, subject


def _request(server: LiveServer, client: tuple[str, str], subject: str, subject_type: str = ACCESS_TOKEN_TYPE,
             **data: str) -> httpx.Response:
    form = {"grant_type": TOKEN_EXCHANGE, "requested_token_type": TXN_TOKEN_TYPE, "audience": TRUST_DOMAIN,
            "subject_token": subject, "subject_token_type": subject_type, **data}
    return server.post("/oauth2/token", data={k: v for k, v in form.items() if v}, auth=client)


def _verified(server: LiveServer, token: str) -> dict[str, Any]:
    parsed = parse_compact(token)
    jwks = server.http.get(f"{server.url}/oauth2/jwks").json()
    jwk = next(k for k in jwks["keys"] if k["kid"] == parsed.kid)
    parsed.verify(load_public_jwk(jwk), (parsed.alg,))
    assert parsed.typ == "txntoken+jwt"
    return parsed.claims()


def test_an_access_token_is_exchanged_for_a_txn_token_and_replaced_within_its_transaction(txn_server):
    caller, edge, api, subject = _setup(txn_server)
    response = _request(txn_server, edge, subject, scope="read write",
                        request_context=_b64({"req_ip": "192.0.2.1"}), request_details=_b64({"action": "pay"}))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["issued_token_type"] == TXN_TOKEN_TYPE and body["token_type"] == "N_A"
    assert 0 < body["expires_in"] <= 30
    claims = _verified(txn_server, body["access_token"])
    assert claims["aud"] == TRUST_DOMAIN and claims["sub"] == caller[0] and claims["req_wl"] == edge[0]
    assert claims["scope"] == "read write" and claims["tctx"] == {"action": "pay"}
    assert claims["rctx"] == {"req_ip": "192.0.2.1"} and len(claims["txn"]) >= 16
    assert claims["exp"] - claims["iat"] <= 30

    internal = txn_server.client({api: "read"}, name="internal", metadata=EXCHANGE)
    replaced = _request(txn_server, internal, body["access_token"], TXN_TOKEN_TYPE, scope="read")
    assert replaced.status_code == 200, replaced.text
    again = _verified(txn_server, replaced.json()["access_token"])
    assert (again["txn"], again["sub"], again["tctx"]) == (claims["txn"], claims["sub"], claims["tctx"])
    assert again["req_wl"] == internal[0] and again["scope"] == "read" and again["exp"] <= claims["exp"]
    wider = _request(txn_server, internal, replaced.json()["access_token"], TXN_TOKEN_TYPE, scope="read write")
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"
    events = [e for e in txn_server.audit_events() if e["event"] == "txn_token.issued"]
    assert [e["replaced"] for e in events] == [False, True] and {e["txn"] for e in events} == {claims["txn"]}
    text = txn_server.audit_path.read_text()
    assert body["access_token"] not in text and subject not in text


def test_a_txn_token_is_not_an_access_token(txn_server):
    from warden.resource import InvalidToken, Validator

    _, edge, api, subject = _setup(txn_server)
    txn_token = _request(txn_server, edge, subject).json()["access_token"]
    with pytest.raises(InvalidToken):
        Validator(txn_server.issuer, TRUST_DOMAIN).validate(txn_token)
    response = txn_server.post("/oauth2/token", data={
        "grant_type": TOKEN_EXCHANGE, "subject_token": txn_token, "subject_token_type": ACCESS_TOKEN_TYPE,
        "resource": api}, auth=edge)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    forged = _request(txn_server, edge, subject, TXN_TOKEN_TYPE)  # an access token is not a Txn-Token either
    assert forged.status_code == 400 and forged.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(("change", "code"), [
    ({"audience": "https://elsewhere.example"}, "invalid_target"),
    ({"audience": ""}, "invalid_request"),
    ({"request_context": "not-base64-json!"}, "invalid_request"),
    ({"request_details": _b64(["not", "an", "object"])}, "invalid_request"),
    ({"scope": "delete"}, "invalid_scope"),
])
def test_malformed_or_widening_requests_are_refused(txn_server, change: dict[str, str], code: str):
    _, edge, _, subject = _setup(txn_server)
    response = _request(txn_server, edge, subject, **change)
    assert response.status_code == 400 and response.json()["error"] == code


def test_only_clients_allowed_to_exchange_get_txn_tokens_and_revoked_subjects_are_refused(txn_server):
    caller, edge, api, subject = _setup(txn_server)
    plain = txn_server.client({api: "read"}, name="plain")
    refused = _request(txn_server, plain, subject)
    assert refused.status_code == 400 and refused.json()["error"] == "unauthorized_client"
    txn_token = _request(txn_server, edge, subject).json()["access_token"]
    txn_server.admin.revoke_client_tokens(caller[0])
    txn_server.sync()
    assert _request(txn_server, edge, subject).json()["error"] == "invalid_grant"
    assert _request(txn_server, edge, txn_token, TXN_TOKEN_TYPE).json()["error"] == "invalid_grant"


def test_txn_tokens_are_off_unless_enabled(sqlite_server: LiveServer):
    _, edge, _, subject = _setup(sqlite_server)
    response = _request(sqlite_server, edge, subject)
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_an_expired_txn_token_cannot_be_replaced(txn_server):
    from warden.jose import encode_header

    _, edge, _, _ = _setup(txn_server)
    signer = txn_server.app.runtime.registry.signers["ES256"]
    now = int(time.time())
    claims = {"iss": txn_server.issuer, "aud": TRUST_DOMAIN, "iat": now - 120, "exp": now - 60, "txn": "t-1",
              "sub": "someone", "scope": "read", "req_wl": edge[0]}
    token = signer.sign_jws(encode_header({"alg": "ES256", "kid": signer.kid, "typ": "txntoken+jwt"}),
                            json.dumps(claims).encode())
    response = _request(txn_server, edge, token, TXN_TOKEN_TYPE)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
