"""Everything a running server process holds, and its background work.

Start-up opens the store, applies migrations, makes sure signing keys exist and
loads the registry; if the store is unreachable the process stays up, answers
503 and keeps retrying (a database outage is never reported as an auth error).
Background tasks poll the change log, flush audit events and secret last-used
times, and run key maintenance.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from collections.abc import Callable

from cryptography.x509.verification import Store as CertificateStore

from warden.core.clock import Clock, SystemClock
from warden.core.tenancy import AdminScope
from warden.errors import ConfigError, StorageError
from warden.protocol.dpop import DPOP_ALGS, DPoPNonces
from warden.protocol.errors import TemporarilyUnavailable
from warden.protocol.mtls import load_ca_bundle
from warden.protocol.token_exchange import TOKEN_EXCHANGE
from warden.server.metrics import Metrics
from warden.services.admin import Admin
from warden.services.assertion_auth import AssertionAuthenticator
from warden.services.audit import AuditSink, open_audit_sink
from warden.services.auth_throttle import FailedAuthThrottle
from warden.services.caller_auth import CallerAuthentication
from warden.services.client_credentials_grant import ClientCredentialsGrant
from warden.services.console_login import ConsoleLogins
from warden.services.dpop_proofs import DPoPProofs
from warden.services.kek import KeyMaterial, load_kek
from warden.services.key_backends import open_key_backends
from warden.services.key_sources import FetchPolicy, KeySources
from warden.services.keyring import Keyring
from warden.services.ratelimit import InProcessRateLimiter, RateLimiter
from warden.services.registration import ClientRegistrations
from warden.services.registry import Registry
from warden.services.shared_state import ClusterRateLimiter, SharedState
from warden.services.status_lists import StatusAllocator, StatusListPublisher
from warden.services.token_exchange_grant import TokenExchangeGrant
from warden.services.token_lookup import Introspection, Revocation
from warden.services.transaction_token_grant import TokenExchangeRouter, TransactionTokenGrant
from warden.settings import Settings
from warden.storage.contract import Store

__all__ = ["Runtime", "SecretUseRecorder"]

log = logging.getLogger("warden.server")


class SecretUseRecorder:
    """Collects secret last-used times in memory; written in batches, never on the request path.

    A secret's use is written at most once per `resolution` seconds, so `last_used_at` is
    accurate to a minute. Writing every busy secret every second cost the serving process a
    10,000-row update per second with 10,000 active clients (50 ms of database work holding
    the interpreter, which showed as latency spikes); a minute's resolution is plenty for
    "which secrets are still in use".
    """

    def __init__(self, resolution: float = 60.0) -> None:
        self._pending: dict[str, float] = {}
        self._written: dict[str, float] = {}  # secret id -> the use last queued for writing
        self._resolution = resolution
        self._pruned = 0.0
        self._lock = threading.Lock()

    def record(self, secret_id: str, at: float) -> None:
        last = self._written.get(secret_id)
        if last is not None and at - last < self._resolution:
            return
        self._written[secret_id] = at
        self._pending[secret_id] = at

    def drain(self, now: float) -> dict[str, float]:
        """The uses to write; entries older than the resolution are forgotten, so memory follows the
        secrets in use rather than every secret ever seen."""
        with self._lock:
            pending, self._pending = self._pending, {}
            if now - self._pruned >= self._resolution:  # once per resolution: it walks every entry
                self._pruned = now
                horizon = now - self._resolution
                self._written = {k: v for k, v in list(self._written.items()) if v > horizon}
        return pending


class Runtime:
    def __init__(self, settings: Settings, store_factory: Callable[[], Store], *,
                 clock: Clock | None = None, audit: AuditSink | None = None,
                 rate_limiter: RateLimiter | None = None, failed_auth_limiter: RateLimiter | None = None) -> None:
        """`rate_limiter` holds the per-client token-endpoint limits and `failed_auth_limiter` the
        failed-authentication budgets; both default to this process's own memory (`warden serve
        --workers N` passes tables its supervisor shares between workers)."""
        self.settings = settings
        self.issuer = settings.issuer_url
        self.clock = clock or SystemClock()
        # How old the cached registry may grow while the database is unreachable: past `ready_staleness`
        # readiness fails (a load balancer drains the node), past `max_staleness` tokens get 503.
        self.ready_staleness = settings.registry_ready_staleness
        self.max_staleness = settings.registry_max_staleness
        self.audit = audit or open_audit_sink(settings.audit.sink, chain=settings.audit.chain,
                                                log_fields=settings.log.format == "json")
        self.metrics = Metrics(settings.metrics.top_clients)
        # With redis_url, limits and single-use records hold once for the cluster (services.shared_state).
        self.shared_state: SharedState | None = None
        self._cluster_limiters: list[ClusterRateLimiter] = []
        if settings.redis_url is not None:
            self.shared_state = SharedState(settings.redis_url.reveal(), prefix=settings.redis_key_prefix)
            self.shared_state.on_change.append(lambda up: self.metrics.shared_state_up.set(1 if up else 0))
            self.metrics.shared_state_up.set(1)
            if rate_limiter is None:
                rate_limiter = ClusterRateLimiter(self.shared_state, "rate")
                self._cluster_limiters.append(rate_limiter)
            if failed_auth_limiter is None:
                failed_auth_limiter = ClusterRateLimiter(self.shared_state, "auth")
                self._cluster_limiters.append(failed_auth_limiter)
        self.rate_limiter = rate_limiter or InProcessRateLimiter()
        self.auth_throttle = FailedAuthThrottle(failed_auth_limiter or InProcessRateLimiter(),
                                                settings.limits.failed_auth_per_minute)
        self.secret_uses = SecretUseRecorder()
        self._store_factory = store_factory
        self.store: Store | None = None
        self.material: KeyMaterial = load_kek(
            settings.keys.encryption_key.reveal() if settings.keys.encryption_key else None, settings.data_dir)
        self.key_backends = open_key_backends(settings.keys, self.material)  # where private signing keys live
        self._registry: Registry | None = None
        self.ready = False
        ca = settings.client_auth
        self.key_sources = KeySources(FetchPolicy(
            timeout=ca.jwks_fetch_timeout, max_bytes=ca.jwks_max_bytes, ttl=ca.jwks_cache_ttl,
            cooldown=ca.jwks_refresh_cooldown, allow_loopback_http=settings.dev_mode))
        self.assertions = AssertionAuthenticator(
            issuer=self.issuer, settings=ca, trusted={t.issuer: t for t in settings.trusted_issuers},
            sources=self.key_sources, use_once=self.use_once)
        # DPoP nonces are keyed from the KEK, so every process and node accepts each other's.
        self.dpop_nonces = DPoPNonces(self.material.derive(b"warden/v1/dpop-nonce"),
                                      lifetime=settings.dpop.nonce_lifetime, clock=self.clock)
        self.dpop_algs = DPOP_ALGS
        self.mtls_trusted_proxies = frozenset(settings.mtls.trusted_proxies)
        self.client_ca: CertificateStore | None = None
        if settings.mtls.enabled and settings.mtls.client_ca_file:
            try:
                with open(settings.mtls.client_ca_file, "rb") as fh:
                    self.client_ca = load_ca_bundle(fh.read())
            except (OSError, ValueError) as exc:
                raise ConfigError(f"setting mtls.client_ca_file: cannot load {settings.mtls.client_ca_file}: {exc}") \
                    from None
        self._tasks: list[asyncio.Task[None]] = []
        # The use cases the endpoints call, each a list of named steps (services.steps).
        auth = CallerAuthentication(self, self.auth_throttle, self.assertions, self.key_sources, self.client_ca,
                                    self.material.pepper, self.secret_uses.record, self.audit,
                                    on_superseded_secret_used=self.metrics.old_secret_auths.inc)
        self.dpop = DPoPProofs(settings.dpop, self.dpop_nonces, self.dpop_algs, self.use_once)
        sl = settings.status_list
        self.status_allocator = StatusAllocator(sl, self, self.issuer, store_timeout=settings.store_request_timeout) \
            if sl.enabled else None
        self.status_publisher = StatusListPublisher(sl, self, self.issuer)
        self.client_credentials = ClientCredentialsGrant(self, auth, self.dpop, self.rate_limiter, settings.limits,
                                                         self.issuer, self.audit, self.status_allocator)
        self.token_exchange = TokenExchangeGrant(self, auth, self.client_credentials, self.assertions,
                                                 settings.token_exchange, self.issuer, self.audit)
        # The token endpoint's use case per grant_type (wire name); anything else goes to client credentials,
        # which authenticates the caller first and then answers unsupported_grant_type.
        self.grants: dict[str, ClientCredentialsGrant | TokenExchangeGrant | TokenExchangeRouter] = {
            "client_credentials": self.client_credentials}
        if settings.token_exchange.enabled:
            self.grants[TOKEN_EXCHANGE] = self.token_exchange
            if settings.transaction_tokens.enabled:  # Txn-Tokens ride on token exchange
                self.grants[TOKEN_EXCHANGE] = TokenExchangeRouter(self.token_exchange, TransactionTokenGrant(
                    self, auth, self.client_credentials, self.token_exchange, settings.transaction_tokens,
                    self.issuer, self.audit))
        self.introspection = Introspection(self, auth, self.issuer, self.audit)
        self.revocation = Revocation(self, auth, self.issuer, self.audit)
        self.registrations = ClientRegistrations(self.admin, self.issuer, self.audit, dev_mode=settings.dev_mode,
                                                 on_registered=self._refresh_registry, throttle=self.auth_throttle)
        self.console_logins = ConsoleLogins(self.material, self.clock, self.issuer,
                                            login_url_lifetime=settings.console.login_url_lifetime,
                                            session_lifetime=settings.console.session_lifetime)

    async def _refresh_registry(self) -> None:
        """Poll now rather than at the next interval, so a client just registered here can be used here
        at once (other processes and nodes learn of it by their own polls, within one interval)."""
        if self._registry is not None:
            await asyncio.to_thread(self._registry.refresh, self.clock.now())

    async def use_once(self, key: str, exp: float) -> bool:
        """Single use across every process on Redis when `redis_url` is set (one SET NX PX), else on the
        store; a failure of either fails closed (503)."""
        if self.shared_state is not None:
            return await self.shared_state.use_once(key, exp)
        store = self.store
        if store is None:
            raise TemporarilyUnavailable("server is starting", reason="not_ready")
        try:  # a slow or partitioned database must not hold the request (or a thread) past the deadline
            return await asyncio.wait_for(asyncio.to_thread(store.use_assertion, key, exp),
                                          self.settings.store_request_timeout)
        except TimeoutError:
            raise TemporarilyUnavailable("database did not answer in time", reason="storage_error",
                                         retry_after=1) from None

    # start-up -----------------------------------------------------------------
    def _open(self) -> None:
        store = self._store_factory()
        store.migrate()
        Keyring(store, self.material, self.clock, self.audit, self.key_backends).ensure_keys()
        self._ensure_admin_api(store)
        rs = self.settings.registry
        registry = Registry(store, self.material, self.key_backends, cache_size=rs.cache_size,
                            negative_cache_size=rs.negative_cache_size, negative_ttl=rs.negative_ttl,
                            miss_rate=rs.miss_rate, miss_limiter=self.rate_limiter, clock=self.clock.now,
                            on_store_lookup=self._count_store_lookup)
        registry.load(self.clock.now())
        self.store, self._registry, self.ready = store, registry, True
        self._observe_registry(self.clock.now())
        # Everything loaded so far lives as long as the process. Moving it out of the cyclic GC's
        # reach keeps full collections from rescanning a large registry: with 100,000 clients such a
        # collection took 150-300 ms, a pause every request in flight would wait out.
        gc.freeze()

    def _count_store_lookup(self, ids: int) -> None:
        self.metrics.registry_store_lookups.inc()
        self.metrics.registry_store_lookup_ids.inc(ids)

    def _ensure_admin_api(self, store: Store) -> None:
        """Register the admin API (`<issuer>/admin/v1`) so operators can grant clients its scopes."""
        from warden.core.api import Api, is_reserved_scope
        from warden.server.admin_api import ADMIN_SCOPES, admin_audience

        identifier = admin_audience(self.issuer)
        apis = store.load_apis()
        if not any(api.identifier == identifier for api in apis):
            store.save_api(Api(identifier, ADMIN_SCOPES, token_ttl=300, name="Warden admin API",
                               created_at=self.clock.now()))
        # Stores written before `warden:` names were reserved may hold other APIs that define them. They
        # cannot reach the admin API (it accepts only tokens whose sole audience it is); say so once.
        for api in apis:
            reserved = [scope for scope in api.scopes if is_reserved_scope(scope)]
            if reserved and api.identifier != identifier:
                log.warning("API %s defines reserved scope names (%s); the admin API ignores them, and the API "
                            "cannot be updated until they are removed", api.identifier, " ".join(reserved))

    def admin(self, actor: str, scope: AdminScope | None = None) -> Admin:
        """The administrative use cases, acting as `actor` (audited) within `scope` (default: global)."""
        if self.store is None:
            raise TemporarilyUnavailable("server is starting", reason="not_ready")
        return Admin(self.store, self.material, self.clock, self.audit, actor, dev_mode=self.settings.dev_mode,
                     on_revoked=lambda kind: self.metrics.revoked_tokens(kind).inc(), scope=scope,
                     key_backends=self.key_backends)

    async def start(self) -> None:
        try:
            await asyncio.to_thread(self._open)
        except ConfigError:
            raise
        except StorageError as exc:
            log.error("store unavailable at start-up, retrying: %s", exc)
        for limiter in self._cluster_limiters:
            limiter.start()
        if self.shared_state is not None:
            await self.shared_state.ping()
        self._tasks = [asyncio.create_task(self._loop(self._poll, self.settings.registry_poll_interval)),
                       asyncio.create_task(self._loop(self._flush, 1.0)),
                       asyncio.create_task(self._loop(self._maintain, 30.0))]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for limiter in self._cluster_limiters:
            await limiter.stop()
        if self.shared_state is not None:
            await self.shared_state.aclose()
        try:
            await asyncio.to_thread(self._flush_sync)
        except StorageError as exc:
            log.warning("could not record secret use at shutdown: %s", exc)
        self.audit.close()
        await self.key_sources.aclose()
        if self.store is not None:
            self.store.close()

    async def _loop(self, step: Callable[[], None], interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(step)
            except StorageError as exc:
                log.warning("background %s failed: %s", step.__name__, exc)
            except Exception:
                log.exception("background %s failed", step.__name__)

    def _poll(self) -> None:
        if not self.ready:
            self._open()
            return
        self.registry.refresh(self.clock.now())

    def _flush_sync(self) -> None:
        uses = self.secret_uses.drain(self.clock.now())
        if uses and self.store is not None:
            self.store.record_secret_use(uses)

    def _flush(self) -> None:
        self.audit.flush()
        self._flush_sync()
        self.metrics.top_clients.flush()
        if self.ready:
            self.metrics.registry_age.set(self.staleness())

    def _maintain(self) -> None:
        if not self.ready or self.store is None:
            return
        now = self.clock.now()
        keyring = Keyring(self.store, self.material, self.clock, self.audit, self.key_backends)
        keyring.maintain(interval=self.settings.keys.rotation_interval,
                         publish_lead=self.settings.keys.publish_lead,
                         max_token_ttl=self.registry.max_token_ttl)
        self.store.purge_revocations(now)
        self.store.purge_assertions(now)
        self.store.purge_status_blocks(now)
        if self.status_allocator is not None:
            self.status_allocator.forget_idle(now)
        self.registry.purge_expired_revocations(now)
        self.store.prune_changes(now - 3600)
        self._observe_registry(now)

    def _observe_registry(self, now: float) -> None:
        """The gauges read from the registry: key ages and rotation times, secret ages and rotation lag."""
        metrics, interval = self.metrics, self.settings.keys.rotation_interval
        for key in self.registry.keys:
            if key.state.value == "active":
                activated = key.activated_at or key.created_at
                metrics.key_age.labels(alg=key.alg).set(now - activated)
                metrics.key_rotation_due.labels(alg=key.alg).set(activated + interval - now)
        oldest, lag, grace = 0.0, 0.0, float("inf")
        for entry in self.registry.clients.values():
            active = [s for s in entry.secrets
                      if s.revoked_at is None and (s.expires_at is None or s.expires_at > now)]
            if not active:
                continue
            newest = max(s.created_at for s in active)
            for secret in active:
                oldest = max(oldest, now - secret.created_at)
                if secret.created_at < newest:  # superseded, still accepted: in its grace period
                    lag = max(lag, now - secret.created_at)
                    if secret.expires_at is not None:
                        grace = min(grace, secret.expires_at - now)
        metrics.oldest_secret_age.set(oldest)
        metrics.secret_rotation_lag.set(lag)
        metrics.secret_grace_remaining.set(grace)

    # state --------------------------------------------------------------------
    @property
    def registry(self) -> Registry:
        """The loaded registry; 503 (never an auth error) while the store has not been reached."""
        if self._registry is None:
            raise TemporarilyUnavailable("server is starting", reason="not_ready", retry_after=1)
        return self._registry

    def current_store(self) -> Store:
        """The open store; 503 (never an auth error) while it has not been reached."""
        if self.store is None:
            raise TemporarilyUnavailable("server is starting", reason="not_ready", retry_after=1)
        return self.store

    def staleness(self) -> float:
        return time.monotonic() - self._registry.refreshed_at if self._registry else float("inf")

    def is_serving(self) -> bool:
        registry = self._registry  # staleness() inlined: this runs on every token request
        return self.ready and registry is not None and time.monotonic() - registry.refreshed_at < self.max_staleness

    def is_ready(self) -> bool:
        return self.ready and self.staleness() < self.ready_staleness
