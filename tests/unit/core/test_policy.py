import contextlib
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from warden.core.api import Api
from warden.core.client import Grant
from warden.core.policy import PolicyRefusal, decide_token

APIS = {
    "https://a.example": Api("https://a.example", ("read", "write", "admin"), token_ttl=900),
    "https://b.example": Api("https://b.example", ("read", "list"), token_ttl=300),
    "https://r.example": Api("https://r.example", ("read",), token_ttl=600, alg="RS256"),
}
GRANTS = [Grant("c", "https://a.example", ("read", "write"), 0), Grant("c", "https://b.example", ("list",), 1),
          Grant("c", "https://r.example", ("read",), 2)]



@contextlib.contextmanager
def refused(error: str) -> Iterator[pytest.ExceptionInfo[PolicyRefusal]]:
    """The policy refuses with the core's own error, carrying the OAuth code the services answer with."""
    with pytest.raises(PolicyRefusal) as exc:
        yield exc
    assert exc.value.error == error

def test_no_scope_no_resource_uses_default_grant_with_all_its_scopes():
    d = decide_token(GRANTS, APIS, None, None)
    assert d.audiences == ("https://a.example",)
    assert d.scopes == ("read", "write")
    assert d.ttl == 900 and d.alg == "ES256"


def test_scope_subset_of_default_grant():
    d = decide_token(GRANTS, APIS, ("write",), None)
    assert d.scopes == ("write",)


def test_scope_defined_but_not_granted_is_refused_not_dropped():
    with refused("invalid_scope") as exc:
        decide_token(GRANTS, APIS, ("read", "admin"), None)
    assert exc.value.reason == "scope_not_granted"


def test_scope_no_api_defines_is_invalid_scope():
    with refused("invalid_scope"):
        decide_token(GRANTS, APIS, ("nonexistent",), None)


def test_scope_of_other_grant_needs_its_resource():
    with refused("invalid_scope"):
        decide_token(GRANTS, APIS, ("list",), None)
    d = decide_token(GRANTS, APIS, ("list",), ("https://b.example",))
    assert d.audiences == ("https://b.example",) and d.ttl == 300


def test_unknown_and_ungranted_resources_are_invalid_target():
    with refused("invalid_target"):
        decide_token(GRANTS, APIS, None, ("https://unknown.example",))
    with refused("invalid_target"):
        decide_token([GRANTS[0]], APIS, None, ("https://b.example",))


def test_several_resources_take_the_shortest_lifetime_and_only_scopes_common_to_all():
    # a: read write granted; b: list granted (b defines read too, but it is not granted there)
    with refused("invalid_scope") as exc:
        decide_token(GRANTS, APIS, None, ("https://a.example", "https://b.example"))
    assert exc.value.reason == "no_common_scope"
    grants = [Grant("c", "https://a.example", ("read", "write"), 0), Grant("c", "https://b.example", ("read", "list"), 1)]
    d = decide_token(grants, APIS, None, ("https://a.example", "https://b.example"))
    assert d.audiences == ("https://a.example", "https://b.example")
    assert d.scopes == ("read",)  # write is not defined by b, list is not granted at a
    assert d.ttl == 300


def test_a_scope_granted_at_one_audience_only_is_refused_for_a_token_naming_both():
    apis = {"https://a.example": Api("https://a.example", ("read", "write")),
            "https://b.example": Api("https://b.example", ("read", "write"))}
    grants = [Grant("c", "https://a.example", ("read",), 0), Grant("c", "https://b.example", ("write",), 1)]
    for scopes in (("read", "write"), ("read",), ("write",)):
        with refused("invalid_scope") as exc:
            decide_token(grants, apis, scopes, ("https://a.example", "https://b.example"))
        assert exc.value.reason == "scope_not_granted_everywhere"
        assert "every requested resource" in (exc.value.description or "")
    with refused("invalid_scope"):
        decide_token(grants, apis, None, ("https://a.example", "https://b.example"))
    assert decide_token(grants, apis, ("read",), ("https://a.example",)).scopes == ("read",)
    with refused("invalid_scope"):
        decide_token(grants, apis, ("write",), ("https://a.example",))


def test_a_scope_one_audience_does_not_define_is_refused_even_when_granted_elsewhere():
    apis = {"https://a.example": Api("https://a.example", ("read", "admin")),
            "https://b.example": Api("https://b.example", ("read",))}
    grants = [Grant("c", "https://a.example", ("read", "admin"), 0), Grant("c", "https://b.example", ("read",), 1)]
    with refused("invalid_scope"):
        decide_token(grants, apis, ("admin",), ("https://b.example", "https://a.example"))
    d = decide_token(grants, apis, None, ("https://b.example", "https://a.example"))
    assert d.scopes == ("read",) and d.audiences == ("https://b.example", "https://a.example")


def test_resources_with_different_algorithms_are_refused():
    with refused("invalid_target"):
        decide_token(GRANTS, APIS, None, ("https://a.example", "https://r.example"))


def test_client_without_grants_gets_invalid_scope():
    with refused("invalid_scope"):
        decide_token([], APIS, None, None)


def test_grant_scope_removed_from_api_is_not_issued():
    apis = dict(APIS)
    apis["https://a.example"] = Api("https://a.example", ("read",))
    d = decide_token(GRANTS, apis, None, None)
    assert d.scopes == ("read",)


_NAMES = st.sampled_from(["https://a.example", "https://b.example", "https://c.example", "https://d.example"])
_SCOPES = st.sampled_from(["read", "write", "admin", "warden:admin"])


@given(apis=st.dictionaries(_NAMES, st.tuples(st.lists(_SCOPES, unique=True, max_size=4),
                                               st.sampled_from(["ES256", "RS256"]), st.integers(60, 900)),
                            max_size=4),
       grants=st.lists(st.tuples(_NAMES, st.lists(_SCOPES, unique=True, max_size=4), st.integers(0, 3)), max_size=5),
       scopes=st.none() | st.lists(_SCOPES, unique=True, min_size=1).map(tuple),
       resources=st.none() | st.lists(_NAMES, unique=True, min_size=1, max_size=4).map(tuple))
def test_every_issued_scope_is_granted_and_defined_at_every_issued_audience(apis, grants, scopes, resources):
    api_map = {name: Api(name, tuple(s), ttl, alg) for name, (s, alg, ttl) in apis.items()}
    grant_list = [Grant("c", api, tuple(s), pos) for api, s, pos in grants]
    effective = {g.api: g for g in grant_list if g.api in api_map}  # the last grant per API wins, as in the store
    try:
        d = decide_token(grant_list, api_map, scopes, resources)
    except PolicyRefusal:
        common = None
    else:
        common = d.scopes
        assert d.audiences and all(a in effective for a in d.audiences)
        for aud in d.audiences:
            for scope in d.scopes:
                assert scope in effective[aud].scopes and scope in api_map[aud].scopes, (scope, aud)
        if scopes is not None:
            assert d.scopes == scopes  # exactly what was asked, never widened or silently narrowed
        if resources is not None:
            assert d.audiences == resources
        if len(d.audiences) > 1:
            assert d.scopes  # several audiences never share an empty scope
    if resources and all(r in effective for r in resources):
        # what every audience grants and defines: issued when scope is omitted, or refused if nothing
        everywhere = [s for s in effective[resources[0]].scopes
                      if all(s in effective[r].scopes and s in api_map[r].scopes for r in resources)]
        same_alg = len({api_map[r].alg for r in resources}) == 1
        if scopes is None and same_alg and (everywhere or len(resources) == 1):
            assert common == tuple(everywhere)
        if scopes is not None and same_alg and set(scopes) <= set(everywhere):
            assert common == scopes
