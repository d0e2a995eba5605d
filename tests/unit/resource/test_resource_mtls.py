"""Certificate-bound access tokens (RFC 8705 §3, SECURITY T52)."""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from resource_helpers import FakeIssuer, make_certificate

from warden.protocol.errors import InvalidToken
from warden.resource import Validator, certificate_thumbprint
from warden.resource.mtls import parse_client_cert_header


@pytest.fixture(scope="module")
def certificates() -> tuple[x509.Certificate, x509.Certificate]:
    return make_certificate("svc-orders"), make_certificate("svc-intruder")


def test_thumbprint_is_sha256_of_the_der_certificate(certificates: tuple[x509.Certificate, ...]) -> None:
    cert = certificates[0]
    der = cert.public_bytes(Encoding.DER)
    expected = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
    pem = cert.public_bytes(Encoding.PEM)
    assert certificate_thumbprint(cert) == certificate_thumbprint(der) == expected
    assert certificate_thumbprint(pem) == certificate_thumbprint(pem.decode()) == expected
    for bad in (b"garbage", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----", b"x" * 20_000):
        with pytest.raises(ValueError):
            certificate_thumbprint(bad)


def test_bound_token_is_accepted_with_its_certificate(
    validator: Validator, issuer: FakeIssuer, certificates: tuple[x509.Certificate, ...]
) -> None:
    cert = certificates[0]
    token = issuer.mint(cnf={"x5t#S256": certificate_thumbprint(cert)})
    assert validator.validate(token, client_certificate=cert).x5t_s256 == certificate_thumbprint(cert)
    validator.validate(token, client_certificate=cert.public_bytes(Encoding.PEM).decode())
    validator.validate(token, client_certificate=cert.public_bytes(Encoding.DER))


def test_bound_token_with_another_or_no_certificate_is_refused(
    validator: Validator, issuer: FakeIssuer, certificates: tuple[x509.Certificate, ...]
) -> None:
    cert, intruder = certificates
    token = issuer.mint(cnf={"x5t#S256": certificate_thumbprint(cert)})
    for presented, reason in ((intruder, "mtls_mismatch"), (None, "mtls_no_cert"), (b"junk", "mtls_bad_cert")):
        with pytest.raises(InvalidToken) as caught:
            validator.validate(token, client_certificate=presented)
        assert caught.value.reason == reason
    validator.validate(token, client_certificate=cert)  # cached, and the binding is still checked
    with pytest.raises(InvalidToken):
        validator.validate(token, client_certificate=intruder)


def test_unbound_token_ignores_the_certificate(
    validator: Validator, issuer: FakeIssuer, certificates: tuple[x509.Certificate, ...]
) -> None:
    validator.validate(issuer.mint(), client_certificate=certificates[1])


def test_client_cert_header_forms(certificates: tuple[x509.Certificate, ...]) -> None:
    cert = certificates[0]
    der = cert.public_bytes(Encoding.DER)
    pem = cert.public_bytes(Encoding.PEM).decode()
    assert parse_client_cert_header(":" + base64.b64encode(der).decode() + ":") == der  # RFC 9440 §2
    assert parse_client_cert_header(quote(pem)) == der  # nginx $ssl_client_escaped_cert
    for bad in (":not base64:", "::", "garbage", ":" + base64.b64encode(b"x").decode() + ":", "x" * 70_000):
        with pytest.raises(ValueError):
            parse_client_cert_header(bad)
