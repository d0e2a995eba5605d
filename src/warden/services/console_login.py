"""Sign-in to the web console: one-time login URLs and the sessions they open.

`warden console login-url` (or `POST /admin/v1/console/login-urls`) mints a login URL
`<issuer>/console/login?t=<ticket>`. The ticket is a short-lived value MACed with a key
derived from the KEK, so every server process and the local CLI agree on it without a
table of their own; opening it spends its nonce through the store's single-use records
(`Store.use_assertion`, shared by every process and node), so the same URL never works
twice. The session it opens is a cookie MACed with another derived key, carrying the
session id, the operator (the actor who minted the URL), whether it may write, and its
expiry; the CSRF token the console's JavaScript sends back is a MAC of the session id,
so it is bound to the one session and useless without its cookie.

Neither a ticket nor a cookie is ever logged or audited; audit events name the session
by its id.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from urllib.parse import quote

from warden.core.clock import Clock
from warden.services.kek import KeyMaterial

__all__ = ["ConsoleLogins", "ConsoleSession", "LoginUrl"]

_TICKET_PREFIX = "wcl_"  # recognisable by leak scanners, like client secrets
_MAX_TOKEN = 1024


@dataclass(frozen=True)
class LoginUrl:
    url: str
    expires_at: float

    def __repr__(self) -> str:
        return f"LoginUrl(expires_at={self.expires_at})"


@dataclass(frozen=True)
class ConsoleSession:
    session_id: str
    operator: str  # the actor who minted the login URL, e.g. cli:alice or client:ops
    can_write: bool
    expires_at: float

    @property
    def actor(self) -> str:
        """How audit events name this session's changes."""
        return f"console:{self.operator}#{self.session_id}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class ConsoleLogins:
    """Mints and checks login tickets, session cookies and CSRF tokens."""

    def __init__(self, material: KeyMaterial, clock: Clock, issuer: str, *, login_url_lifetime: int = 300,
                 session_lifetime: int = 3600) -> None:
        self._ticket_key = material.derive(b"warden/v1/console-login")
        self._session_key = material.derive(b"warden/v1/console-session")
        self._csrf_key = material.derive(b"warden/v1/console-csrf")
        self._clock = clock
        self.issuer = issuer
        self.login_url_lifetime = login_url_lifetime
        self.session_lifetime = session_lifetime

    # signed values ----------------------------------------------------------------
    @staticmethod
    def _seal(key: bytes, claims: dict[str, object]) -> str:
        body = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
        return body + "." + _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())

    def _open(self, key: bytes, token: str) -> dict[str, object] | None:
        if len(token) > _MAX_TOKEN or token.count(".") != 1:
            return None
        body, _, mac = token.partition(".")
        expected = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(mac.encode(), expected.encode()):
            return None
        try:
            claims = json.loads(_unb64(body))
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(claims, dict) or not isinstance(claims.get("exp"), int | float):
            return None
        if claims["exp"] <= self._clock.now():
            return None
        return claims

    # login URLs -----------------------------------------------------------------------
    def issue_login_url(self, operator: str, *, can_write: bool = True) -> LoginUrl:
        """A one-time URL that signs `operator` in; it expires after `login_url_lifetime`."""
        exp = self._clock.now() + self.login_url_lifetime
        ticket = _TICKET_PREFIX + self._seal(self._ticket_key, {
            "n": secrets.token_urlsafe(16), "op": operator, "w": can_write, "exp": exp})
        return LoginUrl(f"{self.issuer}/console/login?t={quote(ticket, safe='')}", exp)

    def parse_ticket(self, ticket: str) -> tuple[str, float, str, bool] | None:
        """(nonce, exp, operator, can_write) of a valid, unexpired ticket; the caller spends the nonce once."""
        if not ticket.startswith(_TICKET_PREFIX):
            return None
        claims = self._open(self._ticket_key, ticket[len(_TICKET_PREFIX):])
        if claims is None or not isinstance(claims.get("n"), str) or not isinstance(claims.get("op"), str):
            return None
        return str(claims["n"]), float(claims["exp"]), str(claims["op"]), claims.get("w") is True  # type: ignore[arg-type]

    # sessions ----------------------------------------------------------------------------
    def open_session(self, operator: str, can_write: bool) -> tuple[ConsoleSession, str]:
        """A new session and its cookie value."""
        session = ConsoleSession(secrets.token_hex(8), operator, can_write,
                                 self._clock.now() + self.session_lifetime)
        cookie = self._seal(self._session_key, {"sid": session.session_id, "op": operator, "w": can_write,
                                                "exp": session.expires_at})
        return session, cookie

    def load_session(self, cookie: str) -> ConsoleSession | None:
        claims = self._open(self._session_key, cookie)
        if claims is None or not isinstance(claims.get("sid"), str) or not isinstance(claims.get("op"), str):
            return None
        return ConsoleSession(str(claims["sid"]), str(claims["op"]), claims.get("w") is True,
                              float(claims["exp"]))  # type: ignore[arg-type]

    def csrf_token(self, session: ConsoleSession) -> str:
        return _b64(hmac.new(self._csrf_key, session.session_id.encode(), hashlib.sha256).digest())

    def is_csrf_valid(self, session: ConsoleSession, token: str) -> bool:
        return hmac.compare_digest(token.encode(), self.csrf_token(session).encode())
