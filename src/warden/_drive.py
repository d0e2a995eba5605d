"""Drive a sans-I/O flow to its result, in a thread or on an event loop.

A flow is a generator that yields what it needs done (an HTTP request, a sleep,
a wait on another caller's fetch) and is sent what came of it. An exception
raised while doing it is thrown into the flow where it yielded, so the flow's
own `try`/`except`/`finally` blocks see failures as straight-line code would;
the flow is closed whatever happens. The logic is written once, as the flow;
`run` and `arun` differ only in how an effect is performed, the way httpx
drives one `Auth.auth_flow` from `sync_auth_flow` and `async_auth_flow`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar, cast

__all__ = ["arun", "run"]

E = TypeVar("E")  # what the flow asks for
R = TypeVar("R")  # what the flow returns


def run(flow: Generator[E, Any, R], perform: Callable[[E], Any]) -> R:
    """Drive `flow`, performing each effect with the blocking `perform`."""
    finished, value = _step(flow, None, None)
    while not finished:
        try:
            reply, error = perform(value), None
        except BaseException as exc:  # handed to the flow, which re-raises what it does not handle
            reply, error = None, exc
        finished, value = _step(flow, reply, error)
    return cast(R, value)


async def arun(flow: Generator[E, Any, R], perform: Callable[[E], Awaitable[Any]]) -> R:
    """Drive `flow` on the running event loop, awaiting `perform` for each effect."""
    finished, value = _step(flow, None, None)
    while not finished:
        try:
            reply, error = await perform(value), None
        except BaseException as exc:  # as in `run`: a cancellation too, so the flow's `finally` runs
            reply, error = None, exc
        finished, value = _step(flow, reply, error)
    return cast(R, value)


def _step(flow: Generator[E, Any, R], reply: Any, error: BaseException | None) -> tuple[bool, Any]:
    """Resume `flow` with `reply` (or throw `error` into it): (True, its result) once it has returned,
    else (False, the next effect). A flow that raises has finished; nothing is left suspended."""
    try:
        return False, (flow.send(reply) if error is None else flow.throw(error))
    except StopIteration as stop:
        return True, stop.value
