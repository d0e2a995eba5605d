"""DPoP at the resource server: the RFC 9449 §4.3 checks, §7.1/§7.2 binding, §9 nonces (SECURITY T50-T51).

The matrix follows the OIDF `fapi2-security-profile-final-dpop-negative-tests` module: each case changes
one thing in an otherwise valid request, and a valid proof still works at the end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from resource_helpers import DROP, NOW, FakeIssuer, make_proof, thumbprint

from warden.core.clock import FixedClock
from warden.jose import PrivateKey, public_jwk
from warden.protocol.errors import InvalidDPoPProof, InvalidToken, UseDPoPNonce
from warden.resource import DPoPNonces, DPoPVerifier, MemoryReplayCache, Validator
from warden.resource.dpop import access_token_hash, normalize_htu

URL = "https://api.test/orders"


@pytest.fixture
def client_key(keys: dict[str, PrivateKey]) -> PrivateKey:
    return keys["ES256"]


@pytest.fixture
def bound_token(issuer: FakeIssuer, client_key: PrivateKey) -> str:
    return issuer.mint(cnf={"jkt": thumbprint(client_key)})


def present(validator: Validator, token: str, proof: Any, *, method: str = "GET", url: str = URL,
            scheme: str = "DPoP") -> Any:
    return validator.validate(token, scheme=scheme, dpop_proof=proof, method=method, url=url)  # type: ignore[arg-type]


def proof_refused(validator: Validator, token: str, proof: Any, **kwargs: Any) -> str:
    with pytest.raises(InvalidDPoPProof) as caught:
        present(validator, token, proof, **kwargs)
    assert caught.value.error == "invalid_dpop_proof"
    return caught.value.reason


def test_valid_proof_is_accepted(validator: Validator, bound_token: str, client_key: PrivateKey) -> None:
    claims = present(validator, bound_token, make_proof(client_key, "ES256", token=bound_token))
    assert claims.jkt == thumbprint(client_key)


@pytest.mark.parametrize("alg", ["ES256", "RS256", "PS256", "EdDSA"])
def test_proofs_of_every_allowed_algorithm_are_accepted(
    validator: Validator, issuer: FakeIssuer, other_keys: dict[str, PrivateKey], alg: str
) -> None:
    key = other_keys[alg]
    token = issuer.mint(cnf={"jkt": thumbprint(key)})
    present(validator, token, make_proof(key, alg, token=token))


def test_dpop_bound_token_presented_as_bearer_is_refused(
    validator: Validator, bound_token: str, client_key: PrivateKey
) -> None:
    # T50 / RFC 9449 §7.2: the downgrade, with or without the proof alongside.
    for proof in (None, make_proof(client_key, "ES256", token=bound_token)):
        with pytest.raises(InvalidToken) as caught:
            present(validator, bound_token, proof, scheme="Bearer")
        assert caught.value.reason == "dpop_bound_as_bearer"
    with pytest.raises(InvalidToken):
        validator.validate(bound_token)


def test_unbound_token_presented_with_dpop_scheme_is_refused(
    validator: Validator, issuer: FakeIssuer, client_key: PrivateKey
) -> None:
    token = issuer.mint()
    with pytest.raises(InvalidToken) as caught:
        present(validator, token, make_proof(client_key, "ES256", token=token))
    assert caught.value.reason == "not_dpop_bound"


def test_missing_request_context_is_a_programming_error(validator: Validator, bound_token: str) -> None:
    with pytest.raises(ValueError):
        validator.validate(bound_token, scheme="DPoP", dpop_proof="a.b.c")
    with pytest.raises(ValueError):
        validator.validate(bound_token, scheme="Basic")  # type: ignore[arg-type]


def _tamper(token: str) -> str:
    head, payload, signature = token.split(".")
    flipped = "A" if signature[0] != "A" else "B"
    return f"{head}.{payload}.{flipped}{signature[1:]}"


def _cases(key: PrivateKey, other: PrivateKey, rsa: PrivateKey, token: str) -> dict[str, Any]:
    def proof(**kwargs: Any) -> str:
        return make_proof(key, "ES256", token=token, **kwargs)

    private_jwk = {**public_jwk(key), "d": "AAAA"}
    return {
        "two DPoP headers": [proof(), proof()],
        "no DPoP header": None,
        "empty header list": [],
        "not a JWT": "not-a-jwt",
        "JWT with four parts": proof() + ".x",
        "missing typ": proof(header={"typ": DROP}),
        "typ JWT": proof(header={"typ": "JWT"}),
        "typ at+jwt": proof(header={"typ": "at+jwt"}),
        "missing alg": proof(header={"alg": DROP}),
        "alg none": proof(header={"alg": "none"}),
        "alg HS256": proof(header={"alg": "HS256"}),
        "RS256 signature labelled PS256": make_proof(rsa, "RS256", token=token, header={"alg": "PS256"}),
        "missing jwk": proof(header={"jwk": DROP}),
        "jwk not an object": proof(header={"jwk": "key"}),
        "private key in jwk": proof(jwk=private_jwk),
        "jwk of another key": proof(jwk=public_jwk(other)),
        "symmetric jwk": proof(jwk={"kty": "oct", "k": "c2VjcmV0"}),
        "bad signature": _tamper(proof()),
        "crit header": proof(header={"crit": ["exp"]}),
        "missing jti": proof(claims={"jti": DROP}),
        "empty jti": proof(claims={"jti": ""}),
        "huge jti": proof(claims={"jti": "j" * 300}),
        "missing htm": proof(claims={"htm": DROP}),
        "htm PUT": proof(method="PUT"),
        "htm lower case": proof(method="get"),
        "missing htu": proof(claims={"htu": DROP}),
        "htu another URL": proof(url="https://api.test/payments"),
        "htu another host": proof(url="https://evil.test/orders"),
        "htu http instead of https": proof(url="http://api.test/orders"),
        "htu not a URL": proof(claims={"htu": "orders"}),
        "missing iat": proof(claims={"iat": DROP}),
        "iat as a string": proof(claims={"iat": str(int(NOW))}),
        "iat one hour ago": proof(now=NOW - 3600),
        "iat one hour ahead": proof(now=NOW + 3600),
        "expired exp": proof(claims={"exp": int(NOW) - 60}),
        "future nbf": proof(claims={"nbf": int(NOW) + 60}),
        "missing ath": proof(claims={"ath": DROP}),
        "wrong ath": proof(claims={"ath": access_token_hash(token + "x")}),
        "non-ascii ath": proof(claims={"ath": "é" * 43}),
        "proof by another key": make_proof(other, "ES256", token=token),
        "oversize proof": proof(claims={"padding": "x" * 9000}),
    }


@pytest.fixture
def matrix(client_key: PrivateKey, other_keys: dict[str, PrivateKey], keys: dict[str, PrivateKey],
           bound_token: str) -> dict[str, Any]:
    return _cases(client_key, other_keys["ES256"], keys["RS256"], bound_token)


# case -> the private reason recorded for it (the wire error is always invalid_dpop_proof)
NEGATIVE = {
    "two DPoP headers": "dpop_count", "no DPoP header": "dpop_missing", "empty header list": "dpop_count",
    "not a JWT": "dpop_malformed", "JWT with four parts": "dpop_malformed", "missing typ": "dpop_typ",
    "typ JWT": "dpop_typ", "typ at+jwt": "dpop_typ", "missing alg": "dpop_malformed",
    "alg none": "dpop_malformed", "alg HS256": "dpop_malformed", "RS256 signature labelled PS256": "dpop_signature",
    "missing jwk": "dpop_jwk", "jwk not an object": "dpop_jwk", "private key in jwk": "dpop_jwk",
    "jwk of another key": "dpop_signature", "symmetric jwk": "dpop_jwk", "bad signature": "dpop_signature",
    "crit header": "dpop_malformed", "missing jti": "dpop_jti", "empty jti": "dpop_jti", "huge jti": "dpop_jti",
    "missing htm": "dpop_htm", "htm PUT": "dpop_htm", "htm lower case": "dpop_htm", "missing htu": "dpop_htu",
    "htu another URL": "dpop_htu", "htu another host": "dpop_htu", "htu http instead of https": "dpop_htu",
    "htu not a URL": "dpop_htu", "missing iat": "dpop_iat", "iat as a string": "dpop_iat",
    "iat one hour ago": "dpop_iat", "iat one hour ahead": "dpop_iat", "expired exp": "dpop_exp",
    "future nbf": "dpop_exp", "missing ath": "dpop_ath", "wrong ath": "dpop_ath", "non-ascii ath": "dpop_ath",
    "proof by another key": "dpop_key_binding", "oversize proof": "dpop_malformed",
}


@pytest.mark.parametrize("case", NEGATIVE)
def test_dpop_negative_matrix(
    validator: Validator, bound_token: str, client_key: PrivateKey, matrix: dict[str, Any], case: str
) -> None:
    assert proof_refused(validator, bound_token, matrix[case]) == NEGATIVE[case]
    # ... and a valid proof still works afterwards (the refused one spent nothing).
    present(validator, bound_token, make_proof(client_key, "ES256", token=bound_token))


@pytest.mark.parametrize("url", [
    "https://api.test/orders?page=2",
    "https://api.test/orders#top",
    "https://api.test/orders?page=2#top",
    "HTTPS://API.TEST/orders",
    "https://api.test:443/orders",
    "https://api.test/./x/../orders",
    "https://api.test/%6Frders",
])
def test_htu_is_compared_after_normalisation_without_query_or_fragment(
    validator: Validator, bound_token: str, client_key: PrivateKey, url: str
) -> None:
    present(validator, bound_token, make_proof(client_key, "ES256", token=bound_token, url=url))
    present(validator, bound_token, make_proof(client_key, "ES256", token=bound_token), url=url)


def test_extra_claims_and_header_members_are_ignored(
    validator: Validator, bound_token: str, client_key: PrivateKey
) -> None:
    proof = make_proof(client_key, "ES256", token=bound_token, header={"kid": "x", "x5u": "https://evil.test"},
                       claims={"extra": {"nested": True}, "exp": int(NOW) + 60, "nbf": int(NOW) - 1})
    present(validator, bound_token, proof)


@pytest.mark.parametrize("skew", [-10, 10, -59, 29])
def test_iat_within_the_window_is_accepted(
    validator: Validator, bound_token: str, client_key: PrivateKey, skew: int
) -> None:
    present(validator, bound_token, make_proof(client_key, "ES256", token=bound_token, now=NOW + skew))


def test_a_proof_is_accepted_once(validator: Validator, bound_token: str, client_key: PrivateKey) -> None:
    proof = make_proof(client_key, "ES256", token=bound_token)
    present(validator, bound_token, proof)
    assert proof_refused(validator, bound_token, proof) == "dpop_replay"  # the token itself is cached
    present(validator, bound_token, make_proof(client_key, "ES256", token=bound_token))


def test_replay_store_forgets_after_the_window_and_stays_bounded() -> None:
    store = MemoryReplayCache(max_entries=2)
    assert store.add_if_new(b"a", 100.0, 0.0)
    assert not store.add_if_new(b"a", 100.0, 50.0)
    assert store.add_if_new(b"a", 200.0, 100.0)  # expired, usable again
    assert store.add_if_new(b"b", 200.0, 100.0)
    assert store.add_if_new(b"c", 200.0, 100.0)  # evicts the oldest
    assert len(store) == 2


def test_the_window_is_configurable(make_validator: Callable[..., Validator], bound_token: str,
                                    client_key: PrivateKey, clock: FixedClock) -> None:
    validator = make_validator(dpop=DPoPVerifier(max_age=5, leeway=1, clock=clock))
    present(validator, bound_token, make_proof(client_key, "ES256", token=bound_token, now=NOW - 5))
    proof_refused(validator, bound_token, make_proof(client_key, "ES256", token=bound_token, now=NOW - 6))
    proof_refused(validator, bound_token, make_proof(client_key, "ES256", token=bound_token, now=NOW + 2))


def test_proof_algorithms_are_an_allow_list(
    make_validator: Callable[..., Validator], issuer: FakeIssuer, other_keys: dict[str, PrivateKey],
    clock: FixedClock
) -> None:
    validator = make_validator(dpop=DPoPVerifier(algorithms=["ES256"], clock=clock))
    key = other_keys["EdDSA"]
    token = issuer.mint(cnf={"jkt": thumbprint(key)})
    assert proof_refused(validator, token, make_proof(key, "EdDSA", token=token)) == "dpop_signature"
    with pytest.raises(ValueError):
        DPoPVerifier(algorithms=["HS256"])


def test_server_nonces_are_required_when_configured(
    make_validator: Callable[..., Validator], bound_token: str, client_key: PrivateKey, clock: FixedClock
) -> None:
    nonces = DPoPNonces(b"k" * 32, lifetime=60, clock=clock)
    validator = make_validator(dpop=DPoPVerifier(nonces=nonces, clock=clock))
    with pytest.raises(UseDPoPNonce) as caught:
        present(validator, bound_token, make_proof(client_key, "ES256", token=bound_token))
    assert caught.value.error == "use_dpop_nonce"
    nonce = nonces.current()
    present(validator, bound_token, make_proof(client_key, "ES256", token=bound_token, claims={"nonce": nonce}))
    clock.advance(60)  # the previous slot's nonce is still accepted
    present(validator, bound_token, make_proof(client_key, "ES256", token=bound_token, claims={"nonce": nonce},
                                               now=NOW + 60))
    clock.advance(60)
    with pytest.raises(UseDPoPNonce):
        present(validator, bound_token, make_proof(client_key, "ES256", token=bound_token,
                                                   claims={"nonce": nonce}, now=NOW + 120))
    for forged in ("é" * 10, 42, "x" * 500, DPoPNonces(b"z" * 32, clock=clock).current()):
        with pytest.raises(UseDPoPNonce):
            present(validator, bound_token, make_proof(client_key, "ES256", token=bound_token,
                                                       claims={"nonce": forged}, now=NOW + 120))


def test_nonces_need_a_long_secret_and_are_shared_by_secret(clock: FixedClock) -> None:
    with pytest.raises(ValueError):
        DPoPNonces(b"short")
    a, b = DPoPNonces(b"s" * 32, clock=clock), DPoPNonces(b"s" * 32, clock=clock)
    assert a.is_valid(b.current()) and not DPoPNonces(clock=clock).is_valid(a.current())
    assert "s" * 32 not in repr(a)


def test_cached_token_still_needs_a_fresh_proof_each_time(
    validator: Validator, bound_token: str, client_key: PrivateKey
) -> None:
    present(validator, bound_token, make_proof(client_key, "ES256", token=bound_token))
    with pytest.raises(InvalidToken):
        validator.validate(bound_token)
    proof_refused(validator, bound_token, None)
    proof_refused(validator, bound_token, make_proof(client_key, "ES256", token=bound_token, method="POST"))


def test_avalidate_checks_proofs_too(validator: Validator, bound_token: str, client_key: PrivateKey) -> None:
    async def run() -> None:
        await validator.avalidate(bound_token, scheme="DPoP", method="GET", url=URL,
                                  dpop_proof=make_proof(client_key, "ES256", token=bound_token))
        with pytest.raises(InvalidDPoPProof):
            await validator.avalidate(bound_token, scheme="DPoP", method="GET", url=URL, dpop_proof=None)

    asyncio.run(run())


def test_normalize_htu() -> None:
    assert normalize_htu("HTTPS://Server.Example.COM:443/a/./b/../token?x=1#frag") == "https://server.example.com/a/token"
    assert normalize_htu("http://h.test:80") == "http://h.test/"
    assert normalize_htu("http://h.test:8080/") == "http://h.test:8080/"
    assert normalize_htu("https://h.test/%7euser/%2f") == "https://h.test/~user/%2F"
    assert normalize_htu("https://[::1]:8443/x") == "https://[::1]:8443/x"
    assert normalize_htu("https://h.test/a/..") == "https://h.test/"
    for bad in ("ftp://h.test/", "orders", "https://user@h.test/", "https://h.test:99999/", "https:///x"):
        with pytest.raises(ValueError):
            normalize_htu(bad)


def test_rfc9449_access_token_hash_example() -> None:
    # RFC 9449 §7.1, figures 12-13 (also checked from tests/vectors).
    assert access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU") == \
        "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
