"""Background work of the agent: keep tokens renewed, mirror one into `token_file`, follow file rotation.

For each credential a task renews every key it serves (the configured one and
those local callers asked for) at the client library's jittered refresh point,
so `/token` is answered from cache and nobody waits for a renewal. The
configured token is written to `token_file` whenever it changes; once no token
can be had and the one in the file has expired, the file is removed rather
than left holding an expired token (F16). Another task polls the credential
files and wakes a credential's renewal task when its secret or key rotated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from warden.agent._credential import ManagedCredential
from warden.agent._token_file import remove_token_file, write_token_file
from warden.client import AccessToken, CacheKey, ClientCredentials, TokenError

__all__ = ["keep_fresh", "watch_files"]

logger = logging.getLogger("warden.agent")

_MIN_WAIT = 0.05
_MAX_WAIT = 3600.0
_MAX_FAILURE_WAIT = 60.0


@dataclass
class _Mirror:
    """What was last written to the token file, and the last error logged."""

    clock: Callable[[], float]
    written: str | None = None
    written_until: float = 0.0
    last_error: str | None = None


async def watch_files(
    credentials: Iterable[ManagedCredential], wake: Mapping[str, asyncio.Event], poll_interval: float
) -> None:
    """Poll every credential's files; wake its renewal task when the credential rotated."""
    while True:
        await asyncio.sleep(poll_interval)
        for cred in credentials:
            try:
                rotated = cred.poll()
            except Exception:  # a daemon loop must outlive any one bad poll
                logger.exception("credential %s: checking the credential files failed", cred.name)
                continue
            if rotated:
                wake[cred.name].set()


async def keep_fresh(
    cred: ManagedCredential,
    wake: asyncio.Event,
    poll_interval: float,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Renew `cred`'s tokens ahead of expiry, forever; mirror the configured one into `token_file`.

    `clock` must be the clock of the credential's token source (monotonic by default).
    """
    mirror = _Mirror(clock=clock)
    while True:
        wake.clear()
        source = cred.source
        delays = [await _renew(cred, source, key, mirror, poll_interval) for key in list(cred.keys)]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=min(delays, default=poll_interval))


async def _renew(
    cred: ManagedCredential, source: ClientCredentials, key: CacheKey, mirror: _Mirror, poll_interval: float
) -> float:
    """Get the token for `key` (renewing it if due); return the seconds until it needs attention again."""
    configured = key == cred.configured_key
    try:
        token = await source.aget_access_token(*key)
    except TokenError as exc:
        if configured:
            _failed(cred, mirror, exc)
        return min(max(exc.retry_after or 0.0, poll_interval), _MAX_FAILURE_WAIT)
    except Exception:  # a bug, not an outage: say so and keep going
        logger.exception("credential %s: unexpected error while renewing", cred.name)
        return poll_interval
    if configured:
        _renewed(cred, mirror, token)
    return min(max(min(token.refresh_in, token.expires_in), _MIN_WAIT), _MAX_WAIT)


def _failed(cred: ManagedCredential, mirror: _Mirror, error: TokenError) -> None:
    if error.error != mirror.last_error:
        logger.warning("credential %s: no token: %s", cred.name, error)
    mirror.last_error = error.error
    path = cred.config.token_file
    if path is not None and mirror.written is not None and mirror.clock() >= mirror.written_until:
        remove_token_file(path)
        mirror.written = None


def _renewed(cred: ManagedCredential, mirror: _Mirror, token: AccessToken) -> None:
    if mirror.last_error is not None:
        logger.info("credential %s: token obtained again", cred.name)
    mirror.last_error = None
    path = cred.config.token_file
    if path is not None and token.access_token != mirror.written:
        _write(cred, path, token, mirror)


def _write(cred: ManagedCredential, path: Path, token: AccessToken, mirror: _Mirror) -> None:
    try:
        write_token_file(path, token.access_token)
    except OSError as exc:
        logger.error("credential %s: cannot write token_file %s: %s", cred.name, path, exc.strerror)
        mirror.written = None
        return
    mirror.written = token.access_token
    mirror.written_until = mirror.clock() + token.expires_in
