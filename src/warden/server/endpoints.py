"""The HTTP endpoints. Each one parses, calls a use case, and renders; nothing more.

Token: RFC 6749 §4.4 with §2.3 client authentication and RFC 8707 resources.
Introspection: RFC 7662. Revocation: RFC 7009. JWKS: RFC 7517. Metadata: RFC 8414.
"""

from __future__ import annotations

import asyncio
import json
import time

from cryptography import x509

from warden.core.revocation import RevokedToken, is_revoked_by_client
from warden.protocol.access_token import verify_own_token
from warden.protocol.client_assertion import ASSERTION_ALGS
from warden.protocol.client_auth import parse_client_auth
from warden.protocol.client_credentials import parse_token_request
from warden.protocol.errors import (
    InvalidClient, InvalidRequest, OAuthError, SlowDown, TemporarilyUnavailable, UnauthorizedClient,
)
from warden.protocol.form import Form, parse_form
from warden.protocol.introspection import INACTIVE, parse_introspection_request, render_active
from warden.protocol.metadata import render_metadata
from warden.protocol.mtls import certificate_thumbprint
from warden.protocol.revocation import parse_revocation_request
from warden.server.http import NO_STORE, Request, Response, json_response
from warden.server.metrics import CONTENT_TYPE_LATEST, render_metrics
from warden.server.render import render_token
from warden.server.runtime import Runtime
from warden.server.sender import client_certificate, dpop_proof
from warden.services.auth_throttle import ANONYMOUS, claimed_identity
from warden.services.client_auth import SUPPORTED_AUTH_METHODS, authenticate_client
from warden.services.registry import ClientEntry
from warden.services.tls_auth import authenticate_certificate
from warden.services.token_state import token_audiences, token_state
from warden.services.tokens import issue_token

__all__ = ["token", "introspect", "revoke", "jwks", "metadata", "healthz", "readyz", "metrics"]

_FORM_TYPE = b"application/x-www-form-urlencoded"


def _form(request: Request, rt: Runtime) -> Form:
    content_type = request.headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
    if content_type != _FORM_TYPE:
        raise InvalidRequest("content type must be application/x-www-form-urlencoded", reason="bad_content_type")
    return parse_form(request.body, max_param_bytes=rt.settings.limits.max_param_bytes)


def _query_names(request: Request) -> list[str]:
    if not request.query_string:
        return []
    return [part.split(b"=", 1)[0].decode("latin-1") for part in request.query_string.split(b"&")]


def _refuse_if_throttled(request: Request, rt: Runtime, identity: str, now: float) -> None:
    """429 before any credential naming `identity` is evaluated, once this source has spent that
    identity's failure budget (see `warden.services.auth_throttle`)."""
    wait = rt.auth_throttle.wait(request.source, identity, now)
    if wait > 0:
        rt.metrics.limited("failed_auth").inc()
        raise SlowDown("too many failed authentication attempts", reason="failed_auth_throttled", retry_after=wait)


async def _authenticate(request: Request, form: Form, rt: Runtime, now: float,
                        cert: x509.Certificate | None = None) -> ClientEntry:
    if b"authorization" in request.repeated:
        raise InvalidRequest("Authorization header is repeated", reason="duplicate_header")
    presented = None
    identity = ANONYMOUS
    try:
        presented = parse_client_auth(request.header(b"authorization"), form, _query_names(request),
                                      has_certificate=cert is not None)
        identity = claimed_identity(presented)
        _refuse_if_throttled(request, rt, identity, now)
        if presented.assertion is not None:  # private_key_jwt or workload identity (RFC 7523)
            return await rt.assertions.authenticate(presented, rt.registry, now)
        if presented.certificate_used and cert is not None:  # mutual TLS (RFC 8705 §2)
            return await authenticate_certificate(presented, cert, rt.registry, rt.client_ca, rt.key_sources)
        return authenticate_client(presented, rt.registry, rt.material.pepper, now, rt.secret_uses.record)
    except InvalidClient as exc:
        if presented is None:  # claims no identity, so it could never pass: refused once the budget is spent
            _refuse_if_throttled(request, rt, ANONYMOUS, now)
        rt.auth_throttle.record_failure(request.source, identity, now)
        client_id = presented.client_id or None if presented else None  # assertions may omit client_id
        security = exc.reason in ("secret_expired", "secret_revoked")
        rt.audit.emit("client.authentication_failed", outcome="denied", reason=exc.reason,
                      client_id=_bounded(client_id), source=request.source,
                      severity="security" if security else None)
        raise


def _bounded(value: str | None) -> str | None:
    return value[:128] if value else value


async def token(request: Request, rt: Runtime) -> Response:
    started = time.perf_counter()
    now = rt.clock.now()
    entry: ClientEntry | None = None
    try:
        if request.method != "POST":
            raise InvalidRequest("the token endpoint accepts POST only", reason="bad_method")  # §3.2
        if not rt.is_serving():
            raise TemporarilyUnavailable("registry unavailable", reason="registry_stale")
        form = _form(request, rt)
        cert = client_certificate(request, rt)
        entry = await _authenticate(request, form, rt, now, cert)
        client = entry.client
        limits = rt.settings.limits
        if client.rate_limit is not None:  # a client's own limit allows bursts of two seconds' worth
            rate, burst = client.rate_limit, max(1.0, 2 * client.rate_limit)
        else:
            rate, burst = limits.client_rate, float(limits.client_burst)
        wait = rt.rate_limiter.take(client.client_id, rate, burst, now)
        if wait > 0:
            rt.metrics.limited("client").inc()
            raise SlowDown("token request rate limit reached", reason="client_rate_limited", retry_after=wait)
        token_request = parse_token_request(form)
        if is_revoked_by_client(int(now), client.revoked_before):
            # A token issued in the revoking second would be born inactive; make the client wait it out.
            raise TemporarilyUnavailable("tokens for this client were just revoked", reason="revocation_window")
        # RFC 9449: a proof binds the token to its key. Without a DPoP header there is no proof to check
        # (dpop_proof answers None), so the common case skips a coroutine.
        proof = await dpop_proof(request, rt, now) if b"dpop" in request.headers else None
        issued = issue_token(entry, token_request, rt.registry, rt.issuer, now,
                             jkt=proof.jkt if proof else None, x5t=certificate_thumbprint(cert) if cert else None)
    except OAuthError as exc:
        rt.metrics.token_outcome("denied", exc.reason).inc()
        if not isinstance(exc, InvalidClient):
            rt.audit.emit("token.denied", outcome="denied", reason=exc.reason, source=request.source,
                          client_id=entry.client.client_id if entry else None, error=exc.error)
        raise
    rt.audit.emit("token.issued", client_id=entry.client.client_id, source=request.source, jti=issued.jti,
                  aud=list(issued.audiences), scope=issued.scope, kid=issued.kid)
    rt.metrics.token_outcome("issued", "ok").inc()
    rt.metrics.issuance_seconds.observe(time.perf_counter() - started)
    nonce = rt.dpop_nonces.current() if rt.settings.dpop.require_nonce else None
    return render_token(issued.access_token, issued.expires_in, issued.scope, issued.token_type, nonce)


async def introspect(request: Request, rt: Runtime) -> Response:
    now = rt.clock.now()
    try:
        if request.method != "POST":
            raise InvalidRequest("the introspection endpoint accepts POST only", reason="bad_method")
        form = _form(request, rt)
        caller = await _authenticate(request, form, rt, now, client_certificate(request, rt))  # RFC 7662 §2.1
        parsed = parse_introspection_request(form)
    except OAuthError as exc:
        rt.metrics.introspected(exc.error).inc()
        raise
    claims = verify_own_token(parsed.token, rt.registry.verification_keys, rt.issuer)
    state = "invalid" if claims is None else token_state(claims, rt.registry, now)
    if claims is not None and state == "active":
        # T57: a caller learns about its own tokens and tokens for APIs it is granted, nothing else.
        caller_apis = {g.api for g in caller.grants}
        if claims["client_id"] != caller.client.client_id and not caller_apis & set(token_audiences(claims)):
            state = "not_authorized"
    rt.metrics.introspected(state).inc()
    body = render_active(claims) if claims is not None and state == "active" else INACTIVE
    return json_response(200, body, NO_STORE)


async def revoke(request: Request, rt: Runtime) -> Response:
    """RFC 7009 §2.1: the caller authenticates and may revoke only tokens issued to it.

    An invalid, unknown or expired token is answered 200 (§2.2): nothing to revoke, no oracle. A
    valid token issued to another client is refused with an error response (§2.1, §2.2.1) and stays
    active. The code is RFC 6749 §5.2's `unauthorized_client`, 400: the caller did authenticate (so
    not `invalid_client`), the request is well formed (not `invalid_request`), and it is this
    authenticated client that may not act on the token; `invalid_grant` describes grants presented
    at the token endpoint, and `unsupported_token_type` (§2.2.1) token types. The refusal tells the
    caller nothing it cannot read from the token itself (the signature checks against the public
    JWKS; `client_id` and `exp` are in the payload), so it is decided on those alone, never on
    server-side state such as an earlier revocation.
    """
    now = rt.clock.now()
    try:
        if request.method != "POST":
            raise InvalidRequest("the revocation endpoint accepts POST only", reason="bad_method")
        form = _form(request, rt)
        caller = await _authenticate(request, form, rt, now, client_certificate(request, rt))  # RFC 7009 §2.1
        parsed = parse_revocation_request(form)
        claims = verify_own_token(parsed.token, rt.registry.verification_keys, rt.issuer)
        if claims is not None and claims["exp"] > now and claims["client_id"] != caller.client.client_id:
            rt.audit.emit("token.revocation_refused", outcome="denied", reason="foreign_token",
                          actor=caller.client.client_id, client_id=caller.client.client_id, source=request.source,
                          jti=claims["jti"])
            raise UnauthorizedClient("the token was not issued to this client", reason="foreign_token")
    except OAuthError as exc:
        rt.metrics.revoked(exc.error).inc()
        raise
    result = "ignored"
    if claims is not None and claims["exp"] > now:
        revoked = RevokedToken(jti=claims["jti"], client_id=caller.client.client_id, exp=float(claims["exp"]))
        store, registry = rt.store, rt.registry
        assert store is not None

        def record() -> None:  # in a thread: a registry refresh may hold the registry's lock for a while
            store.revoke_token(revoked)
            registry.add_revoked(revoked)  # effective here at once, elsewhere via the change log

        await asyncio.to_thread(record)
        rt.audit.emit("token.revoked", actor=caller.client.client_id, client_id=caller.client.client_id,
                      source=request.source, jti=revoked.jti)
        result = "revoked"
    rt.metrics.revoked(result).inc()
    return Response(200, b"", list(NO_STORE))  # §2.2: 200 for a revoked and for an invalid token alike


async def jwks(request: Request, rt: Runtime) -> Response:
    body = json.dumps(rt.registry.jwks, separators=(",", ":")).encode()
    return Response(200, body, [(b"content-type", b"application/jwk-set+json"),
                                (b"cache-control", b"public, max-age=300")])


async def metadata(request: Request, rt: Runtime) -> Response:
    scopes = sorted({s for api in rt.registry.apis.values() for s in api.scopes})
    methods = [m.value for m in SUPPORTED_AUTH_METHODS if rt.settings.mtls.enabled or "tls" not in m.value]
    body = render_metadata(rt.issuer, scopes, methods, list(ASSERTION_ALGS))
    if rt.settings.dpop.enabled:
        body["dpop_signing_alg_values_supported"] = list(rt.dpop_algs)  # RFC 9449 §5.1
    if rt.settings.mtls.enabled:
        body["tls_client_certificate_bound_access_tokens"] = True  # RFC 8705 §3.3
    return json_response(200, body, [(b"cache-control", b"public, max-age=300")])


async def healthz(request: Request, rt: Runtime) -> Response:
    return json_response(200, {"status": "ok"})


async def readyz(request: Request, rt: Runtime) -> Response:
    if rt.is_ready():
        return json_response(200, {"status": "ready"})
    return json_response(503, {"status": "not ready", "registry_staleness_seconds":
                               None if not rt.ready else round(rt.staleness(), 1)}, [(b"retry-after", b"1")])


async def metrics(request: Request, rt: Runtime) -> Response:
    return Response(200, render_metrics(rt.metrics), [(b"content-type", CONTENT_TYPE_LATEST.encode())])
