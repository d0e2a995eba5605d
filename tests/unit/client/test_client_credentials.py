"""ClientCredentials: construction rules, secret sources, cache keys, and hidden secrets (T65)."""

from __future__ import annotations

import logging
import pickle

import httpx
import pytest

from warden.client import AccessToken, ClientCredentials, DPoPKey, Secret, SigningKey, TokenError
from warden.errors import ConfigError

CANARY = "wsec_CANARYcanary0123456789abcdefghijklmnop"


def make(mock_as, **kwargs):
    kwargs.setdefault("client_id", "c1")
    kwargs.setdefault("client_secret", "s1")
    client = httpx.Client(transport=httpx.MockTransport(mock_as.handler))
    return ClientCredentials(mock_as.issuer, http_client=client, **kwargs), client


def test_secret_is_read_from_the_environment_when_not_given(mock_as):
    cc, client = make(mock_as, client_secret=None, environ={"WARDEN_CLIENT_SECRET": "from-env"})
    with client:
        cc.get_token()
    request = mock_as.token_requests[0]
    assert httpx.BasicAuth("c1", "from-env")._auth_header == request.headers["authorization"]


def test_secret_is_read_from_a_file(tmp_path, mock_as):
    path = tmp_path / "secret"
    path.write_text("from-file\n")
    cc, client = make(mock_as, client_secret=None, client_secret_file=path)
    with client:
        cc.get_token()
    assert (
        httpx.BasicAuth("c1", "from-file")._auth_header == mock_as.token_requests[0].headers["authorization"]
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"client_secret": None}, "needs client_secret"),
        ({"client_secret": "a", "client_secret_file": "/x"}, "not both"),
        ({"client_secret_file": "/nonexistent/secret", "client_secret": None}, "cannot read secret file"),
        ({"auth_method": "private_key_jwt"}, "needs private_key"),
        ({"auth_method": "tls_client_auth"}, "needs ssl_context"),
        ({"auth_method": "magic"}, "is not one of"),
        ({"scope": "read  write"}, "malformed scope"),
        ({"audience": "https://api.example#frag"}, "fragment"),
        ({"client_id": ""}, "client_id"),
        ({"timeout": 0}, "timeout"),
        ({"client_assertion": "eyJ.a.b", "client_secret": None}, "must be a callable"),
        ({"client_assertion": lambda: "t", "private_key": SigningKey.generate()}, "not both"),
        ({"client_assertion": lambda: "t", "auth_method": "client_secret_post"}, "not client_secret_post"),
    ],
)
def test_unusable_arguments_raise_config_error(kwargs, message):
    base = {"client_id": "c1", "client_secret": "s1", "environ": {}}
    with pytest.raises(ConfigError, match=message):
        ClientCredentials("https://as.example", **{**base, **kwargs})


@pytest.mark.parametrize(
    ("issuer", "message"),
    [
        ("http://as.example", "must use https"),
        ("https://as.example?x=1", "query"),
        ("https://as.example#x", "fragment"),
    ],
)
def test_issuer_must_be_a_tls_url_without_query_or_fragment(issuer, message):
    with pytest.raises(ConfigError, match=message):
        ClientCredentials(issuer, client_id="c", client_secret="s")


def test_plain_http_on_a_private_host_needs_an_explicit_opt_in():
    cc = ClientCredentials(
        "http://warden.internal:8080", client_id="c", client_secret="s", allow_insecure_http=True
    )
    assert cc.issuer == "http://warden.internal:8080"


def test_neither_issuer_nor_endpoint_is_an_error():
    with pytest.raises(ConfigError, match="issuer"):
        ClientCredentials(client_id="c", client_secret="s")


def test_private_key_selects_private_key_jwt():
    cc = ClientCredentials("https://as.example", client_id="c", private_key=SigningKey.generate(), environ={})
    assert cc.auth_method == "private_key_jwt"


def test_client_assertion_selects_private_key_jwt_without_a_secret():
    cc = ClientCredentials("https://as.example", client_id="c", client_assertion=lambda: "eyJ.a.b", environ={})
    assert cc.auth_method == "private_key_jwt"


def test_tokens_are_cached_per_audience_and_scope_set(mock_as):
    cc, client = make(mock_as, audience="https://api.example", scope="read write")
    with client:
        first = cc.get_token()
        assert cc.get_token(scope="write read") == first  # same set, any order
        assert cc.get_token(scope=["write", "read"]) == first
        assert cc.get_token(scope="read") != first
        assert cc.get_token(audience="https://other.example") != first
    resources = [r.content.decode() for r in mock_as.token_requests]
    assert len(resources) == 3
    assert "resource=https%3A%2F%2Fother.example" in resources[2]


def test_access_token_reports_type_lifetime_and_audience(mock_as):
    cc, client = make(mock_as, audience="https://api.example", clock=_Clock())
    with client:
        token = cc.get_access_token()
    assert isinstance(token, AccessToken)
    assert (
        token.token_type == "Bearer" and token.expires_in == 300 and token.audience == "https://api.example"
    )
    assert 225 <= token.refresh_in <= 270 and token.authorization == f"Bearer {token.access_token}"
    assert cc.has_token() and not cc.has_token(audience="https://other.example")
    assert cc.invalidate(token.access_token) and not cc.has_token()


def test_stats_and_cache_entries_never_show_the_token(mock_as):
    cc, client = make(mock_as, audience="https://api.example", scope="read")
    with client:
        cc.get_token()
        cc.get_token()
    stats = cc.stats()
    assert (stats.hits, stats.misses, stats.requests, stats.tokens, stats.failures) == (1, 1, 2, 1, 0)
    (entry,) = cc.cache_entries()
    assert entry.audience == "https://api.example" and entry.scope == ("read",)
    assert "at-1" not in repr(entry)


def test_error_carries_the_rfc_code_and_description(mock_as):
    mock_as.scripted.append(
        httpx.Response(
            400, json={"error": "invalid_scope", "error_description": "scope admin is not granted"}
        )
    )
    cc, client = make(mock_as)
    with client, pytest.raises(TokenError) as caught:
        cc.get_token()
    error = caught.value
    assert (error.error, error.error_description, error.status, error.retryable) == (
        "invalid_scope",
        "scope admin is not granted",
        400,
        False,
    )
    assert len(mock_as.token_requests) == 1


class _Clock:
    def __init__(self) -> None:
        self.t = 50.0

    def now(self) -> float:
        return self.t


def test_secret_holder_hides_its_value():
    secret = Secret(CANARY)
    assert CANARY not in repr(secret) and CANARY not in str(secret) and CANARY not in f"{secret}"
    assert secret.reveal() == CANARY and secret == Secret(CANARY) and secret != Secret("other")
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    with pytest.raises(TypeError):
        hash(secret)


def test_no_object_shows_the_secret_or_token_in_repr_or_logs(mock_as, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    mock_as.expires_in = 300
    cc, client = make(mock_as, client_secret=CANARY, audience="https://api.example")
    with client:
        token = cc.get_access_token()
        cc.invalidate(token.access_token)
        mock_as.scripted.append(httpx.Response(401, json={"error": "invalid_client"}))
        with pytest.raises(TokenError) as caught:
            cc.get_token()
    shown = [
        repr(cc),
        str(cc),
        repr(token),
        str(token),
        repr(caught.value),
        str(caught.value),
        repr(cc.stats()),
        repr(cc.cache_entries()),
        repr(cc.requests_auth()),
        repr(cc.httpx_auth()),
        repr(SigningKey.generate()),
        repr(DPoPKey.generate()),
        caplog.text,
    ]
    for text in shown:
        assert CANARY not in text
        assert token.access_token not in text


def test_peek_never_fetches_and_never_starts_a_renewal(mock_as):
    clock = _Clock()
    cc, client = make(mock_as, clock=clock)
    with client:
        assert cc.peek_access_token() is None and mock_as.token_requests == []
        cc.get_token()
        clock.t += 290  # due for renewal
        peeked = cc.peek_access_token()
        assert peeked is not None and peeked.access_token == "at-1"
        assert len(mock_as.token_requests) == 1
        clock.t += 10  # expired
        assert cc.peek_access_token() is None
