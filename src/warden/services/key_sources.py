"""Where verification keys for client assertions come from: inline JWKS, a `jwks_uri`, or an
issuer's discovery document (workload identity).

Remote documents are fetched with a timeout, a size limit, no redirects and https
only (plain http to loopback is allowed in development mode, for tests and local
issuers), cached for a bounded time, and refetched when an unknown `kid` appears
at most once per cooldown. Concurrent refetches share one request (single flight),
so a flood of assertions with forged `kid`s cannot make Warden hammer the issuer.
When a refresh fails the last good keys stay in use.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from warden.jose import load_public_jwk
from warden.protocol.client_assertion import VerificationKey, key_algs
from warden.protocol.errors import TemporarilyUnavailable

__all__ = ["FetchPolicy", "KeySources", "RemoteJwks", "check_url", "keys_from_jwks"]

_MAX_AGE = re.compile(r"max-age=(\d+)")


@dataclass(frozen=True)
class FetchPolicy:
    timeout: float = 3.0
    max_bytes: int = 65536
    ttl: float = 300.0
    min_ttl: float = 30.0
    cooldown: float = 30.0
    allow_loopback_http: bool = False


def keys_from_jwks(jwks: Mapping[str, Any]) -> list[VerificationKey]:
    """Usable keys of a JWKS; keys that fail to parse or fit no allowed algorithm are skipped."""
    out = []
    for jwk in jwks.get("keys", []) if isinstance(jwks.get("keys"), list) else []:
        if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig":
            continue
        try:
            key = load_public_jwk(jwk)
        except ValueError:
            continue
        algs = key_algs(jwk, key)
        if algs:
            kid = jwk.get("kid")
            out.append(VerificationKey(kid if isinstance(kid, str) else None, key, algs))
    return out


def check_url(url: str, policy: FetchPolicy) -> None:
    parts = urlsplit(url)
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback and policy.allow_loopback_http):
        raise ValueError(f"{url} is not an https URL")


async def _get_json(http: httpx.AsyncClient, url: str, policy: FetchPolicy) -> tuple[Any, float]:
    """GET a JSON document within the limits; return it and its cache lifetime."""
    check_url(url, policy)
    async with http.stream("GET", url, timeout=policy.timeout, follow_redirects=False,
                           headers={"accept": "application/json"}) as resp:
        if resp.status_code != 200:
            raise ValueError(f"{url} answered {resp.status_code}")
        body = bytearray()
        async for chunk in resp.aiter_bytes():
            body += chunk
            if len(body) > policy.max_bytes:
                raise ValueError(f"{url} is larger than {policy.max_bytes} bytes")
        ttl = policy.ttl
        match = _MAX_AGE.search(resp.headers.get("cache-control", ""))
        if match:
            ttl = min(policy.ttl, max(policy.min_ttl, float(match.group(1))))
    return json.loads(body), ttl


class RemoteJwks:
    """One remote key set: a `jwks_uri`, or an issuer whose discovery document names it."""

    def __init__(self, http: httpx.AsyncClient, policy: FetchPolicy, *, jwks_uri: str | None = None,
                 issuer: str | None = None) -> None:
        self._http = http
        self._policy = policy
        self._jwks_uri = jwks_uri
        self._issuer = issuer
        self._keys: list[VerificationKey] | None = None
        self._expires = 0.0
        self._last_fetch = -1e9
        self._inflight: asyncio.Future[None] | None = None

    async def _discover(self) -> str:
        assert self._issuer is not None
        base = self._issuer.rstrip("/")
        last_error: Exception | None = None
        for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
            try:
                doc, _ = await _get_json(self._http, base + path, self._policy)
            except (ValueError, httpx.HTTPError) as exc:
                last_error = exc
                continue
            # RFC 8414 §3.3 / OIDC Discovery §4.3: the document must be the issuer's own.
            if not isinstance(doc, dict) or doc.get("issuer") != self._issuer or not isinstance(doc.get("jwks_uri"), str):
                raise ValueError(f"discovery document of {self._issuer} does not match its issuer")
            return str(doc["jwks_uri"])
        raise ValueError(f"discovery of {self._issuer} failed: {last_error}")

    async def _fetch(self) -> None:
        self._last_fetch = time.monotonic()
        uri = self._jwks_uri or await self._discover()
        doc, ttl = await _get_json(self._http, uri, self._policy)
        if not isinstance(doc, dict):
            raise ValueError(f"{uri} is not a JWKS")
        self._jwks_uri = uri
        self._keys = keys_from_jwks(doc)
        self._expires = time.monotonic() + ttl

    async def _refresh(self) -> None:
        if self._inflight is not None:
            await asyncio.shield(self._inflight)
            return
        self._inflight = asyncio.get_running_loop().create_future()
        try:
            await self._fetch()
        except (ValueError, httpx.HTTPError, UnicodeDecodeError) as exc:
            if self._keys is None:
                raise TemporarilyUnavailable("client keys could not be fetched", reason="jwks_unavailable",
                                             retry_after=self._policy.cooldown) from exc
            # keep serving the last good keys
        finally:
            self._inflight.set_result(None)
            self._inflight = None

    async def keys(self, kid: str | None) -> list[VerificationKey]:
        now = time.monotonic()
        if self._keys is None or now >= self._expires:
            if now - self._last_fetch >= min(self._policy.cooldown, 1.0) or self._keys is None:
                await self._refresh()
        elif (kid is not None and not any(k.kid == kid for k in self._keys)
              and now - self._last_fetch >= self._policy.cooldown):  # unknown kid: rotated keys?
            await self._refresh()
        if self._keys is None:  # an infrastructure failure, never reported as bad credentials
            raise TemporarilyUnavailable("client keys could not be fetched", reason="jwks_unavailable",
                                         retry_after=self._policy.cooldown)
        return self._keys


class KeySources:
    """Remote key sets by URL or issuer, shared by every request of a process (bounded in number)."""

    def __init__(self, policy: FetchPolicy, http: httpx.AsyncClient | None = None, limit: int = 10_000) -> None:
        self.policy = policy
        self._http = http or httpx.AsyncClient(http2=False, trust_env=False)
        self._remote: dict[str, RemoteJwks] = {}
        self._inline: dict[str, tuple[str, list[VerificationKey]]] = {}
        self._limit = limit

    def remote(self, *, jwks_uri: str | None = None, issuer: str | None = None) -> RemoteJwks:
        name = f"uri:{jwks_uri}" if jwks_uri else f"iss:{issuer}"
        source = self._remote.get(name)
        if source is None:
            if len(self._remote) >= self._limit:
                self._remote.pop(next(iter(self._remote)))
            source = self._remote[name] = RemoteJwks(self._http, self.policy, jwks_uri=jwks_uri, issuer=issuer)
        return source

    def inline(self, owner: str, jwks: Mapping[str, Any]) -> list[VerificationKey]:
        """Parsed keys of an inline JWKS, parsed again only when the document changes."""
        fingerprint = json.dumps(jwks, sort_keys=True)
        cached = self._inline.get(owner)
        if cached is None or cached[0] != fingerprint:
            if len(self._inline) >= self._limit:
                self._inline.pop(next(iter(self._inline)))
            cached = self._inline[owner] = (fingerprint, keys_from_jwks(jwks))
        return cached[1]

    async def aclose(self) -> None:
        await self._http.aclose()
