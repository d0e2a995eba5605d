"""The conditional-access authentication step and the per-client lifetime cap, without a server."""

from __future__ import annotations

import pytest

from warden.core.api import Api
from warden.core.client import Client, Grant
from warden.core.client_metadata import parse_client_metadata
from warden.protocol.client_credentials import TokenRequest
from warden.protocol.errors import InvalidClient
from warden.protocol.form import parse_form
from warden.services.call import Call
from warden.services.caller_auth import CallerAuthentication
from warden.services.registry import ClientEntry
from warden.services.tokens import decide_issuance


def _call(source: str, **metadata: object) -> Call:
    call = Call(parse_form(b"grant_type=client_credentials"), None, False, [], source, 0.0)
    call.caller = ClientEntry(Client("c", "n", metadata=parse_client_metadata(metadata)), (), ())
    return call


@pytest.mark.parametrize(("source", "metadata", "reason"), [
    ("10.1.2.3", {}, None),
    ("10.1.2.3", {"allowed_ips": ["10.0.0.0/8"]}, None),
    ("::ffff:10.1.2.3", {"allowed_ips": ["10.0.0.0/8"]}, None),
    ("11.0.0.1", {"allowed_ips": ["10.0.0.0/8", "2001:db8::/32"]}, "source_not_allowed"),
    ("unknown", {"allowed_ips": ["10.0.0.0/8"]}, "source_not_allowed"),
    ("10.1.2.3", {"pending_approval": True}, "client_pending_approval"),
])
def test_conditions_refuse_with_invalid_client_and_a_private_reason(source: str, metadata: dict, reason: str | None):
    call = _call(source, **metadata)
    if reason is None:
        CallerAuthentication.enforce_client_conditions(call)
        return
    with pytest.raises(InvalidClient) as caught:
        CallerAuthentication.enforce_client_conditions(call)
    assert caught.value.reason == reason and caught.value.description == "client authentication failed"


class _Registry:
    def __init__(self, apis: dict[str, Api]) -> None:
        self.apis = apis
        self.derived: dict[object, object] = {}
        self.signers = {"ES256": object()}


@pytest.mark.parametrize(("api_ttl", "cap", "expected"), [(900, 600, 600), (300, 600, 300), (900, None, 900)])
def test_max_token_lifetime_caps_and_never_extends(api_ttl: int, cap: int | None, expected: int):
    api = Api("https://a.example", ("read",), token_ttl=api_ttl)
    metadata = parse_client_metadata({"max_token_lifetime": cap} if cap else {})
    entry = ClientEntry(Client("c", "n", metadata=metadata), (Grant("c", api.identifier, ("read",)),), ())
    prepared, _, _ = decide_issuance(entry, TokenRequest("client_credentials", None, None), _Registry({api.identifier: api}),  # type: ignore[arg-type]
                                     "https://as.example", None, None)
    assert prepared.decision.ttl == expected
