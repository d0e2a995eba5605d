"""Presenting tokens to resource servers, and the httpx adapters (RFC 6750 §2.1, §3.1; RFC 9449 §7, §9).

`ResourceAuth` holds what every adapter shares: the `Authorization` header (and
a DPoP proof bound to the method, URI and token, with the resource server's
latest nonce), the `allowed_origins` check (T64), and the reading of a 401:
`invalid_token` means fetch a fresh token once and resend; a DPoP
`use_dpop_nonce` with a new `DPoP-Nonce` means resend once with that nonce.
Concurrent requests rejected for the same token cause one refetch, because only
the rejected token is dropped from the cache.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncGenerator, Generator, Iterable
from dataclasses import dataclass
from typing import Literal, Protocol
from urllib.parse import urlsplit

import httpx

from warden.client._access_token import AccessToken
from warden.client._challenge import has_error, parse_challenges
from warden.client._dpop import DPoPKey
from warden.client._errors import ORIGIN_NOT_ALLOWED, TokenError
from warden.client._request import CacheKey

__all__ = [
    "BoundAuth",
    "FetchToken",
    "KeyedTokens",
    "ResourceAuth",
    "RetryAction",
    "async_auth_flow",
    "auth_steps",
    "origin_of",
    "sync_auth_flow",
]

RetryAction = Literal["token", "nonce"]
_MAX_NONCES = 64
_MAX_NONCE_CHARS = 512


def origin_of(url: str) -> str:
    """`scheme://host:port` with the default port filled in, lower-cased."""
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme, 0)
    return f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}:{port}"


class ResourceAuth:
    """How a client's tokens are presented to resource servers; shared by all adapters."""

    def __init__(self, *, dpop_key: DPoPKey | None, allowed_origins: Iterable[str] | None) -> None:
        self._dpop_key = dpop_key
        self._allowed = None if allowed_origins is None else frozenset(origin_of(o) for o in allowed_origins)
        self._nonces: dict[str, str] = {}
        self._lock = threading.Lock()

    def check_origin(self, url: str) -> None:
        """Raise TokenError(`origin_not_allowed`) if `allowed_origins` is set and excludes `url` (T64)."""
        if self._allowed is not None and origin_of(url) not in self._allowed:
            raise TokenError(ORIGIN_NOT_ALLOWED, "the request's origin is not in allowed_origins")

    def headers(self, method: str, url: str, token: AccessToken) -> dict[str, str]:
        """The headers that present `token` (RFC 6750 §2.1; RFC 9449 §7.1 with a proof)."""
        headers = {"Authorization": token.authorization}
        if token.token_type == "DPoP" and self._dpop_key is not None:
            with self._lock:
                nonce = self._nonces.get(origin_of(url))
            headers["DPoP"] = self._dpop_key.proof(method, url, nonce=nonce, access_token=token.access_token)
        return headers

    def retry_action(
        self,
        url: str,
        status: int,
        www_authenticate: list[str],
        dpop_nonce: str | None,
        token: AccessToken,
        done: set[str],
    ) -> RetryAction | None:
        """Refetch the token, resend with a nonce, or nothing; each at most once per request (`done`)."""
        previous = None
        if dpop_nonce and self._dpop_key is not None and len(dpop_nonce) <= _MAX_NONCE_CHARS:
            with self._lock:  # RFC 9449 §9: the RS may supply a new nonce with any answer
                if len(self._nonces) >= _MAX_NONCES:
                    self._nonces.clear()
                previous = self._nonces.get(origin_of(url))
                self._nonces[origin_of(url)] = dpop_nonce
        if status != 401:
            return None
        challenges = parse_challenges(www_authenticate)
        if (
            token.token_type == "DPoP"
            and "nonce" not in done
            and dpop_nonce
            and dpop_nonce != previous
            and has_error(challenges, "use_dpop_nonce", ("dpop",))
        ):
            done.add("nonce")
            return "nonce"
        if "token" not in done and has_error(challenges, "invalid_token"):
            done.add("token")
            return "token"
        return None


class KeyedTokens(Protocol):
    """What the adapters need from a token source: a token for a cache key, and dropping one that a
    resource server refused. `ClientCredentials` provides one; the adapters depend on nothing else."""

    def get(self, key: CacheKey) -> AccessToken: ...

    async def aget(self, key: CacheKey) -> AccessToken: ...

    def discard(self, key: CacheKey, token: AccessToken) -> None: ...


@dataclass(frozen=True, slots=True)
class FetchToken:
    """An auth-flow step: the driver drops `refused` (if any), fetches a token and sends it in."""

    refused: AccessToken | None = None


Step = httpx.Request | FetchToken
StepReply = httpx.Response | AccessToken | None


def auth_steps(presenter: ResourceAuth, request: httpx.Request) -> Generator[Step, StepReply, None]:
    """The auth flow without I/O: yields `FetchToken` when it needs a token and the request when it is
    ready to send, and is sent the token or the response. The sync and async drivers differ only in
    how they fetch a token, as httpx derives both of its auth flows from one generator."""
    url = str(request.url)
    presenter.check_origin(url)
    token = yield FetchToken()
    done: set[str] = set()
    while True:
        assert isinstance(token, AccessToken)
        request.headers.update(presenter.headers(request.method, url, token))
        response = yield request
        assert isinstance(response, httpx.Response)
        action = presenter.retry_action(
            url,
            response.status_code,
            response.headers.get_list("www-authenticate"),
            response.headers.get("dpop-nonce"),
            token,
            done,
        )
        if action is None:
            return
        if action == "token":
            token = yield FetchToken(refused=token)


def _advance(steps: Generator[Step, StepReply, None], reply: StepReply) -> Step | None:
    try:
        return steps.send(reply)
    except StopIteration:
        return None


def _fetch(tokens: KeyedTokens, key: CacheKey, step: FetchToken) -> AccessToken:
    if step.refused is not None:
        tokens.discard(key, step.refused)
    return tokens.get(key)


async def _afetch(tokens: KeyedTokens, key: CacheKey, step: FetchToken) -> AccessToken:
    if step.refused is not None:
        tokens.discard(key, step.refused)
    return await tokens.aget(key)


def sync_auth_flow(
    tokens: KeyedTokens, presenter: ResourceAuth, key: CacheKey, request: httpx.Request
) -> Generator[httpx.Request, httpx.Response, None]:
    """The httpx sync auth flow for one cache key."""
    steps, reply = auth_steps(presenter, request), None
    while (step := _advance(steps, reply)) is not None:
        reply = (yield step) if isinstance(step, httpx.Request) else _fetch(tokens, key, step)


async def async_auth_flow(
    tokens: KeyedTokens, presenter: ResourceAuth, key: CacheKey, request: httpx.Request
) -> AsyncGenerator[httpx.Request, httpx.Response]:
    """The httpx async auth flow for one cache key: the same steps, fetching tokens without blocking."""
    steps, reply = auth_steps(presenter, request), None
    while (step := _advance(steps, reply)) is not None:
        reply = (yield step) if isinstance(step, httpx.Request) else await _afetch(tokens, key, step)


class BoundAuth(httpx.Auth):
    """`httpx.Auth` for one cache key of a token source."""

    def __init__(self, tokens: KeyedTokens, presenter: ResourceAuth, key: CacheKey, owner: str) -> None:
        self._tokens = tokens
        self._presenter = presenter
        self._key = key
        self._owner = owner

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        return sync_auth_flow(self._tokens, self._presenter, self._key, request)

    def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        return async_auth_flow(self._tokens, self._presenter, self._key, request)

    def __repr__(self) -> str:
        audience, scopes = self._key
        scope = " ".join(sorted(scopes))
        return f"<httpx auth for {self._owner}, audience={audience!r}, scope={scope!r}>"
