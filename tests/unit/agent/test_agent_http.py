"""The agent's HTTP/1.1 request parsing, Host and browser checks, and response rendering."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warden.agent._http import (
    MAX_HEAD_BYTES,
    HTTPProblem,
    is_allowed_host,
    is_browser_request,
    parse_request_head,
    render_response,
)


def head(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def test_a_plain_get_is_parsed():
    request = parse_request_head(
        head(
            "GET /token?audience=https%3A%2F%2Fapi.example&scope=read HTTP/1.1",
            "Host: 127.0.0.1:4180",
            "User-Agent: curl/8",
        )
    )
    assert (request.method, request.path) == ("GET", "/token")
    assert request.query == {"audience": "https://api.example", "scope": "read"}
    assert request.headers["host"] == "127.0.0.1:4180"


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (head("GET /token HTTP/1.1"), 400),  # no Host
        (head("GET /token HTTP/1.1", "Host: a", "Host: b"), 400),
        (head("GET http://evil/ HTTP/1.1", "Host: a"), 400),
        (head("GET /token HTTP/2", "Host: a"), 400),
        (head("GET  /token HTTP/1.1", "Host: a"), 400),
        (head("GET /token HTTP/1.1", "Host : a"), 400),
        (head("GET /token HTTP/1.1", "Host: a", " folded"), 400),
        (head("GET /token HTTP/1.1", "Host: a", "Content-Length: 5"), 400),
        (head("GET /token HTTP/1.1", "Host: a", "Transfer-Encoding: chunked"), 400),
        (head("GET /token?scope=a&scope=b HTTP/1.1", "Host: a"), 400),
        (head("GET /token?" + "&".join(f"k{i}=v" for i in range(40)) + " HTTP/1.1", "Host: a"), 400),
        (head("GET /token HTTP/1.1", "Host: a", *(f"X-{i}: v" for i in range(80))), 431),
        (b"GET /" + b"a" * MAX_HEAD_BYTES + b" HTTP/1.1\r\n\r\n", 431),
    ],
)
def test_malformed_or_risky_requests_are_refused(data, status):
    with pytest.raises(HTTPProblem) as caught:
        parse_request_head(data)
    assert caught.value.status == status


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_parser_returns_a_request_or_an_http_problem(data):
    try:
        request = parse_request_head(data)
    except HTTPProblem as problem:
        assert 400 <= problem.status < 500
    else:
        assert request.path.startswith("/")


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("127.0.0.1:4180", True),
        ("localhost:4180", True),
        ("LOCALHOST", True),
        ("[::1]:4180", True),
        ("127.0.0.1", True),
        ("127.0.0.1:80", False),
        ("evil.example:4180", False),
        ("127.0.0.1.nip.io:4180", False),
        ("[::1", False),
        ("", False),
        (None, False),
        ("127.0.0.1:41a0", False),
    ],
)
def test_host_must_name_loopback_and_our_port(host, ok):
    assert is_allowed_host(host, port=4180) is ok


@pytest.mark.parametrize("name", ["origin", "sec-fetch-site", "sec-fetch-mode", "sec-fetch-dest"])
def test_browser_fetch_metadata_marks_a_browser(name):
    assert is_browser_request({name: "x"}) and not is_browser_request({"user-agent": "curl"})


def test_responses_close_the_connection_and_are_never_cached_or_shared():
    raw = render_response(200, b"{}", "application/json", (("Retry-After", "1"),))
    text = raw.decode()
    assert text.startswith("HTTP/1.1 200 OK\r\n") and text.endswith("\r\n\r\n{}")
    fields = text.lower()  # field names are case-insensitive (RFC 9110 §5.1)
    assert "cache-control: no-store" in fields and "connection: close" in fields and "content-length: 2" in fields
    assert "access-control" not in fields and "retry-after: 1" in fields and "\r\ndate: " in fields
