"""RFC 7523 §3 / RFC 10070 §4 assertion rules, one broken rule per case (attack rows T01-T09)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization

from warden.jose import generate_private_key, public_jwk
from warden.protocol.client_assertion import (
    AssertionRules,
    VerificationKey,
    key_algs,
    parse_assertion,
    verify_assertion,
)
from warden.protocol.errors import InvalidClient

ISSUER = "https://auth.example.com"
NOW = 1_800_000_000
KEY = generate_private_key("ES256")
OTHER = generate_private_key("ES256")
RSA = generate_private_key("RS256")
KEYS = [VerificationKey("k1", KEY.public_key(), ("ES256",)), VerificationKey("r1", RSA.public_key(), ("RS256", "PS256"))]
RULES = AssertionRules(issuer="c1", subject="c1", audiences={ISSUER}, sole_audience=True, max_lifetime=300,
                       leeway=30)


def claims(**over):
    base = {"iss": "c1", "sub": "c1", "aud": ISSUER, "iat": NOW, "exp": NOW + 120, "jti": "j-1"}
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def sign(payload, key=KEY, alg="ES256", headers=None):
    return pyjwt.encode(payload, key, algorithm=alg, headers={"kid": "k1" if alg == "ES256" else "r1",
                                                             **(headers or {})})


def check(token, rules=RULES, now=NOW):
    return verify_assertion(parse_assertion(token), KEYS, rules, now)


def test_valid_assertion_as_string_and_single_member_array():
    assert check(sign(claims())).jti == "j-1"
    assert check(sign(claims(aud=[ISSUER]))).sub == "c1"
    assert check(sign(claims(), headers={"typ": "client-authentication+jwt"}))
    assert check(sign(claims(), RSA, "PS256"))


@pytest.mark.parametrize("aud", [f"{ISSUER}/oauth2/token", [ISSUER, "https://other.example"], ISSUER + "/",
                                 ISSUER.upper(), "https://auth.example.co", [], None, ""])
def test_audience_must_be_the_issuer_exactly_and_alone(aud):
    with pytest.raises(InvalidClient) as exc:
        check(sign(claims(aud=aud)))
    assert exc.value.reason == "assertion_aud"
    assert ISSUER in (exc.value.description or "")  # the description names the expected audience


def test_token_endpoint_audience_only_with_the_compatibility_setting():
    rules = AssertionRules("c1", "c1", {ISSUER, f"{ISSUER}/oauth2/token"}, True, 300, 30)
    assert check(sign(claims(aud=f"{ISSUER}/oauth2/token")), rules)


@pytest.mark.parametrize("over,reason", [
    ({"iss": "c2"}, "assertion_iss"), ({"sub": "c2"}, "assertion_sub"), ({"sub": None}, "assertion_sub"),
    ({"iss": None}, "assertion_iss"), ({"exp": None}, "assertion_exp"), ({"exp": NOW - 31}, "assertion_expired"),
    ({"exp": NOW + 3600 * 24 * 365}, "assertion_lifetime"), ({"iat": NOW + 61, "exp": NOW + 200}, "assertion_iat"),
    ({"nbf": NOW + 61}, "assertion_nbf"), ({"jti": None}, "assertion_jti"), ({"jti": "x" * 300}, "assertion_jti"),
    ({"exp": "soon"}, "assertion_claims"), ({"exp": True}, "assertion_claims"),
])
def test_claim_rules(over, reason):
    with pytest.raises(InvalidClient) as exc:
        check(sign(claims(**over)))
    assert exc.value.reason == reason


def test_small_clock_skew_is_accepted():
    check(sign(claims(nbf=NOW + 8, iat=NOW + 8)))  # OIDF: +8 s accepted
    check(sign(claims(exp=NOW - 5)))


@pytest.mark.parametrize("typ", ["at+jwt", "dpop+jwt", "oauth-authz-req+jwt", "logout+jwt"])
def test_other_jwt_types_are_refused(typ):
    with pytest.raises(InvalidClient) as exc:
        check(sign(claims(), headers={"typ": typ}))
    assert exc.value.reason == "assertion_typ"


def test_signature_key_and_algorithm_attacks():
    with pytest.raises(InvalidClient):  # another client's key
        check(sign(claims(), OTHER))
    head, payload, _ = sign(claims()).split(".")
    with pytest.raises(InvalidClient):  # stripped signature
        check(f"{head}.{payload}.")
    none = base64.urlsafe_b64encode(b'{"alg":"none","kid":"k1"}').rstrip(b"=").decode()
    with pytest.raises(InvalidClient):
        check(f"{none}.{payload}.")
    with pytest.raises(InvalidClient) as exc:  # unknown kid
        check(pyjwt.encode(claims(), KEY, algorithm="ES256", headers={"kid": "nope"}))
    assert exc.value.reason == "assertion_unknown_kid"
    with pytest.raises(InvalidClient):  # RS256 key pinned: PS256 only where allowed
        verify_assertion(parse_assertion(sign(claims(), RSA, "PS256")),
                         [VerificationKey("r1", RSA.public_key(), ("RS256",))], RULES, NOW)


@pytest.mark.parametrize("form", ["pem", "der", "jwk"])
def test_hs256_signed_with_the_clients_public_key_is_refused(form):
    pub = RSA.public_key()
    secret = {"pem": pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
              "der": pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
              "jwk": json.dumps(public_jwk(RSA)).encode()}[form]
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","kid":"r1"}').rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(claims()).encode()).rstrip(b"=")
    sig = base64.urlsafe_b64encode(hmac.new(secret, header + b"." + body, hashlib.sha256).digest()).rstrip(b"=")
    with pytest.raises(InvalidClient):
        check((header + b"." + body + b"." + sig).decode())


def test_keys_in_the_header_are_never_used():
    attacker = generate_private_key("ES256")
    token = pyjwt.encode(claims(), attacker, algorithm="ES256",
                         headers={"kid": "k1", "jwk": public_jwk(attacker), "jku": "https://evil.example/jwks",
                                  "x5u": "https://evil.example/cert"})
    with pytest.raises(InvalidClient):
        check(token)


@pytest.mark.parametrize("token", ["x" * 9000, "a.b.c.d.e", "not-a-jwt", ""])
def test_oversized_and_malformed_assertions(token):
    with pytest.raises(InvalidClient):
        check(token)


def test_crit_and_zip_are_refused():
    for headers in ({"crit": ["exp"]}, {"zip": "DEF"}):
        with pytest.raises(InvalidClient):
            check(sign(claims(), headers=headers))


def test_federated_rules_accept_audience_among_several_and_optional_jti():
    rules = AssertionRules("https://k8s.example", "system:serviceaccount:ns:app", {"warden"}, False, 3600, 30,
                           require_jti=False)
    token = sign(claims(iss="https://k8s.example", sub="system:serviceaccount:ns:app", aud=["warden", "other"],
                        jti=None, exp=NOW + 3000))
    assert check(token, rules).jti is None


def test_key_algs_pins_jwk_alg():
    assert key_algs({"alg": "ES256"}, KEY.public_key()) == ("ES256",)
    assert key_algs({"alg": "RS256"}, KEY.public_key()) == ()
    assert key_algs({}, RSA.public_key()) == ("RS256", "PS256")


# private_key_jwt with the defaults: exp - iat up to 1 h (Authlib and other common clients), accepted only
# within max_age of its iat (issue 8 finding 13)
DEFAULT_RULES = AssertionRules(issuer="c1", subject="c1", audiences={ISSUER}, sole_audience=True, max_lifetime=3600,
                               leeway=30, max_age=300)


def test_an_hour_long_assertion_is_accepted_while_its_iat_is_recent():
    for age in (0, 60, 299, 300):
        verified = check(sign(claims(iat=NOW - age, exp=NOW - age + 3600)), DEFAULT_RULES)
        assert verified.usable_until == NOW - age + 300  # the jti record need not outlive this (+ leeway)
    short = check(sign(claims(iat=NOW, exp=NOW + 60)), DEFAULT_RULES)
    assert short.usable_until == NOW + 60  # exp comes first


@pytest.mark.parametrize("iat,exp", [(NOW - 301, NOW + 3000), (NOW - 3599, NOW + 1), (NOW - 86400, NOW + 60)])
def test_an_assertion_whose_iat_is_older_than_max_age_is_refused_whatever_its_exp(iat, exp):
    with pytest.raises(InvalidClient) as exc:
        check(sign(claims(iat=iat, exp=exp)), DEFAULT_RULES)
    assert exc.value.reason == "assertion_iat_age"
    assert "300 seconds" in (exc.value.description or "")


def test_without_iat_the_assertion_must_expire_within_max_age():
    assert check(sign(claims(iat=None, exp=NOW + 330)), DEFAULT_RULES).usable_until == NOW + 330
    with pytest.raises(InvalidClient) as exc:
        check(sign(claims(iat=None, exp=NOW + 331)), DEFAULT_RULES)
    assert exc.value.reason == "assertion_lifetime"
    with pytest.raises(InvalidClient) as exc:  # nbf does not stand in for iat
        check(sign(claims(iat=None, nbf=NOW - 10, exp=NOW + 3000)), DEFAULT_RULES)
    assert exc.value.reason == "assertion_lifetime"


def test_max_age_does_not_lift_the_other_time_rules():
    for over, reason in (({"iat": NOW, "exp": NOW + 3631}, "assertion_lifetime"),
                         ({"iat": NOW + 31, "exp": NOW + 600}, "assertion_iat"),
                         ({"iat": NOW - 100, "exp": NOW - 31}, "assertion_expired")):
        with pytest.raises(InvalidClient) as exc:
            check(sign(claims(**over)), DEFAULT_RULES)
        assert exc.value.reason == reason, over
    # an iat slightly ahead (client clock skew) is accepted, and usable no longer than max_age after it
    assert check(sign(claims(iat=NOW + 30, exp=NOW + 3630)), DEFAULT_RULES).usable_until == NOW + 330
