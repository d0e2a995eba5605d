"""What a request proves about its sender, beyond client credentials: the TLS client certificate
(RFC 8705) and the DPoP proof (RFC 9449).

The certificate is read from Warden's own TLS listener (the ASGI TLS extension), or,
when TLS ends at a reverse proxy, from the configured header, but only if the
request comes from a configured proxy address (RFC 9700 §4.13); a certificate
header from anywhere else is ignored and audited, never believed.
"""

from __future__ import annotations

import hashlib

from cryptography import x509

from warden.protocol.dpop import VerifiedProof, verify_proof
from warden.protocol.errors import InvalidDPoPProof, InvalidRequest, UseDPoPNonce
from warden.protocol.mtls import load_certificate, parse_forwarded_cert
from warden.server.http import Request
from warden.server.runtime import Runtime

__all__ = ["client_certificate", "dpop_proof"]


def client_certificate(request: Request, rt: Runtime) -> x509.Certificate | None:
    """The verified-at-the-edge client certificate of this request, or None."""
    mtls = rt.settings.mtls
    if not mtls.enabled:
        return None
    if request.peer_cert is not None:
        try:
            return load_certificate(request.peer_cert)
        except ValueError:
            return None
    if not mtls.proxy_header:
        return None
    name = mtls.proxy_header.lower().encode("latin-1")
    value = request.headers.get(name)
    if value is None:
        return None
    peer = request.peer
    if peer not in rt.mtls_trusted_proxies:
        rt.audit.emit("client.certificate_header_ignored", outcome="denied", reason="untrusted_proxy",
                      source=peer, header=mtls.proxy_header)
        return None
    if name in request.repeated:
        raise InvalidRequest("client certificate header is repeated", reason="duplicate_header")
    try:
        return parse_forwarded_cert(value.decode("latin-1"), mtls.proxy_header_format)
    except ValueError:
        raise InvalidRequest("client certificate header is malformed", reason="malformed_certificate") from None


async def dpop_proof(request: Request, rt: Runtime, now: float) -> VerifiedProof | None:
    """Verify the request's DPoP proof for the token endpoint (RFC 9449 §4.3, §8, §11.1), or None."""
    settings = rt.settings.dpop
    if not settings.enabled or b"dpop" not in request.headers:
        return None
    if b"dpop" in request.repeated:
        raise InvalidDPoPProof("more than one DPoP header", reason="dpop_count")  # §4.3 check 1
    proof = verify_proof(request.headers[b"dpop"].decode("latin-1"), method=request.method,
                         url=f"{rt.issuer}{request.path}", algorithms=rt.dpop_algs, max_age=settings.max_age,
                         leeway=settings.leeway, now=now)
    if settings.require_nonce and not rt.dpop_nonces.is_valid(proof.claims.get("nonce")):
        raise UseDPoPNonce("a current DPoP nonce is required", reason="dpop_nonce", nonce=rt.dpop_nonces.current())
    key = "dpop:" + hashlib.sha256(proof.jti.encode("utf-8", "surrogatepass")).hexdigest()
    if not await rt.use_once(key, proof.iat + settings.max_age + settings.leeway):
        raise InvalidDPoPProof("DPoP proof was already used", reason="dpop_replay")
    return proof
