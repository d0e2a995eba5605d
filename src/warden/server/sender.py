"""The TLS client certificate a request carries (RFC 8705); its DPoP proof is checked by
`warden.services.dpop_proofs`.

The certificate is read from Warden's own TLS listener (the ASGI TLS extension), or,
when TLS ends at a reverse proxy, from the configured header, but only if the
request comes from a configured proxy address (RFC 9700 §4.13); a certificate
header from anywhere else is ignored and audited, never believed.
"""

from __future__ import annotations

from cryptography import x509

from warden.protocol.errors import InvalidRequest
from warden.protocol.mtls import load_certificate, parse_forwarded_cert
from warden.server.http import Request
from warden.server.runtime import Runtime

__all__ = ["client_certificate"]


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
