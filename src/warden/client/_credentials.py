"""`ClientCredentials`: the token source for the OAuth 2.0 client credentials grant (RFC 6749 §4.4).

It finds the token endpoint (configured, or by RFC 8414 discovery with issuer
pinning), authenticates the client by one of the registered methods, requests
tokens for an audience (RFC 8707 `resource`) and a scope set, and caches them
per (audience, scope set) with single flight, refresh ahead with jitter, and
capped backoff (see `_flow` and `_cache`). It is also an `httpx.Auth` (sync and
async), and `requests_auth()` adapts it to `requests`; both add the token
(RFC 6750 §2.1, or RFC 9449 §7.1 with a DPoP proof) and, on a 401 whose
challenge says `invalid_token` (RFC 6750 §3.1), fetch a fresh token once and
retry. Secrets come from an argument, a file or `WARDEN_CLIENT_SECRET`, and no
object of this package shows them in `repr` (T65).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random as _random
import ssl
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Iterable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx

from warden._drive import arun, run
from warden.client._access_token import AccessToken
from warden.client._cache import CacheEntry, TokenCache, TokenStats
from warden.client._client_auth import CLIENT_AUTH_METHODS, AuthMethod, ClientAuthentication
from warden.client._discovery import EndpointResolver
from warden.client._dpop import DPoPKey
from warden.client._flow import (
    Clock,
    MonotonicClock,
    RefreshPolicy,
    RetryPolicy,
    Token,
    TokenFlow,
    exchange_flow,
)
from warden.client._keys import SigningKey
from warden.client._messages import Reply, Send, Step
from warden.client._request import ACCESS_TOKEN_TYPE, CacheKey, TokenRequestFactory
from warden.client._resource_auth import BoundAuth, ResourceAuth, async_auth_flow, sync_auth_flow
from warden.client._response import TokenResponse
from warden.client._transport import HTTPXTransport
from warden.core.scope import is_scope_token, parse_scope
from warden.core.urls import url_problem
from warden.errors import ConfigError
from warden.secret import SECRET_ENV_VAR, Secret

if TYPE_CHECKING:
    from warden.client.metrics import ClientMetrics

if TYPE_CHECKING:  # requests is optional: imported only inside requests_auth()
    from requests.auth import AuthBase

__all__ = ["CachedTokens", "ClientCredentials"]

logger = logging.getLogger("warden.client")


def _scopes(scope: str | Iterable[str] | None, what: str) -> tuple[str, ...]:
    if scope is None:
        return ()
    if isinstance(scope, str):
        if not scope.strip():
            return ()
        try:
            return parse_scope(scope.strip())
        except ValueError:
            raise ConfigError(
                f"{what}: malformed scope (space-separated scope tokens, RFC 6749 §3.3)"
            ) from None
    tokens = tuple(dict.fromkeys(scope))
    if not all(isinstance(t, str) and is_scope_token(t) for t in tokens):
        raise ConfigError(f"{what}: malformed scope token (RFC 6749 §3.3)")
    return tokens


class CachedTokens:
    """The token cache seen as `AccessToken`s per cache key: what the auth adapters consume."""

    def __init__(self, cache: TokenCache, clock: Clock) -> None:
        self._cache = cache
        self._clock = clock

    def access_token(self, key: CacheKey, token: Token) -> AccessToken:
        now = self._clock.now()
        refresh_in = self._cache.next_attempt_in(key)
        return AccessToken(
            token.access_token,
            token.token_type,
            max(token.expires_at - now, 0.0),
            refresh_in if refresh_in is not None else 0.0,
            token.scope,
            key[0],
        )

    def get(self, key: CacheKey) -> AccessToken:
        return self.access_token(key, self._cache.get(key))

    async def aget(self, key: CacheKey) -> AccessToken:
        return self.access_token(key, await self._cache.aget(key))

    def discard(self, key: CacheKey, token: AccessToken) -> None:
        logger.info("resource server answered invalid_token; fetching a fresh token once")
        self._cache.invalidate(key, token.access_token)


class ClientCredentials(httpx.Auth):
    """Fetches, caches and renews access tokens with the client credentials grant.

    Args:
        issuer: the authorization server's issuer identifier; its RFC 8414 metadata gives the
            token endpoint, and it is the audience of `private_key_jwt` assertions (T61).
        client_id: the client identifier (RFC 6749 §2.2).
        client_secret: the secret, as a string or `Secret`.
        client_secret_file: a file holding the secret (for mounted secrets). When neither is given
            and no key is, the secret is read from the `WARDEN_CLIENT_SECRET` environment variable.
        private_key: a `SigningKey` for `private_key_jwt` (RFC 7523).
        client_assertion: a workload identity instead of a key: a callable returning a token the
            platform issued (a Kubernetes service-account token, a GitHub Actions or GitLab CI
            OIDC token), sent as the RFC 7523 client assertion. It is called for every token
            request, so a rotated token file or a single-use token is read afresh.
        auth_method: a registered client authentication method; by default `client_secret_basic`
            with a secret and `private_key_jwt` with a key. `tls_client_auth` and
            `self_signed_tls_client_auth` (RFC 8705) need `ssl_context` with a client certificate.
        token_endpoint: the token endpoint URL, which skips discovery.
        audience: the default audience, sent as the RFC 8707 `resource` parameter.
        scope: the default scope, a space-separated string or an iterable of scope tokens.
        dpop_key: a `DPoPKey` to obtain and use DPoP-bound tokens (RFC 9449).
        ssl_context: TLS settings (CA bundle, client certificate); it must verify the server.
        timeout: seconds for each HTTP request to the authorization server.
        refresh: when tokens are renewed (`RefreshPolicy`).
        retry: backoff and patience on failures (`RetryPolicy`).
        allowed_origins: if given, the auth adapters refuse to send a token to other origins (T64).
        allow_insecure_http: allow plain-HTTP issuer and endpoints on non-loopback hosts.
        http_client, async_http_client: httpx clients to use for the authorization server
            (never closed by this object); by default one is opened per request.
        metrics: a `warden.client.metrics.ClientMetrics`: cache hits and misses, fetch latency,
            renewals, retries and failures by code (needs prometheus-client).
        clock: a monotonic `Clock` for token lifetimes; wall_clock: epoch seconds for JWT `iat`.
        random: a source of floats in [0, 1) for jitter; sleep, async_sleep: how to wait.
        environ: the environment to read `WARDEN_CLIENT_SECRET` from (default `os.environ`).

    Raises:
        ConfigError: when the arguments cannot work together; the message names the argument.
    """

    requires_request_body = False
    requires_response_body = False

    def __init__(
        self,
        issuer: str | None = None,
        *,
        client_id: str,
        client_secret: str | Secret | None = None,
        client_secret_file: str | os.PathLike[str] | None = None,
        private_key: SigningKey | None = None,
        client_assertion: Callable[[], str] | None = None,
        auth_method: AuthMethod | None = None,
        token_endpoint: str | None = None,
        audience: str | None = None,
        scope: str | Iterable[str] | None = None,
        dpop_key: DPoPKey | None = None,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 10.0,
        refresh: RefreshPolicy | None = None,
        retry: RetryPolicy | None = None,
        allowed_origins: Iterable[str] | None = None,
        allow_insecure_http: bool = False,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
        clock: Clock | None = None,
        wall_clock: Callable[[], float] | None = None,
        random: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
        async_sleep: Callable[[float], Awaitable[None]] | None = None,
        environ: Mapping[str, str] | None = None,
        metrics: ClientMetrics | None = None,
    ) -> None:
        if not isinstance(client_id, str) or not client_id or not client_id.isprintable():
            raise ConfigError("client_id must be a non-empty printable string")
        if issuer is None and token_endpoint is None:
            raise ConfigError("give issuer (for discovery) or token_endpoint")
        for name, url in (("issuer", issuer), ("token_endpoint", token_endpoint)):
            if url is not None:
                problem = url_problem(url, allow_insecure_http=allow_insecure_http)
                if problem is None and name == "issuer" and urlsplit(url).query:
                    problem = "must not contain a query (RFC 8414 §2)"
                if problem is not None:
                    raise ConfigError(f"{name} {problem}")
        if audience is not None and (not isinstance(audience, str) or not audience or "#" in audience):
            raise ConfigError("audience must be a non-empty URI without a fragment (RFC 8707 §2)")
        if not (isinstance(timeout, (int, float)) and 0 < timeout <= 300):
            raise ConfigError("timeout must be between 0 and 300 seconds")

        if client_assertion is not None and private_key is not None:
            raise ConfigError("give private_key or client_assertion, not both")
        if client_assertion is not None and not callable(client_assertion):
            raise ConfigError("client_assertion must be a callable returning the platform's token")
        has_key = private_key is not None or client_assertion is not None
        secret = self._resolve_secret(client_secret, client_secret_file, has_key, auth_method, environ)
        method = auth_method or (
            "private_key_jwt" if has_key and secret is None else "client_secret_basic"
        )
        spec = CLIENT_AUTH_METHODS.get(method)
        if spec is None:
            raise ConfigError(f"auth_method {method!r} is not one of {', '.join(CLIENT_AUTH_METHODS)}")
        if spec.needs == "secret" and secret is None:
            raise ConfigError(
                f"auth_method {method} needs client_secret, client_secret_file or {SECRET_ENV_VAR}"
            )
        if spec.needs == "private_key" and client_assertion is None and (private_key is None or issuer is None):
            raise ConfigError(
                "auth_method private_key_jwt needs private_key and issuer (the assertion audience), "
                "or client_assertion"
            )
        if client_assertion is not None and spec.needs != "private_key":
            raise ConfigError(f"client_assertion is sent with private_key_jwt, not {method}")
        if spec.needs == "tls" and ssl_context is None:
            raise ConfigError(f"auth_method {method} needs ssl_context with a client certificate")

        self.client_id = client_id
        self.issuer = issuer
        self.audience = audience
        self.scope: tuple[str, ...] = _scopes(scope, "scope")
        self.auth_method: AuthMethod = method
        self.dpop_key = dpop_key
        self._clock = clock or MonotonicClock()
        self._refresh = refresh or RefreshPolicy()
        self._retry = retry or RetryPolicy()
        self._random = random or _random.Random().random
        auth = ClientAuthentication(client_id, method, secret=secret, signing_key=private_key, issuer=issuer,
                                    assertion=client_assertion)
        self._requests = TokenRequestFactory(auth, dpop_key=dpop_key, wall_clock=wall_clock or time.time)
        self._endpoint = EndpointResolver(
            issuer=issuer,
            token_endpoint=token_endpoint,
            prefer_mtls=spec.uses_mtls,
            allow_insecure_http=allow_insecure_http,
        )
        transport = HTTPXTransport(
            timeout=float(timeout),
            ssl_context=ssl_context,
            client=http_client,
            async_client=async_http_client,
        )
        self._transport = transport  # also for token exchange, which the cache does not hold
        self._cache = TokenCache(
            self._new_flow,
            clock=self._clock,
            transport=transport,
            sleep=sleep or time.sleep,
            async_sleep=async_sleep or asyncio.sleep,
            metrics=metrics,
        )
        self._metrics = metrics
        self._resource = ResourceAuth(dpop_key=dpop_key, allowed_origins=allowed_origins)
        self._tokens = CachedTokens(self._cache, self._clock)

    @staticmethod
    def _resolve_secret(
        client_secret: str | Secret | None,
        client_secret_file: str | os.PathLike[str] | None,
        has_key: bool,
        auth_method: AuthMethod | None,
        environ: Mapping[str, str] | None,
    ) -> Secret | None:
        if client_secret is not None and client_secret_file is not None:
            raise ConfigError("give client_secret or client_secret_file, not both")
        if client_secret is not None:
            return client_secret if isinstance(client_secret, Secret) else Secret(client_secret)
        if client_secret_file is not None:
            return Secret.from_file(client_secret_file)
        spec = CLIENT_AUTH_METHODS.get(auth_method) if auth_method else None
        if not has_key and (spec is None or spec.needs == "secret"):
            return Secret.from_env(SECRET_ENV_VAR, environ)
        return None

    def _new_flow(self, key: CacheKey) -> TokenFlow:
        return TokenFlow(
            key,
            requests=self._requests,
            endpoint=self._endpoint,
            clock=self._clock,
            random=self._random,
            refresh=self._refresh,
            retry=self._retry,
            metrics=self._metrics,
        )

    # -- the token source --------------------------------------------------------------------

    def cache_key(self, audience: str | None = None, scope: str | Iterable[str] | None = None) -> CacheKey:
        """The cache key for a request: defaults filled in, scope as a set."""
        scopes = self.scope if scope is None else _scopes(scope, "scope")
        return (self.audience if audience is None else audience, frozenset(scopes))

    def get_access_token(
        self, audience: str | None = None, scope: str | Iterable[str] | None = None
    ) -> AccessToken:
        """Return a valid token for `audience` and `scope` (default: the constructor's), cached if possible.

        Raises:
            TokenError: no valid token could be obtained; `retryable` tells whether waiting may help.
            ConfigError: `scope` is malformed.
        """
        return self._tokens.get(self.cache_key(audience, scope))

    async def aget_access_token(
        self, audience: str | None = None, scope: str | Iterable[str] | None = None
    ) -> AccessToken:
        """Async twin of `get_access_token`."""
        return await self._tokens.aget(self.cache_key(audience, scope))

    def get_token(self, audience: str | None = None, scope: str | Iterable[str] | None = None) -> str:
        """Return the access token string; see `get_access_token`."""
        return self.get_access_token(audience, scope).access_token

    async def aget_token(self, audience: str | None = None, scope: str | Iterable[str] | None = None) -> str:
        """Async twin of `get_token`."""
        return (await self.aget_access_token(audience, scope)).access_token

    def exchange_token(self, subject_token: str, *, resource: str | None = None,
                       scope: str | Iterable[str] | None = None,
                       subject_token_type: str = ACCESS_TOKEN_TYPE) -> AccessToken:
        """Exchange `subject_token` (a token this client received) for a token to `resource` (RFC 8693).

        The answer keeps the subject token's `sub` and names this client as the actor; the server must
        allow this client to exchange. Each call asks the server (exchanged tokens are not cached).
        `resource` and `scope` default to the constructor's; `scope` can only narrow the subject's.
        The answer's `refresh_in` equals its `expires_in`: nothing renews it.

        Raises:
            TokenError: the server refused (`invalid_grant`: the subject token is expired, revoked or
                not the server's; `invalid_target`, `invalid_scope`, `unauthorized_client`) or could not
                be reached.
            ConfigError: `subject_token` is empty or `scope` is malformed.
        """
        key, flow = self._exchange(subject_token, resource, scope, subject_token_type)
        return self._exchanged(key, run(flow, self._send))

    async def aexchange_token(self, subject_token: str, *, resource: str | None = None,
                              scope: str | Iterable[str] | None = None,
                              subject_token_type: str = ACCESS_TOKEN_TYPE) -> AccessToken:
        """Async twin of `exchange_token`."""
        key, flow = self._exchange(subject_token, resource, scope, subject_token_type)
        return self._exchanged(key, await arun(flow, self._asend))

    def _exchange(self, subject_token: str, resource: str | None, scope: str | Iterable[str] | None,
                  subject_token_type: str) -> tuple[CacheKey, Generator[Step, Reply, TokenResponse]]:
        if not isinstance(subject_token, str) or not subject_token or not subject_token.isprintable():
            raise ConfigError("subject_token must be a non-empty token string")
        key = self.cache_key(resource, scope)
        return key, exchange_flow(self._requests, self._endpoint, subject_token, subject_token_type, key,
                                  self._retry.max_retry_after)

    def _send(self, step: Step) -> Reply:
        assert isinstance(step, Send)  # an exchange never waits: it is not retried
        return self._transport.send(step.request)

    async def _asend(self, step: Step) -> Reply:
        assert isinstance(step, Send)
        return await self._transport.asend(step.request)

    @staticmethod
    def _exchanged(key: CacheKey, parsed: TokenResponse) -> AccessToken:
        expires_in = parsed.expires_in if parsed.expires_in is not None else 0.0
        return AccessToken(parsed.access_token, parsed.token_type, expires_in, expires_in, parsed.scope, key[0])

    def peek_access_token(
        self, audience: str | None = None, scope: str | Iterable[str] | None = None
    ) -> AccessToken | None:
        """The cached token if usable, else None; never does I/O and never starts a renewal."""
        key = self.cache_key(audience, scope)
        token = self._cache.peek(key)
        return None if token is None else self._tokens.access_token(key, token)

    def has_token(self, audience: str | None = None, scope: str | Iterable[str] | None = None) -> bool:
        """True if a usable token is cached for the key (no I/O)."""
        return self._cache.has_token(self.cache_key(audience, scope))

    def invalidate(
        self,
        access_token: str | None = None,
        *,
        audience: str | None = None,
        scope: str | Iterable[str] | None = None,
    ) -> bool:
        """Drop the cached token for the key; with `access_token`, only if that is the one cached."""
        return self._cache.invalidate(self.cache_key(audience, scope), access_token)

    def clear(self) -> None:
        """Drop every cached token."""
        self._cache.clear()

    def stats(self) -> TokenStats:
        """Counters: cache hits and misses, requests, failures, tokens and renewals."""
        return self._cache.stats()

    def cache_entries(self) -> tuple[CacheEntry, ...]:
        """What is cached (audience, scope, type, time to expiry), without the tokens."""
        return self._cache.entries()

    @property
    def token_endpoint(self) -> str | None:
        """The token endpoint, once configured or discovered."""
        return self._endpoint.token_endpoint

    def httpx_auth(self, audience: str | None = None, scope: str | Iterable[str] | None = None) -> httpx.Auth:
        """An `httpx.Auth` for another audience or scope than the defaults."""
        return BoundAuth(self._tokens, self._resource, self.cache_key(audience, scope), repr(self))

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        return sync_auth_flow(self._tokens, self._resource, self.cache_key(), request)

    def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        return async_auth_flow(self._tokens, self._resource, self.cache_key(), request)

    def requests_auth(
        self, audience: str | None = None, scope: str | Iterable[str] | None = None
    ) -> AuthBase:
        """A `requests` auth object (`requests.get(url, auth=cc.requests_auth())`).

        Imports `requests` only now, so the library needs it only when this is used.
        """
        from warden.client._requests_auth import RequestsAuth

        return RequestsAuth(self._tokens, self._resource, self.cache_key(audience, scope), repr(self))

    def __repr__(self) -> str:
        return (
            f"ClientCredentials(issuer={self.issuer!r}, client_id={self.client_id!r}, "
            f"auth_method={self.auth_method!r}, audience={self.audience!r}, scope={' '.join(self.scope)!r})"
        )
