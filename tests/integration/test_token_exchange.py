"""Token exchange (RFC 8693) over HTTP: the broker pattern, each error, metadata, and what a
resource server using `warden.resource` makes of an exchanged token.

A (the caller) holds a token for the broker's API; the broker B, allowed to exchange, trades it
for a token to the target API C while keeping A as the subject; a second broker may exchange
again (a chain recorded in nested `act`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from warden.core.client_metadata import ClientMetadata
from warden.jose import parse_compact
from warden.protocol.token_exchange import ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE, TOKEN_EXCHANGE

LiveServer = Any  # tests/integration/conftest.py's LiveServer
EXCHANGE = ClientMetadata(token_exchange=True)
FAST = {"status_list.publish_interval": 0.1, "status_list.ttl": 1}


def _claims(token: str) -> dict[str, Any]:
    return parse_compact(token).claims()


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@dataclass
class Broker:
    """The cast of one test: the caller A, its token for the broker's API, the broker B and the target."""

    server: LiveServer
    broker_api: str
    target: str
    caller: tuple[str, str]
    broker: tuple[str, str]
    subject: str

    def exchange(self, subject: str | None = None, client: tuple[str, str] | None = None,
                 **data: str) -> httpx.Response:
        form = {"grant_type": TOKEN_EXCHANGE, "subject_token": subject or self.subject,
                "subject_token_type": ACCESS_TOKEN_TYPE, **data}
        return self.server.post("/oauth2/token", data=form, auth=client or self.broker)


def _cast(server: LiveServer) -> Broker:
    broker_api = server.api("read write")
    target = server.api("read write delete")
    caller = server.client_when_ready({broker_api: "read write"}, name="caller")
    broker = server.client({target: "read write"}, name="broker", metadata=EXCHANGE)
    response = server.token(*caller, resource=broker_api)
    assert response.status_code == 200, response.text
    return Broker(server, broker_api, target, caller, broker, response.json()["access_token"])


def _denied(server: LiveServer) -> list[str]:
    return [e["reason"] for e in server.audit_events() if e["event"] == "token.exchange_denied"]


def _error(response: httpx.Response) -> str:
    assert response.headers["cache-control"] == "no-store"
    return str(response.json()["error"])


# -- success ------------------------------------------------------------------------------------
def test_exchange_keeps_the_subject_and_records_the_requester_as_actor(server: LiveServer) -> None:
    cast = _cast(server)
    response = cast.exchange(resource=cast.target, scope="read")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["issued_token_type"] == ACCESS_TOKEN_TYPE
    assert body["token_type"] == "Bearer" and body["scope"] == "read"
    assert response.headers["cache-control"] == "no-store"
    claims, subject = _claims(body["access_token"]), _claims(cast.subject)
    assert claims["sub"] == cast.caller[0]
    assert claims["client_id"] == cast.broker[0]
    assert claims["act"] == {"sub": cast.broker[0]}
    assert claims["aud"] == cast.target and claims["scope"] == "read"
    assert claims["exp"] <= subject["exp"]  # never outlives the token it came from
    assert 0 < body["expires_in"] <= claims["exp"] - claims["iat"]
    own, theirs = claims["status"]["status_list"], subject["status"]["status_list"]
    assert (own["uri"], own["idx"]) != (theirs["uri"], theirs["idx"])  # an index of its own


def test_without_scope_the_scopes_both_the_subject_and_the_grant_allow_are_issued(sqlite_server: LiveServer):
    cast = _cast(sqlite_server)
    response = cast.exchange(audience=cast.target, subject_token_type=JWT_TOKEN_TYPE)
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "read write"  # target grant: read write; subject: read write


def test_a_chain_of_exchanges_nests_act_and_is_bounded_by_max_act_depth(start_server: Callable[..., LiveServer]):
    server = start_server(**{"token_exchange.max_act_depth": 2})
    cast = _cast(server)
    last_api = server.api("read")
    second = server.client({last_api: "read"}, name="second broker", metadata=EXCHANGE)
    third_api = server.api("read")
    third = server.client({third_api: "read"}, name="third broker", metadata=EXCHANGE)
    first = cast.exchange(resource=cast.target, scope="read").json()["access_token"]
    response = cast.exchange(first, second, resource=last_api)
    assert response.status_code == 200, response.text
    chained = _claims(response.json()["access_token"])
    assert chained["sub"] == cast.caller[0] and chained["client_id"] == second[0]
    assert chained["act"] == {"sub": second[0], "act": {"sub": cast.broker[0]}}
    refused = cast.exchange(response.json()["access_token"], third, resource=third_api)
    assert refused.status_code == 400 and _error(refused) == "invalid_grant"
    events = [e for e in server.audit_events() if e["event"] == "token.exchanged"]
    assert [e["act"] for e in events] == [[cast.broker[0]], [second[0], cast.broker[0]]]
    assert all(e["subject"] == cast.caller[0] for e in events)
    denied = [e for e in server.audit_events() if e["event"] == "token.exchange_denied"]
    assert [e["reason"] for e in denied] == ["act_depth_exceeded"]


# -- errors (RFC 8693 §2.2.2) ---------------------------------------------------------------------
def test_a_client_without_permission_is_unauthorized_client(server: LiveServer) -> None:
    cast = _cast(server)
    plain = server.client({cast.target: "read"}, name="not a broker")
    response = cast.exchange(client=plain, resource=cast.target)
    assert response.status_code == 400 and _error(response) == "unauthorized_client"


def test_a_revoked_subject_token_is_invalid_grant(server: LiveServer) -> None:
    cast = _cast(server)
    server.admin.revoke_jti(_claims(cast.subject)["jti"], cast.caller[0], _claims(cast.subject)["exp"])
    server.sync()
    response = cast.exchange(resource=cast.target)
    assert response.status_code == 400 and _error(response) == "invalid_grant"
    assert _denied(server) == ["subject_token_revoked"]


def test_a_subject_token_of_a_revoked_client_is_invalid_grant(sqlite_server: LiveServer) -> None:
    cast = _cast(sqlite_server)
    sqlite_server.admin.revoke_client_tokens(cast.caller[0])
    sqlite_server.sync()
    response = cast.exchange(resource=cast.target)
    assert response.status_code == 400 and _error(response) == "invalid_grant"
    assert _denied(sqlite_server) == ["subject_token_revoked"]


def test_an_expired_subject_token_is_invalid_grant(sqlite_server: LiveServer) -> None:
    from warden.protocol.access_token import claims_template

    cast = _cast(sqlite_server)
    # Signed by the server's own key, expired a minute ago (APIs cannot have lifetimes short enough to wait out).
    signer = sqlite_server.app.runtime.registry.signers["ES256"]
    now = int(time.time())
    template = claims_template(sqlite_server.issuer, cast.caller[0], (cast.broker_api,), "read write")
    subject = signer.compact.sign(template.render(now - 960, now - 60, "expired-jti"))
    response = cast.exchange(subject, resource=cast.target)
    assert response.status_code == 400 and _error(response) == "invalid_grant"
    assert _denied(sqlite_server) == ["subject_token_expired"]


@pytest.mark.parametrize("subject", ["not-a-jwt", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."])
def test_a_forged_or_foreign_subject_token_is_invalid_grant(sqlite_server: LiveServer, subject: str) -> None:
    cast = _cast(sqlite_server)
    response = cast.exchange(subject, resource=cast.target)
    assert response.status_code == 400 and _error(response) == "invalid_grant"


def test_a_target_the_requester_is_not_granted_is_invalid_target(server: LiveServer) -> None:
    cast = _cast(server)
    response = cast.exchange(resource=cast.broker_api)  # granted to the caller, not to the broker
    assert response.status_code == 400 and _error(response) == "invalid_target"


def test_scope_only_narrows(sqlite_server: LiveServer) -> None:
    cast = _cast(sqlite_server)
    response = cast.exchange(resource=cast.target, scope="read delete")  # delete: in neither
    assert response.status_code == 400 and _error(response) == "invalid_scope"
    narrow = sqlite_server.token(*cast.caller, resource=cast.broker_api, scope="read").json()["access_token"]
    widened = cast.exchange(narrow, resource=cast.target, scope="write")  # granted to B, not in the subject
    assert widened.status_code == 400 and _error(widened) == "invalid_scope"


@pytest.mark.parametrize("change", [{"subject_token_type": ""}, {"subject_token": ""},
                                    {"subject_token_type": "urn:ietf:params:oauth:token-type:id_token"},
                                    {"actor_token": "x", "actor_token_type": ACCESS_TOKEN_TYPE}])
def test_a_malformed_request_is_invalid_request(sqlite_server: LiveServer, change: dict[str, str]) -> None:
    cast = _cast(sqlite_server)
    form = {"grant_type": TOKEN_EXCHANGE, "subject_token": cast.subject, "subject_token_type": ACCESS_TOKEN_TYPE,
            "resource": cast.target, **change}
    response = sqlite_server.post("/oauth2/token", data={k: v for k, v in form.items() if v}, auth=cast.broker)
    assert response.status_code == 400 and _error(response) == "invalid_request"


def test_the_requester_must_authenticate(sqlite_server: LiveServer) -> None:
    cast = _cast(sqlite_server)
    response = cast.exchange(client=(cast.broker[0], "wrong"), resource=cast.target)
    assert response.status_code == 401 and _error(response) == "invalid_client"


def test_audit_and_errors_never_carry_a_token(sqlite_server: LiveServer) -> None:
    cast = _cast(sqlite_server)
    issued = cast.exchange(resource=cast.target).json()["access_token"]
    refused = cast.exchange(cast.subject + "x", resource=cast.target)
    assert cast.subject not in refused.text
    text = sqlite_server.audit_path.read_text() if sqlite_server.audit_events() else ""
    for token in (cast.subject, issued):
        assert token not in text and token.split(".")[2] not in text
    assert any(e["event"] == "token.exchanged" and e["subject_jti"] == _claims(cast.subject)["jti"]
               for e in sqlite_server.audit_events())


# -- metadata -------------------------------------------------------------------------------------
def test_metadata_advertises_the_grant(server: LiveServer) -> None:
    body = server.http.get(f"{server.url}/.well-known/oauth-authorization-server").json()
    assert TOKEN_EXCHANGE in body["grant_types_supported"] and "client_credentials" in body["grant_types_supported"]


def test_with_token_exchange_disabled_the_grant_is_neither_advertised_nor_served(
        start_server: Callable[..., LiveServer]) -> None:
    server = start_server(**{"token_exchange.enabled": False})
    body = server.http.get(f"{server.url}/.well-known/oauth-authorization-server").json()
    assert body["grant_types_supported"] == ["client_credentials"]
    cast = _cast(server)
    response = cast.exchange(resource=cast.target)
    assert response.status_code == 400 and _error(response) == "unsupported_grant_type"


# -- at resource servers and at introspection ---------------------------------------------------------
def test_a_resource_server_accepts_the_exchanged_token_for_the_target_only(sqlite_server: LiveServer) -> None:
    from warden.resource import InvalidToken, Validator

    cast = _cast(sqlite_server)
    exchanged = cast.exchange(resource=cast.target, scope="read").json()["access_token"]
    claims = Validator(sqlite_server.issuer, cast.target).validate(exchanged, scopes=["read"])
    assert claims.sub == cast.caller[0] and claims.client_id == cast.broker[0]
    with pytest.raises(InvalidToken):
        Validator(sqlite_server.issuer, cast.broker_api).validate(exchanged)


def _introspect(server: LiveServer, token: str, client: tuple[str, str]) -> bool:
    response = server.post("/oauth2/introspect", data={"token": token}, auth=client)
    assert response.status_code == 200, response.text
    return bool(response.json()["active"])


def test_revoking_the_requesting_client_ends_its_exchanged_tokens_everywhere(
        start_server: Callable[..., LiveServer]) -> None:
    from warden.resource import InvalidToken, StatusPolicy, Validator

    server = start_server(**FAST)
    cast = _cast(server)
    exchanged = cast.exchange(resource=cast.target, scope="read").json()["access_token"]
    validator = Validator(server.issuer, cast.target, status_policy=StatusPolicy(min_ttl=0.5, max_ttl=1.0))
    assert validator.validate(exchanged).sub == cast.caller[0]
    server.admin.revoke_client_tokens(cast.broker[0])
    server.sync()
    assert not _introspect(server, exchanged, cast.broker)  # introspection: at once

    def refused() -> bool:
        try:
            validator.validate(exchanged)
        except InvalidToken as exc:
            assert exc.reason == "revoked"
            return True
        return False

    assert wait_until(refused)  # resource servers: within the list TTL (its status entry is the broker's)
    assert _introspect(server, cast.subject, cast.caller)  # the subject's own token is untouched


def test_revoking_the_subject_client_ends_exchanged_tokens_at_introspection(sqlite_server: LiveServer) -> None:
    cast = _cast(sqlite_server)
    exchanged = cast.exchange(resource=cast.target, scope="read").json()["access_token"]
    assert _introspect(sqlite_server, exchanged, cast.broker)
    sqlite_server.admin.revoke_client_tokens(cast.caller[0])
    sqlite_server.sync()
    assert not _introspect(sqlite_server, exchanged, cast.broker)


def test_revoking_the_exchanged_token_by_jti_leaves_the_subject_token_active(sqlite_server: LiveServer) -> None:
    cast = _cast(sqlite_server)
    exchanged = cast.exchange(resource=cast.target, scope="read").json()["access_token"]
    revoked = sqlite_server.post("/oauth2/revoke", data={"token": exchanged}, auth=cast.broker)
    assert revoked.status_code == 200
    assert not _introspect(sqlite_server, exchanged, cast.broker)
    assert _introspect(sqlite_server, cast.subject, cast.caller)


# -- permission through the admin API ------------------------------------------------------------------
def test_the_admin_api_grants_and_withdraws_the_permission(sqlite_server: LiveServer) -> None:
    cast = _cast(sqlite_server)
    admin_api = f"{sqlite_server.issuer}/admin/v1"
    ops = sqlite_server.client({admin_api: "warden:admin"}, name="ops")
    token = sqlite_server.token(*ops, resource=admin_api).json()["access_token"]
    with httpx.Client(base_url=admin_api, headers={"authorization": f"Bearer {token}"}, timeout=10) as api:
        created = api.post("/clients", json={"name": "api broker", "grants": [{"api": cast.target, "scopes": ["read"]}],
                                             "metadata": {"token_exchange": True}})
        assert created.status_code == 201, created.text
        assert created.json()["metadata"] == {"token_exchange": True}
        broker = (created.json()["client_id"], created.json()["client_secret"])
        sqlite_server.wait_for_client(broker[0])
        assert cast.exchange(client=broker, resource=cast.target).status_code == 200
        bad = api.patch(f"/clients/{broker[0]}", json={"metadata": {"token_exchange": "yes"}})
        assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"
        assert api.patch(f"/clients/{broker[0]}", json={"metadata": {"token_exchange": False}}).status_code == 200
        sqlite_server.sync()
        refused = cast.exchange(client=broker, resource=cast.target)
        assert refused.status_code == 400 and _error(refused) == "unauthorized_client"


# -- the client library -------------------------------------------------------------------------------
def test_the_client_library_exchanges_tokens_sync_and_async(server: LiveServer) -> None:
    import asyncio

    from warden.client import ClientCredentials, TokenError

    cast = _cast(server)
    broker = ClientCredentials(server.issuer, client_id=cast.broker[0], client_secret=cast.broker[1])
    token = broker.exchange_token(cast.subject, resource=cast.target, scope="read")
    assert token.token_type == "Bearer" and token.scope == ("read",) and token.audience == cast.target
    claims = _claims(token.access_token)
    assert claims["sub"] == cast.caller[0] and claims["act"] == {"sub": cast.broker[0]}
    again = asyncio.run(broker.aexchange_token(cast.subject, resource=cast.target))
    assert _claims(again.access_token)["jti"] != claims["jti"]  # not cached: each call is an exchange
    with pytest.raises(TokenError) as refused:
        broker.exchange_token(cast.subject, resource=cast.broker_api)
    assert refused.value.error == "invalid_target" and not refused.value.retryable
    caller = ClientCredentials(server.issuer, client_id=cast.caller[0], client_secret=cast.caller[1])
    with pytest.raises(TokenError) as unauthorized:
        caller.exchange_token(cast.subject, resource=cast.target)
    assert unauthorized.value.error == "unauthorized_client"


# -- federated subject tokens (a trusted issuer's workload identity) -----------------------------------------
def test_a_federated_subject_token_stands_for_its_bound_client(start_server: Callable[..., LiveServer],
                                                                json_documents: Any) -> None:
    from tests.integration.test_workload_identity import SA, Issuer

    from warden.core.client_metadata import parse_client_metadata
    from warden.protocol.token_exchange import JWT_TOKEN_TYPE

    platform = Issuer(json_documents)
    server = start_server("sqlite", dev_mode=True,
                          trusted_issuers=[{"issuer": platform.url, "audience": "warden", "max_token_lifetime": "2h"}])
    cast = _cast(server)
    from warden.services.admin import GrantSpec

    bound, _ = server.admin.create_client("workload", [GrantSpec(cast.target, ("read", "write"))],
                                          auth_method="private_key_jwt", metadata=parse_client_metadata(
                                              {"federated": [{"issuer": platform.url, "subject": SA, "claims": {
                                                  "kubernetes.io/namespace": "payments"}}]}))
    workload = bound.client_id
    server.wait_for_client(workload)

    def exchange(token: str, **data: str) -> httpx.Response:
        return cast.exchange(token, subject_token_type=JWT_TOKEN_TYPE, resource=cast.target, **data)

    response = exchange(platform.kubernetes())
    assert response.status_code == 200, response.text
    claims = _claims(response.json()["access_token"])
    assert claims["sub"] == workload and claims["client_id"] == cast.broker[0]
    assert claims["act"] == {"sub": cast.broker[0]}
    assert response.json()["scope"] == "read write"  # granted to the broker and to the workload at the target
    token = platform.kubernetes()
    assert exchange(token).status_code == exchange(token).status_code == 200  # not single use: it authenticates nobody
    for refused in (platform.kubernetes(sub="system:serviceaccount:other:app"),  # bound to no client
                    platform.kubernetes(namespace="other"),  # a required claim differs
                    platform.kubernetes(aud=("someone-else",)),  # not meant for this server
                    platform.kubernetes(iat=int(time.time()) - 7200, nbf=int(time.time()) - 7200,
                                        exp=int(time.time()) - 3600)):  # expired
        response = exchange(refused)
        assert response.status_code == 400 and _error(response) == "invalid_grant"
    assert _denied(server)[-1] == "subject_token_expired"
    server.admin.update_client(workload, enabled=False)
    server.sync()
    response = exchange(platform.kubernetes())
    assert response.status_code == 400 and _error(response) == "invalid_grant"
    assert _denied(server)[-1] == "subject_token_revoked"
    event = next(e for e in server.audit_events() if e["event"] == "token.exchanged")
    assert event["subject"] == workload and event["subject_issuer"] == platform.url


def test_an_exchanged_token_can_be_dpop_bound_to_the_requesters_key(sqlite_server: LiveServer) -> None:
    from warden.client import ClientCredentials, DPoPKey

    cast = _cast(sqlite_server)
    key = DPoPKey.generate()
    broker = ClientCredentials(sqlite_server.issuer, client_id=cast.broker[0], client_secret=cast.broker[1],
                               dpop_key=key)
    token = broker.exchange_token(cast.subject, resource=cast.target, scope="read")
    assert token.token_type == "DPoP"
    assert _claims(token.access_token)["cnf"] == {"jkt": key.thumbprint}


def test_a_subject_token_of_another_tenant_is_invalid_grant(sqlite_server: LiveServer) -> None:
    cast = _cast(sqlite_server)
    other = sqlite_server.client({cast.broker_api: "read"}, name="tenant caller", tenant="acme")
    subject = sqlite_server.token(*other, resource=cast.broker_api).json()["access_token"]
    response = cast.exchange(subject, resource=cast.target)
    assert response.status_code == 400 and _error(response) == "invalid_grant"
    assert _denied(sqlite_server) == ["subject_token_tenant"]
