"""One frozen, typed settings object: defaults, then a TOML file, then `WARDEN_*` environment.

The environment wins. Unknown keys are errors that name the key and the expected
form. Secret values are wrapped in `Secret`, whose repr/str hide them. Build it
once at start-up with `load_settings` and pass it down; nothing else reads
`os.environ`.

Environment names: top-level keys are `WARDEN_<KEY>`, section keys are
`WARDEN_<SECTION>_<KEY>` (e.g. `WARDEN_DATABASE_URL`, `WARDEN_SERVER_PORT`,
`WARDEN_LIMITS_CLIENT_RATE`). A secret setting can instead name a file that holds
it, `WARDEN_<...>_FILE` (e.g. `WARDEN_KEYS_ENCRYPTION_KEY_FILE`), for systemd
credentials and mounted Kubernetes or container secrets; trailing newlines are dropped.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from warden._toml import load_toml
from warden.core.durations import parse_duration
from warden.errors import ConfigError
from warden.secret import Secret

__all__ = [
    "AuditSettings",
    "ClientAuthSettings",
    "ConsoleSettings",
    "DPoPSettings",
    "KeySettings",
    "LimitSettings",
    "LogSettings",
    "MTLSSettings",
    "MetricsSettings",
    "Pkcs11Settings",
    "RegistrySettings",
    "Secret",
    "ServerSettings",
    "Settings",
    "StatusListSettings",
    "TokenExchangeSettings",
    "TransactionTokenSettings",
    "TrustedIssuer",
    "environment_names",
    "is_secret_field",
    "load_settings",
    "secret_paths",
]


@dataclass(frozen=True)
class ServerSettings:
    """HTTP serving. `workers` > 1 runs that many processes sharing one port."""

    host: str = "127.0.0.1"  # address to listen on (0.0.0.0 in containers)
    port: int = 8080  # TCP port to listen on
    workers: int = 1  # processes sharing the port (a supervisor starts them)
    graceful_timeout: int = 10  # seconds SIGTERM waits for in-flight requests
    max_connections: int = 4096  # open connections per worker; more get 503 (lowered to fit the open-file limit)
    write_timeout: float = 15.0  # seconds a connection's answers may wait unread by the client before it is reset
    request_timeout: float = 10.0  # seconds from a request's first byte to its last; slower requests get 408
    keep_alive_timeout: float = 5.0  # seconds an idle keep-alive connection stays open
    max_header_bytes: int = 16384  # request target plus every header name and value; more gets 431
    max_headers: int = 100  # header lines of one request; more gets 431
    max_pipelined: int = 16  # parsed requests of one connection waiting to be answered; reading pauses beyond
    heartbeat_timeout: float = 10.0  # a worker whose event loop is silent this long is killed and replaced; 0: off
    trusted_proxies: tuple[str, ...] = ()  # addresses whose X-Forwarded-For is believed
    tls_cert: str = ""  # serve HTTPS with this certificate chain (PEM); the default issuer becomes https://
    tls_key: str = ""  # the certificate's private key (PEM)
    tls_client_ca: str = ""  # ask clients for a certificate verified against these CAs (mutual TLS)


@dataclass(frozen=True)
class Pkcs11Settings:
    """The PKCS#11 token that holds the signing keys when `keys.backend = "pkcs11"` (an HSM, a
    cloud HSM's PKCS#11 library, SoftHSM2 for tests). Keys are generated in the token as
    sensitive, non-extractable objects and never leave it; Warden keeps only their public half
    and the key id. Needs the `hsm` extra (python-pkcs11). Give `pin` or `pin_file`, not both.
    """

    module: str = ""  # path of the vendor's PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so
    token_label: str = ""  # the label of the token (slot) holding Warden's keys
    pin: Secret | None = None  # the token's user PIN
    pin_file: str = ""  # a file holding the user PIN instead (trailing newline dropped)
    rsa_bits: int = 2048  # modulus size of RS256 keys generated in the token (2048, 3072 or 4096)


@dataclass(frozen=True)
class KeySettings:
    """Signing-key lifecycle and where private keys live. `publish_lead` must exceed resource
    servers' JWKS cache age. `backend = "database"` keeps private keys in the store, encrypted
    under the key-encryption key; `"pkcs11"` generates and uses them inside a PKCS#11 token
    (`[keys.pkcs11]`). Keys made by the other backend keep signing and verifying until they
    rotate out, so switching backends is two rotations without a gap."""

    rotation_interval: int = 30 * 86400  # how long a key signs before the next one takes over
    publish_lead: int = 900  # how long a new key is published in the JWKS before it signs
    encryption_key: Secret | None = None  # base64url 32 bytes; else <data_dir>/kek (0600)
    backend: str = "database"  # where new private keys are made and kept: database or pkcs11
    pkcs11: Pkcs11Settings = field(default_factory=Pkcs11Settings)


@dataclass(frozen=True)
class LimitSettings:
    """Abuse limits (DESIGN.md "Limits")."""

    client_rate: float = 1000.0  # token requests per second per client (default for every client)
    client_burst: int = 2000  # token-bucket size of the per-client rate limit
    failed_auth_per_minute: int = 60  # failed client authentications per (source address, claimed client)
    max_body_bytes: int = 16384  # larger request bodies are refused before parsing
    max_param_bytes: int = 8192  # large enough for an RSA-signed client assertion


@dataclass(frozen=True)
class ClientAuthSettings:
    """JWT client assertions (private_key_jwt and workload identity), RFC 7523 / RFC 10070.

    `accept_token_endpoint_audience` is a compatibility switch for clients that still put
    the token endpoint URL in `aud` (Authlib's PrivateKeyJWT does by default). It is off:
    such assertions are what the 2025 audience-injection attack replays.

    `assertion_max_lifetime` bounds a private_key_jwt assertion's `exp` - `iat` (1 h accepts
    Authlib's and other common clients' defaults). `assertion_max_age` bounds how long after
    its `iat` one is accepted (an assertion without `iat` must expire within it), so what a
    stolen, unused assertion is worth does not depend on its `exp`; each `jti` is single use
    and its record is kept until min(`exp`, `iat` + `assertion_max_age`) + `leeway`.
    """

    assertion_max_lifetime: int = 3600  # longest exp - iat of a private_key_jwt assertion
    assertion_max_age: int = 300  # how long after its iat an assertion is accepted
    leeway: int = 30  # clock skew allowed on exp, nbf and iat
    accept_token_endpoint_audience: bool = False  # also accept the token endpoint URL as aud (compatibility)
    jwks_cache_ttl: int = 300  # how long a fetched jwks_uri document is used (Cache-Control may shorten it)
    jwks_refresh_cooldown: int = 30  # an unknown kid triggers at most one refetch per this many seconds
    jwks_fetch_timeout: float = 3.0  # seconds allowed for fetching a client's jwks_uri
    jwks_max_bytes: int = 65536  # larger jwks_uri documents are refused


@dataclass(frozen=True)
class DPoPSettings:
    """DPoP at the token endpoint (RFC 9449). Proofs are always accepted when sent; with
    `require_nonce` every proof must carry a current server nonce (§8), which neutralises
    client clock skew and pre-generated proofs."""

    enabled: bool = True  # accept DPoP proofs at the token endpoint
    require_nonce: bool = False  # every proof must carry a current server nonce
    nonce_lifetime: int = 300  # how long a DPoP-Nonce value stays acceptable
    max_age: int = 60  # how old a proof's iat may be
    leeway: int = 30  # how far in the future a proof's iat may be


@dataclass(frozen=True)
class MTLSSettings:
    """Mutual TLS (RFC 8705). The client certificate comes from Warden's own TLS listener
    (`warden serve --tls-cert --tls-key --tls-client-ca`) or from a reverse proxy that
    terminated TLS, in `proxy_header` (`proxy_header_format`: nginx's URL-encoded PEM,
    Envoy's `xfcc`, or `rfc9440`), believed only from `trusted_proxies`."""

    enabled: bool = False  # accept tls_client_auth and self_signed_tls_client_auth
    client_ca_file: str = ""  # CA bundle a tls_client_auth certificate must chain to
    proxy_header: str = ""  # request header carrying the client certificate from a TLS-terminating proxy
    proxy_header_format: str = "nginx"  # nginx, xfcc (Envoy) or rfc9440
    trusted_proxies: tuple[str, ...] = ()  # addresses allowed to send proxy_header


@dataclass(frozen=True)
class TrustedIssuer:
    """An external identity provider whose tokens authenticate workloads (workload identity federation).

    Keys come from `jwks` (inline), `jwks_uri`, or else discovery at
    `<issuer>/.well-known/openid-configuration`. The token's `aud` must contain `audience`;
    its lifetime is capped at `max_token_lifetime`; with `single_use` a token with a `jti`
    is accepted once.
    """

    issuer: str  # the identity provider's issuer URL, exactly as in its tokens
    audience: str  # the value its tokens must carry in aud
    jwks_uri: str | None = None  # where its keys are; else discovery
    jwks: dict[str, Any] | None = None  # its keys inline, as a JWKS table
    max_token_lifetime: int = 3600  # longer-lived platform tokens are refused
    single_use: bool = True  # a token with a jti is accepted once


@dataclass(frozen=True)
class RegistrySettings:
    """The clients each server process holds in memory (services.registry).

    A registry of up to `cache_size` clients is loaded whole at start-up and nothing on the token
    path queries the database. A larger one is held in part: the clients in use, the least recently
    used evicted, each other client loaded on its first request (one indexed query, shared by the
    requests that wait for it). Ids the database does not have are remembered for `negative_ttl`
    (at most `negative_cache_size` of them), and at most `miss_rate` ids per second are looked up
    for the whole server; beyond that a request gets 503 with Retry-After, so a spray of made-up
    client ids cannot turn into database load. Changes reach cached clients through the change log
    as before (within `registry_poll_interval`).
    """

    cache_size: int = 100_000  # clients held per process; a larger registry is held in part (the clients in use)
    negative_cache_size: int = 10_000  # unknown client ids remembered per process
    negative_ttl: int = 10  # seconds an unknown client id is answered without a database lookup
    miss_rate: float = 1000.0  # client ids looked up in the database per second for the whole server (0: no limit)


@dataclass(frozen=True)
class StatusListSettings:
    """Token Status List (draft-ietf-oauth-status-list): every access token names an entry in a
    list the server publishes, so revocation reaches resource servers without a call per token."""

    enabled: bool = True  # access tokens carry a status list entry
    size: int = 1_048_576  # entries per list (a multiple of 8); 128 KiB raw, a few hundred bytes compressed
    ttl: int = 60  # how long resource servers may cache a list (its ttl claim); the list token lives 10x this
    publish_interval: float = 2.0  # a list this node serves is at most this old
    block_window: int = 300  # how long one client's block of entries takes new tokens
    max_block: int = 4096  # largest block of entries reserved for one client at a time


@dataclass(frozen=True)
class TokenExchangeSettings:
    """Token exchange (RFC 8693) for clients allowed to exchange (`--allow-token-exchange`): a token
    exchanged from another keeps its `sub` and names the chain of requesting clients in `act`."""

    enabled: bool = True  # accept the token exchange grant (each client still needs permission)
    max_act_depth: int = 3  # longest delegation chain: actors named in an exchanged token's act claim


@dataclass(frozen=True)
class TransactionTokenSettings:
    """Transaction Tokens (draft-ietf-oauth-transaction-tokens): short-lived, call-chain-scoped tokens
    requested by token exchange with `requested_token_type` txn_token, by clients allowed to exchange."""

    enabled: bool = False  # issue Txn-Tokens (a draft: off unless asked for)
    trust_domain: str = ""  # the Txn-Tokens' aud, which requests must name; empty: the issuer
    lifetime: int = 60  # seconds a Txn-Token lives (a replacement lives no longer than the one it replaces)


@dataclass(frozen=True)
class AuditSettings:
    """Audit events as JSON lines: `stdout`, `off`, or a file path."""

    sink: str = "stdout"  # stdout, off, or a file path (JSON lines appended)
    chain: bool = False  # each event carries the hash of the previous one (check with `warden audit verify`)


@dataclass(frozen=True)
class LogSettings:
    """How `warden serve` writes its log lines (stderr)."""

    format: str = "text"  # text, or json: one JSON object per line with time, level, event and trace_id


@dataclass(frozen=True)
class MetricsSettings:
    """What /metrics exposes beyond the fixed series."""

    top_clients: int = 20  # clients named in warden_client_requests_total; the rest are client="other"


@dataclass(frozen=True)
class ConsoleSettings:
    """The operators' web console at `<issuer>/console` (sign in with `warden console login-url`)."""

    enabled: bool = True  # serve the console; off: /console answers 404 and no login URL is accepted
    login_url_lifetime: int = 300  # seconds a one-time sign-in URL stays usable
    session_lifetime: int = 3600  # seconds a console session lasts; then the operator signs in again


@dataclass(frozen=True)
class Settings:
    data_dir: str = "./warden-data"  # SQLite store, key-encryption key file and CLI audit log
    database_url: Secret | None = None  # PostgreSQL URL; unset: SQLite in data_dir
    redis_url: Secret | None = None  # redis:// or rediss:// URL (password allowed); set: limits and jti records shared
    redis_key_prefix: str = "warden:"  # prefix of every Redis key, so several deployments can share one Redis
    issuer: str | None = None  # default http://<host>:<port>
    dev_mode: bool = False  # allows plain-HTTP issuers other than loopback
    log_level: str = "info"  # debug, info, warning or error
    registry_poll_interval: float = 0.25  # seconds between change-log polls
    registry_ready_staleness: float = 30.0  # readiness fails once the cached registry is older (database unreachable)
    registry_max_staleness: float = 300.0  # the token endpoint answers 503 once the cached registry is older
    store_request_timeout: float = 2.0  # seconds a token request waits on the database (status block, jti record)
    server: ServerSettings = field(default_factory=ServerSettings)
    keys: KeySettings = field(default_factory=KeySettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)
    log: LogSettings = field(default_factory=LogSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    client_auth: ClientAuthSettings = field(default_factory=ClientAuthSettings)
    dpop: DPoPSettings = field(default_factory=DPoPSettings)
    mtls: MTLSSettings = field(default_factory=MTLSSettings)
    status_list: StatusListSettings = field(default_factory=StatusListSettings)
    token_exchange: TokenExchangeSettings = field(default_factory=TokenExchangeSettings)
    transaction_tokens: TransactionTokenSettings = field(default_factory=TransactionTokenSettings)
    console: ConsoleSettings = field(default_factory=ConsoleSettings)
    registry: RegistrySettings = field(default_factory=RegistrySettings)
    trusted_issuers: tuple[TrustedIssuer, ...] = ()  # TOML only: [[trusted_issuers]] tables

    @property
    def issuer_url(self) -> str:
        scheme = "https" if self.server.tls_cert else "http"
        return self.issuer or f"{scheme}://{self.server.host}:{self.server.port}"


_SECTIONS: dict[str, type[Any]] = {  # by dotted path: "keys.pkcs11" is the table [keys.pkcs11]
    "server": ServerSettings, "keys": KeySettings, "keys.pkcs11": Pkcs11Settings, "limits": LimitSettings,
    "audit": AuditSettings, "log": LogSettings, "metrics": MetricsSettings, "client_auth": ClientAuthSettings,
    "dpop": DPoPSettings, "mtls": MTLSSettings, "status_list": StatusListSettings,
    "token_exchange": TokenExchangeSettings, "transaction_tokens": TransactionTokenSettings,
    "console": ConsoleSettings,
    "registry": RegistrySettings,
}
_DURATIONS = {"lifetime", "rotation_interval", "publish_lead", "assertion_max_lifetime", "assertion_max_age",
              "jwks_cache_ttl", "jwks_refresh_cooldown", "max_token_lifetime", "leeway", "nonce_lifetime", "max_age",
              "ttl", "block_window", "negative_ttl"}


def _trusted_issuers(value: Any) -> tuple[TrustedIssuer, ...]:
    if not isinstance(value, list):
        raise ConfigError("setting trusted_issuers: expected a list of [[trusted_issuers]] tables")
    out = []
    known = {f.name for f in dataclasses.fields(TrustedIssuer)}
    for i, table in enumerate(value):
        where = f"trusted_issuers[{i}]"
        if not isinstance(table, dict):
            raise ConfigError(f"setting {where}: expected a table")
        unknown = sorted(set(table) - known)
        if unknown:
            raise ConfigError(f"unknown setting '{where}.{unknown[0]}' (known: {', '.join(sorted(known))})")
        for required in ("issuer", "audience"):
            if not isinstance(table.get(required), str) or not table[required]:
                raise ConfigError(f"setting {where}.{required}: expected a non-empty string")
        if not table["issuer"].startswith(("https://", "http://")):
            raise ConfigError(f"setting {where}.issuer: expected an http(s) URL")
        if table.get("jwks") is not None and not isinstance(table["jwks"], dict):
            raise ConfigError(f"setting {where}.jwks: expected an inline JWKS table")
        if table.get("jwks") is not None:
            from warden.core.client_metadata import validate_jwks_document

            try:
                validate_jwks_document(table["jwks"])
            except ValueError as exc:
                raise ConfigError(f"setting {where}.jwks: {exc}") from None
        out.append(TrustedIssuer(
            issuer=table["issuer"], audience=table["audience"],
            jwks_uri=_coerce(f"{where}.jwks_uri", "str", table["jwks_uri"]) if "jwks_uri" in table else None,
            jwks=table.get("jwks"),
            max_token_lifetime=_coerce("max_token_lifetime", "int", table.get("max_token_lifetime", 3600)),
            single_use=_coerce(f"{where}.single_use", "bool", table.get("single_use", True))))
    issuers = [t.issuer for t in out]
    if len(set(issuers)) != len(issuers):
        raise ConfigError("setting trusted_issuers: an issuer is listed twice")
    return tuple(out)


def _coerce(name: str, ftype: Any, value: Any) -> Any:
    """Turn a TOML or environment value into the field's type, or raise ConfigError."""
    tname = ftype if isinstance(ftype, str) else getattr(ftype, "__name__", str(ftype))
    try:
        if name.rsplit(".", 1)[-1] in _DURATIONS:
            return parse_duration(value)
        if is_secret_field(tname):
            if not isinstance(value, str) or not value:
                raise ValueError("expected a non-empty string")
            return Secret(value)
        if tname.startswith("bool"):
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                return value.lower() in ("1", "true", "yes", "on")
            raise ValueError("expected true or false")
        if tname.startswith(("int", "float")):
            kind, noun = (int, "integer") if tname.startswith("int") else (float, "number")
            if isinstance(value, bool):
                raise ValueError(f"expected a non-negative {noun}")
            number = kind(value)
            if not math.isfinite(number) or number < 0:
                raise ValueError(f"expected a non-negative {noun}")
            return number
        if tname.startswith("tuple"):
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError("expected a list of strings")
            return tuple(value)
        if tname.startswith("str"):
            if not isinstance(value, str):
                raise ValueError("expected a string")
            return value
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting {name}: {exc}") from None
    raise ConfigError(f"setting {name}: unsupported type")  # pragma: no cover


def _apply(cls: type[Any], base: Any, values: Mapping[str, Any], prefix: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    changes: dict[str, Any] = {}
    for key, value in values.items():
        f = fields.get(key)
        section = prefix + key
        if f is None or (section in _SECTIONS and not isinstance(value, dict)):
            known = ", ".join(sorted(fields))
            raise ConfigError(f"unknown setting '{prefix}{key}' (known: {known})")
        if section in _SECTIONS:
            changes[key] = _apply(_SECTIONS[section], getattr(base, key), value, f"{section}.")
        elif key == "trusted_issuers":
            changes[key] = _trusted_issuers(value)
        else:
            changes[key] = _coerce(prefix + key, f.type, value)
    return dataclasses.replace(base, **changes)


def environment_names() -> dict[str, tuple[str, ...]]:
    """Every `WARDEN_*` variable that sets a setting, and the setting's path (section, key)."""
    top = [f.name for f in dataclasses.fields(Settings)
           if f.name not in _SECTIONS and f.name != "trusted_issuers"]
    names: dict[str, tuple[str, ...]] = {f"WARDEN_{k.upper()}": (k,) for k in top}
    for section, cls in _SECTIONS.items():
        env = section.upper().replace(".", "_")
        for f in dataclasses.fields(cls):
            if f"{section}.{f.name}" not in _SECTIONS:
                names[f"WARDEN_{env}_{f.name.upper()}"] = (*section.split("."), f.name)
    return names


def is_secret_field(ftype: Any) -> bool:
    """Whether a settings field holds a `Secret` (and so may also come from `WARDEN_..._FILE`)."""
    return "Secret" in (ftype if isinstance(ftype, str) else getattr(ftype, "__name__", str(ftype)))


def secret_paths() -> set[tuple[str, ...]]:
    paths: set[tuple[str, ...]] = {(f.name,) for f in dataclasses.fields(Settings) if is_secret_field(f.type)}
    for section, cls in _SECTIONS.items():
        paths |= {(*section.split("."), f.name) for f in dataclasses.fields(cls) if is_secret_field(f.type)}
    return paths


def _read_secret_file(env_name: str, path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(f"cannot read {env_name} {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{env_name} {path}: expected UTF-8 text") from None


def _from_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    names = environment_names()
    secrets = secret_paths()
    from_file: set[str] = set()
    for env_name, path in list(names.items()):
        if f"{env_name}_FILE" in names:
            continue  # a setting of its own (keys.pkcs11.pin_file), which names the file itself
        if path in secrets and f"{env_name}_FILE" in environ:
            if env_name in environ:
                raise ConfigError(f"set {env_name} or {env_name}_FILE, not both")
            names[f"{env_name}_FILE"] = path
            from_file.add(f"{env_name}_FILE")
    for env_name, raw in environ.items():
        found = names.get(env_name)
        if found is None:
            continue
        path = found
        value = _read_secret_file(env_name, raw) if env_name in from_file else raw
        table = out
        for part in path[:-1]:
            table = table.setdefault(part, {})
        table[path[-1]] = value
    return out


def _validate(settings: Settings) -> None:
    for name in ("login_url_lifetime", "session_lifetime"):
        if getattr(settings.console, name) <= 0:
            raise ConfigError(f"setting console.{name}: expected a positive number of seconds")
    issuer = settings.issuer_url
    if not (issuer.startswith(("https://", "http://"))):
        raise ConfigError("setting issuer: expected an http(s) URL such as https://auth.example.com")
    if "?" in issuer or "#" in issuer:
        raise ConfigError("setting issuer: must not contain a query or fragment (RFC 8414 §2)")
    loopback = any(issuer.startswith(f"http://{h}") for h in ("127.0.0.1", "localhost", "[::1]"))
    if issuer.startswith("http://") and not (loopback or settings.dev_mode):
        raise ConfigError("setting issuer: plain http is only allowed on loopback or with dev_mode = true")
    if settings.server.tls_client_ca and not settings.server.tls_cert:
        raise ConfigError("setting server.tls_client_ca: needs server.tls_cert (Warden's own TLS listener)")
    if settings.server.workers < 1:
        raise ConfigError("setting server.workers: expected at least 1")
    if not 0 < settings.server.port < 65536:
        raise ConfigError("setting server.port: expected 1-65535")
    if settings.server.max_connections < 1:
        raise ConfigError("setting server.max_connections: expected at least 1")
    for name in ("write_timeout", "request_timeout", "keep_alive_timeout"):
        if not getattr(settings.server, name) > 0:
            raise ConfigError(f"setting server.{name}: expected a duration above 0 seconds")
    for name in ("max_header_bytes", "max_headers", "max_pipelined"):
        if getattr(settings.server, name) < 1:
            raise ConfigError(f"setting server.{name}: expected at least 1")
    if not settings.store_request_timeout > 0:
        raise ConfigError("setting store_request_timeout: expected a duration above 0 seconds")
    if not 0 < settings.registry_ready_staleness <= settings.registry_max_staleness:
        raise ConfigError("setting registry_ready_staleness: expected above 0 and at most registry_max_staleness")
    if settings.mtls.proxy_header_format not in ("nginx", "xfcc", "rfc9440"):
        raise ConfigError("setting mtls.proxy_header_format: expected nginx, xfcc or rfc9440")
    if settings.mtls.proxy_header and not settings.mtls.trusted_proxies:
        raise ConfigError("setting mtls.trusted_proxies: list the proxy addresses allowed to send "
                          f"{settings.mtls.proxy_header}")
    if settings.client_auth.assertion_max_age < 1:
        raise ConfigError("setting client_auth.assertion_max_age: expected a duration of at least 1s")
    sl = settings.status_list
    if sl.size < 8 or sl.size % 8 or sl.size > 1 << 30:
        raise ConfigError("setting status_list.size: expected a multiple of 8 between 8 and 2^30")
    if not 1 <= sl.max_block <= sl.size:
        raise ConfigError("setting status_list.max_block: expected between 1 and status_list.size")
    if sl.ttl < 1 or sl.block_window < 1 or not 0 < sl.publish_interval <= sl.ttl:
        raise ConfigError("setting status_list: ttl and block_window must be at least 1s and "
                          "publish_interval between 0 and ttl")
    if not 1 <= settings.transaction_tokens.lifetime <= 3600:
        raise ConfigError("setting transaction_tokens.lifetime: expected between 1s and 1h")
    if settings.token_exchange.max_act_depth < 1:
        raise ConfigError("setting token_exchange.max_act_depth: expected at least 1")
    if settings.redis_url is not None and not settings.redis_url.reveal().startswith(("redis://", "rediss://")):
        raise ConfigError("setting redis_url: expected a redis:// or rediss:// URL such as redis://127.0.0.1:6379/0")
    if settings.registry.cache_size < 1:
        raise ConfigError("setting registry.cache_size: expected at least 1")
    if settings.log.format not in ("text", "json"):
        raise ConfigError("setting log.format: expected text or json")
    if settings.audit.sink == "":
        raise ConfigError("setting audit.sink: expected stdout, off or a file path")
    _validate_keys(settings.keys)


def _validate_keys(keys: KeySettings) -> None:
    if keys.backend not in ("database", "pkcs11"):
        raise ConfigError("setting keys.backend: expected database or pkcs11")
    if keys.backend != "pkcs11":
        return
    p11 = keys.pkcs11
    for name in ("module", "token_label"):
        if not getattr(p11, name):
            raise ConfigError(f"setting keys.pkcs11.{name}: required with keys.backend = \"pkcs11\"")
    if (p11.pin is None) == (not p11.pin_file):
        raise ConfigError("setting keys.pkcs11: give pin or pin_file (one of them)")
    if p11.rsa_bits not in (2048, 3072, 4096):
        raise ConfigError("setting keys.pkcs11.rsa_bits: expected 2048, 3072 or 4096")


def load_settings(config_file: str | None = None, environ: Mapping[str, str] | None = None,
                  **overrides: Any) -> Settings:
    """Build settings from defaults < TOML file < environment < explicit overrides (CLI flags).

    `overrides` use dotted names for sections, e.g. ``{"server.port": 9000}``; None values are skipped.
    """
    environ = os.environ if environ is None else environ
    settings = Settings()
    path = config_file or environ.get("WARDEN_CONFIG")
    if path:
        data = load_toml(path, "config file")
        settings = _apply(Settings, settings, data, "")
    settings = _apply(Settings, settings, _from_environ(environ), "")
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        *sections, name = key.split(".")
        table = nested
        for section in sections:
            table = table.setdefault(section, {})
        table[name] = value
    final: Settings = _apply(Settings, settings, nested, "")
    _validate(final)
    return final
