"""Helpers for the resource-server tests: a fake issuer behind httpx.MockTransport.

No network: discovery and JWKS are answered in-process, every request is
counted, and the issuer can be told to fail, change keys or answer slowly.
Tokens are minted by Warden's own JOSE code, by PyJWT and by joserfc.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt as pyjwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from joserfc import jwt as jose_jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, OKPKey, RSAKey

from warden.core.clock import FixedClock
from warden.jose import (
    PrivateKey,
    encode_header,
    generate_private_key,
    jwk_thumbprint,
    public_jwk,
    sign_compact,
)
from warden.resource import Validator
from warden.resource.dpop import access_token_hash

ISSUER = "https://issuer.test"
AUDIENCE = "https://api.test"
ALGS = ("ES256", "RS256", "PS256", "EdDSA")
NOW = 1_700_000_000.0


@pytest.fixture(scope="session")
def keys() -> dict[str, PrivateKey]:
    """One signing key per algorithm, generated once (RSA generation is slow)."""
    return {alg: generate_private_key(alg) for alg in ALGS}


@pytest.fixture(scope="session")
def other_keys() -> dict[str, PrivateKey]:
    """Keys the issuer never published (an attacker's)."""
    return {alg: generate_private_key(alg) for alg in ALGS}


@dataclass
class FakeIssuer:
    """An RFC 8414 issuer publishing a JWK Set; the handler of an httpx.MockTransport."""

    keys: dict[str, tuple[PrivateKey, str]]  # kid -> (private key, alg)
    clock: FixedClock
    issuer: str = ISSUER
    metadata_issuer: str | None = None
    cache_control: str | None = "max-age=300"
    age: str | None = None
    fail: bool = False
    jwks_status: int = 200
    extra_jwks: list[dict[str, Any]] = field(default_factory=list)
    hits: dict[str, int] = field(default_factory=lambda: {"metadata": 0, "jwks": 0})
    lock: threading.Lock = field(default_factory=threading.Lock)
    on_jwks: Callable[[], None] | None = None

    def jwks(self) -> dict[str, Any]:
        published = [public_jwk(key, kid=kid, alg=alg) for kid, (key, alg) in self.keys.items()]
        return {"keys": published + self.extra_jwks}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.fail:
            raise httpx.ConnectError("issuer down", request=request)
        path = request.url.path
        if path == "/.well-known/oauth-authorization-server":
            with self.lock:
                self.hits["metadata"] += 1
            return httpx.Response(200, json={
                "issuer": self.metadata_issuer or self.issuer,
                "jwks_uri": f"{self.issuer}/oauth2/jwks",
            })
        if path == "/oauth2/jwks":
            with self.lock:
                self.hits["jwks"] += 1
            if self.on_jwks is not None:
                self.on_jwks()
            headers = {"cache-control": self.cache_control} if self.cache_control else {}
            if self.age is not None:
                headers["age"] = self.age
            if self.jwks_status != 200:
                return httpx.Response(self.jwks_status)
            return httpx.Response(200, json=self.jwks(), headers=headers)
        return httpx.Response(404)

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(self.clock.now())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": "svc-orders",
            "client_id": "svc-orders",
            "aud": AUDIENCE,
            "scope": "read write",
            "iat": now,
            "exp": now + 600,
            "jti": uuid.uuid4().hex,
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not _DROP}

    def mint(self, kid: str = "ES256", *, header: dict[str, Any] | None = None,
             key: PrivateKey | None = None, payload: bytes | None = None, **claims: Any) -> str:
        """Sign a token with Warden's JOSE code; `header` entries set to DROP are removed."""
        signing_key, alg = self.keys.get(kid, (key, kid))
        assert signing_key is not None
        full_header: dict[str, Any] = {"typ": "at+jwt", "alg": alg, "kid": kid}
        full_header.update(header or {})
        full_header = {k: v for k, v in full_header.items() if v is not _DROP}
        body = payload if payload is not None else json.dumps(self.claims(**claims)).encode()
        return sign_compact(encode_header(full_header), body, key or signing_key, str(full_header.get("alg", alg)))

    def mint_pyjwt(self, kid: str = "ES256", **claims: Any) -> str:
        key, alg = self.keys[kid]
        return pyjwt.encode(self.claims(**claims), key, algorithm=alg, headers={"typ": "at+jwt", "kid": kid})

    def mint_joserfc(self, kid: str = "ES256", **claims: Any) -> str:
        key, alg = self.keys[kid]
        jwk = public_jwk(key)
        importer = {"EC": ECKey, "RSA": RSAKey, "OKP": OKPKey}[jwk["kty"]]
        from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

        pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        jose_key = importer.import_key(pem)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SecurityWarning)  # joserfc flags EdDSA as superseded (RFC 9864)
            return jose_jwt.encode({"typ": "at+jwt", "alg": alg, "kid": kid}, self.claims(**claims), jose_key,
                                   algorithms=[alg])


class _Drop:
    def __repr__(self) -> str:
        return "DROP"


_DROP: Any = _Drop()
DROP: Any = _DROP


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def issuer(keys: dict[str, PrivateKey], clock: FixedClock) -> FakeIssuer:
    return FakeIssuer({alg: (key, alg) for alg, key in keys.items()}, clock)


@pytest.fixture
def http_clients(issuer: FakeIssuer) -> Iterator[tuple[httpx.Client, httpx.AsyncClient]]:
    transport = httpx.MockTransport(issuer)
    sync_client = httpx.Client(transport=transport)
    async_client = httpx.AsyncClient(transport=transport)
    yield sync_client, async_client
    sync_client.close()
    asyncio.run(async_client.aclose())


@pytest.fixture
def make_validator(
    http_clients: tuple[httpx.Client, httpx.AsyncClient], clock: FixedClock
) -> Callable[..., Validator]:
    sync_client, async_client = http_clients

    def make(**kwargs: Any) -> Validator:
        kwargs.setdefault("issuer", ISSUER)
        kwargs.setdefault("audience", AUDIENCE)
        return Validator(http_client=sync_client, async_http_client=async_client, clock=clock, **kwargs)

    return make


@pytest.fixture
def validator(make_validator: Callable[..., Validator]) -> Validator:
    return make_validator()


def make_proof(
    key: PrivateKey,
    alg: str,
    *,
    method: str = "GET",
    url: str = "https://api.test/orders",
    token: str | None = None,
    header: dict[str, Any] | None = None,
    claims: dict[str, Any] | None = None,
    now: float = NOW,
    jwk: dict[str, Any] | None = None,
) -> str:
    """A DPoP proof (RFC 9449 §4.2) signed by `key`; entries set to DROP are removed."""
    full_header: dict[str, Any] = {"typ": "dpop+jwt", "alg": alg, "jwk": jwk or public_jwk(key)}
    full_header.update(header or {})
    body: dict[str, Any] = {"jti": uuid.uuid4().hex, "htm": method, "htu": url, "iat": int(now)}
    if token is not None:
        body["ath"] = access_token_hash(token)
    body.update(claims or {})
    full_header = {k: v for k, v in full_header.items() if v is not _DROP}
    body = {k: v for k, v in body.items() if v is not _DROP}
    signing_alg = alg if alg in ("ES256", "RS256", "PS256", "EdDSA") else _natural_alg(key)
    return sign_compact(encode_header(full_header), json.dumps(body).encode(), key, signing_alg)


def _natural_alg(key: PrivateKey) -> str:
    kty = public_jwk(key)["kty"]
    return {"EC": "ES256", "RSA": "RS256", "OKP": "EdDSA"}[kty]


def thumbprint(key: PrivateKey) -> str:
    return jwk_thumbprint(public_jwk(key))


def make_certificate(name: str) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    start = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
