"""Certificate-bound access tokens at the resource server (RFC 8705 §3, §3.1).

A token bound to a client certificate carries `cnf.x5t#S256`, the base64url
SHA-256 of the certificate's DER encoding. The resource server compares it
with the certificate the client presented on the TLS connection.

Where TLS ends at a proxy, the certificate reaches the application in a header
the proxy sets and strips from client input (RFC 8705 §6.5, RFC 9440):
`parse_client_cert_header` reads the RFC 9440 `Client-Cert` byte-sequence form
(`:base64-DER:`) and the URL-encoded PEM that nginx (`$ssl_client_escaped_cert`)
and others send. Trusting such a header is a deployment decision; nothing here
reads one unless asked to.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

__all__ = ["CertificateInput", "certificate_thumbprint", "parse_client_cert_header"]

CertificateInput = bytes | str | x509.Certificate
"""DER bytes, PEM text (str or bytes) or a parsed certificate."""

_PEM_BEGIN = "-----BEGIN CERTIFICATE-----"
_MAX_CERT_BYTES = 16 * 1024


def certificate_thumbprint(certificate: CertificateInput) -> str:
    """Return the RFC 8705 §3.1 `x5t#S256` value of a certificate.

    Raises:
        ValueError: the input is not a single X.509 certificate.
    """
    return base64.urlsafe_b64encode(hashlib.sha256(_der(certificate)).digest()).rstrip(b"=").decode("ascii")


def _der(certificate: CertificateInput) -> bytes:
    if isinstance(certificate, x509.Certificate):
        return certificate.public_bytes(Encoding.DER)
    if isinstance(certificate, str):
        certificate = certificate.encode("ascii", "replace")
    if len(certificate) > _MAX_CERT_BYTES:
        raise ValueError("certificate too large")
    if certificate.lstrip().startswith(_PEM_BEGIN.encode()):
        parsed = x509.load_pem_x509_certificate(certificate)
    else:
        parsed = x509.load_der_x509_certificate(certificate)
    # Re-encoding normalises PEM and rejects trailing garbage after the DER structure.
    return parsed.public_bytes(Encoding.DER)


def parse_client_cert_header(value: str) -> bytes:
    """Decode a client certificate forwarded by a TLS-terminating proxy; return DER.

    Accepts the RFC 9440 §2.2 form `:<base64 DER>:` and URL-encoded PEM.

    Raises:
        ValueError: the value is neither form or does not hold a certificate.
    """
    value = value.strip()
    if len(value) > 4 * _MAX_CERT_BYTES:
        raise ValueError("certificate header too large")
    if value.startswith(":") and value.endswith(":") and len(value) > 2:
        try:
            der = base64.b64decode(value[1:-1], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("malformed Client-Cert header") from None
        return _der(der)
    pem = unquote(value)
    if not pem.startswith(_PEM_BEGIN):
        raise ValueError("unrecognised certificate header")
    return _der(pem)
