"""`RemoteOperations` against canned admin API answers (httpx.MockTransport): the token is fetched
once with `warden.client` and reused, lists are paged through, and problem details become the
errors local mode raises (so the CLI's exit codes match), in one line, without the secret."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warden.cli.remote import RemoteOperations, _problem, remote_server
from warden.errors import ConfigError, Conflict, NotFound, StorageUnavailable, WardenError

SERVER = "https://warden.example"
SECRET = "wsec_" + "S" * 42
ENV = {"WARDEN_CLIENT_ID": "ops", "WARDEN_CLIENT_SECRET": SECRET}


def problem(status: int, detail: str) -> httpx.Response:
    return httpx.Response(status, json={"type": "about:blank", "title": "x", "status": status, "detail": detail},
                          headers={"content-type": "application/problem+json"})


class Canned:
    """The authorization server's metadata and token endpoint, then `admin` for /admin/v1 requests."""

    def __init__(self, admin: Callable[[httpx.Request], httpx.Response]) -> None:
        self.admin = admin
        self.token_requests = 0
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        path = request.url.path
        if path == "/.well-known/oauth-authorization-server":
            return httpx.Response(200, json={"issuer": SERVER, "token_endpoint": f"{SERVER}/oauth2/token"})
        if path == "/oauth2/token":
            self.token_requests += 1
            from urllib.parse import parse_qs

            assert parse_qs(request.content.decode())["resource"] == [f"{SERVER}/admin/v1"]
            return httpx.Response(200, json={"access_token": "tok", "token_type": "Bearer", "expires_in": 300})
        assert request.headers["authorization"] == "Bearer tok"
        return self.admin(request)


def remote(admin: Callable[[httpx.Request], httpx.Response]) -> tuple[RemoteOperations, Canned]:
    canned = Canned(admin)
    return RemoteOperations(SERVER, environ=ENV, transport=httpx.MockTransport(canned)), canned


def test_token_is_fetched_once_and_lists_are_paged_through() -> None:
    def admin(request: httpx.Request) -> httpx.Response:
        assert request.url.params["limit"] == "500"
        if "cursor" not in request.url.params:
            return httpx.Response(200, json={"items": [{"identifier": "a"}], "next_cursor": "YQ"})
        assert request.url.params["cursor"] == "YQ"
        return httpx.Response(200, json={"items": [{"identifier": "b"}], "next_cursor": None})

    ops, canned = remote(admin)
    with ops:
        assert [a["identifier"] for a in ops.list_apis()] == ["a", "b"]
        assert [a["identifier"] for a in ops.list_apis()] == ["a", "b"]
    assert canned.token_requests == 1
    admin_requests = [r for r in canned.seen if r.url.path.startswith("/admin/v1")]
    assert all(SECRET not in str(r.headers) + r.content.decode() for r in admin_requests)


def test_identifiers_are_one_path_segment() -> None:
    def admin(request: httpx.Request) -> httpx.Response:
        assert request.url.raw_path == b"/admin/v1/apis/https%3A%2F%2Fapi.example%2Fv1"
        return httpx.Response(200, json={"identifier": "https://api.example/v1"})

    ops, _ = remote(admin)
    with ops:
        assert ops.get_api("https://api.example/v1")["identifier"] == "https://api.example/v1"


@pytest.mark.parametrize(("status", "error"), [(400, ConfigError), (404, NotFound), (409, Conflict),
                                               (503, StorageUnavailable), (401, WardenError), (403, WardenError),
                                               (500, WardenError)])
def test_problem_details_become_the_local_errors(status: int, error: type[WardenError]) -> None:
    ops, _ = remote(lambda request: problem(status, "no client x"))
    with ops, pytest.raises(error) as raised:
        ops.get_client("x")
    assert type(raised.value) is error or status in (401, 403, 500)
    assert "no client x" in str(raised.value)


def test_too_large_a_document_names_the_setting() -> None:
    ops, _ = remote(lambda request: httpx.Response(413, text="too large"))
    with ops, pytest.raises(ConfigError, match=r"limits\.max_body_bytes"):
        ops.apply({"apis": []}, prune=False, dry_run=False, secrets=None)


def test_a_refused_token_is_one_line_without_the_secret() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/token":
            return httpx.Response(401, json={"error": "invalid_client"}, headers={"www-authenticate": "Basic"})
        return httpx.Response(200, json={"issuer": SERVER, "token_endpoint": f"{SERVER}/oauth2/token"})

    ops = RemoteOperations(SERVER, environ=ENV, transport=httpx.MockTransport(handler))
    with ops, pytest.raises(WardenError) as raised:
        ops.list_keys()
    assert "invalid_client" in str(raised.value) and SECRET not in str(raised.value)
    assert "\n" not in str(raised.value)


def test_credentials_are_required_and_exclusive(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="WARDEN_CLIENT_ID"):
        RemoteOperations(SERVER, environ={"WARDEN_CLIENT_SECRET": SECRET})
    with pytest.raises(ConfigError, match="WARDEN_CLIENT_SECRET"):
        RemoteOperations(SERVER, environ={"WARDEN_CLIENT_ID": "ops"})
    with pytest.raises(ConfigError, match="not both"):
        RemoteOperations(SERVER, environ=ENV, client_secret_file="a", private_key_file="b")
    with pytest.raises(ConfigError, match="--key-id"):
        RemoteOperations(SERVER, environ=ENV, key_id="k1")


def test_server_url_from_the_flag_or_the_environment() -> None:
    assert remote_server(None, {}) is None
    assert remote_server(None, {"WARDEN_SERVER": "https://a.example/"}) == "https://a.example"
    assert remote_server("http://127.0.0.1:8080", {"WARDEN_SERVER": "https://a.example"}) == "http://127.0.0.1:8080"
    for bad in ("a.example", "ftp://a.example", "https://a.example/?x=1", "https://"):
        with pytest.raises(ConfigError):
            remote_server(bad, {})


@settings(max_examples=200, deadline=None)
@given(st.integers(400, 599), st.binary(max_size=200) | st.builds(
    lambda d: json.dumps(d).encode(), st.dictionaries(st.text(max_size=10), st.text() | st.integers(), max_size=4)))
def test_any_error_answer_becomes_one_warden_error_line(status: int, body: bytes) -> None:
    error = _problem(httpx.Response(status, content=body), SERVER)
    assert isinstance(error, WardenError)
    assert str(error) and "\n" not in str(error) and "\r" not in str(error) and len(str(error)) < 400
