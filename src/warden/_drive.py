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
from contextlib import closing
from typing import Any, TypeVar

__all__ = ["arun", "run"]

E = TypeVar("E")  # what the flow asks for
R = TypeVar("R")  # what the flow returns


def run(flow: Generator[E, Any, R], perform: Callable[[E], Any]) -> R:
    """Drive `flow`, performing each effect with the blocking `perform`."""
    with closing(flow):
        try:
            effect = next(flow)
            while True:
                try:
                    reply, error = perform(effect), None
                except BaseException as exc:  # handed to the flow, which re-raises what it does not handle
                    reply, error = None, exc
                effect = _resume(flow, reply, error)
        except StopIteration as stop:
            result: R = stop.value
            return result


async def arun(flow: Generator[E, Any, R], perform: Callable[[E], Awaitable[Any]]) -> R:
    """Drive `flow` on the running event loop, awaiting `perform` for each effect."""
    with closing(flow):
        try:
            effect = next(flow)
            while True:
                try:
                    reply, error = await perform(effect), None
                except BaseException as exc:  # as in `run`; a cancellation too
                    reply, error = None, exc
                effect = _resume(flow, reply, error)
        except StopIteration as stop:
            result: R = stop.value
            return result


def _resume(flow: Generator[E, Any, R], reply: Any, error: BaseException | None) -> E:
    if error is not None:
        return flow.throw(error)
    return flow.send(reply)
