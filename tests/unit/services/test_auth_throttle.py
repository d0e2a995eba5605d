"""The failed-authentication throttle: budgets per (source, claimed identity), and the claimed identity
of every kind of request, parsed from untrusted input without ever raising."""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from warden.core.client import AuthMethod
from warden.protocol.client_auth import PresentedCredentials
from warden.services.auth_throttle import ANONYMOUS, FailedAuthThrottle, claimed_identity
from warden.services.ratelimit import InProcessRateLimiter

T0 = 1_700_000_000.0


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def assertion(claims: Any, header: Any = None) -> str:
    head = json.dumps(header if header is not None else {"alg": "ES256"}).encode()
    return f"{b64(head)}.{b64(json.dumps(claims).encode())}.{b64(b'sig')}"


def presented(client_id: str = "", token: str | None = None) -> PresentedCredentials:
    method = AuthMethod.PRIVATE_KEY_JWT if token is not None else AuthMethod.CLIENT_SECRET_BASIC
    return PresentedCredentials(method, client_id, secret=None if token else "s", assertion=token)


def test_the_claimed_identity_of_each_kind_of_request():
    assert claimed_identity(presented("billing")) == "billing"
    assert claimed_identity(presented("billing", assertion({"iss": "x", "sub": "y"}))) == "billing"
    # an assertion without client_id claims its sub (private_key_jwt: iss = sub = client_id) ...
    assert claimed_identity(presented("", assertion({"iss": "billing", "sub": "billing"}))) == "billing"
    # ... or, from a platform, the (iss, sub) pair, so two platforms' subjects stay apart
    assert claimed_identity(presented("", assertion({"iss": "https://k8s", "sub": "sa"}))) == "https://k8s\x00sa"
    for nothing in (None, presented("", "not-a-jwt"), presented("", assertion({"iss": "x"})),
                    presented("", assertion({"sub": ""})), presented("", assertion([1, 2]))):
        assert claimed_identity(nothing) == ANONYMOUS


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                       max_size=3), max_leaves=8)


@given(claims=json_values, header=json_values,
       extra=st.dictionaries(st.sampled_from(["iss", "sub"]), json_values, max_size=2))
def test_claimed_identity_of_any_json_assertion_is_a_string(claims: Any, header: Any, extra: dict[str, Any]):
    if isinstance(claims, dict):
        claims = {**claims, **extra}
    identity = claimed_identity(presented("", assertion(claims, header)))
    assert isinstance(identity, str)
    sub = claims.get("sub") if isinstance(claims, dict) else None
    if not isinstance(sub, str) or not sub:
        assert identity == ANONYMOUS  # claims no client: such a request cannot authenticate either


@given(token=st.text(max_size=300))
def test_claimed_identity_of_any_string_is_a_string(token: str):
    assert isinstance(claimed_identity(presented("", token)), str)


def test_budgets_are_per_source_and_claimed_identity():
    throttle = FailedAuthThrottle(InProcessRateLimiter(sets=64), per_minute=3)
    for _ in range(3):
        assert throttle.wait("10.0.0.1", "billing", T0) == 0.0
        throttle.record_failure("10.0.0.1", "billing", T0)
    assert throttle.wait("10.0.0.1", "billing", T0) == 20.0  # 3 a minute: one back every 20 s
    assert throttle.wait("10.0.0.1", "orders", T0) == 0.0  # another client at that address
    assert throttle.wait("10.0.0.2", "billing", T0) == 0.0  # the same client elsewhere
    assert throttle.wait("10.0.0.1", "billing", T0 + 20) == 0.0  # one more guess after 20 s


def test_a_budget_of_zero_turns_the_throttle_off():
    throttle = FailedAuthThrottle(InProcessRateLimiter(sets=64), per_minute=0)
    for _ in range(10):
        throttle.record_failure("10.0.0.1", "billing", T0)
    assert throttle.wait("10.0.0.1", "billing", T0) == 0.0
