"""warden.client: from a 401 naming RFC 9728 metadata to the authorization server, sans I/O."""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any

import pytest

from warden.client import TokenError
from warden.client._errors import DISCOVERY_FAILED, ISSUER_MISMATCH, RESOURCE_MISMATCH
from warden.client._messages import HTTPResponse, Reply, Send, Step
from warden.client._resource_discovery import Discovery, discover_flow, resource_metadata_url

RS = "https://api.example/orders"
PRM = "https://api.example/.well-known/oauth-protected-resource/orders"
AS = "https://as.example"
CHALLENGE = f'Bearer realm="orders", resource_metadata="{PRM}", DPoP algs="ES256"'


def _json(document: Any, status: int = 200) -> HTTPResponse:
    return HTTPResponse(status, {"content-type": "application/json"}, json.dumps(document).encode())


def _run(flow: Generator[Step, Reply, Discovery], documents: dict[str, HTTPResponse]) -> tuple[Discovery, list[str]]:
    asked: list[str] = []
    reply: Reply = None
    try:
        while True:
            step = flow.send(reply)
            assert isinstance(step, Send) and step.request.method == "GET"
            asked.append(step.request.url)
            reply = documents.get(step.request.url, HTTPResponse(404))
    except StopIteration as done:
        return done.value, asked


def _documents(resource: str = RS, issuer: str = AS, servers: list[str] | None = None) -> dict[str, HTTPResponse]:
    return {
        PRM: _json({"resource": resource, "authorization_servers": servers or [AS], "scopes_supported": ["read"],
                    "bearer_methods_supported": ["header"]}),
        f"{AS}/.well-known/oauth-authorization-server": _json({"issuer": issuer, "token_endpoint": f"{AS}/token"}),
    }


def test_challenge_parameter_is_found_in_bearer_or_dpop() -> None:
    assert resource_metadata_url(CHALLENGE) == PRM
    assert resource_metadata_url([f'DPoP resource_metadata="{PRM}"']) == PRM
    assert resource_metadata_url('Bearer realm="x"') is None
    assert resource_metadata_url(f'Basic resource_metadata="{PRM}"') is None


def test_discovers_the_authorization_server() -> None:
    found, asked = _run(discover_flow(RS, CHALLENGE), _documents())
    assert asked == [PRM, f"{AS}/.well-known/oauth-authorization-server"]
    assert found.issuer == AS and found.audience == RS
    assert found.authorization_server.token_endpoint == f"{AS}/token"
    assert found.resource.scopes_supported == ("read",)


def test_a_document_naming_another_resource_is_refused() -> None:
    with pytest.raises(TokenError) as caught:
        _run(discover_flow(RS, CHALLENGE), _documents(resource="https://evil.example/orders"))
    assert caught.value.error == RESOURCE_MISMATCH


def test_exact_match_by_default_prefix_on_request() -> None:
    with pytest.raises(TokenError) as caught:
        _run(discover_flow(f"{RS}/42", CHALLENGE), _documents())
    assert caught.value.error == RESOURCE_MISMATCH
    found, _ = _run(discover_flow(f"{RS}/42?x=1", CHALLENGE, resource_match="prefix"), _documents())
    assert found.audience == RS
    for other in ("https://api.example/ordersX", "https://api.example:444/orders/1", "http://api.example/orders"):
        with pytest.raises(TokenError):
            _run(discover_flow(other, CHALLENGE, resource_match="prefix", allow_insecure_http=True), _documents())


def test_an_empty_path_is_the_same_as_slash() -> None:
    origin = "https://api.example"
    documents = {f"{origin}/.well-known/oauth-protected-resource": _documents(resource=origin)[PRM],
                 **_documents()}
    challenge = f'Bearer resource_metadata="{origin}/.well-known/oauth-protected-resource"'
    found, _ = _run(discover_flow(f"{origin}/", challenge), documents)
    assert found.audience == origin
    with pytest.raises(TokenError):
        _run(discover_flow(f"{origin}/x", challenge), documents)


def test_the_authorization_server_metadata_must_name_that_issuer() -> None:
    with pytest.raises(TokenError) as caught:
        _run(discover_flow(RS, CHALLENGE), _documents(issuer="https://evil.example"))
    assert caught.value.error == ISSUER_MISMATCH


def test_a_configured_issuer_must_be_listed() -> None:
    with pytest.raises(TokenError) as caught:
        _run(discover_flow(RS, CHALLENGE, issuer="https://mine.example"), _documents())
    assert caught.value.error == DISCOVERY_FAILED
    found, _ = _run(discover_flow(RS, CHALLENGE, issuer=AS), _documents(servers=["https://other.example", AS]))
    assert found.issuer == AS


@pytest.mark.parametrize("challenge", ['Bearer realm="x"', 'Bearer resource_metadata="http://api.example/m"',
                                       'Bearer resource_metadata="not a url"'])
def test_unusable_challenges_fail_before_any_request(challenge: str) -> None:
    with pytest.raises(TokenError) as caught:
        _run(discover_flow(RS, challenge), {})
    assert caught.value.error == DISCOVERY_FAILED


@pytest.mark.parametrize("body", [b"[]", b"nope", b'{"resource": 5}', b'{"resource": "https://api.example/orders", '
                                  b'"authorization_servers": "https://as.example"}'])
def test_malformed_documents_are_refused(body: bytes) -> None:
    with pytest.raises(TokenError) as caught:
        _run(discover_flow(RS, CHALLENGE), {PRM: HTTPResponse(200, {}, body)})
    assert caught.value.error == DISCOVERY_FAILED
