"""One credential held by the agent: its token source, and rotation when its files change.

Files are polled (device, inode, mtime, size), which is cheap and follows the
symlink swap Kubernetes uses for mounted secrets. When a file changes the
material is read again; only if the secret or key actually differs is a new
token source built, which drops the cached tokens of this credential alone.
A file caught half-written or missing during a swap leaves the old material in
use until the next change.
"""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from warden.agent.config import CredentialConfig
from warden.client import (
    CacheKey,
    ClientCredentials,
    RefreshPolicy,
    RetryPolicy,
    Secret,
    SigningKey,
    TokenStats,
)
from warden.core.scope import parse_scope
from warden.errors import ConfigError

__all__ = ["FileStamp", "ManagedCredential", "Material", "build_source", "file_stamp", "load_material"]

logger = logging.getLogger("warden.agent")

MAX_KEPT_KEYS = 32

Material = Secret | SigningKey


@dataclass(frozen=True)
class FileStamp:
    device: int
    inode: int
    mtime_ns: int
    size: int


def file_stamp(path: Path) -> FileStamp | None:
    """The identity of the file `path` resolves to now, or None if it cannot be seen."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return FileStamp(info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size)


def load_material(config: CredentialConfig) -> Material:
    """Read the credential's secret or private key; ConfigError names the file, never the content."""
    if config.client_secret_file is not None:
        return Secret.from_file(config.client_secret_file)
    if config.private_key_file is not None:
        return SigningKey.from_pem_file(config.private_key_file, config.private_key_alg, config.key_id)
    raise ConfigError(f"credential {config.name!r} has no secret or key file")


def _same(a: Material, b: Material) -> bool:
    if isinstance(a, Secret) and isinstance(b, Secret):
        return a == b
    if isinstance(a, SigningKey) and isinstance(b, SigningKey):
        return a.same_key(b)
    return False


def build_source(
    config: CredentialConfig, material: Material, *, retry: RetryPolicy | None, refresh: RefreshPolicy | None,
    metrics: Any = None,
) -> ClientCredentials:
    """The client library token source for `config` with `material`."""
    ssl_context = ssl.create_default_context(cafile=str(config.ca_file)) if config.ca_file else None
    return ClientCredentials(
        config.issuer,
        client_id=config.client_id,
        client_secret=material if isinstance(material, Secret) else None,
        private_key=material if isinstance(material, SigningKey) else None,
        auth_method=config.auth_method,
        token_endpoint=config.token_endpoint,
        audience=config.audience,
        scope=config.scope,
        ssl_context=ssl_context,
        allow_insecure_http=config.allow_insecure_http,
        retry=retry,
        refresh=refresh,
        environ={},  # never pick up WARDEN_CLIENT_SECRET from the agent's own environment
        metrics=metrics,
    )


SourceFactory = Callable[[CredentialConfig, Material], ClientCredentials]


class ManagedCredential:
    """A configured credential, its current token source and its counters."""

    def __init__(self, config: CredentialConfig, factory: SourceFactory) -> None:
        self.config = config
        self._factory = factory
        self._stamps = {path: file_stamp(path) for path in config.watched_files}
        self._material = load_material(config)
        self.source = factory(config, self._material)
        self._retired_stats = TokenStats()
        self.reloads = 0
        self.hits = 0
        self.misses = 0
        # The keys kept fresh in the background: the configured one, then those local callers asked for.
        self.keys: dict[CacheKey, None] = {(config.audience, frozenset(config.scope)): None}

    @property
    def name(self) -> str:
        return self.config.name

    def poll(self) -> bool:
        """Check the credential files; rebuild the token source if the material changed. True if rebuilt."""
        stamps = {path: file_stamp(path) for path in self.config.watched_files}
        if stamps == self._stamps:
            return False
        self._stamps = stamps
        try:
            material = load_material(self.config)
        except ConfigError as exc:
            logger.warning("credential %s: keeping the current credential: %s", self.name, exc)
            return False
        if _same(material, self._material):
            logger.debug("credential %s: file changed but the credential did not", self.name)
            return False
        try:
            source = self._factory(self.config, material)
        except (ConfigError, OSError, ssl.SSLError) as exc:
            logger.warning("credential %s: keeping the current credential: %s", self.name, exc)
            return False
        self._retired_stats = self._retired_stats + self.source.stats()
        self._material = material
        self.source = source
        self.reloads += 1
        logger.info("credential %s: reloaded after rotation; cached tokens dropped", self.name)
        return True

    @property
    def configured_key(self) -> CacheKey:
        return (self.config.audience, frozenset(self.config.scope))

    def remember(self, key: CacheKey) -> None:
        """Keep `key` renewed in the background from now on (bounded: keys are subsets of the scope)."""
        if key not in self.keys and len(self.keys) < MAX_KEPT_KEYS:
            self.keys[key] = None

    def stats(self) -> TokenStats:
        """Library counters summed over every token source this credential has had."""
        return self._retired_stats + self.source.stats()

    def match(self, audience: str | None, scope: str | None) -> CacheKey | None:
        """The cache key serving a request for `audience` and `scope`, or None if this credential cannot.

        The audience must be the configured one; the scope, if given, a subset of
        the configured scope (a local process may ask for less, never for more).
        """
        if audience is not None and audience != self.config.audience:
            return None
        if scope is None or not scope.strip():
            return (self.config.audience, frozenset(self.config.scope))
        requested = frozenset(parse_scope(scope.strip()))  # ValueError for the caller to report
        if not requested <= frozenset(self.config.scope):
            return None
        return (self.config.audience, requested)

    def __repr__(self) -> str:
        return f"ManagedCredential(name={self.name!r}, source={self.source!r})"
