"""The HTTP endpoints. Each one parses, calls a use case, and renders; nothing more.

The use cases are lists of named steps in `warden.services` (`client_credentials_grant`,
`token_lookup`, `caller_auth`); metrics are counted here, from their outcome and reason.

Token: RFC 6749 §4.4 with §2.3 client authentication and RFC 8707 resources; RFC 8693 token exchange.
Introspection: RFC 7662. Revocation: RFC 7009. JWKS: RFC 7517. Metadata: RFC 8414.
"""

from __future__ import annotations

import json
import time

from prometheus_client import Counter

from warden.protocol.client_assertion import ASSERTION_ALGS
from warden.protocol.errors import (
    EndpointNotFound,
    InvalidClient,
    InvalidRequest,
    MethodNotAllowed,
    OAuthError,
)
from warden.protocol.form import Form, parse_form
from warden.protocol.introspection import INACTIVE, render_active
from warden.protocol.metadata import render_metadata
from warden.protocol.status_list import MEDIA_TYPE
from warden.server.http import NO_STORE, Request, Response, json_response
from warden.server.metrics import CONTENT_TYPE_LATEST, Labelled, render_metrics
from warden.server.render import render_token
from warden.server.runtime import Runtime
from warden.server.sender import client_certificate
from warden.services.call import Call, DPoPInput
from warden.services.client_auth import SUPPORTED_AUTH_METHODS
from warden.services.client_credentials_grant import ClientCredentialsGrant
from warden.services.registration import RegistrationCall
from warden.services.status_lists import status_list_uri
from warden.services.token_exchange_grant import TokenExchangeGrant
from warden.services.token_lookup import Introspection, Revocation
from warden.services.transaction_token_grant import TokenExchangeRouter

__all__ = ["healthz", "introspect", "jwks", "metadata", "metrics", "readyz", "register", "registration", "revoke",
           "status_list", "status_lists", "token"]

_FORM_TYPE = b"application/x-www-form-urlencoded"
_LIMITED = {"client_rate_limited": "client", "failed_auth_throttled": "failed_auth"}  # reason -> limit label


def _form(request: Request, rt: Runtime) -> Form:
    content_type = request.headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
    if content_type != _FORM_TYPE:
        raise InvalidRequest("content type must be application/x-www-form-urlencoded", reason="bad_content_type")
    return parse_form(request.body, max_param_bytes=rt.settings.limits.max_param_bytes)


def _query_names(request: Request) -> list[str]:
    if not request.query_string:
        return []
    return [part.split(b"=", 1)[0].decode("latin-1") for part in request.query_string.split(b"&")]


def _call(request: Request, rt: Runtime, now: float, endpoint: str) -> Call:
    """The HTTP request as the use case's steps see it (RFC 6749 §3.2: POST only)."""
    if request.method != "POST":
        raise InvalidRequest(f"the {endpoint} endpoint accepts POST only", reason="bad_method")
    form = _form(request, rt)
    dpop = request.headers.get(b"dpop")
    return Call(form, request.header(b"authorization"), b"authorization" in request.repeated, _query_names(request),
                request.source, now, client_certificate(request, rt),
                None if dpop is None else DPoPInput(dpop.decode("latin-1"), b"dpop" in request.repeated,
                                                    request.method, f"{rt.issuer}{request.path}"))


def _count_refusal(rt: Runtime, error: OAuthError, call: Call | None) -> None:
    limit = _LIMITED.get(error.reason)
    if limit is not None:
        rt.metrics.limited(limit).inc()
    elif isinstance(error, InvalidClient):
        presented = call.presented if call is not None else None
        if presented is None:
            method = "none"
        elif error.reason.startswith("federation"):
            method = "federated"
        else:
            method = presented.method.value
        rt.metrics.auth_failed(method, error.reason).inc()


async def token(request: Request, rt: Runtime) -> Response:
    started = time.perf_counter()
    metrics = rt.metrics
    call = None
    try:
        call = _call(request, rt, rt.clock.now(), "token")
        issued = await _grant(rt, call.form).run(call)
    except OAuthError as exc:
        _count_refusal(rt, exc, call)
        outcome = "error" if exc.status >= 500 else "refused"
        metrics.token_outcome(outcome, exc.reason).inc()
        metrics.token_latency(outcome).observe(time.perf_counter() - started)
        if call is not None and call.caller is not None:
            metrics.top_clients.record(call.caller.client.client_id)
        raise
    except Exception:
        metrics.token_outcome("error", "server_error").inc()
        metrics.token_latency("error").observe(time.perf_counter() - started)
        raise
    elapsed = time.perf_counter() - started
    metrics.token_outcome("issued", "ok").inc()
    metrics.token_latency("issued").observe(elapsed)
    metrics.issuance_seconds.observe(elapsed)
    metrics.top_clients.record(call.authenticated.client.client_id)
    return render_token(issued.access_token, issued.expires_in, issued.scope, issued.token_type,
                        rt.dpop.nonce_to_send(), issued.issued_token_type)


def _grant(rt: Runtime, form: Form) -> ClientCredentialsGrant | TokenExchangeGrant | TokenExchangeRouter:
    """The use case for the request's `grant_type` (`Runtime.grants`). A missing, repeated or unknown one
    goes to client credentials, whose steps authenticate the caller before refusing it."""
    name = form.derived.get("grant_type")  # a remembered form (the same body again) has it already
    if name.__class__ is not str:
        names = form.multi("grant_type")
        name = form.derived["grant_type"] = names[0] if len(names) == 1 else ""
    return rt.grants.get(name, rt.client_credentials)


async def _lookup(request: Request, rt: Runtime, use_case: Introspection | Revocation,
                  count: Labelled[Counter], endpoint: str) -> Call:
    """Run introspection or revocation; each counts its result by `count` (the error or the state)."""
    call = None
    try:
        call = _call(request, rt, rt.clock.now(), endpoint)
        await use_case.run(call)
    except OAuthError as exc:
        _count_refusal(rt, exc, call)
        count(exc.error).inc()
        raise
    count(call.token_state).inc()
    return call


async def introspect(request: Request, rt: Runtime) -> Response:
    call = await _lookup(request, rt, rt.introspection, rt.metrics.introspected, "introspection")
    active = call.claims is not None and call.token_state == "active"
    return json_response(200, render_active(call.claims) if active and call.claims else INACTIVE, NO_STORE)


async def revoke(request: Request, rt: Runtime) -> Response:
    call = await _lookup(request, rt, rt.revocation, rt.metrics.revoked, "revocation")
    if call.token_state == "revoked":
        rt.metrics.revoked_tokens("token").inc()
    return Response(200, b"", list(NO_STORE))  # RFC 7009 §2.2: 200 for a revoked and for an invalid token alike


def _registration_call(request: Request, rt: Runtime, client_id: str | None) -> RegistrationCall:
    return RegistrationCall(request.method, request.body, request.headers.get(b"content-type"),
                            request.header(b"authorization"), b"authorization" in request.repeated, request.source,
                            rt.clock.now(), client_id)


async def register(request: Request, rt: Runtime) -> Response:
    """RFC 7591 §3: POST a client's metadata with an initial access token; 201 with its credentials."""
    if request.method != "POST":
        raise MethodNotAllowed(reason="method_not_allowed", allow="POST")
    call = _registration_call(request, rt, None)
    await rt.registrations.run(call)
    return json_response(call.status, call.response, NO_STORE)


async def registration(request: Request, rt: Runtime, client_id: str) -> Response:
    """RFC 7592 §2: read, update or delete a registered client with its registration access token."""
    if request.method not in ("GET", "PUT", "DELETE"):
        raise MethodNotAllowed(reason="method_not_allowed", allow="GET, PUT, DELETE")
    call = _registration_call(request, rt, client_id)
    await rt.registrations.run(call)
    if call.status == 204:
        return Response(204, b"", list(NO_STORE))
    return json_response(call.status, call.response, NO_STORE)


async def jwks(request: Request, rt: Runtime) -> Response:
    body = json.dumps(rt.registry.jwks, separators=(",", ":")).encode()
    return Response(200, body, [(b"content-type", b"application/jwk-set+json"),
                                (b"cache-control", b"public, max-age=300")])


async def metadata(request: Request, rt: Runtime) -> Response:
    scopes = sorted({s for api in rt.registry.apis.values() for s in api.scopes})
    methods = [m.value for m in SUPPORTED_AUTH_METHODS if rt.settings.mtls.enabled or "tls" not in m.value]
    body = render_metadata(rt.issuer, scopes, methods, list(ASSERTION_ALGS), list(rt.grants))
    body["registration_endpoint"] = f"{rt.issuer}/oauth2/register"  # RFC 8414 §2, RFC 7591 §3
    if rt.settings.dpop.enabled:
        body["dpop_signing_alg_values_supported"] = list(rt.dpop_algs)  # RFC 9449 §5.1
    if rt.settings.mtls.enabled:
        body["tls_client_certificate_bound_access_tokens"] = True  # RFC 8705 §3.3
    if rt.settings.status_list.enabled:
        body["status_list_aggregation_endpoint"] = f"{rt.issuer}/oauth2/status"  # Token Status List §9.3
    return json_response(200, body, [(b"cache-control", b"public, max-age=300")])


async def status_list(request: Request, rt: Runtime, list_id: str) -> Response:
    """The Status List Token of one list (draft-ietf-oauth-status-list §8.1), cacheable for its ttl."""
    token = None
    if list_id.isdigit() and len(list_id) <= 12 and rt.settings.status_list.enabled:
        token = await rt.status_publisher.status_list_token(int(list_id), rt.clock.now())
    if token is None:
        raise EndpointNotFound(reason="not_found")
    ttl = rt.settings.status_list.ttl
    return Response(200, token.encode("ascii"), [(b"content-type", MEDIA_TYPE.encode()),
                                                 (b"cache-control", f"public, max-age={ttl}".encode())])


async def status_lists(request: Request, rt: Runtime) -> Response:
    """The lists that may hold live tokens (Status List Aggregation, draft-ietf-oauth-status-list §9)."""
    ids = await rt.status_publisher.live_lists(rt.clock.now()) if rt.settings.status_list.enabled else []
    return json_response(200, {"status_lists": [status_list_uri(rt.issuer, i) for i in ids]},
                         [(b"cache-control", f"public, max-age={rt.settings.status_list.ttl}".encode())])


async def healthz(request: Request, rt: Runtime) -> Response:
    return json_response(200, {"status": "ok"})


async def readyz(request: Request, rt: Runtime) -> Response:
    # Redis down does not take a node out of the load balancer: tokens are still issued (limits on
    # each node's share); only single-use checks answer 503. The body says so, for operators.
    shared = rt.shared_state
    extra = {} if shared is None else {"redis": "up" if shared.up else "unreachable"}
    if rt.is_ready():
        return json_response(200, {"status": "ready" if shared is None or shared.up else "degraded", **extra})
    return json_response(503, {"status": "not ready", "registry_staleness_seconds":
                               None if not rt.ready else round(rt.staleness(), 1)}, [(b"retry-after", b"1")])


async def metrics(request: Request, rt: Runtime) -> Response:
    return Response(200, render_metrics(rt.metrics), [(b"content-type", CONTENT_TYPE_LATEST.encode())])
