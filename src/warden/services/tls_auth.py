"""Client authentication with the TLS client certificate (RFC 8705 §2).

`tls_client_auth`: the certificate chains to the configured CA bundle (validity,
client-auth usage, constraints) and carries the one subject value the client
registered (§2.1.2). `self_signed_tls_client_auth`: its public key is one of the
client's registered JWKS keys (§2.2). Failures are `invalid_client`; a missing CA
bundle is a configuration problem reported as 503, not an authentication verdict.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.verification import Store as CertificateStore

from warden.core.client import AuthMethod
from warden.protocol.client_auth import PresentedCredentials
from warden.protocol.errors import InvalidClient, TemporarilyUnavailable
from warden.protocol.mtls import SubjectBinding, key_in_jwks, subject_matches, verify_chain
from warden.services.key_sources import KeySources
from warden.services.registry import ClientEntry, Registry

__all__ = ["authenticate_certificate"]

_FAILED = "client authentication failed"


async def authenticate_certificate(presented: PresentedCredentials, cert: x509.Certificate, registry: Registry,
                                   ca_store: CertificateStore | None, sources: KeySources) -> ClientEntry:
    entry = await registry.client(presented.client_id)
    if entry is None:
        raise InvalidClient(_FAILED, reason="unknown_client")
    client = entry.client
    meta = client.metadata
    if client.auth_method is AuthMethod.TLS_CLIENT_AUTH:
        if ca_store is None:
            raise TemporarilyUnavailable("tls_client_auth is not configured", reason="mtls_no_ca")
        if meta.tls_client_auth is None or not verify_chain(cert, [], ca_store):
            raise InvalidClient(_FAILED, reason="certificate_chain")
        kind = meta.tls_client_auth[0].removeprefix("tls_client_auth_")
        if not subject_matches(cert, SubjectBinding(kind, meta.tls_client_auth[1])):
            raise InvalidClient(_FAILED, reason="certificate_subject")
    elif client.auth_method is AuthMethod.SELF_SIGNED_TLS_CLIENT_AUTH:
        if meta.jwks is not None:
            ok = key_in_jwks(cert, meta.jwks)
        elif meta.jwks_uri is not None:
            spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
            keys = await sources.remote(jwks_uri=meta.jwks_uri).keys(None)
            ok = any(k.key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo) == spki for k in keys)
        else:
            ok = False
        if not ok:
            raise InvalidClient(_FAILED, reason="certificate_key")
    else:
        raise InvalidClient(_FAILED, reason="auth_method_mismatch")  # no downgrade between methods
    if not client.enabled:
        raise InvalidClient(_FAILED, reason="client_disabled")
    return entry
