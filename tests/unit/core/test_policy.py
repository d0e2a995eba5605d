import pytest

from warden.core.api import Api
from warden.core.client import Grant
from warden.core.policy import decide_token
from warden.protocol.errors import InvalidScope, InvalidTarget

APIS = {
    "https://a.example": Api("https://a.example", ("read", "write", "admin"), token_ttl=900),
    "https://b.example": Api("https://b.example", ("read", "list"), token_ttl=300),
    "https://r.example": Api("https://r.example", ("read",), token_ttl=600, alg="RS256"),
}
GRANTS = [Grant("c", "https://a.example", ("read", "write"), 0), Grant("c", "https://b.example", ("list",), 1),
          Grant("c", "https://r.example", ("read",), 2)]


def test_no_scope_no_resource_uses_default_grant_with_all_its_scopes():
    d = decide_token(GRANTS, APIS, None, None)
    assert d.audiences == ("https://a.example",)
    assert d.scopes == ("read", "write")
    assert d.ttl == 900 and d.alg == "ES256"


def test_scope_subset_of_default_grant():
    d = decide_token(GRANTS, APIS, ("write",), None)
    assert d.scopes == ("write",)


def test_scope_defined_but_not_granted_is_refused_not_dropped():
    with pytest.raises(InvalidScope) as exc:
        decide_token(GRANTS, APIS, ("read", "admin"), None)
    assert exc.value.reason == "scope_not_granted"


def test_scope_no_api_defines_is_invalid_scope():
    with pytest.raises(InvalidScope):
        decide_token(GRANTS, APIS, ("nonexistent",), None)


def test_scope_of_other_grant_needs_its_resource():
    with pytest.raises(InvalidScope):
        decide_token(GRANTS, APIS, ("list",), None)
    d = decide_token(GRANTS, APIS, ("list",), ("https://b.example",))
    assert d.audiences == ("https://b.example",) and d.ttl == 300


def test_unknown_and_ungranted_resources_are_invalid_target():
    with pytest.raises(InvalidTarget):
        decide_token(GRANTS, APIS, None, ("https://unknown.example",))
    with pytest.raises(InvalidTarget):
        decide_token([GRANTS[0]], APIS, None, ("https://b.example",))


def test_several_resources_take_the_shortest_lifetime_and_union_of_scopes():
    d = decide_token(GRANTS, APIS, None, ("https://a.example", "https://b.example"))
    assert d.audiences == ("https://a.example", "https://b.example")
    assert d.scopes == ("read", "write", "list")
    assert d.ttl == 300


def test_resources_with_different_algorithms_are_refused():
    with pytest.raises(InvalidTarget):
        decide_token(GRANTS, APIS, None, ("https://a.example", "https://r.example"))


def test_client_without_grants_gets_invalid_scope():
    with pytest.raises(InvalidScope):
        decide_token([], APIS, None, None)


def test_grant_scope_removed_from_api_is_not_issued():
    apis = dict(APIS)
    apis["https://a.example"] = Api("https://a.example", ("read",))
    d = decide_token(GRANTS, apis, None, None)
    assert d.scopes == ("read",)
