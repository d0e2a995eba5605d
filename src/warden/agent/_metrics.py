"""Prometheus text exposition (format 0.0.4), rendered by hand so the agent needs no extra package.

Label values are escaped as the format requires (backslash, double quote,
newline). Label sets are bounded by the configuration: credential names,
configured audiences and subsets of configured scopes, and a fixed set of paths.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from warden.client.metrics import FAILURE_CODES, FETCH_BUCKETS

if TYPE_CHECKING:
    from warden.agent._credential import ManagedCredential
    from warden.client import TokenStats

__all__ = ["CONTENT_TYPE", "ClientCounters", "MetricFamily", "render_agent_metrics", "render_metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class MetricFamily:
    name: str
    kind: Literal["counter", "gauge"]
    help: str
    samples: list[tuple[Mapping[str, str], float]] = field(default_factory=list)

    def add(self, value: float, **labels: str) -> None:
        self.samples.append((labels, value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(float(value))


def render_metrics(families: Iterable[MetricFamily]) -> str:
    """Render metric families; a family with no samples is still declared."""
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {family.help}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for labels, value in family.samples:
            label_text = ",".join(f'{key}="{_escape(val)}"' for key, val in labels.items())
            lines.append(
                f"{family.name}{{{label_text}}} {_number(value)}"
                if label_text
                else f"{family.name} {_number(value)}"
            )
    return "\n".join(lines) + "\n"


class ClientCounters:
    """The `warden.client.metrics.ClientMetrics` hooks without prometheus-client: the agent renders them
    itself as the `warden_client_*` series, per credential."""

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.renewals = 0
        self.retries = 0
        self.failures: dict[str, int] = {}
        self.buckets = [0] * len(FETCH_BUCKETS)
        self.fetch_count = 0
        self.fetch_sum = 0.0

    def hit(self) -> None:
        self.hits += 1

    def miss(self) -> None:
        self.misses += 1

    def fetched(self, seconds: float) -> None:
        self.fetch_count += 1
        self.fetch_sum += seconds
        for i, bound in enumerate(FETCH_BUCKETS):
            if seconds <= bound:
                self.buckets[i] += 1

    def renewed(self) -> None:
        self.renewals += 1

    def retried(self) -> None:
        self.retries += 1

    def failed(self, code: str) -> None:
        code = "network" if code == "network_error" else code if code in FAILURE_CODES else "server_error"
        self.failures[code] = self.failures.get(code, 0) + 1


def _client_families(counters: Mapping[str, ClientCounters]) -> str:
    cache = MetricFamily("warden_client_token_cache_total", "counter", "Token requests: cache hit or miss.")
    renewals = MetricFamily("warden_client_token_renewals_total", "counter", "Tokens obtained to replace one.")
    retries = MetricFamily("warden_client_token_fetch_retries_total", "counter", "Token requests retried.")
    failures = MetricFamily("warden_client_token_fetch_failures_total", "counter", "Failed token requests by code.")
    lines = ["# HELP warden_client_token_fetch_seconds Time of one token request.",
             "# TYPE warden_client_token_fetch_seconds histogram"]
    for name, c in sorted(counters.items()):
        cache.add(c.hits, credential=name, result="hit")
        cache.add(c.misses, credential=name, result="miss")
        renewals.add(c.renewals, credential=name)
        retries.add(c.retries, credential=name)
        for code, count in sorted(c.failures.items()):
            failures.add(count, credential=name, code=code)
        label = f'credential="{_escape(name)}"'
        for bound, count in zip(FETCH_BUCKETS, c.buckets, strict=True):
            lines.append(f'warden_client_token_fetch_seconds_bucket{{{label},le="{bound}"}} {count}')
        lines.append(f'warden_client_token_fetch_seconds_bucket{{{label},le="+Inf"}} {c.fetch_count}')
        lines.append(f"warden_client_token_fetch_seconds_sum{{{label}}} {_number(c.fetch_sum)}")
        lines.append(f"warden_client_token_fetch_seconds_count{{{label}}} {c.fetch_count}")
    return render_metrics([cache, renewals, retries, failures]) + "\n".join(lines) + "\n"


# Per credential: (name, help, value), in the order they are rendered.
_CREDENTIAL_COUNTERS: tuple[tuple[str, str, Callable[[ManagedCredential, TokenStats], float]], ...] = (
    ("warden_agent_cache_hits_total", "Token requests answered from the cache.", lambda c, s: c.hits),
    ("warden_agent_cache_misses_total", "Token requests that had to wait for the authorization server.",
     lambda c, s: c.misses),
    ("warden_agent_token_requests_total", "HTTP requests sent to the authorization server.",
     lambda c, s: s.requests),
    ("warden_agent_tokens_fetched_total", "Tokens obtained.", lambda c, s: s.tokens),
    ("warden_agent_token_renewals_total", "Tokens obtained to replace an earlier token.", lambda c, s: s.renewals),
    ("warden_agent_token_failures_total", "Failed attempts to obtain a token.", lambda c, s: s.failures),
    ("warden_agent_credential_reloads_total", "Credentials rebuilt after their secret or key file changed.",
     lambda c, s: c.reloads),
)


def render_agent_metrics(
    credentials: Iterable[ManagedCredential], http_requests: Mapping[tuple[str, int], int],
    client_counters: Mapping[str, ClientCounters] | None = None,
) -> str:
    """The agent's metrics: per credential, plus HTTP requests served by path and status."""
    counters = [(MetricFamily(name, "counter", text), value) for name, text, value in _CREDENTIAL_COUNTERS]
    expiry = MetricFamily(
        "warden_agent_token_expiry_seconds", "gauge", "Seconds until each cached token expires."
    )
    http = MetricFamily("warden_agent_http_requests_total", "counter", "Requests served, by path and status.")
    for cred in credentials:
        stats = cred.stats()
        for family, value in counters:
            family.add(value(cred, stats), credential=cred.name)
        for entry in cred.source.cache_entries():
            expiry.add(
                round(entry.expires_in, 3),
                credential=cred.name,
                audience=entry.audience or "",
                scope=" ".join(entry.scope),
            )
    for (path, status), count in sorted(http_requests.items()):
        http.add(count, path=path, status=str(status))
    return (render_metrics([*(family for family, _ in counters), expiry, http])
            + _client_families(client_counters or {}))
