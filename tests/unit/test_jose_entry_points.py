"""Every JOSE entry point, fed headers and claims of every JSON type, raises only its documented
error (issue 8 #5): client assertions and federated (workload identity) tokens `InvalidClient`,
DPoP proofs `InvalidDPoPProof`, access tokens at the validator `InvalidToken` (or
`InsufficientScope`), token responses in the client library `TokenError`. Never a `TypeError`
from a list where a string is due, nor an `OverflowError` from `exp: 10**400`."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.jose_strategies import json_values, mutated, signed

from warden.client._errors import TokenError
from warden.client._messages import HTTPResponse
from warden.client._response import parse_token_response
from warden.core.client import AuthMethod
from warden.core.client_metadata import parse_client_metadata
from warden.core.clock import FixedClock
from warden.jose import (
    MAX_NUMERIC_DATE,
    MemberError,
    generate_private_key,
    jwk_thumbprint,
    numeric_date,
    object_member,
    public_jwk,
    string_member,
    string_or_list_member,
)
from warden.protocol.client_assertion import parse_assertion
from warden.protocol.client_auth import PresentedCredentials
from warden.protocol.dpop import access_token_hash, verify_proof
from warden.protocol.errors import InsufficientScope, InvalidClient, InvalidDPoPProof, InvalidToken
from warden.resource import Validator
from warden.resource.dpop import DPoPVerifier
from warden.services.admin import Admin, GrantSpec
from warden.services.assertion_auth import AssertionAuthenticator
from warden.services.audit import AuditSink
from warden.services.auth_throttle import claimed_identity
from warden.services.kek import KeyMaterial
from warden.services.key_sources import FetchPolicy, KeySources
from warden.services.keyring import Keyring
from warden.services.registry import Registry
from warden.settings import ClientAuthSettings, TrustedIssuer
from warden.storage.memory import MemoryStore

NOW = 1_700_000_000
ISSUER = "https://warden.test"
PLATFORM = "https://platform.test"
KEY = generate_private_key("ES256")
PLATFORM_KEY = generate_private_key("ES256")
DPOP_KEY = generate_private_key("ES256")
common = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# -- the accessors ---------------------------------------------------------------------------------

@given(json_values)
def test_accessors_return_their_type_or_raise_member_error(value: Any) -> None:
    members = {"m": value}
    for read, ok in ((string_member, lambda v: v is None or type(v) is str),
                     (string_or_list_member, lambda v: v is None or (type(v) is tuple and
                                                                     all(type(i) is str for i in v))),
                     (object_member, lambda v: v is None or type(v) is dict),
                     (numeric_date, lambda v: v is None or (type(v) is float and 0 <= v <= MAX_NUMERIC_DATE))):
        try:
            result = read(members, "m")
        except MemberError as exc:
            assert exc.member == "m"
        else:
            assert ok(result), (read.__name__, value)


@pytest.mark.parametrize("value", [True, False, 10**400, -1, 253_402_300_800, 1e300, "1700000000", [1], {"a": 1}],
                         ids=["true", "false", "1e400", "-1", "year-10000", "1e300", "str", "list", "object"])
def test_numeric_date_refuses_bools_strings_and_out_of_range_numbers(value: Any) -> None:
    with pytest.raises(MemberError, match="exp must be a NumericDate"):
        numeric_date({"exp": value}, "exp")


@pytest.mark.parametrize("value", [0, 1_700_000_000, 1_700_000_000.5, MAX_NUMERIC_DATE])
def test_numeric_date_accepts_integers_and_floats_in_range(value: float) -> None:
    assert numeric_date({"exp": value}, "exp") == float(value)
    assert numeric_date({}, "exp") is None and numeric_date({"exp": None}, "exp") is None


# -- client assertions (private_key_jwt) and federated tokens, through the server's authenticator ---

class _Server:
    """The assertion authenticator over a registry with one private_key_jwt and one federated client."""

    def __init__(self) -> None:
        store, clock, material = MemoryStore(), FixedClock(NOW), KeyMaterial.from_kek(b"k" * 32)
        admin = Admin(store, material, clock, AuditSink())
        Keyring(store, material, clock, AuditSink()).ensure_keys(["ES256"])
        admin.save_api("https://api.test", ["read"])
        grants = [GrantSpec("https://api.test", ("read",))]
        pkjwt, _ = admin.create_client("pkjwt", grants, auth_method=AuthMethod.PRIVATE_KEY_JWT.value,
                                       metadata=parse_client_metadata(
                                           {"jwks": {"keys": [public_jwk(KEY, kid="k1", alg="ES256")]}}))
        federated, _ = admin.create_client("workload", grants, auth_method=AuthMethod.PRIVATE_KEY_JWT.value,
                                           metadata=parse_client_metadata({"federated": [
                                               {"issuer": PLATFORM, "subject": "system:sa:ns:app",
                                                "claims": {"ns": "prod"}}]}))
        self.pkjwt, self.federated = pkjwt.client_id, federated.client_id
        self.registry = Registry(store, material)
        self.registry.load(clock.now())
        self.used: set[str] = set()
        trusted = TrustedIssuer(PLATFORM, "warden", jwks={"keys": [public_jwk(PLATFORM_KEY, kid="p1", alg="ES256")]})
        self.authenticator = AssertionAuthenticator(ISSUER, ClientAuthSettings(), {PLATFORM: trusted},
                                                    KeySources(FetchPolicy()), self._use_once)

    async def _use_once(self, key: str, until: float) -> bool:
        if key in self.used:
            return False
        self.used.add(key)
        return True

    def authenticate(self, assertion: str, client_id: str = "") -> str:
        presented = PresentedCredentials(AuthMethod.PRIVATE_KEY_JWT, client_id, assertion=assertion)
        claimed_identity(presented)  # the throttle reads the same assertion first: it must not raise either
        return asyncio.run(self.authenticator.authenticate(presented, self.registry, NOW)).client.client_id


@pytest.fixture(scope="module")
def server() -> _Server:
    return _Server()


def _pkjwt_claims(server: _Server) -> dict[str, Any]:
    return {"iss": server.pkjwt, "sub": server.pkjwt, "aud": ISSUER, "iat": NOW, "nbf": NOW, "exp": NOW + 60,
            "jti": uuid.uuid4().hex}


def _only_invalid_client(server: _Server, assertion: str, client_id: str = "") -> None:
    try:
        server.authenticate(assertion, client_id)
    except InvalidClient:
        pass


def test_valid_assertions_authenticate(server: _Server) -> None:
    header = {"alg": "ES256", "kid": "k1", "typ": "client-authentication+jwt"}
    assert server.authenticate(signed(header, _pkjwt_claims(server), KEY, "ES256")) == server.pkjwt
    platform = {"iss": PLATFORM, "sub": "system:sa:ns:app", "aud": ["warden"], "ns": "prod", "iat": NOW,
                "exp": NOW + 60}
    assert server.authenticate(signed({"alg": "ES256", "kid": "p1"}, platform, PLATFORM_KEY, "ES256")) == \
        server.federated


@pytest.mark.parametrize("typ", [["jwt"], {"typ": "jwt"}, 1, True, 1.5])
def test_client_assertion_typ_of_another_json_type_is_invalid_client(server: _Server, typ: Any) -> None:
    token = signed({"alg": "ES256", "kid": "k1", "typ": typ}, _pkjwt_claims(server), KEY, "ES256")
    with pytest.raises(InvalidClient) as caught:
        server.authenticate(token)
    assert caught.value.reason == "assertion_typ"
    with pytest.raises(InvalidClient):
        parse_assertion(token)


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
@pytest.mark.parametrize("value", [10**400, -(10**400), True, "soon"], ids=["1e400", "-1e400", "true", "str"])
def test_client_assertion_time_that_is_no_numeric_date_is_invalid_client(server: _Server, claim: str,
                                                                          value: Any) -> None:
    claims = {**_pkjwt_claims(server), claim: value}
    with pytest.raises(InvalidClient) as caught:
        server.authenticate(signed({"alg": "ES256", "kid": "k1"}, claims, KEY, "ES256"))
    assert caught.value.reason == "assertion_claims"


@pytest.mark.parametrize("aud", [[[ISSUER]], [{"a": ISSUER}], {"aud": ISSUER}, [ISSUER, 1]])
def test_client_assertion_aud_of_another_json_type_is_invalid_client(server: _Server, aud: Any) -> None:
    claims = {**_pkjwt_claims(server), "aud": aud}
    with pytest.raises(InvalidClient) as caught:
        server.authenticate(signed({"alg": "ES256", "kid": "k1"}, claims, KEY, "ES256"))
    assert caught.value.reason == "assertion_aud"


@common
@given(st.data())
def test_client_assertions_of_any_json_types_are_only_invalid_client(server: _Server, data: st.DataObject) -> None:
    header = data.draw(mutated({"alg": "ES256", "kid": "k1", "typ": "client-authentication+jwt"}, ["jwk", "crit"],
                               unchanged=True))
    claims = data.draw(mutated(_pkjwt_claims(server)))
    client_id = data.draw(st.sampled_from(["", server.pkjwt]))
    _only_invalid_client(server, signed(header, claims, KEY, "ES256"), client_id)


@common
@given(st.data())
def test_federated_tokens_of_any_json_types_are_only_invalid_client(server: _Server, data: st.DataObject) -> None:
    header = data.draw(mutated({"alg": "ES256", "kid": "p1", "typ": "JWT"}, ["cty", "jwk"], unchanged=True))
    base = {"iss": PLATFORM, "sub": "system:sa:ns:app", "aud": ["warden"], "ns": "prod", "iat": NOW,
            "exp": NOW + 60, "jti": uuid.uuid4().hex}
    claims = data.draw(mutated(base, ["nbf"]))
    client_id = data.draw(st.sampled_from(["", server.federated]))
    _only_invalid_client(server, signed(header, claims, PLATFORM_KEY, "ES256"), client_id)


# -- DPoP proofs, at the token endpoint and at a resource server -----------------------------------

def _proof_base(token: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": public_jwk(DPOP_KEY)}
    claims: dict[str, Any] = {"jti": uuid.uuid4().hex, "htm": "POST", "htu": "https://warden.test/oauth2/token",
                              "iat": NOW}
    if token is not None:
        claims["ath"] = access_token_hash(token)
    return header, claims


@pytest.mark.parametrize("claim", ["iat", "exp", "nbf"])
def test_dpop_proof_time_too_large_for_a_float_is_invalid_dpop_proof(claim: str) -> None:
    header, claims = _proof_base()
    proof = signed(header, {**claims, claim: 10**400}, DPOP_KEY, "ES256")
    with pytest.raises(InvalidDPoPProof):
        verify_proof(proof, method="POST", url="https://warden.test/oauth2/token", algorithms=("ES256",),
                     max_age=60.0, leeway=5.0, now=float(NOW))


@common
@given(st.data())
def test_dpop_proofs_of_any_json_types_are_only_invalid_dpop_proof(data: st.DataObject) -> None:
    header, claims = _proof_base()
    proof = signed(data.draw(mutated(header, ["kid", "crit"], unchanged=True)), data.draw(mutated(claims, ["exp", "nbf", "nonce"])),
                   DPOP_KEY, "ES256")
    try:
        verify_proof(proof, method="POST", url="https://warden.test/oauth2/token", algorithms=("ES256",),
                     max_age=60.0, leeway=5.0, now=float(NOW))
    except InvalidDPoPProof:
        pass


@common
@given(st.data())
def test_dpop_proofs_at_a_resource_of_any_json_types_are_only_invalid_dpop_proof(data: st.DataObject) -> None:
    verifier = DPoPVerifier(clock=FixedClock(NOW), leeway=5.0)
    header, claims = _proof_base("the-token")
    claims["htm"], claims["htu"] = "GET", "https://api.test/orders"
    proof = signed(data.draw(mutated(header, unchanged=True)), data.draw(mutated(claims, ["exp", "nbf", "nonce"])), DPOP_KEY, "ES256")
    try:
        verifier.validate_proof(proof, method="GET", url="https://api.test/orders", access_token="the-token",
                                jkt=data.draw(st.sampled_from([jwk_thumbprint(public_jwk(DPOP_KEY)), "x"])))
    except InvalidDPoPProof:
        pass


# -- access tokens at the resource-server validator ------------------------------------------------

AS_KEY = generate_private_key("ES256")


def _issuer(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/.well-known/oauth-authorization-server":
        return httpx.Response(200, json={"issuer": ISSUER, "jwks_uri": f"{ISSUER}/oauth2/jwks"})
    return httpx.Response(200, json={"keys": [public_jwk(AS_KEY, kid="as1", alg="ES256")]})


@pytest.fixture(scope="module")
def validator() -> Iterator[Validator]:
    with httpx.Client(transport=httpx.MockTransport(_issuer)) as client:
        yield Validator(ISSUER, "https://api.test", http_client=client, clock=FixedClock(NOW), cache_size=0)


def _access_token_claims() -> dict[str, Any]:
    return {"iss": ISSUER, "sub": "svc", "client_id": "svc", "aud": "https://api.test", "scope": "read",
            "iat": NOW, "exp": NOW + 600, "jti": uuid.uuid4().hex}


_AT_HEADER = {"typ": "at+jwt", "alg": "ES256", "kid": "as1"}


def test_a_valid_access_token_is_accepted(validator: Validator) -> None:
    assert validator.validate(signed(_AT_HEADER, _access_token_claims(), AS_KEY, "ES256")).sub == "svc"


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
@pytest.mark.parametrize("value", [10**400, -(10**400), 2**1024], ids=["1e400", "-1e400", "2^1024"])
def test_access_token_time_too_large_for_a_float_is_invalid_token(validator: Validator, claim: str,
                                                                  value: int) -> None:
    token = signed(_AT_HEADER, {**_access_token_claims(), claim: value}, AS_KEY, "ES256")
    with pytest.raises(InvalidToken) as caught:
        validator.validate(token)
    assert caught.value.reason == claim


@pytest.mark.parametrize("member", ["typ", "kid"])
@pytest.mark.parametrize("value", [["at+jwt"], {"typ": "at+jwt"}])
def test_access_token_header_member_of_another_json_type_is_invalid_token(validator: Validator, member: str,
                                                                          value: Any) -> None:
    with pytest.raises(InvalidToken):
        validator.validate(signed({**_AT_HEADER, member: value}, _access_token_claims(), AS_KEY, "ES256"))


@common
@given(st.data())
def test_access_tokens_of_any_json_types_are_only_invalid_token(validator: Validator, data: st.DataObject) -> None:
    header = data.draw(mutated(_AT_HEADER, ["cty", "jwk", "crit"], unchanged=True))
    claims = data.draw(mutated(_access_token_claims(), ["nbf", "cnf", "tenant"]))
    scopes = data.draw(st.sampled_from([(), ("read",), ("write",)]))
    try:
        validator.validate(signed(header, claims, AS_KEY, "ES256"), scopes=scopes)
    except InvalidToken:
        pass
    except InsufficientScope:
        assert scopes


# -- token responses in the client library ---------------------------------------------------------

@pytest.mark.parametrize("expires_in", [10**400, -(10**400), 2**1024], ids=["1e400", "-1e400", "2^1024"])
def test_token_response_expires_in_too_large_for_a_float_is_token_error(expires_in: int) -> None:
    body = json.dumps({"access_token": "abc", "token_type": "Bearer", "expires_in": expires_in}).encode()
    with pytest.raises(TokenError):
        parse_token_response(HTTPResponse(200, {}, body), dpop=False)


@common
@given(mutated({"access_token": "abc", "token_type": "Bearer", "expires_in": 300, "scope": "read"}),
       st.booleans())
def test_token_responses_of_any_json_types_are_only_token_error(document: dict[str, Any], dpop: bool) -> None:
    try:
        parse_token_response(HTTPResponse(200, {}, json.dumps(document).encode()), dpop=dpop)
    except TokenError:
        pass

