"""Token exchange requests (RFC 8693 §2.1) and the `act` claim (§4.1): parsing untrusted input."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warden.protocol.errors import (
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    OAuthError,
    UnsupportedGrantType,
)
from warden.protocol.form import parse_form
from warden.protocol.token_exchange import (
    ACCESS_TOKEN_TYPE,
    JWT_TOKEN_TYPE,
    PARAMETERS,
    TOKEN_EXCHANGE,
    act_chain,
    narrow_scopes,
    nest_actor,
    parse_token_exchange_request,
)

_BASE = {"grant_type": TOKEN_EXCHANGE, "subject_token": "eyJ.a.b", "subject_token_type": ACCESS_TOKEN_TYPE}


def _parse(**fields: str):
    values = {**_BASE, **fields}
    return parse_token_exchange_request(parse_form(urlencode({k: v for k, v in values.items() if v is not None})
                                                   .encode()))


def test_minimal_request_parses_with_no_scope_and_no_target():
    parsed = _parse()
    assert (parsed.subject_token, parsed.subject_token_type, parsed.scopes, parsed.resources) == (
        "eyJ.a.b", ACCESS_TOKEN_TYPE, None, None)


def test_scope_resource_and_audience_are_read():
    body = urlencode([*_BASE.items(), ("scope", "read write"), ("resource", "https://a.example"),
                      ("audience", "https://b.example"), ("requested_token_type", JWT_TOKEN_TYPE)])
    parsed = parse_token_exchange_request(parse_form(body.encode()))
    assert parsed.scopes == ("read", "write")
    assert parsed.resources == ("https://a.example", "https://b.example")


def test_jwt_subject_token_type_is_accepted():
    assert _parse(subject_token_type=JWT_TOKEN_TYPE).subject_token_type == JWT_TOKEN_TYPE


def test_repr_never_shows_the_subject_token():
    assert "eyJ" not in repr(_parse())


@pytest.mark.parametrize(("fields", "error", "reason"), [
    ({"subject_token": ""}, InvalidRequest, "missing_subject_token"),
    ({"subject_token_type": ""}, InvalidRequest, "missing_subject_token_type"),
    ({"subject_token_type": "urn:ietf:params:oauth:token-type:saml2"}, InvalidRequest, "unsupported_token_type"),
    ({"requested_token_type": "urn:ietf:params:oauth:token-type:refresh_token"}, InvalidRequest,
     "unsupported_token_type"),
    ({"actor_token": "eyJ.c.d", "actor_token_type": ACCESS_TOKEN_TYPE}, InvalidRequest, "actor_token_unsupported"),
    ({"actor_token_type": ACCESS_TOKEN_TYPE}, InvalidRequest, "actor_token_unsupported"),
    ({"scope": "bad\\scope"}, InvalidScope, "malformed_scope"),
    ({"resource": "not a uri"}, InvalidTarget, "malformed_resource"),
    ({"grant_type": "client_credentials"}, UnsupportedGrantType, "unsupported_grant_type"),
])
def test_malformed_requests_are_refused_with_the_rfc_8693_codes(fields, error, reason):
    with pytest.raises(error) as caught:
        _parse(**fields)
    assert caught.value.reason == reason


def test_repeated_subject_token_is_invalid_request():
    body = urlencode([*_BASE.items(), ("subject_token", "eyJ.x.y")])
    with pytest.raises(InvalidRequest):
        parse_token_exchange_request(parse_form(body.encode()))


_NAMES = st.sampled_from([*PARAMETERS, "client_id", "x"])
_VALUES = st.one_of(st.sampled_from([TOKEN_EXCHANGE, ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE, "read write",
                                     "https://api.example", "eyJ.a.b", ""]),
                    st.text(max_size=40))


@settings(max_examples=300)
@given(st.lists(st.tuples(_NAMES, _VALUES), max_size=12))
def test_parsing_only_raises_protocol_errors(pairs):
    try:
        form = parse_form(urlencode(pairs).encode())
    except OAuthError:
        return
    try:
        parsed = parse_token_exchange_request(form)
    except OAuthError:
        return
    assert parsed.subject_token and parsed.subject_token_type in (ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE)


@given(st.binary(max_size=400))
def test_parsing_arbitrary_bodies_only_raises_protocol_errors(body):
    try:
        parse_token_exchange_request(parse_form(body))
    except OAuthError:
        pass


def test_act_chain_reads_current_actor_first():
    assert act_chain(None) == ()
    assert act_chain({"sub": "b", "act": {"sub": "a"}}) == ("b", "a")


def test_nest_actor_puts_the_requester_outermost():
    assert nest_actor("c", ()) == {"sub": "c"}
    assert nest_actor("c", ("b", "a")) == {"sub": "c", "act": {"sub": "b", "act": {"sub": "a"}}}
    assert act_chain(nest_actor("c", ("b", "a"))) == ("c", "b", "a")


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                         st.sampled_from(["sub", "act", "iss"]), inner, max_size=3), max_leaves=12)


@given(_JSON)
def test_act_chain_of_any_json_is_a_chain_or_invalid_grant(value):
    try:
        chain = act_chain(value)
    except InvalidGrant:
        return
    assert all(isinstance(s, str) for s in chain)
    assert act_chain(nest_actor("x", chain)) == ("x", *chain)


def test_act_chain_refuses_absurd_depth():
    act: dict[str, object] = {"sub": "a"}
    for _ in range(40):
        act = {"sub": "a", "act": act}
    with pytest.raises(InvalidGrant):
        act_chain(act)


_SCOPES = st.lists(st.sampled_from(["read", "write", "delete", "admin"]), unique=True, max_size=4).map(tuple)


@given(st.one_of(st.none(), _SCOPES), _SCOPES, _SCOPES)
def test_scope_only_narrows(requested, granted, held):
    try:
        scopes = narrow_scopes(requested, granted, held)
    except InvalidScope:
        assert (requested is None and not set(granted) & set(held)) or (
            requested is not None and not set(requested) <= set(granted) & set(held))
        return
    assert set(scopes) <= set(granted) & set(held)
    assert scopes == (requested if requested is not None else tuple(s for s in granted if s in held))
