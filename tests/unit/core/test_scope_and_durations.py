import pytest
from hypothesis import given
from hypothesis import strategies as st

from warden.core.api import Api, validate_api, validate_identifier
from warden.core.durations import parse_duration, render_duration
from warden.core.scope import parse_scope


def test_parse_scope_keeps_order_and_drops_duplicates():
    assert parse_scope("read write read") == ("read", "write")


@pytest.mark.parametrize("bad", ["", "read  write", " read", "read\\x", 'a"b', "caf\u00e9"])
def test_malformed_scopes_are_refused(bad):
    with pytest.raises(ValueError):
        parse_scope(bad)


@given(st.text(max_size=50))
def test_parse_scope_only_raises_value_error(text):
    try:
        parse_scope(text)
    except ValueError:
        pass


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("15m", 900), ("24h", 86400), ("7d", 604800), ("30", 30)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "1y", "-5m", "m", "1.5h", True])
def test_bad_durations_raise_with_expected_form(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_render_duration_roundtrip():
    assert render_duration(900) == "15m" and render_duration(86400) == "1d" and render_duration(61) == "61s"


@pytest.mark.parametrize("ident", ["https://api.example", "urn:example:api", "https://api.example/v1"])
def test_valid_identifiers(ident):
    validate_identifier(ident)


@pytest.mark.parametrize("ident", ["api", "https://api.example#frag", "https:///path", "https://a b"])
def test_invalid_identifiers(ident):
    with pytest.raises(ValueError):
        validate_identifier(ident)


def test_api_rules():
    validate_api(Api("https://a.example", ("read",)))
    for bad in (Api("https://a.example", ()), Api("https://a.example", ("r", "r")),
                Api("https://a.example", ("read",), token_ttl=10), Api("https://a.example", ("read",), alg="HS256")):
        with pytest.raises(ValueError):
            validate_api(bad)


@pytest.mark.parametrize("scope", ["warden:admin", "warden:admin:read", "warden:", "Warden:Admin", "WARDEN:x"])
def test_scopes_in_wardens_namespace_are_reserved_for_its_admin_api(scope):
    with pytest.raises(ValueError, match="reserved"):
        validate_api(Api("https://a.example", ("read", scope)))


def test_names_that_only_resemble_the_reserved_prefix_are_ordinary():
    validate_api(Api("https://a.example", ("warden", "wardenadmin", "admin:warden:x", "warden-admin")))
