"""The token exchange flow (RFC 8693 §2.1), stepped by hand with canned answers."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest
from tests.unit.client.conftest import ISSUER, TOKEN_ENDPOINT, drive, error_response, token_response

from warden.client import TokenError
from warden.client._client_auth import ClientAuthentication
from warden.client._discovery import EndpointResolver
from warden.client._dpop import DPoPKey
from warden.client._flow import exchange_flow
from warden.client._request import ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE, TokenRequestFactory
from warden.secret import Secret

KEY = ("https://target.example", frozenset({"read", "write"}))


def _flow(dpop_key: DPoPKey | None = None, key=KEY):
    auth = ClientAuthentication("broker", "client_secret_basic", secret=Secret("s3cr3t"))
    requests = TokenRequestFactory(auth, dpop_key=dpop_key, wall_clock=lambda: 1_700_000_000.0)
    endpoint = EndpointResolver(issuer=ISSUER, token_endpoint=TOKEN_ENDPOINT)
    return exchange_flow(requests, endpoint, "subject.jwt.value", ACCESS_TOKEN_TYPE, key)


def test_one_exchange_request_carries_the_subject_token_target_and_sorted_scopes(clock):
    run = drive(_flow(), [token_response("exchanged", issued_token_type=ACCESS_TOKEN_TYPE, scope="read")], clock)
    assert run.error is None and run.result is not None
    assert run.result.access_token == "exchanged" and run.result.scope == ("read",)
    (send,) = run.sends
    assert (send.request.method, send.request.url) == ("POST", TOKEN_ENDPOINT)
    assert parse_qs(send.request.body.decode()) == {
        "grant_type": [TOKEN_EXCHANGE], "subject_token": ["subject.jwt.value"],
        "subject_token_type": [ACCESS_TOKEN_TYPE], "scope": ["read write"], "resource": ["https://target.example"]}
    assert dict(send.request.headers)["authorization"].startswith("Basic ")


def test_without_target_or_scope_the_form_names_neither(clock):
    run = drive(_flow(key=(None, frozenset())), [token_response()], clock)
    assert set(parse_qs(run.sends[0].request.body.decode())) == {"grant_type", "subject_token", "subject_token_type"}


@pytest.mark.parametrize("code", ["invalid_grant", "invalid_target", "unauthorized_client"])
def test_a_refusal_is_raised_with_the_servers_code_and_not_retried(clock, code):
    run = drive(_flow(), [error_response(400, code)], clock)
    assert isinstance(run.error, TokenError) and run.error.error == code and not run.error.retryable
    assert len(run.sends) == 1


def test_a_dpop_nonce_demand_is_answered_once(clock):
    key = DPoPKey.generate()
    demand = error_response(400, "use_dpop_nonce", headers={"dpop-nonce": "n-1"})
    run = drive(_flow(dpop_key=key), [demand, token_response(token_type="DPoP")], clock)
    assert run.error is None and run.result is not None and run.result.token_type == "DPoP"
    assert len(run.sends) == 2
    again = drive(_flow(dpop_key=key), [demand, demand], clock)
    assert isinstance(again.error, TokenError) and again.error.error == "use_dpop_nonce"


def test_a_transport_failure_is_a_retryable_network_error(clock):
    from warden.client._messages import TransportFailure

    run = drive(_flow(), [TransportFailure("connection refused")], clock)
    assert isinstance(run.error, TokenError) and run.error.retryable
