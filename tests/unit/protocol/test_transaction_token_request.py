"""Txn-Token requests (draft-ietf-oauth-transaction-tokens, on RFC 8693): parsing untrusted input."""

from __future__ import annotations

import base64
import json
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warden.jose import generate_private_key, load_public_jwk, public_jwk
from warden.protocol.errors import InvalidRequest, InvalidTarget, OAuthError
from warden.protocol.form import parse_form
from warden.protocol.token_exchange import ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE
from warden.protocol.transaction_tokens import (
    TXN_TOKEN_TYPE,
    is_transaction_token_request,
    parse_transaction_token_request,
    verify_transaction_token,
)

DOMAIN = "https://trust.example"
_BASE = {"grant_type": TOKEN_EXCHANGE, "requested_token_type": TXN_TOKEN_TYPE, "audience": DOMAIN,
         "subject_token": "eyJ.a.b", "subject_token_type": ACCESS_TOKEN_TYPE}


def _b64(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def _parse(**fields: str):
    values = {k: v for k, v in {**_BASE, **fields}.items() if v}
    return parse_transaction_token_request(parse_form(urlencode(values).encode()), DOMAIN)


def test_request_context_and_details_are_decoded_json_objects():
    parsed = _parse(request_context=_b64({"req_ip": "192.0.2.1"}), request_details=_b64({"a": 1}), scope="read")
    assert parsed.request_context == {"req_ip": "192.0.2.1"} and parsed.request_details == {"a": 1}
    assert parsed.scopes == ("read",) and "eyJ" not in repr(parsed)


def test_only_forms_asking_for_a_txn_token_are_routed_here():
    assert is_transaction_token_request(parse_form(urlencode(_BASE).encode()))
    assert not is_transaction_token_request(parse_form(b"grant_type=client_credentials"))


@pytest.mark.parametrize(("fields", "error"), [
    ({"audience": ""}, InvalidRequest),
    ({"audience": "https://other.example"}, InvalidTarget),
    ({"resource": DOMAIN}, InvalidTarget),
    ({"request_context": "%%%"}, InvalidRequest),
    ({"request_context": _b64([1, 2])}, InvalidRequest),
    ({"request_details": _b64("x" * 3000)}, InvalidRequest),
    ({"request_details": base64.urlsafe_b64encode(b"NaN").rstrip(b"=").decode()}, InvalidRequest),
    ({"subject_token_type": "urn:ietf:params:oauth:token-type:saml2"}, InvalidRequest),
    ({"actor_token": "x", "actor_token_type": ACCESS_TOKEN_TYPE}, InvalidRequest),
])
def test_malformed_requests_are_refused(fields, error):
    with pytest.raises(error):
        _parse(**fields)


_NAMES = st.sampled_from([*_BASE, "scope", "resource", "request_context", "request_details", "actor_token"])
_VALUES = st.one_of(st.sampled_from([*_BASE.values(), _b64({"x": 1}), "read"]), st.text(max_size=40))


@settings(max_examples=300)
@given(st.lists(st.tuples(_NAMES, _VALUES), max_size=12))
def test_parsing_only_raises_protocol_errors(pairs):
    try:
        parse_transaction_token_request(parse_form(urlencode(pairs).encode()), DOMAIN)
    except OAuthError:
        pass


_KEYS = {"k": ("ES256", load_public_jwk(public_jwk(generate_private_key("ES256"), kid="k")))}


@given(st.text(max_size=200))
def test_verifying_arbitrary_text_never_raises(token):
    keys = _KEYS
    assert verify_transaction_token(token, keys, "https://as.example", DOMAIN) is None
