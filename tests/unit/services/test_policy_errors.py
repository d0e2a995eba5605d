"""The services edge turns the core policy's refusals into the protocol's OAuth errors (issue 9 item 3)."""

from __future__ import annotations

import pytest

from warden.core.api import Api
from warden.core.client import Grant
from warden.core.policy import PolicyRefusal, TokenDecision
from warden.protocol.errors import InvalidDPoPProof, InvalidRequest, InvalidScope, InvalidTarget
from warden.services.tokens import oauth_error, token_binding, token_decision

APIS = {"https://a.example": Api("https://a.example", ("read",), token_ttl=900, dpop_required=True)}
GRANTS = [Grant("c", "https://a.example", ("read",), 0)]


@pytest.mark.parametrize(("code", "cls"), [("invalid_scope", InvalidScope), ("invalid_target", InvalidTarget),
                                           ("invalid_request", InvalidRequest),
                                           ("invalid_dpop_proof", InvalidDPoPProof)])
def test_each_refusal_becomes_the_error_of_its_code(code, cls):
    error = oauth_error(PolicyRefusal(code, "no such thing", reason="scope_not_granted"))
    assert type(error) is cls and error.error == code
    assert error.description == "no such thing" and error.reason == "scope_not_granted"


def test_token_decision_refuses_with_protocol_errors():
    with pytest.raises(InvalidScope) as exc:
        token_decision(GRANTS, APIS, ("write",), None)
    assert exc.value.reason == "scope_not_granted"
    with pytest.raises(InvalidTarget) as target:
        token_decision(GRANTS, APIS, None, ("https://b.example",))
    assert target.value.reason == "resource_not_granted"
    assert token_decision(GRANTS, APIS, None, None).scopes == ("read",)


def test_token_binding_refuses_with_protocol_errors():
    decision = TokenDecision(("https://a.example",), ("read",), 900, "ES256", dpop_required=True)
    with pytest.raises(InvalidDPoPProof) as exc:
        token_binding(decision, False, False, None, None)
    assert exc.value.reason == "dpop_required"
    with pytest.raises(InvalidRequest) as cert:
        token_binding(TokenDecision(("https://a.example",), ("read",), 900, "ES256"), False, True, None, None)
    assert cert.value.reason == "certificate_required"
    assert token_binding(decision, False, False, "jkt", None) == {"jkt": "jkt"}
