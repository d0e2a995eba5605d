import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from warden.core.client import AuthMethod
from warden.protocol.client_auth import parse_basic, parse_client_auth
from warden.protocol.client_credentials import parse_token_request
from warden.protocol.errors import (
    InvalidClient,
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    OAuthError,
    UnsupportedGrantType,
    safe_description,
)
from warden.protocol.form import parse_form


def basic(cid: str, secret: str) -> str:
    from urllib.parse import quote_plus

    return "Basic " + base64.b64encode(f"{quote_plus(cid)}:{quote_plus(secret)}".encode()).decode()


def test_empty_values_are_omitted_and_duplicates_refused():
    form = parse_form(b"grant_type=client_credentials&scope=&x=1&x=2")
    assert form.single("scope") is None
    with pytest.raises(InvalidRequest):
        form.single("x")
    assert form.multi("x") == ["1", "2"]


@pytest.mark.parametrize("body", [b"a=\xff", b"a=%ff", b"a=%00", b"a=" + b"x" * 5000])
def test_bad_bodies_are_invalid_request(body):
    with pytest.raises(InvalidRequest):
        parse_form(body)


@given(st.binary(max_size=300))
def test_parse_form_only_raises_invalid_request(body):
    try:
        parse_form(body)
    except InvalidRequest:
        pass


def test_basic_credentials_are_form_urldecoded():
    # RFC 6749 §2.3.1: id and secret are form-urlencoded before base64.
    assert parse_basic(basic("my client", "s:e%c+r")) == ("my client", "s:e%c+r")


@pytest.mark.parametrize("header", ["Basic", "Basic !!!", "Bearer abc", "Basic " + base64.b64encode(b"nocolon").decode(),
                                    "Basic " + base64.b64encode(b"\xff\xfe:x").decode()])
def test_malformed_basic_is_invalid_client(header):
    with pytest.raises(InvalidClient):
        parse_basic(header)


def test_basic_and_post_together_is_invalid_request():
    form = parse_form(b"client_id=a&client_secret=b")
    with pytest.raises(InvalidRequest) as exc:
        parse_client_auth(basic("a", "b"), form, [])
    assert exc.value.reason == "multiple_auth_methods"


def test_secret_post_and_assertion_together_is_invalid_request():
    form = parse_form(b"client_id=a&client_secret=b&client_assertion=x&client_assertion_type=y")
    with pytest.raises(InvalidRequest):
        parse_client_auth(None, form, [])


def test_credentials_in_query_are_refused():
    with pytest.raises(InvalidRequest):
        parse_client_auth(basic("a", "b"), parse_form(b""), ["client_secret"])


def test_no_credentials_is_invalid_client():
    with pytest.raises(InvalidClient):
        parse_client_auth(None, parse_form(b"client_id=a"), [])


def test_body_client_id_must_match_basic():
    with pytest.raises(InvalidRequest):
        parse_client_auth(basic("a", "b"), parse_form(b"client_id=other"), [])


def test_post_credentials():
    creds = parse_client_auth(None, parse_form(b"client_id=a&client_secret=CANARY42"), [])
    assert creds.method is AuthMethod.CLIENT_SECRET_POST and creds.client_id == "a" and creds.secret == "CANARY42"
    assert "CANARY42" not in repr(creds)


def test_token_request_parsing():
    req = parse_token_request(parse_form(b"grant_type=client_credentials&scope=read+write&resource=https%3A%2F%2Fa"
                                         b"&audience=https%3A%2F%2Fb"))
    assert req.scopes == ("read", "write") and req.resources == ("https://a", "https://b")
    with pytest.raises(InvalidRequest):
        parse_token_request(parse_form(b"scope=read"))
    with pytest.raises(UnsupportedGrantType):
        parse_token_request(parse_form(b"grant_type=password"))
    with pytest.raises(InvalidRequest):
        parse_token_request(parse_form(b"grant_type=client_credentials&grant_type=client_credentials"))
    with pytest.raises(InvalidRequest):
        parse_token_request(parse_form(b"grant_type=client_credentials&scope=a&scope=b"))
    with pytest.raises(InvalidScope):
        parse_token_request(parse_form(b"grant_type=client_credentials&scope=a%22b"))
    with pytest.raises(InvalidTarget):
        parse_token_request(parse_form(b"grant_type=client_credentials&resource=relative"))
    with pytest.raises(InvalidTarget):
        parse_token_request(parse_form(b"grant_type=client_credentials&resource=https%3A%2F%2Fa%23frag"))


def test_error_descriptions_stay_in_rfc_6749_charset():
    assert safe_description('bad "quote" \\ and \u00e9') == "bad ?quote? ? and ?"
    err = OAuthError('x"y')
    assert err.description == "x?y"
