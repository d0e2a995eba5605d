"""ASGI 3 type aliases (the ASGI specification's scope, messages and callables), defined once.

Messages and scopes are heterogeneous dictionaries by specification, hence `Any` values. Both the
server's ASGI adapter and the resource-server middleware use these; nothing here imports a framework.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["ASGIApp", "Message", "Receive", "Scope", "Send"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
