"""Mutual-TLS client authentication and certificate-bound tokens (RFC 8705).

- `tls_client_auth` (§2.1): the certificate chains to a configured CA bundle and
  carries the one subject value the client registered: its subject DN (compared as
  RFC 4514 strings) or a DNS, URI, IP or e-mail SAN (§2.1.2);
- `self_signed_tls_client_auth` (§2.2): the certificate's public key is one of the
  keys of the client's JWKS;
- bound tokens carry `cnf.x5t#S256`, the SHA-256 of the certificate's DER (§3.1).

Where TLS ends at a reverse proxy, the certificate arrives in a header that is
believed only from configured proxy addresses (RFC 9700 §4.13): nginx's
URL-encoded PEM (`$ssl_client_escaped_cert`), Envoy's `x-forwarded-client-cert`
(the element the nearest proxy appended), or RFC 9440 `Client-Cert`.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from warden.jose import load_public_jwk

__all__ = [
    "CLIENT_CERT_FORMATS",
    "SubjectBinding",
    "certificate_thumbprint",
    "key_in_jwks",
    "load_ca_bundle",
    "load_certificate",
    "parse_forwarded_cert",
    "subject_matches",
    "verify_chain",
]

CLIENT_CERT_FORMATS = ("nginx", "xfcc", "rfc9440")
_MAX_CERT_BYTES = 16 * 1024
_PEM = "-----BEGIN CERTIFICATE-----"


@dataclass(frozen=True)
class SubjectBinding:
    """The one subject value a `tls_client_auth` client registered (RFC 8705 §2.1.2)."""

    kind: str  # subject_dn | san_dns | san_uri | san_ip | san_email
    value: str


def load_certificate(data: bytes | str) -> x509.Certificate:
    """A single certificate from DER or PEM; ValueError otherwise."""
    raw = data.encode("ascii", "replace") if isinstance(data, str) else data
    if len(raw) > _MAX_CERT_BYTES:
        raise ValueError("certificate too large")
    if raw.lstrip().startswith(_PEM.encode()):
        return x509.load_pem_x509_certificate(raw)
    return x509.load_der_x509_certificate(raw)


def certificate_thumbprint(cert: x509.Certificate) -> str:
    """RFC 8705 §3.1 `x5t#S256`."""
    digest = hashlib.sha256(cert.public_bytes(Encoding.DER)).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _xfcc_last_cert(value: str) -> str:
    """The `Cert` field of the last XFCC element (the one our own proxy appended)."""
    elements: list[dict[str, str]] = [{}]
    key, buf, quoted, escaped = "", [], False, False
    for ch in value + ",":
        if escaped:
            buf.append(ch)
            escaped = False
        elif quoted:
            if ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
            else:
                buf.append(ch)
        elif ch == '"':
            quoted = True
        elif ch == "=" and not key:
            key, buf = "".join(buf).strip(), []
        elif ch in ";,":
            if key:
                elements[-1][key.lower()] = "".join(buf).strip()
            key, buf = "", []
            if ch == ",":
                elements.append({})
        else:
            buf.append(ch)
    for element in reversed(elements):
        if element:
            if "cert" not in element:
                raise ValueError("x-forwarded-client-cert carries no Cert field")
            return unquote(element["cert"])
    raise ValueError("empty x-forwarded-client-cert")


def parse_forwarded_cert(value: str, fmt: str) -> x509.Certificate:
    """Decode a proxy's client-certificate header; ValueError when it holds no certificate."""
    value = value.strip()
    if not value or len(value) > 4 * _MAX_CERT_BYTES:
        raise ValueError("certificate header empty or too large")
    if fmt == "xfcc":
        return load_certificate(_xfcc_last_cert(value))
    if fmt == "rfc9440":
        if not (value.startswith(":") and value.endswith(":")):
            raise ValueError("Client-Cert is not a byte sequence")
        try:
            return load_certificate(base64.b64decode(value[1:-1], validate=True))
        except (binascii.Error, ValueError):
            raise ValueError("malformed Client-Cert header") from None
    pem = unquote(value)
    if not pem.startswith(_PEM):
        raise ValueError("certificate header is not URL-encoded PEM")
    return load_certificate(pem)


def subject_matches(cert: x509.Certificate, binding: SubjectBinding) -> bool:
    if binding.kind == "subject_dn":
        try:
            expected = x509.Name.from_rfc4514_string(binding.value)
        except ValueError:
            return False
        return cert.subject == expected
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    if binding.kind == "san_dns":
        return binding.value.lower() in [d.lower() for d in sans.get_values_for_type(x509.DNSName)]
    if binding.kind == "san_uri":
        return binding.value in sans.get_values_for_type(x509.UniformResourceIdentifier)
    if binding.kind == "san_email":
        return binding.value in sans.get_values_for_type(x509.RFC822Name)
    if binding.kind == "san_ip":
        try:
            return ipaddress.ip_address(binding.value) in sans.get_values_for_type(x509.IPAddress)
        except ValueError:
            return False
    return False


def load_ca_bundle(pem: bytes) -> Store:
    certs = x509.load_pem_x509_certificates(pem)
    if not certs:
        raise ValueError("CA bundle holds no certificate")
    return Store(certs)


def verify_chain(cert: x509.Certificate, intermediates: Sequence[x509.Certificate], store: Store,
                 now: datetime.datetime | None = None) -> bool:
    """True if `cert` chains to the store as a TLS client certificate (validity, EKU, constraints)."""
    builder = PolicyBuilder().store(store)
    if now is not None:
        builder = builder.time(now)
    try:
        builder.build_client_verifier().verify(cert, list(intermediates))
    except (VerificationError, ValueError):
        return False
    return True


def key_in_jwks(cert: x509.Certificate, jwks: Mapping[str, Any] | None) -> bool:
    """RFC 8705 §2.2: the certificate's public key is one of the registered JWKS keys."""
    if not jwks:
        return False
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    for jwk in jwks.get("keys", []):
        try:
            key = load_public_jwk(jwk)
        except ValueError:
            continue
        if key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo) == spki:
            return True
    return False
