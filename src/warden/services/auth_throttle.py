"""The failed-authentication throttle: online guessing of client credentials (RFC 6749 §2.3.1, §10.10).

Two properties, and the rule that gives both:

(a) Guessing one client's credentials from one source stops after a budget. Failures are counted
    per (source address, claimed identity). Once that pair has spent its budget
    (`limits.failed_auth_per_minute`, refilling at that rate), a request from that source naming
    that identity is answered 429 `slow_down` *before its credentials are evaluated*. The right
    secret is refused too, and the answer does not depend on what was presented, so a spent budget
    is not an oracle: after the budget, a guess is not checked at all.
(b) A request whose authentication is correct is never refused because of failures of another
    identity. Another client at the same address (behind one NAT or proxy) has its own pair, so
    an attacker's failures there cost it nothing.

The claimed identity is the `client_id` the request names (HTTP Basic, the form, or with mutual
TLS), or, for a JWT assertion sent without `client_id`, the assertion's unverified `iss` and `sub`.
A request that claims no identity (no credentials, a malformed header or assertion) cannot
authenticate at all; its failures go to the source's anonymous bucket, which once spent refuses
only such requests.

What the throttle deliberately does not do: cap the total of failures per source across
identities. Doing so refuses correct credentials of other clients at that address, which (b)
forbids; and each guess at another identity is one guess at another secret (generated secrets carry
more than 190 bits), so spreading guesses over identities buys nothing. The identity counted is
the one claimed, known or not, so the answers for unknown clients and wrong secrets stay alike.

The budget lives behind the `RateLimiter` seam: per process, per server with `--workers N` (shared
memory), per cluster with `redis_url` (`warden.services.shared_state`). Limitations: a check and the failure it leads
to are not one atomic step, so requests racing on other workers can each be evaluated before any
of them is recorded; for secrets there is no await between them, so the overshoot is at most one
guess per worker. Behind a reverse proxy, `server.trusted_proxies` must be set, or every request
has the proxy's address and a client's budget is shared by everyone who names it.
"""

from __future__ import annotations

from warden.jose import JoseError, parse_compact
from warden.protocol.client_assertion import MAX_ASSERTION_BYTES
from warden.protocol.client_auth import PresentedCredentials
from warden.services.ratelimit import RateLimiter

__all__ = ["ANONYMOUS", "FailedAuthThrottle", "claimed_identity"]

ANONYMOUS = ""  # the identity of a request that claims none


def claimed_identity(presented: PresentedCredentials | None) -> str:
    """The identity a request claims (not yet authenticated), or ANONYMOUS if it claims none.

    Anything that yields ANONYMOUS here fails authentication too: the assertion is parsed the
    same way, and a `sub` that is not a non-empty string names no client.
    """
    if presented is None:
        return ANONYMOUS
    if presented.client_id:
        return presented.client_id
    if presented.assertion is None:
        return ANONYMOUS
    try:
        claims = parse_compact(presented.assertion, max_bytes=MAX_ASSERTION_BYTES).claims()
    except JoseError:
        return ANONYMOUS
    iss, sub = claims.get("iss"), claims.get("sub")
    if not isinstance(sub, str) or not sub:
        return ANONYMOUS
    # private_key_jwt has iss = sub = client_id: the same bucket as when client_id is sent
    return sub if iss == sub or not isinstance(iss, str) else f"{iss}\x00{sub}"


class FailedAuthThrottle:
    """Failure budgets per (source, claimed identity) on a `RateLimiter`."""

    def __init__(self, limiter: RateLimiter, per_minute: int) -> None:
        self._limiter = limiter
        self._burst = float(per_minute)
        self._rate = per_minute / 60.0

    @staticmethod
    def _key(source: str, identity: str) -> str:
        return f"auth\x00{source}\x00{identity}"

    def wait(self, source: str, identity: str, now: float) -> float:
        """0.0 if credentials naming `identity` from `source` may be evaluated, else seconds to wait."""
        return self._limiter.peek(self._key(source, identity), self._rate, self._burst, now)

    def record_failure(self, source: str, identity: str, now: float) -> None:
        self._limiter.take(self._key(source, identity), self._rate, self._burst, now)
