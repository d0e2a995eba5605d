"""Endpoints as lists of named steps (the shape of node-oidc-provider's `lib/actions/token.js`).

A use case is a tuple of steps run in order over one mutable call object. A step reads what
earlier steps put on the call and adds its own result, or raises an `OAuthError` that ends the
call. Steps are plain functions where they can be (the token endpoint is the hot path, and a
coroutine costs more than a call) and coroutines only where they wait on I/O; `run_steps` awaits
what a step returns. A new grant type or endpoint is a new tuple, not a new branch.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from warden.core.tracing import set_attributes, span
from warden.protocol.errors import OAuthError

__all__ = ["Step", "run_steps", "run_traced_steps", "tracing_active"]

# Step name -> span name; steps not listed are spans under their own name.
SPAN_NAMES = {"verify_credentials": "warden.client_authentication", "apply_policy": "warden.policy",
              "sign": "warden.signing", "verify_dpop_proof": "warden.dpop"}

C = TypeVar("C")
Step = Callable[[C], Awaitable[None] | None]


async def run_steps(steps: Sequence[Step[C]], call: C) -> None:
    """Run `steps` in order over `call`; the first error raised ends the run."""
    for step in steps:
        pending = step(call)
        if pending is not None:
            await pending


def tracing_active() -> bool:
    """Whether OpenTelemetry is in use in this process (`warden.core.tracing`)."""
    return "opentelemetry.trace" in sys.modules


async def run_traced_steps(steps: Sequence[Step[C]], call: C) -> None:
    """`run_steps` with a span per step that does work worth seeing (authentication, policy, signing...)."""
    for step in steps:
        name = getattr(step, "__name__", "step")
        with span(SPAN_NAMES.get(name, f"warden.{name}")) as current:
            try:
                pending = step(call)
                if pending is not None:
                    await pending
            except OAuthError as exc:
                set_attributes(current, {"warden.reason": exc.reason, "warden.error": exc.error})
                raise
