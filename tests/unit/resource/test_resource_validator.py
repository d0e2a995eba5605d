"""Validator: accepted tokens from several JOSE libraries, and every claim rule of RFC 9068 §4."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from resource_helpers import ALGS, AUDIENCE, DROP, ISSUER, NOW, FakeIssuer

from warden.protocol.errors import InsufficientScope, InvalidToken
from warden.resource import Claims, Validator


def reason_of(validator: Validator, token: str, **kwargs: Any) -> str:
    with pytest.raises(InvalidToken) as caught:
        validator.validate(token, **kwargs)
    return caught.value.reason


@pytest.mark.parametrize("alg", ALGS)
@pytest.mark.parametrize("minter", ["warden", "pyjwt", "joserfc"])
def test_accepts_tokens_minted_by_any_rfc9068_issuer(
    validator: Validator, issuer: FakeIssuer, alg: str, minter: str
) -> None:
    mint = {"warden": issuer.mint, "pyjwt": issuer.mint_pyjwt, "joserfc": issuer.mint_joserfc}[minter]
    token = mint(alg)
    claims = validator.validate(token, scopes=["read"])
    assert claims.iss == ISSUER
    assert claims.sub == claims.client_id == "svc-orders"
    assert claims.aud == (AUDIENCE,)
    assert claims.scope == frozenset({"read", "write"})


def test_avalidate_accepts_the_same_tokens(validator: Validator, issuer: FakeIssuer) -> None:
    tokens = [issuer.mint(alg) for alg in ALGS]

    async def run() -> list[Claims]:
        return [await validator.avalidate(token, scopes=["write"]) for token in tokens]

    assert [c.jti for c in asyncio.run(run())] == [validator.validate(t).jti for t in tokens]


def test_claims_expose_registered_and_custom_claims(validator: Validator, issuer: FakeIssuer) -> None:
    token = issuer.mint(nbf=int(NOW) - 5, tenant="acme", custom={"team": "payments"})
    claims = validator.validate(token)
    assert claims.exp == NOW + 600 and claims.iat == NOW and claims.nbf == NOW - 5
    assert claims.tenant == "acme"
    assert claims["custom"] == {"team": "payments"}
    assert claims.get("absent", 7) == 7 and "custom" in claims
    assert claims.jkt is None and claims.x5t_s256 is None
    assert claims.has_scopes("read", "write") and not claims.has_scopes("admin")
    with pytest.raises(TypeError):
        claims.payload["sub"] = "someone-else"  # type: ignore[index]
    with pytest.raises(AttributeError):
        claims.sub = "someone-else"  # type: ignore[misc]


def test_claims_repr_never_contains_the_token(validator: Validator, issuer: FakeIssuer) -> None:
    token = issuer.mint()
    claims = validator.validate(token)
    for text in (repr(claims), str(claims), repr(validator), repr(validator.jwks), repr(validator.cache)):
        assert token not in text
        assert token.split(".")[2] not in text


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt", "Application/AT+JWT"])
def test_typ_at_jwt_is_accepted_case_insensitively(validator: Validator, issuer: FakeIssuer, typ: str) -> None:
    validator.validate(issuer.mint(header={"typ": typ}))


@pytest.mark.parametrize("typ", ["JWT", "jwt", "dpop+jwt", "application/jwt", "at+jwt ", "", 1, DROP])
def test_other_typ_values_are_refused(validator: Validator, issuer: FakeIssuer, typ: Any) -> None:
    assert reason_of(validator, issuer.mint(header={"typ": typ})) == "typ"


@pytest.mark.parametrize("iss", [
    "https://issuer.tes",  # prefix
    "https://issuer.test/",  # trailing slash
    "https://issuer.test.evil",  # suffix
    "https",  # PyJWT CVE-2024-53861 style partial match
    "HTTPS://ISSUER.TEST",
    ["https://issuer.test"],
    DROP,
])
def test_issuer_must_match_exactly(validator: Validator, issuer: FakeIssuer, iss: Any) -> None:
    assert reason_of(validator, issuer.mint(iss=iss)) == "iss"


@pytest.mark.parametrize("aud", [
    [AUDIENCE],
    ["https://other.test", AUDIENCE],
])
def test_audience_array_containing_the_api_is_accepted(validator: Validator, issuer: FakeIssuer, aud: Any) -> None:
    assert validator.validate(issuer.mint(aud=aud)).aud == tuple(aud)


@pytest.mark.parametrize("aud", [
    DROP, [], "https://other.test", ["https://other.test"], "https://api.tes", "https://api.test/",
    [AUDIENCE, 7], {"aud": AUDIENCE}, None,
])
def test_audience_missing_other_or_empty_is_refused(validator: Validator, issuer: FakeIssuer, aud: Any) -> None:
    assert reason_of(validator, issuer.mint(aud=aud)) == "aud"


def test_token_for_another_resource_server_is_refused(
    make_validator: Callable[..., Validator], issuer: FakeIssuer
) -> None:
    token = issuer.mint(aud="https://billing.test")  # T43: replay at another RS
    make_validator(audience="https://billing.test").validate(token)
    assert reason_of(make_validator(), token) == "aud"


def test_exp_is_required_and_must_be_a_number(validator: Validator, issuer: FakeIssuer) -> None:
    assert reason_of(validator, issuer.mint(exp=DROP)) == "exp"
    assert reason_of(validator, issuer.mint(exp="1700000600")) == "exp"
    assert reason_of(validator, issuer.mint(exp=True)) == "exp"
    assert reason_of(validator, issuer.mint(exp=None)) == "exp"


def test_expiry_honours_the_leeway(validator: Validator, issuer: FakeIssuer) -> None:
    validator.validate(issuer.mint(exp=int(NOW) - 29))
    assert reason_of(validator, issuer.mint(exp=int(NOW) - 30)) == "expired"
    assert reason_of(validator, issuer.mint(exp=int(NOW) - 3600)) == "expired"


def test_leeway_is_configurable(make_validator: Callable[..., Validator], issuer: FakeIssuer) -> None:
    strict = make_validator(leeway=0)
    assert reason_of(strict, issuer.mint(exp=int(NOW))) == "expired"
    strict.validate(issuer.mint(exp=int(NOW) + 1))
    assert reason_of(strict, issuer.mint(nbf=int(NOW) + 1)) == "nbf"
    with pytest.raises(ValueError):
        make_validator(leeway=-1)


def test_nbf_in_the_future_beyond_leeway_is_refused(validator: Validator, issuer: FakeIssuer) -> None:
    validator.validate(issuer.mint(nbf=int(NOW) + 30))
    assert reason_of(validator, issuer.mint(nbf=int(NOW) + 31)) == "nbf"
    assert reason_of(validator, issuer.mint(nbf="soon")) == "nbf"


def test_iat_in_the_future_beyond_leeway_is_refused(validator: Validator, issuer: FakeIssuer) -> None:
    validator.validate(issuer.mint(iat=int(NOW) + 30))
    assert reason_of(validator, issuer.mint(iat=int(NOW) + 31)) == "iat"
    assert reason_of(validator, issuer.mint(iat=[1])) == "iat"


def test_nbf_and_iat_are_optional(validator: Validator, issuer: FakeIssuer) -> None:
    claims = validator.validate(issuer.mint(iat=DROP, nbf=DROP))
    assert claims.iat is None and claims.nbf is None


def test_fractional_times_are_numeric_dates(validator: Validator, issuer: FakeIssuer) -> None:
    assert validator.validate(issuer.mint(exp=NOW + 0.5, iat=NOW - 0.25)).exp == NOW + 0.5


@pytest.mark.parametrize("claim", ["sub", "client_id", "jti"])
@pytest.mark.parametrize("value", [DROP, "", 42, None, ["x"]])
def test_sub_client_id_and_jti_are_required_strings(
    validator: Validator, issuer: FakeIssuer, claim: str, value: Any
) -> None:
    assert reason_of(validator, issuer.mint(**{claim: value})) == f"missing_{claim}"


def test_scope_claim_is_a_space_delimited_string(validator: Validator, issuer: FakeIssuer) -> None:
    assert validator.validate(issuer.mint(scope="read  admin")).scope == frozenset({"read", "admin"})
    assert validator.validate(issuer.mint(scope=DROP)).scope == frozenset()
    assert reason_of(validator, issuer.mint(scope=["read"])) == "scope"


def test_required_scopes_must_all_be_granted(validator: Validator, issuer: FakeIssuer) -> None:
    token = issuer.mint(scope="read")
    validator.validate(token, scopes=["read"])
    validator.validate(token, scopes="read")
    with pytest.raises(InsufficientScope) as caught:
        validator.validate(token, scopes=["read", "write"])
    assert caught.value.status == 403 and caught.value.error == "insufficient_scope"
    with pytest.raises(InsufficientScope):
        validator.validate(token, scopes="read write")
    with pytest.raises(InsufficientScope):
        validator.validate(issuer.mint(scope=DROP), scopes=["read"])


def test_tenant_is_checked_only_when_configured(make_validator: Callable[..., Validator], issuer: FakeIssuer) -> None:
    tenanted = make_validator(tenant="acme")
    tenanted.validate(issuer.mint(tenant="acme"))
    assert reason_of(tenanted, issuer.mint(tenant="globex")) == "tenant"
    assert reason_of(tenanted, issuer.mint()) == "tenant"
    make_validator().validate(issuer.mint(tenant="globex"))


@pytest.mark.parametrize("cnf", [
    {}, {"jwk": {"kty": "EC"}}, {"jkt": "x", "kid": "k"}, "jkt", {"jkt": ""}, {"x5t#S256": 3}, [],
])
def test_unknown_or_malformed_confirmation_methods_are_refused(
    validator: Validator, issuer: FakeIssuer, cnf: Any
) -> None:
    assert reason_of(validator, issuer.mint(cnf=cnf)) == "cnf"


def test_algorithm_allow_list_is_configurable(make_validator: Callable[..., Validator], issuer: FakeIssuer) -> None:
    only_es256 = make_validator(algorithms=["ES256"])
    only_es256.validate(issuer.mint("ES256"))
    assert reason_of(only_es256, issuer.mint("RS256")) == "alg"
    with pytest.raises(ValueError):
        make_validator(algorithms=["HS256"])
    with pytest.raises(ValueError):
        make_validator(algorithms=["none"])


def test_issuer_and_audience_are_required(make_validator: Callable[..., Validator]) -> None:
    with pytest.raises(ValueError):
        make_validator(issuer="")
    with pytest.raises(ValueError):
        make_validator(audience="")


def test_a_shared_key_cache_must_belong_to_the_same_issuer(
    make_validator: Callable[..., Validator], validator: Validator
) -> None:
    make_validator(audience="https://other.test", jwks=validator.jwks)
    with pytest.raises(ValueError):
        make_validator(issuer="https://elsewhere.test", jwks=validator.jwks)
