"""Fault F01: the database goes away. Infrastructure errors are never reported as auth errors."""

from __future__ import annotations

from typing import Any

from tests.integration.conftest import LiveServer, wait_until

from warden.errors import StorageUnavailable
from warden.storage.contract import Store


class FlakyStore:
    """Delegates to a real store, or raises StorageUnavailable while `down` is set."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.down = False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr) or name == "close":
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                raise StorageUnavailable("database unreachable (injected)")
            return attr(*args, **kwargs)

        return call


def test_outage_serves_from_cache_then_answers_503_not_invalid_client(start_server):
    stores: list[FlakyStore] = []

    def wrap(inner: Store) -> Store:
        stores.append(FlakyStore(inner))
        return stores[-1]  # type: ignore[return-value]

    server: LiveServer = start_server("sqlite", wrap_store=wrap)
    api = server.api("read")
    cid, secret = server.client({api: "read"})
    stores[0].down = True
    # within the staleness budget: cached registry keeps issuing
    assert server.token(cid, secret).status_code == 200
    server.app.runtime.max_staleness = 0.3  # settings registry_max_staleness / registry_ready_staleness
    server.app.runtime.ready_staleness = 0.2
    assert wait_until(lambda: server.http.get(f"{server.url}/readyz").status_code == 503)
    assert wait_until(lambda: server.token(cid, secret).status_code == 503)
    resp = server.token(cid, secret)
    assert resp.status_code == 503, resp.text
    assert resp.json()["error"] == "temporarily_unavailable" and int(resp.headers["retry-after"]) >= 1
    assert server.token(cid, "wrong").status_code == 503  # no auth verdict without a fresh registry
    stores[0].down = False
    assert wait_until(lambda: server.token(cid, secret).status_code == 200)
    assert server.http.get(f"{server.url}/readyz").status_code == 200


def test_server_starts_without_database_answers_503_and_recovers(start_server):
    opened: list[FlakyStore] = []

    def wrap(inner: Store) -> Store:
        store = FlakyStore(inner)
        store.down = not opened  # the first store the server opens is unreachable
        opened.append(store)
        return store  # type: ignore[return-value]

    server: LiveServer = start_server("sqlite", wrap_store=wrap, wait_ready=False)
    assert server.http.get(f"{server.url}/healthz").status_code == 200  # alive, not ready
    assert server.http.get(f"{server.url}/readyz").status_code in (200, 503)
    api = server.api("read")
    cid, secret = server.client_when_ready({api: "read"})
    assert server.token(cid, secret).status_code == 200
    assert len(opened) >= 2  # it retried with a fresh store


def test_token_requests_before_the_store_is_reached_get_503(start_server):
    def wrap(inner: Store) -> Store:
        store = FlakyStore(inner)
        store.down = True
        return store  # type: ignore[return-value]

    server: LiveServer = start_server("sqlite", wrap_store=wrap, wait_ready=False)
    resp = server.http.post(f"{server.url}/oauth2/token", data={"grant_type": "client_credentials"},
                            auth=("someone", "secret"))
    assert resp.status_code == 503 and resp.json()["error"] == "temporarily_unavailable"
    assert server.http.get(f"{server.url}/readyz").status_code == 503
    assert server.http.get(f"{server.url}/.well-known/oauth-authorization-server").status_code == 503


def test_replay_store_down_fails_closed_for_assertions(start_server):
    """Fault F04: when single use cannot be recorded, an assertion is refused with 503, never accepted."""
    import time
    import uuid

    import jwt as pyjwt

    from warden.core.client_metadata import parse_client_metadata
    from warden.jose import generate_private_key, public_jwk
    from warden.services.admin import GrantSpec

    stores: list[FlakyStore] = []

    def wrap(inner: Store) -> Store:
        stores.append(FlakyStore(inner))
        return stores[-1]  # type: ignore[return-value]

    server: LiveServer = start_server("sqlite", wrap_store=wrap)
    key = generate_private_key("ES256")
    api = server.api("read")
    client, _ = server.admin.create_client("signer", [GrantSpec(api, ("read",))], auth_method="private_key_jwt",
                                           metadata=parse_client_metadata({"jwks": {"keys": [public_jwk(key, kid="k")]}}))
    server.wait_for_client(client.client_id)
    now = int(time.time())
    assertion = pyjwt.encode({"iss": client.client_id, "sub": client.client_id, "aud": server.issuer, "exp": now + 60,
                              "jti": uuid.uuid4().hex}, key, algorithm="ES256", headers={"kid": "k"})
    stores[0].down = True
    resp = server.post("/oauth2/token", data={"grant_type": "client_credentials", "client_assertion": assertion,
                                              "client_assertion_type":
                                                  "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"})
    assert resp.status_code == 503 and resp.json()["error"] == "temporarily_unavailable"
    stores[0].down = False
    resp = server.post("/oauth2/token", data={"grant_type": "client_credentials", "client_assertion": assertion,
                                              "client_assertion_type":
                                                  "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"})
    assert resp.status_code == 200  # the refused attempt did not spend the jti
