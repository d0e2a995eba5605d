"""Endpoints as lists of named steps (the shape of node-oidc-provider's `lib/actions/token.js`).

A use case is a tuple of steps run in order over one mutable call object. A step reads what
earlier steps put on the call and adds its own result, or raises an `OAuthError` that ends the
call. Steps are plain functions where they can be (the token endpoint is the hot path, and a
coroutine costs more than a call) and coroutines only where they wait on I/O; `run_steps` awaits
what a step returns. A new grant type or endpoint is a new tuple, not a new branch.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

__all__ = ["Step", "run_steps"]

C = TypeVar("C")
Step = Callable[[C], Awaitable[None] | None]


async def run_steps(steps: Sequence[Step[C]], call: C) -> None:
    """Run `steps` in order over `call`; the first error raised ends the run."""
    for step in steps:
        pending = step(call)
        if pending is not None:
            await pending
