"""RFC 7591 registration requests (untrusted JSON) and the policy an initial access token sets."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from warden.core.registration import RegistrationToken, decide_grants
from warden.protocol.errors import InvalidClientMetadata, InvalidRequest
from warden.protocol.registration import parse_registration_request, render_client_information

JSON = b"application/json"
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                                     max_size=4), max_leaves=20)
members = st.dictionaries(st.sampled_from(["token_endpoint_auth_method", "client_name", "scope", "resources",
                                           "grant_types", "response_types", "redirect_uris", "jwks", "jwks_uri",
                                           "dpop_bound_access_tokens", "client_id", "client_secret", "contacts"]),
                          json_values, max_size=8)


@given(st.binary(max_size=300))
def test_any_bytes_parse_or_raise_a_registration_error(body: bytes) -> None:
    try:
        parse_registration_request(body, JSON)
    except (InvalidRequest, InvalidClientMetadata) as exc:
        assert exc.error in ("invalid_request", "invalid_client_metadata")


@given(members)
def test_any_object_parses_or_raises_invalid_client_metadata(data: dict) -> None:
    try:
        request = parse_registration_request(json.dumps(data).encode(), JSON)
    except InvalidClientMetadata as exc:
        assert exc.status == 400 and exc.reason == "client_metadata"
    else:
        assert request.token_endpoint_auth_method in ("client_secret_basic", "client_secret_post", "private_key_jwt")
        assert request.scopes is None or all(" " not in s and s for s in request.scopes)
        assert (request.token_endpoint_auth_method == "private_key_jwt") == bool(
            request.metadata and ("jwks" in request.metadata or "jwks_uri" in request.metadata))


policies = st.lists(st.tuples(st.sampled_from(["https://a", "https://b", "https://c"]),
                              st.lists(st.sampled_from(["r", "w", "x"]), min_size=1, unique=True).map(tuple)),
                    min_size=1, max_size=3, unique_by=lambda g: g[0])


@given(policies, st.none() | st.lists(st.sampled_from(["r", "w", "x", "y"]), min_size=1, unique=True).map(tuple),
       st.none() | st.lists(st.sampled_from(["https://a", "https://b", "https://d"]), min_size=1,
                            unique=True).map(tuple))
def test_registered_grants_never_exceed_the_policy(policy, scopes, resources) -> None:
    allowed = dict(policy)
    try:
        grants = decide_grants(policy, scopes, resources)
    except ValueError as exc:
        assert "not allowed by the initial access token" in str(exc)
        assert (resources and set(resources) - set(allowed)) or (scopes and set(scopes) - {
            s for api, ss in policy if resources is None or api in resources for s in ss})
        return
    for api, granted in grants:
        assert set(granted) <= set(allowed[api])
        assert resources is None or api in resources
        assert scopes is None or set(granted) <= set(scopes)
    if scopes is not None:
        assert set(scopes) <= {s for _, g in grants for s in g}


def test_defaults_and_fields() -> None:
    request = parse_registration_request(b"{}", b"application/json; charset=utf-8")
    assert request.token_endpoint_auth_method == "client_secret_basic" and request.scopes is None
    request = parse_registration_request(json.dumps({
        "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://c.example/jwks", "scope": "read read",
        "resources": ["https://a", "https://a"], "grant_types": ["client_credentials"], "response_types": [],
        "client_name": "svc", "software_id": "ignored"}).encode(), JSON)
    assert request.scopes == ("read",) and request.resources == ("https://a",)
    assert request.metadata == {"jwks_uri": "https://c.example/jwks"} and request.client_name == "svc"
    assert "wsec_x" not in repr(parse_registration_request(b'{"client_secret": "wsec_x"}', JSON))


@pytest.mark.parametrize(("body", "words"), [
    ({"token_endpoint_auth_method": "none"}, "token_endpoint_auth_method"),
    ({"token_endpoint_auth_method": "tls_client_auth"}, "token_endpoint_auth_method"),
    ({"grant_types": ["authorization_code"]}, "grant_types"),
    ({"grant_types": []}, "grant_types"),
    ({"redirect_uris": ["https://x"]}, "redirect_uris"),
    ({"response_types": ["code"]}, "response_types"),
    ({"scope": "a\\\\b"}, "scope"),
    ({"scope": ["read"]}, "scope"),
    ({"client_name": ""}, "client_name"),
    ({"token_endpoint_auth_method": "private_key_jwt"}, "jwks"),
    ({"jwks_uri": "https://x/jwks"}, "private_key_jwt"),
    ({"resources": []}, "resources"),
])
def test_refusals_name_the_field(body: dict, words: str) -> None:
    with pytest.raises(InvalidClientMetadata) as caught:
        parse_registration_request(json.dumps(body).encode(), JSON)
    assert words in (caught.value.description or "")


@pytest.mark.parametrize(("body", "content_type"), [(b'{"a":1,"a":2}', JSON), (b"[]", JSON), (b"{", JSON),
                                                    (b"{}", b"application/x-www-form-urlencoded"), (b"{}", None),
                                                    (b'{"a": NaN}', JSON), (b"[" * 100 + b"]" * 100, JSON),
                                                    (b"\xff", JSON)])
def test_bodies_that_are_not_one_json_object_are_invalid_requests(body: bytes, content_type: bytes | None) -> None:
    with pytest.raises(InvalidRequest):
        parse_registration_request(body, content_type)


def test_token_states_and_the_information_response() -> None:
    token = RegistrationToken("rt", b"h", (("https://a", ("r",)),), 0.0, max_uses=2, uses=2)
    assert token.state(1.0) == "used_up" and "h'" not in repr(token)
    assert RegistrationToken("rt", b"h", (), 0.0, expires_at=5.0).state(5.0) == "expired"
    assert RegistrationToken("rt", b"h", (), 0.0, revoked_at=1.0, expires_at=0.5).state(2.0) == "revoked"
    body = render_client_information(client_id="c", issued_at=10.7, auth_method="client_secret_basic",
                                     client_name="n", grants=[("https://a", ("r", "w")), ("https://b", ("r",))],
                                     metadata={}, registration_access_token="wrat_x",
                                     registration_client_uri="https://as/oauth2/register/c", client_secret="wsec_y")
    assert body["scope"] == "r w" and body["client_id_issued_at"] == 10 and body["client_secret_expires_at"] == 0
    assert body["resources"] == ["https://a", "https://b"] and body["grant_types"] == ["client_credentials"]
