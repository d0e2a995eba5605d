"""warden.resource over real HTTP: a local discovery/JWKS server on a free port, in a thread.

Covers what only a real socket shows: discovery and key fetches with real
clients, a flood of forged `kid`s from many threads against a slow JWKS
endpoint (single flight), the issuer going away (stale-if-error), a hanging
issuer (timeouts), and tokens minted by PyJWT and joserfc (SECURITY F08-F10, T36).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt as pyjwt
import pytest
from joserfc import jwt as jose_jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, OKPKey, RSAKey

from warden.core.clock import FixedClock
from warden.jose import PrivateKey, generate_private_key, public_jwk
from warden.protocol.errors import InvalidToken, TemporarilyUnavailable
from warden.resource import Validator

AUDIENCE = "https://api.local.test"
ALGS = ("ES256", "RS256", "PS256", "EdDSA")


@dataclass
class LocalIssuer:
    """Discovery + JWKS over HTTP; counts hits; can be slowed down, broken or stopped."""

    keys: dict[str, tuple[PrivateKey, str]]
    server: ThreadingHTTPServer
    thread: threading.Thread
    hits: dict[str, int] = field(default_factory=lambda: {"metadata": 0, "jwks": 0})
    jwks_delay: float = 0.0
    jwks_body: bytes | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {"iss": self.url, "sub": "svc", "client_id": "svc", "aud": AUDIENCE, "scope": "read",
                  "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex}
        return {**claims, **overrides}

    def pyjwt_token(self, kid: str, **overrides: Any) -> str:
        key, alg = self.keys[kid]
        return pyjwt.encode(self.claims(**overrides), key, algorithm=alg, headers={"typ": "at+jwt", "kid": kid})

    def joserfc_token(self, kid: str) -> str:
        from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

        key, alg = self.keys[kid]
        pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        importer = {"EC": ECKey, "RSA": RSAKey, "OKP": OKPKey}[public_jwk(key)["kty"]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SecurityWarning)  # joserfc flags EdDSA as superseded (RFC 9864)
            return jose_jwt.encode({"typ": "at+jwt", "alg": alg, "kid": kid}, self.claims(),
                                   importer.import_key(pem), algorithms=[alg])


def _handler(issuer_box: list[LocalIssuer]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:
            issuer = issuer_box[0]
            if self.path == "/.well-known/oauth-authorization-server":
                with issuer.lock:
                    issuer.hits["metadata"] += 1
                body = json.dumps({"issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks"}).encode()
            elif self.path == "/jwks":
                with issuer.lock:
                    issuer.hits["jwks"] += 1
                if issuer.jwks_delay:
                    time.sleep(issuer.jwks_delay)
                keys = [public_jwk(key, kid=kid, alg=alg) for kid, (key, alg) in issuer.keys.items()]
                body = issuer.jwks_body or json.dumps({"keys": keys}).encode()
            else:
                self.send_response(404)
                self.send_header("content-length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("cache-control", "max-age=300")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
                pass

    return Handler


@pytest.fixture(scope="module")
def keys() -> dict[str, PrivateKey]:
    return {alg: generate_private_key(alg) for alg in ALGS}


@pytest.fixture
def local_issuer(keys: dict[str, PrivateKey]) -> Iterator[LocalIssuer]:
    box: list[LocalIssuer] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(box))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    issuer = LocalIssuer({alg: (key, alg) for alg, key in keys.items()}, server, thread)
    box.append(issuer)
    thread.start()
    yield issuer
    issuer.stop()


@pytest.mark.parametrize("minter", ["pyjwt", "joserfc"])
def test_third_party_tokens_validate_via_discovery_over_http(local_issuer: LocalIssuer, minter: str) -> None:
    validator = Validator(local_issuer.url, AUDIENCE)
    for alg in ALGS:
        token = local_issuer.pyjwt_token(alg) if minter == "pyjwt" else local_issuer.joserfc_token(alg)
        assert validator.validate(token, scopes=["read"]).sub == "svc"
    assert local_issuer.hits == {"metadata": 1, "jwks": 1}


def test_async_validation_over_http(local_issuer: LocalIssuer) -> None:
    validator = Validator(local_issuer.url, AUDIENCE)

    async def run() -> list[Any]:
        tokens = [local_issuer.pyjwt_token(alg) for alg in ALGS] * 5
        return await asyncio.gather(*(validator.avalidate(t) for t in tokens))

    assert len(asyncio.run(run())) == 20
    assert local_issuer.hits == {"metadata": 1, "jwks": 1}


def test_forged_kid_flood_from_threads_makes_one_refetch(local_issuer: LocalIssuer) -> None:
    clock = FixedClock(time.time())
    validator = Validator(local_issuer.url, AUDIENCE, clock=clock)
    validator.validate(local_issuer.pyjwt_token("ES256"))
    clock.advance(31)  # past the cooldown after the first load
    local_issuer.jwks_delay = 0.3  # slow enough that the attackers pile up on the single flight
    tokens = [local_issuer.pyjwt_token("ES256") for _ in range(100)]
    forged = [t.replace(t.split(".")[0], pyjwt.utils.base64url_encode(
        json.dumps({"typ": "at+jwt", "alg": "ES256", "kid": f"forged-{i}"}).encode()).decode()) for i, t in
        enumerate(tokens)]
    outcomes: list[str] = []
    barrier = threading.Barrier(25)

    def attack(batch: list[str]) -> None:
        barrier.wait()
        for token in batch:
            try:
                validator.validate(token)
                outcomes.append("accepted")
            except InvalidToken as exc:
                outcomes.append(exc.reason)

    threads = [threading.Thread(target=attack, args=(forged[i::25],)) for i in range(25)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes == ["unknown_kid"] * 100
    assert local_issuer.hits["jwks"] == 2  # initial load + exactly one refetch
    assert time.monotonic() - started < 5


def test_forged_kid_flood_from_coroutines_makes_one_refetch(local_issuer: LocalIssuer) -> None:
    clock = FixedClock(time.time())
    validator = Validator(local_issuer.url, AUDIENCE, clock=clock)
    validator.validate(local_issuer.pyjwt_token("ES256"))
    clock.advance(31)
    local_issuer.jwks_delay = 0.2

    async def flood() -> list[Any]:
        tokens = [local_issuer.pyjwt_token("ES256") for _ in range(50)]
        forged = [t.replace(t.split(".")[0], pyjwt.utils.base64url_encode(json.dumps(
            {"typ": "at+jwt", "alg": "ES256", "kid": f"f{i}"}).encode()).decode()) for i, t in enumerate(tokens)]
        return await asyncio.gather(*(validator.avalidate(t) for t in forged), return_exceptions=True)

    results = asyncio.run(flood())
    assert all(isinstance(r, InvalidToken) for r in results)
    assert local_issuer.hits["jwks"] == 2


def test_issuer_going_away_keeps_the_last_good_key_set(local_issuer: LocalIssuer) -> None:
    clock = FixedClock(time.time())
    validator = Validator(local_issuer.url, AUDIENCE, clock=clock, cache_size=0)
    validator.validate(local_issuer.pyjwt_token("RS256"))
    local_issuer.stop()
    clock.advance(400)  # the key set is past its max-age; the refresh fails
    fresh = local_issuer.pyjwt_token("RS256", iat=int(clock.now()), exp=int(clock.now()) + 300)
    started = time.monotonic()
    assert validator.validate(fresh).sub == "svc"
    with pytest.raises(InvalidToken):  # unknown kid while the issuer is down: 401, not 500
        validator.validate(fresh.replace(fresh.split(".")[0], pyjwt.utils.base64url_encode(
            b'{"typ":"at+jwt","alg":"RS256","kid":"new"}').decode()))
    assert time.monotonic() - started < 5


def test_unreachable_issuer_on_first_contact_is_503(local_issuer: LocalIssuer) -> None:
    token = local_issuer.pyjwt_token("ES256")
    url = local_issuer.url
    local_issuer.stop()
    with pytest.raises(TemporarilyUnavailable):
        Validator(url, AUDIENCE).validate(token)


def test_hanging_jwks_endpoint_is_bounded_by_the_timeout(local_issuer: LocalIssuer) -> None:
    from warden.resource import JWKSCache

    local_issuer.jwks_delay = 3.0
    jwks = JWKSCache(local_issuer.url, timeout=0.3)
    validator = Validator(local_issuer.url, AUDIENCE, jwks=jwks)
    started = time.monotonic()
    with pytest.raises(TemporarilyUnavailable):
        validator.validate(local_issuer.pyjwt_token("ES256"))
    assert time.monotonic() - started < 2.5


def test_oversize_jwks_document_is_refused(local_issuer: LocalIssuer) -> None:
    from warden.resource import JWKSCache

    local_issuer.jwks_body = b'{"keys": [' + b" " * 600_000 + b"]}"
    validator = Validator(local_issuer.url, AUDIENCE, jwks=JWKSCache(local_issuer.url))
    with pytest.raises(TemporarilyUnavailable):
        validator.validate(local_issuer.pyjwt_token("ES256"))
