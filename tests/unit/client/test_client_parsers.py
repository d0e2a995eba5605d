"""Parsers of untrusted input: token answers, metadata, Retry-After and WWW-Authenticate."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warden.client import TokenError
from warden.client._challenge import has_error, parse_challenges
from warden.client._discovery import metadata_urls, parse_metadata
from warden.client._messages import HTTPResponse
from warden.client._response import parse_error_response, parse_retry_after, parse_token_response
from warden.core.urls import url_problem

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
token_documents = st.fixed_dictionaries(
    {},
    optional={
        "access_token": st.one_of(st.text(max_size=40), json_values),
        "token_type": st.one_of(st.sampled_from(["Bearer", "bearer", "DPoP", "mac", ""]), json_values),
        "expires_in": st.one_of(st.integers(-5, 10**12), st.floats(), st.text(max_size=8), json_values),
        "scope": st.one_of(st.text(max_size=30), json_values),
        "error": st.one_of(st.text(max_size=30), json_values),
    },
)


@settings(max_examples=300, deadline=None)
@given(
    status=st.sampled_from([200, 200, 201, 302, 400, 401, 404, 408, 429, 500, 503]),
    body=st.one_of(st.binary(max_size=200), token_documents.map(lambda d: json.dumps(d).encode())),
    dpop=st.booleans(),
    retry_after=st.one_of(st.none(), st.text(max_size=40)),
)
def test_token_answers_yield_a_token_or_a_token_error(status, body, dpop, retry_after):
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    try:
        parsed = parse_token_response(HTTPResponse(status, headers, body), dpop=dpop)
    except TokenError as error:
        assert error.error and error.retryable == (status >= 500 or status in (408, 429))
        assert error.retry_after is None or 0 <= error.retry_after <= 300
    else:
        assert status == 200 and parsed.token_type == ("DPoP" if dpop else "Bearer")
        assert parsed.access_token.isascii() and " " not in parsed.access_token
        assert parsed.expires_in is None or parsed.expires_in > 0


@settings(max_examples=200, deadline=None)
@given(
    body=st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode())),
    status=st.sampled_from([200, 404, 500, 503]),
)
def test_metadata_answers_yield_metadata_or_a_token_error(body, status):
    try:
        metadata = parse_metadata("https://as.example", HTTPResponse(status, {}, body))
    except TokenError as error:
        assert error.error in ("discovery_failed", "issuer_mismatch")
    else:
        assert metadata.issuer == "https://as.example" and url_problem(metadata.token_endpoint) is None


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=120), st.lists(st.text(max_size=40), max_size=3)))
def test_challenge_parser_never_raises(value):
    for challenge in parse_challenges(value):
        assert challenge.scheme == challenge.scheme.lower()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('Bearer error="invalid_token", error_description="expired"', True),
        ('Bearer realm="api", error="invalid_token"', True),
        ("Bearer error=invalid_token", True),
        ('DPoP algs="ES256", error="invalid_token"', True),
        ('Basic realm="x", Bearer error="invalid_token"', True),
        ('Negotiate abc==, Bearer error="invalid_token"', True),
        ('Bearer realm="api"', False),
        ('Bearer error="insufficient_scope"', False),
        ('Basic error="invalid_token"', False),
        ("", False),
    ],
)
def test_invalid_token_challenges_are_recognised(value, expected):
    assert has_error(parse_challenges(value), "invalid_token") is expected


def test_quoted_values_may_contain_commas_and_escapes():
    (challenge,) = parse_challenges(r'Bearer error_description="a, \"b\"", error="invalid_token"')
    assert challenge.params == {"error_description": 'a, "b"', "error": "invalid_token"}


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "5"}, 5.0),
        ({"retry-after": " 12 "}, 12.0),
        ({"retry-after": "999999"}, 300.0),
        ({"retry-after": "-1"}, None),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:30 GMT"}, None),  # a date needs the answer's Date
        ({"retry-after": "Wed, 21 Oct 2015 07:28:30 GMT", "date": "Wed, 21 Oct 2015 07:28:00 GMT"}, 30.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:27:00 GMT", "date": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),
        ({}, None),
    ],
)
def test_retry_after(headers, expected):
    assert parse_retry_after(HTTPResponse(503, headers), cap=300) == expected


def test_oauth_error_body_on_a_5xx_keeps_its_code_and_stays_retryable():
    error = parse_error_response(
        HTTPResponse(503, {"retry-after": "3"}, b'{"error": "temporarily_unavailable"}')
    )
    assert (error.error, error.retryable, error.retry_after, error.status) == (
        "temporarily_unavailable",
        True,
        3,
        503,
    )


def test_granted_scope_is_reported():
    parsed = parse_token_response(
        HTTPResponse(200, {}, b'{"access_token":"a","token_type":"Bearer","scope":"read write"}'), dpop=False
    )
    assert parsed.scope == ("read", "write") and parsed.expires_in is None


@pytest.mark.parametrize(
    ("issuer", "urls"),
    [
        ("https://as.example", ["https://as.example/.well-known/oauth-authorization-server"]),
        ("https://as.example/", ["https://as.example/.well-known/oauth-authorization-server"]),
        (
            "https://as.example/tenant/a",
            [
                "https://as.example/.well-known/oauth-authorization-server/tenant/a",
                "https://as.example/tenant/a/.well-known/oauth-authorization-server",
            ],
        ),
    ],
)
def test_metadata_urls_follow_rfc8414_section_3_1(issuer, urls):
    assert list(metadata_urls(issuer)) == urls


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://as.example", True),
        ("http://127.0.0.1:8080", True),
        ("http://localhost:8080/x", True),
        ("http://[::1]:8080", True),
        ("http://as.example", False),
        ("ftp://as.example", False),
        ("https://user:pw@as.example", False),
        ("https://as.example/#frag", False),
        ("https://as.example:99999", False),
        ("as.example", False),
    ],
)
def test_urls_must_use_tls_except_on_loopback(url, ok):
    assert (url_problem(url) is None) is ok


def test_metadata_with_a_non_tls_token_endpoint_is_refused():
    body = json.dumps({"issuer": "https://as.example", "token_endpoint": "http://as.example/token"}).encode()
    with pytest.raises(TokenError) as caught:
        parse_metadata("https://as.example", HTTPResponse(200, {}, body))
    assert caught.value.error == "discovery_failed"


def test_mtls_alias_is_read_from_metadata():
    body = json.dumps(
        {
            "issuer": "https://as.example",
            "token_endpoint": "https://as.example/token",
            "mtls_endpoint_aliases": {"token_endpoint": "https://mtls.as.example/token"},
        }
    ).encode()
    metadata = parse_metadata("https://as.example", HTTPResponse(200, {}, body))
    assert metadata.mtls_token_endpoint == "https://mtls.as.example/token"
