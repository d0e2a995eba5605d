"""`POST /admin/v1/apply` parses a JSON document from the network: whatever its shape, the parser
and the apply that follows refuse it with a ConfigError (a 400) or apply it, never another error."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from warden.core.clock import FixedClock
from warden.errors import ConfigError, Conflict, NotFound
from warden.services.admin import Admin
from warden.services.audit import AuditSink
from warden.services.kek import KeyMaterial
from warden.services.operations import apply_document
from warden.storage.memory import MemoryStore

_scalars = st.none() | st.booleans() | st.integers(-10, 10**12) | st.floats(allow_nan=False) | st.text(max_size=12)
_json = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text(max_size=8), inner, max_size=3), max_leaves=12)
_API_KEYS = ["ttl", "alg", "name", "dpop_required", "cert_bound"]
_CLIENT_KEYS = ["name", "auth_method", "tenant", "enabled", "rate_limit", "jwks", "jwks_uri", "federated",
                "tls_client_auth_subject_dn", "dpop_bound_access_tokens"]
# mostly well-formed tables with one or two odd values, so the checks past the first ones are reached
_api = st.fixed_dictionaries({"identifier": st.just("https://api.example") | _json,
                              "scopes": st.just(["read"]) | _json},
                             optional={k: _json for k in _API_KEYS})
_grant = st.fixed_dictionaries({"api": st.just("https://api.example") | _json, "scopes": st.just(["read"]) | _json})
_client = st.fixed_dictionaries({"client_id": st.just("c1") | _json},
                                optional={"grants": st.lists(_grant, max_size=2) | _json,
                                          **{k: _json for k in _CLIENT_KEYS}})
_document = st.fixed_dictionaries({}, optional={"apis": st.lists(_api, max_size=2) | _json,
                                                "clients": st.lists(_client, max_size=2) | _json}) | _json


@settings(max_examples=300, deadline=None)
@given(_document)
def test_any_document_is_applied_or_refused_with_a_config_error(document: Any) -> None:
    admin = Admin(MemoryStore(), KeyMaterial.from_kek(b"k" * 32), FixedClock(), AuditSink())
    try:
        apply_document(admin, document if isinstance(document, dict) else {"apis": document}, prune=False,
                       dry_run=False, secrets=None)
    except (ConfigError, NotFound, Conflict):
        pass
