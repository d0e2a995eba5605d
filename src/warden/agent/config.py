"""Agent configuration: `agent.toml`, validated at load; unknown keys are errors that name the key.

    listen = "127.0.0.1:4180"             # a loopback host and port, or "unix:/run/warden/agent.sock"
    socket_mode = "0600"                  # unix socket permissions; no bits for "other" (T66)

    [[credentials]]
    name = "billing"                      # optional; defaults to client_id; used in logs and metrics
    issuer = "https://warden.example"     # pinned: discovery must return exactly this issuer (T62, T68)
    token_endpoint = "..."                # optional; skips discovery
    client_id = "..."
    client_secret_file = "/run/secrets/billing"   # or private_key_file (+ private_key_alg, key_id)
    auth_method = "client_secret_basic"   # optional; client_secret_post, private_key_jwt
    audience = "https://api.example"      # sent as the RFC 8707 resource parameter
    scope = "read"
    token_file = "/run/warden/billing.token"      # optional: the token, 0600, renewed before expiry
    ca_file = "/etc/ssl/internal-ca.pem"  # optional CA bundle for the authorization server
    allow_insecure_http = false           # plain http to a non-loopback issuer (never in production)

Secrets and keys are only ever read from files, so that rotating the file
rotates the credential without a restart; relative paths are resolved against
the directory of the configuration file. The agent listens on loopback or on a
unix socket only: a token agent reachable from the network would hand tokens to
anyone (T66).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from warden._toml import load_toml
from warden.client import CLIENT_AUTH_METHODS, AuthMethod
from warden.core.scope import parse_scope
from warden.core.urls import is_loopback_host, url_problem
from warden.errors import ConfigError

__all__ = [
    "DEFAULT_LISTEN",
    "AgentConfig",
    "CredentialConfig",
    "TCPListen",
    "UnixListen",
    "load_agent_config",
    "parse_agent_config",
    "parse_listen",
]

DEFAULT_LISTEN = "127.0.0.1:4180"
_TOP_KEYS = ("listen", "socket_mode", "credentials")
_CREDENTIAL_KEYS = (
    "name",
    "issuer",
    "token_endpoint",
    "client_id",
    "client_secret_file",
    "private_key_file",
    "private_key_alg",
    "key_id",
    "auth_method",
    "audience",
    "scope",
    "token_file",
    "ca_file",
    "allow_insecure_http",
)
_AGENT_AUTH_METHODS: dict[str, AuthMethod] = {
    "client_secret_basic": "client_secret_basic",
    "client_secret_post": "client_secret_post",
    "private_key_jwt": "private_key_jwt",
}


@dataclass(frozen=True)
class TCPListen:
    host: str  # a loopback IP literal
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class UnixListen:
    path: Path

    def __str__(self) -> str:
        return f"unix:{self.path}"


@dataclass(frozen=True)
class CredentialConfig:
    """One client credential the agent holds."""

    name: str
    client_id: str
    issuer: str | None = None
    token_endpoint: str | None = None
    client_secret_file: Path | None = None
    private_key_file: Path | None = None
    private_key_alg: str | None = None
    key_id: str | None = None
    auth_method: AuthMethod | None = None
    audience: str | None = None
    scope: tuple[str, ...] = ()
    token_file: Path | None = None
    ca_file: Path | None = None
    allow_insecure_http: bool = False

    @property
    def watched_files(self) -> tuple[Path, ...]:
        """The files whose change rotates this credential."""
        return tuple(p for p in (self.client_secret_file, self.private_key_file) if p is not None)


@dataclass(frozen=True)
class AgentConfig:
    listen: TCPListen | UnixListen
    credentials: tuple[CredentialConfig, ...]
    socket_mode: int = 0o600


def _where(index: int | None) -> str:
    return "agent config" if index is None else f"agent config: credentials[{index}]"


def _check_keys(table: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(f"{where}: unknown key {key!r} (expected one of: {', '.join(allowed)})")


def _string(table: Mapping[str, Any], key: str, where: str) -> str | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or not value.isprintable():
        raise ConfigError(f"{where}: {key} must be a non-empty string")
    return value.strip()


def _required(table: Mapping[str, Any], key: str, where: str) -> str:
    value = _string(table, key, where)
    if value is None:
        raise ConfigError(f"{where}: {key} is required")
    return value


def _path(table: Mapping[str, Any], key: str, where: str, base: Path) -> Path | None:
    value = _string(table, key, where)
    if value is None:
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def parse_listen(value: object, base: Path) -> TCPListen | UnixListen:
    """Parse `listen`: `host:port` on a loopback host, `[::1]:port`, or `unix:/path`."""
    if not isinstance(value, str) or not value:
        raise ConfigError(
            "agent config: listen must be a string such as 127.0.0.1:4180 or unix:/path/agent.sock"
        )
    if value.startswith("unix:"):
        raw = value[len("unix:") :]
        if not raw:
            raise ConfigError("agent config: listen unix: needs a socket path")
        path = Path(raw).expanduser()
        return UnixListen(path if path.is_absolute() else base / path)
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ConfigError(f"agent config: listen {value!r} must be host:port or unix:/path")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    port = int(port_text)
    if port > 65535:
        raise ConfigError(f"agent config: listen port {port} is out of range")
    if not is_loopback_host(host):
        raise ConfigError(
            f"agent config: listen host {host!r} is not a loopback address; "
            "the agent serves only the local machine (use 127.0.0.1, ::1 or a unix socket)"
        )
    return TCPListen("127.0.0.1" if host.lower() == "localhost" else host, port)


def _socket_mode(value: object) -> int:
    if value is None:
        return 0o600
    if isinstance(value, str) and value.isdigit():
        mode = int(value, 8)
    elif isinstance(value, int) and not isinstance(value, bool):
        mode = value
    else:
        raise ConfigError('agent config: socket_mode must be an octal string such as "0600" or "0660"')
    if mode & ~0o777 or mode & 0o007 or (mode & 0o600) != 0o600:
        raise ConfigError(
            "agent config: socket_mode must grant the owner rw and nothing to others (e.g. 0600, 0660)"
        )
    return mode


def _credential(table: object, index: int, base: Path) -> CredentialConfig:
    where = _where(index)
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: must be a table")
    _check_keys(table, _CREDENTIAL_KEYS, where)
    client_id = _required(table, "client_id", where)
    issuer = _string(table, "issuer", where)
    token_endpoint = _string(table, "token_endpoint", where)
    insecure = table.get("allow_insecure_http", False)
    if not isinstance(insecure, bool):
        raise ConfigError(f"{where}: allow_insecure_http must be true or false")
    if issuer is None and token_endpoint is None:
        raise ConfigError(f"{where}: issuer is required (or token_endpoint)")
    for key, url in (("issuer", issuer), ("token_endpoint", token_endpoint)):
        problem = None if url is None else url_problem(url, allow_insecure_http=insecure)
        if problem is not None:
            raise ConfigError(f"{where}: {key} {problem}")
    secret_file = _path(table, "client_secret_file", where, base)
    key_file = _path(table, "private_key_file", where, base)
    if (secret_file is None) == (key_file is None):
        raise ConfigError(f"{where}: give exactly one of client_secret_file and private_key_file")
    method_name = _string(table, "auth_method", where)
    method: AuthMethod | None = None
    if method_name is not None:
        method = _AGENT_AUTH_METHODS.get(method_name)
        if method is None:
            raise ConfigError(f"{where}: auth_method must be one of: {', '.join(_AGENT_AUTH_METHODS)}")
        needs = CLIENT_AUTH_METHODS[method_name].needs
        if (needs == "secret") != (secret_file is not None):
            raise ConfigError(
                f"{where}: auth_method {method_name} does not fit the configured credential file"
            )
    if key_file is not None and issuer is None:
        raise ConfigError(f"{where}: private_key_file needs issuer (the assertion audience)")
    scope_text = _string(table, "scope", where)
    try:
        scope = parse_scope(scope_text) if scope_text else ()
    except ValueError:
        raise ConfigError(f"{where}: scope must be space-separated scope tokens (RFC 6749 §3.3)") from None
    audience = _string(table, "audience", where)
    if audience is not None and "#" in audience:
        raise ConfigError(f"{where}: audience must not contain a fragment (RFC 8707 §2)")
    token_file = _path(table, "token_file", where, base)
    if token_file is not None and not token_file.parent.is_dir():
        raise ConfigError(f"{where}: token_file directory {str(token_file.parent)!r} does not exist")
    ca_file = _path(table, "ca_file", where, base)
    if ca_file is not None and not ca_file.is_file():
        raise ConfigError(f"{where}: ca_file {str(ca_file)!r} does not exist")
    return CredentialConfig(
        name=_string(table, "name", where) or client_id,
        client_id=client_id,
        issuer=issuer,
        token_endpoint=token_endpoint,
        client_secret_file=secret_file,
        private_key_file=key_file,
        private_key_alg=_string(table, "private_key_alg", where),
        key_id=_string(table, "key_id", where),
        auth_method=method,
        audience=audience,
        scope=scope,
        token_file=token_file,
        ca_file=ca_file,
        allow_insecure_http=insecure,
    )


def parse_agent_config(data: Mapping[str, Any], base_dir: str | os.PathLike[str] = ".") -> AgentConfig:
    """Validate a parsed TOML document; raise ConfigError naming the offending key."""
    base = Path(base_dir)
    _check_keys(data, _TOP_KEYS, _where(None))
    listen = parse_listen(data.get("listen", DEFAULT_LISTEN), base)
    raw_credentials = data.get("credentials")
    if not isinstance(raw_credentials, list) or not raw_credentials:
        raise ConfigError("agent config: at least one [[credentials]] table is required")
    credentials = tuple(_credential(table, i, base) for i, table in enumerate(raw_credentials))
    names: set[str] = set()
    targets: set[tuple[str | None, frozenset[str]]] = set()
    token_files: set[Path] = set()
    for i, cred in enumerate(credentials):
        target = (cred.audience, frozenset(cred.scope))
        if cred.name in names:
            raise ConfigError(f"{_where(i)}: name {cred.name!r} is used twice (set name to tell them apart)")
        if target in targets:
            raise ConfigError(f"{_where(i)}: another credential already serves this audience and scope")
        if cred.token_file is not None and cred.token_file in token_files:
            raise ConfigError(f"{_where(i)}: token_file is used twice")
        names.add(cred.name)
        targets.add(target)
        if cred.token_file is not None:
            token_files.add(cred.token_file)
    return AgentConfig(
        listen=listen, credentials=credentials, socket_mode=_socket_mode(data.get("socket_mode"))
    )


def load_agent_config(path: str | os.PathLike[str]) -> AgentConfig:
    """Read and validate `agent.toml`; raise ConfigError (naming the file or key) on any problem."""
    config_path = Path(path)
    data = load_toml(config_path, "agent config")
    return parse_agent_config(data, config_path.resolve().parent)
