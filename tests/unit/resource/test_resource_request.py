"""Credentials in requests (RFC 6750 §2) and the wire form of errors (RFC 6750 §3, RFC 9449 §7.1)."""

from __future__ import annotations

import json

import pytest
from resource_helpers import FakeIssuer, make_proof, thumbprint

from warden.jose import PrivateKey
from warden.protocol.errors import (
    InsufficientScope,
    InvalidDPoPProof,
    InvalidRequest,
    InvalidToken,
    TemporarilyUnavailable,
    UseDPoPNonce,
)
from warden.resource import (
    DPoPNonces,
    DPoPVerifier,
    Validator,
    error_response,
    parse_credentials,
    render_error,
    validate_request,
)
from warden.resource._render import MISSING_TOKEN


def test_bearer_and_dpop_schemes_are_read_case_insensitively() -> None:
    assert parse_credentials([("Authorization", "Bearer abc.def-_~+/=")]).token == "abc.def-_~+/="
    creds = parse_credentials([("authorization", "dpop tok"), ("DPoP", " p1 ")])
    assert (creds.scheme, creds.token, creds.dpop_proofs) == ("DPoP", "tok", ("p1",))
    assert "tok" not in repr(creds)


@pytest.mark.parametrize("headers", [
    [],
    [("authorization", "Basic dXNlcjpwYXNz")],
    [("x-token", "Bearer abc")],
])
def test_no_usable_credentials_is_a_bare_401(headers: list[tuple[str, str]]) -> None:
    with pytest.raises(InvalidToken) as caught:
        parse_credentials(headers)
    assert caught.value.reason == MISSING_TOKEN


@pytest.mark.parametrize(("headers", "query", "reason"), [
    ([("authorization", "Bearer a"), ("authorization", "Bearer b")], "", "multiple_credentials"),
    ([("authorization", "Bearer a")], "access_token=b", "token_in_query"),
    ([], "access_token=b", "token_in_query"),
    ([], "x=1&access_token=", "token_in_query"),
    ([("authorization", "Bearer a b")], "", "malformed_authorization"),
    ([("authorization", "Bearer")], "", "malformed_authorization"),
    ([("authorization", "DPoP   ")], "", "malformed_authorization"),
    ([("authorization", "Bearer a,b")], "", "malformed_authorization"),
    ([("authorization", "Bearer ä")], "", "malformed_authorization"),
])
def test_token_in_query_or_two_methods_is_invalid_request(
    headers: list[tuple[str, str]], query: str, reason: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_credentials(headers, query)
    assert caught.value.reason == reason and caught.value.status == 400


def test_query_parameters_that_merely_mention_access_token_are_fine() -> None:
    parse_credentials([("authorization", "Bearer a")], "q=access_token&x_access_token=1")


def test_validate_request_end_to_end(validator: Validator, issuer: FakeIssuer, keys: dict[str, PrivateKey]) -> None:
    token = issuer.mint(scope="read")
    claims = validate_request(validator, method="GET", url="https://api.test/x",
                              headers=[("authorization", f"Bearer {token}")], scopes=["read"])
    assert claims.sub == "svc-orders"
    key = keys["EdDSA"]
    bound = issuer.mint(cnf={"jkt": thumbprint(key)})
    proof = make_proof(key, "EdDSA", token=bound, method="POST", url="https://api.test/x")
    validate_request(validator, method="POST", url="https://api.test/x?y=1",
                     headers=[("authorization", f"DPoP {bound}"), ("dpop", proof)])
    with pytest.raises(InvalidDPoPProof):
        validate_request(validator, method="POST", url="https://api.test/x",
                         headers=[("authorization", f"DPoP {bound}"), ("dpop", proof), ("dpop", proof)])


def _header(response_headers: tuple[tuple[str, str], ...], name: str) -> str:
    values = [v for k, v in response_headers if k == name]
    assert len(values) == 1, response_headers
    return values[0]


def test_invalid_token_renders_401_with_a_bearer_challenge() -> None:
    response = render_error(InvalidToken("token expired", reason="expired"), realm="orders")
    assert response.status == 401
    assert _header(response.headers, "www-authenticate") == \
        'Bearer realm="orders", error="invalid_token", error_description="token expired"'
    assert json.loads(response.body) == {"error": "invalid_token", "error_description": "token expired"}
    assert _header(response.headers, "cache-control") == "no-store"
    assert _header(response.headers, "content-type") == "application/json"


def test_insufficient_scope_renders_403_with_the_needed_scope() -> None:
    response = render_error(InsufficientScope("insufficient scope"), scope=["read", "write"])
    assert response.status == 403
    assert _header(response.headers, "www-authenticate") == \
        'Bearer error="insufficient_scope", error_description="insufficient scope", scope="read write"'


def test_missing_credentials_render_a_challenge_without_error_code() -> None:
    response = render_error(InvalidToken("x", reason=MISSING_TOKEN), realm="api", dpop_algorithms=["ES256"])
    assert response.status == 401
    assert _header(response.headers, "www-authenticate") == 'Bearer realm="api", DPoP realm="api", algs="ES256"'
    assert "error" not in json.loads(response.body)


def test_invalid_request_is_400_with_the_error_in_the_challenge() -> None:
    response = render_error(InvalidRequest("more than one Authorization header"))
    assert response.status == 400
    assert 'error="invalid_request"' in _header(response.headers, "www-authenticate")


def test_dpop_errors_go_in_the_dpop_challenge_and_are_401() -> None:
    response = render_error(InvalidDPoPProof("DPoP proof htu does not match the request"), scheme="DPoP",
                            dpop_algorithms=["ES256", "EdDSA"], dpop_nonce="n-1")
    assert response.status == 401  # not the token endpoint's 400
    assert _header(response.headers, "www-authenticate") == (
        'DPoP error="invalid_dpop_proof", error_description="DPoP proof htu does not match the request", '
        'algs="ES256 EdDSA", Bearer')
    assert _header(response.headers, "dpop-nonce") == "n-1"
    nonce = render_error(UseDPoPNonce("a current DPoP nonce is required"), dpop_algorithms=["ES256"])
    assert nonce.status == 401 and 'DPoP error="use_dpop_nonce"' in _header(nonce.headers, "www-authenticate")


def test_invalid_token_with_dpop_scheme_goes_in_the_dpop_challenge() -> None:
    response = render_error(InvalidToken("token expired"), scheme="DPoP", dpop_algorithms=["ES256"])
    assert _header(response.headers, "www-authenticate").startswith('DPoP error="invalid_token"')


def test_outage_renders_503_with_retry_after_and_no_challenge() -> None:
    response = render_error(TemporarilyUnavailable("issuer keys unavailable", retry_after=30))
    assert response.status == 503
    assert _header(response.headers, "retry-after") == "30"
    assert all(name != "www-authenticate" for name, _ in response.headers)


def test_challenge_values_are_quoted_safely() -> None:
    response = render_error(InvalidToken('bad "quote" \\ here'), realm='a"b')
    challenge = _header(response.headers, "www-authenticate")
    assert 'realm="a\\"b"' in challenge
    assert '"' not in InvalidToken('x"y').description  # descriptions are reduced to the RFC 6749 set


def test_error_response_adds_the_validators_dpop_details(make_validator, clock) -> None:  # type: ignore[no-untyped-def]
    nonces = DPoPNonces(b"n" * 32, clock=clock)
    validator = make_validator(dpop=DPoPVerifier(nonces=nonces, algorithms=["ES256"], clock=clock))
    response = error_response(validator, UseDPoPNonce("nonce"), scheme="DPoP")
    assert _header(response.headers, "dpop-nonce") == nonces.current()
    assert 'algs="ES256"' in _header(response.headers, "www-authenticate")
    bearer = error_response(validator, InvalidToken("expired"), realm="r")
    assert all(name != "dpop-nonce" for name, _ in bearer.headers)
