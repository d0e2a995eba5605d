"""RFC 8705 certificate checks: subject binding, chain, self-signed keys, proxy headers."""

from __future__ import annotations

import base64
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives import serialization
from tests.pki import CA, self_signed

from warden.jose import public_jwk
from warden.protocol.mtls import (
    SubjectBinding,
    certificate_thumbprint,
    key_in_jwks,
    load_ca_bundle,
    parse_forwarded_cert,
    subject_matches,
    verify_chain,
)

CA1 = CA()
OTHER_CA = CA("Other CA")
CLIENT = CA1.issue("billing", dns=["billing.svc.example"], uris=["spiffe://example.org/billing"], ips=["10.0.0.7"],
                   emails=["billing@example.org"])
LOOKALIKE = OTHER_CA.issue("billing", dns=["billing.svc.example"])


@pytest.mark.parametrize("binding,expected", [
    (SubjectBinding("subject_dn", "CN=billing,O=Warden Test"), True),
    (SubjectBinding("subject_dn", "CN=billing,O=Other"), False),
    (SubjectBinding("san_dns", "billing.svc.example"), True),
    (SubjectBinding("san_dns", "evil.svc.example"), False),
    (SubjectBinding("san_uri", "spiffe://example.org/billing"), True),
    (SubjectBinding("san_ip", "10.0.0.7"), True),
    (SubjectBinding("san_ip", "10.0.0.8"), False),
    (SubjectBinding("san_email", "billing@example.org"), True),
    (SubjectBinding("subject_dn", "not a dn ="), False),
])
def test_subject_binding(binding: SubjectBinding, expected: bool):
    assert subject_matches(CLIENT.cert, binding) is expected


def test_chain_must_reach_the_configured_ca():
    store = load_ca_bundle(CA1.pem)
    assert verify_chain(CLIENT.cert, [], store)
    assert not verify_chain(LOOKALIKE.cert, [], store)  # same subject and SAN, other CA (T19)
    assert not verify_chain(self_signed("billing").cert, [], store)
    server_cert = CA1.issue("server", dns=["localhost"], server=True)
    assert not verify_chain(server_cert.cert, [], store)  # not a client certificate (EKU)


def test_self_signed_certificate_key_must_be_in_jwks():
    cert = self_signed("device")
    assert key_in_jwks(cert.cert, {"keys": [public_jwk(cert.key)]})
    assert not key_in_jwks(cert.cert, {"keys": [public_jwk(self_signed("x").key)]})
    assert not key_in_jwks(cert.cert, None)


def test_proxy_header_formats():
    pem = CLIENT.pem.decode()
    der = CLIENT.cert.public_bytes(serialization.Encoding.DER)
    expected = certificate_thumbprint(CLIENT.cert)
    assert certificate_thumbprint(parse_forwarded_cert(quote(pem), "nginx")) == expected
    assert certificate_thumbprint(parse_forwarded_cert(f":{base64.b64encode(der).decode()}:", "rfc9440")) == expected
    other = quote(LOOKALIKE.pem.decode())
    xfcc = f'By=spiffe://proxy;Hash=abc;Cert="{other}";Subject="CN=x",By=spiffe://edge;Cert="{quote(pem)}";DNS=a'
    assert certificate_thumbprint(parse_forwarded_cert(xfcc, "xfcc")) == expected  # the last element counts


@pytest.mark.parametrize("value,fmt", [("", "nginx"), ("garbage", "nginx"), (":notb64!:", "rfc9440"),
                                       ("By=x;Hash=y", "xfcc"), ("x" * 70000, "nginx"),
                                       (quote("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"), "nginx")])
def test_bad_proxy_headers_raise_value_error(value: str, fmt: str):
    with pytest.raises(ValueError):
        parse_forwarded_cert(value, fmt)


def test_thumbprint_is_sha256_of_der():
    import hashlib

    der = CLIENT.cert.public_bytes(serialization.Encoding.DER)
    assert certificate_thumbprint(CLIENT.cert) == base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(
        b"=").decode()
