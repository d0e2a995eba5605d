"""The CLI's remote mode: `AdminOperations` over a server's admin API (`<server>/admin/v1`).

Chosen by `--server URL` or `WARDEN_SERVER` (the server's issuer URL). The admin client's
credentials: `WARDEN_CLIENT_ID`, and `WARDEN_CLIENT_SECRET` or `--client-secret-file`, or
`--private-key-file` (private_key_jwt, with `--private-key-alg` and `--key-id` as needed, the
names of the agent's settings). `warden.client.ClientCredentials` fetches the token (audience
`<server>/admin/v1` alone, as the admin API requires) and keeps it for the command's
requests. Nothing is read from or written to a data directory. RFC 9457 problem details
come back as the `warden.errors` the local mode raises, so exit codes match: 400 is a
ConfigError (exit 2), 404 NotFound, 409 Conflict, 503 StorageUnavailable, the rest WardenError
(exit 1); each is one line, and the secret never appears in it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Self
from urllib.parse import quote, urlsplit

import httpx

from warden.errors import ConfigError, Conflict, NotFound, StorageUnavailable, WardenError
from warden.services.admin import GrantSpec
from warden.services.operations import KEEP, View, _Keep

__all__ = ["CLIENT_ID_ENV", "SERVER_ENV", "RemoteOperations", "remote_server"]

SERVER_ENV = "WARDEN_SERVER"
CLIENT_ID_ENV = "WARDEN_CLIENT_ID"
_PAGE = 500  # the admin API's largest page


def remote_server(flag: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """The server URL from `--server` or WARDEN_SERVER, or None for local mode."""
    environ = os.environ if environ is None else environ
    url = flag if flag is not None else environ.get(SERVER_ENV) or None
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"--server {url!r}: expected the server's URL, such as https://warden.example.com")
    return url.rstrip("/")


class RemoteOperations:
    """`services.operations.AdminOperations` over HTTP. Use as a context manager (it owns an httpx client)."""

    def __init__(self, server: str, *, client_secret_file: str | None = None, private_key_file: str | None = None,
                 private_key_alg: str | None = None, key_id: str | None = None,
                 environ: Mapping[str, str] | None = None, transport: httpx.BaseTransport | None = None) -> None:
        from warden.client import ClientCredentials, RetryPolicy, SigningKey

        environ = os.environ if environ is None else environ
        client_id = environ.get(CLIENT_ID_ENV)
        if not client_id:
            raise ConfigError(f"remote mode needs the admin client's id in {CLIENT_ID_ENV}")
        if client_secret_file and private_key_file:
            raise ConfigError("give --client-secret-file or --private-key-file, not both")
        if (private_key_alg or key_id) and not private_key_file:
            raise ConfigError("--private-key-alg and --key-id go with --private-key-file")
        if not client_secret_file and not private_key_file and not environ.get("WARDEN_CLIENT_SECRET"):
            raise ConfigError("remote mode needs WARDEN_CLIENT_SECRET, --client-secret-file or --private-key-file")
        self._server = server
        self._base = f"{server}/admin/v1"
        key = SigningKey.from_pem_file(private_key_file, private_key_alg, key_id) if private_key_file else None
        self._http = httpx.Client(timeout=30.0, transport=transport)
        self._credentials = ClientCredentials(
            issuer=server, client_id=client_id, client_secret_file=client_secret_file, private_key=key,
            audience=self._base, retry=RetryPolicy(max_attempts=2, deadline=15.0), http_client=self._http,
            environ=environ)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    # plumbing ---------------------------------------------------------------------------
    def _call(self, method: str, path: str, *, body: Mapping[str, Any] | None = None,
              params: Mapping[str, str | int] | None = None) -> Any:
        from warden.client import TokenError

        try:
            response = self._http.request(method, f"{self._base}{path}", json=body, params=params,
                                          auth=self._credentials)
        except TokenError as exc:
            raise WardenError(f"cannot get an admin token from {self._server}: {exc}") from None
        except httpx.HTTPError as exc:
            raise StorageUnavailable(f"cannot reach {self._server}: {_reason(exc)}") from None
        if response.status_code >= 400:
            raise _problem(response, self._server)
        if response.status_code == 204:
            return None
        try:
            return response.json()
        except ValueError:
            raise WardenError(f"{self._server} answered {response.status_code} with a body that is not JSON") from None

    def _all(self, path: str) -> list[View]:
        items: list[View] = []
        params: dict[str, str | int] = {"limit": _PAGE}
        while True:
            page = self._call("GET", path, params=params)
            items += page["items"]
            if not page.get("next_cursor"):
                return items
            params["cursor"] = page["next_cursor"]

    # APIs -------------------------------------------------------------------------------
    def get_api(self, identifier: str) -> View:
        return dict(self._call("GET", f"/apis/{_segment(identifier)}"))

    def create_api(self, identifier: str, scopes: Sequence[str], *, ttl: int, alg: str, name: str,
                   dpop_required: bool, cert_bound: bool, tenant: str | None = None) -> View:
        body = {"identifier": identifier, **_api_body(scopes, ttl, alg, name, dpop_required, cert_bound)}
        if tenant is not None:  # absent: shared, or the calling tenant admin's own
            body["tenant"] = tenant
        return dict(self._call("POST", "/apis", body=body))

    def save_api(self, identifier: str, scopes: Sequence[str], *, ttl: int, alg: str, name: str,
                 dpop_required: bool, cert_bound: bool, tenant: str | None) -> View:
        return dict(self._call("PUT", f"/apis/{_segment(identifier)}",
                               body=_api_body(scopes, ttl, alg, name, dpop_required, cert_bound) | {"tenant": tenant}))

    def list_apis(self) -> list[View]:
        return self._all("/apis")

    def delete_api(self, identifier: str) -> None:
        self._call("DELETE", f"/apis/{_segment(identifier)}")

    # clients ----------------------------------------------------------------------------
    def create_client(self, name: str, grants: Sequence[GrantSpec], *, auth_method: str, tenant: str | None,
                      client_id: str | None, rate_limit: float | None, metadata: Mapping[str, Any],
                      allowed_ips: Sequence[str] | None = None, max_token_lifetime: int | None = None) -> View:
        body: dict[str, Any] = {"name": name, "grants": [{"api": g.api, "scopes": list(g.scopes)} for g in grants],
                                "auth_method": auth_method, "rate_limit": rate_limit}
        if tenant is not None:  # absent: no tenant, or the calling tenant admin's own
            body["tenant"] = tenant
        if client_id is not None:
            body["client_id"] = client_id
        if metadata:
            body["metadata"] = dict(metadata)
        if allowed_ips is not None:
            body["allowed_ips"] = list(allowed_ips)
        if max_token_lifetime is not None:
            body["max_token_lifetime"] = max_token_lifetime
        return dict(self._call("POST", "/clients", body=body))

    def update_client(self, client_id: str, *, name: str | None = None, token_exchange: bool | None = None,
                      allowed_ips: Sequence[str] | None = None, max_token_lifetime: int | _Keep | None = KEEP) -> View:
        body: dict[str, Any] = {}
        if name is not None:
            body["name"] = name
        if allowed_ips is not None:
            body["allowed_ips"] = list(allowed_ips)
        if not isinstance(max_token_lifetime, _Keep):
            body["max_token_lifetime"] = max_token_lifetime
        if token_exchange is not None:  # PATCH replaces metadata whole: send what is there, changed
            metadata = dict(self.get_client(client_id).get("metadata") or {})
            metadata.pop("pending_approval", None)  # server-owned
            if token_exchange:
                metadata["token_exchange"] = True
            else:
                metadata.pop("token_exchange", None)
            body["metadata"] = metadata
        if not body:
            return self.get_client(client_id) | {"changed": False}
        return dict(self._call("PATCH", f"/clients/{_segment(client_id)}", body=body))

    def approve_client(self, client_id: str) -> bool:
        return bool(self._call("POST", f"/clients/{_segment(client_id)}/approve")["changed"])

    # dynamic registration ---------------------------------------------------------------
    def create_registration_token(self, grants: Sequence[GrantSpec], *, max_uses: int | None, ttl: int | None,
                                  tenant: str | None, approval: bool) -> View:
        body: dict[str, Any] = {"grants": [{"api": g.api, "scopes": list(g.scopes)} for g in grants],
                                "approval": approval}
        if max_uses is not None:
            body["max_uses"] = max_uses
        if ttl is not None:
            body["ttl"] = ttl
        if tenant is not None:
            body["tenant"] = tenant
        return dict(self._call("POST", "/registration-tokens", body=body))

    def list_registration_tokens(self) -> list[View]:
        return self._all("/registration-tokens")

    def revoke_registration_token(self, token_id: str) -> None:
        self._call("DELETE", f"/registration-tokens/{_segment(token_id)}")

    def get_client(self, client_id: str) -> View:
        return dict(self._call("GET", f"/clients/{_segment(client_id)}"))

    def list_clients(self) -> list[View]:
        return self._all("/clients")

    def set_client_enabled(self, client_id: str, enabled: bool) -> bool:
        return bool(self._call("PATCH", f"/clients/{_segment(client_id)}", body={"enabled": enabled})["changed"])

    def delete_client(self, client_id: str) -> None:
        self._call("DELETE", f"/clients/{_segment(client_id)}")

    # secrets ----------------------------------------------------------------------------
    def rotate_secret(self, client_id: str, grace: int) -> View:
        return dict(self._call("POST", f"/clients/{_segment(client_id)}/secrets", body={"grace": grace}))

    def list_secrets(self, client_id: str) -> list[View]:
        return self._all(f"/clients/{_segment(client_id)}/secrets")

    def revoke_secret(self, client_id: str, secret_id: str) -> None:
        self._call("DELETE", f"/clients/{_segment(client_id)}/secrets/{_segment(secret_id)}")

    # keys and tokens --------------------------------------------------------------------
    def list_keys(self) -> list[View]:
        return self._all("/keys")

    def rotate_keys(self, algs: Sequence[str] | None) -> list[str]:
        return list(self._call("POST", "/keys/rotate", body={"algs": list(algs)} if algs else {})["activated"])

    def revoke_jti(self, jti: str) -> None:
        self._call("POST", "/tokens/revoke", body={"jti": jti})

    def revoke_client_tokens(self, client_id: str) -> str | None:
        answer = self._call("POST", "/tokens/revoke", body={"client_id": client_id})
        return answer.get("revoked_before")  # type: ignore[no-any-return]

    # apply and export -------------------------------------------------------------------
    def apply(self, document: Mapping[str, Any], *, prune: bool, dry_run: bool,
              secrets: Mapping[str, str] | None) -> View:
        body: dict[str, Any] = {"document": dict(document), "prune": prune, "dry_run": dry_run}
        if secrets:
            body["secrets"] = dict(secrets)
        return dict(self._call("POST", "/apply", body=body))

    def export(self) -> dict[str, list[View]]:
        document = self._call("GET", "/export")
        return {"apis": list(document["apis"]), "clients": list(document["clients"])}

    # console ----------------------------------------------------------------------------
    def console_login_url(self, *, issuer: str | None, read_only: bool) -> View:
        if issuer is not None:
            raise ConfigError("--issuer is for local mode; a server signs its console in at its own URL")
        return dict(self._call("POST", "/console/login-urls", body={"read_only": read_only} if read_only else None))


def _api_body(scopes: Sequence[str], ttl: int, alg: str, name: str, dpop_required: bool,
              cert_bound: bool) -> dict[str, Any]:
    return {"scopes": list(scopes), "ttl": ttl, "alg": alg, "name": name, "dpop_required": dpop_required,
            "cert_bound": cert_bound}


def _segment(value: str) -> str:
    return quote(value, safe="")


def _reason(exc: httpx.HTTPError) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text and text[0] else type(exc).__name__


def _problem(response: httpx.Response, server: str) -> WardenError:
    """An RFC 9457 answer as the error local mode raises for the same refusal."""
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    detail = " ".join(str(detail).split())[:300] if detail else None  # one line, whatever the server sent
    status = response.status_code
    message = detail or f"{server} answered HTTP {status}"
    if status == 400:
        return ConfigError(message)
    if status == 404:
        return NotFound(message)
    if status == 409:
        return Conflict(message)
    if status == 413:
        return ConfigError(f"the request is larger than {server} accepts (its setting limits.max_body_bytes)")
    if status == 503:
        return StorageUnavailable(message)
    if status in (401, 403):
        return WardenError(f"{server} refused the admin client: {message}")
    return WardenError(message if detail else f"{server} answered HTTP {status}")

