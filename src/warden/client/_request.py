"""Building the client credentials token request (RFC 6749 §4.4.2, RFC 8707 §2, RFC 9449 §5), and the
token exchange request (RFC 8693 §2.1).

The form carries `grant_type=client_credentials`, the requested `scope` (space
separated, sorted so that equal scope sets give equal requests) and the
audience as the RFC 8707 `resource` parameter. Client authentication comes from
the method registry; a DPoP proof is added when the client is sender-constrained,
with the server's latest `DPoP-Nonce` (§8).
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from warden import __version__
from warden.client._client_auth import ClientAuthentication
from warden.client._dpop import DPoPKey
from warden.client._messages import HTTPRequest, HTTPResponse

__all__ = ["ACCESS_TOKEN_TYPE", "TOKEN_EXCHANGE", "USER_AGENT", "CacheKey", "TokenRequestFactory"]

CacheKey = tuple[str | None, frozenset[str]]
USER_AGENT = f"warden-client/{__version__}"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # RFC 8693 §2.1
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # RFC 8693 §3


class TokenRequestFactory:
    """Makes token requests for one client; remembers the authorization server's DPoP nonce."""

    def __init__(
        self,
        auth: ClientAuthentication,
        *,
        dpop_key: DPoPKey | None = None,
        wall_clock: Callable[[], float],
    ) -> None:
        self.auth = auth
        self.dpop_key = dpop_key
        self._wall_clock = wall_clock
        self.dpop_nonce: str | None = None

    def build(self, token_endpoint: str, key: CacheKey) -> HTTPRequest:
        """The POST to `token_endpoint` for the audience and scope set in `key`."""
        audience, scopes = key
        form: list[tuple[str, str]] = [("grant_type", "client_credentials")]
        if scopes:
            form.append(("scope", " ".join(sorted(scopes))))
        if audience is not None:
            form.append(("resource", audience))  # RFC 8707 §2
        return self._request(token_endpoint, form)

    def build_exchange(self, token_endpoint: str, subject_token: str, subject_token_type: str,
                       key: CacheKey) -> HTTPRequest:
        """The token exchange POST (RFC 8693 §2.1) of `subject_token` for the audience and scope set in `key`."""
        audience, scopes = key
        form: list[tuple[str, str]] = [("grant_type", TOKEN_EXCHANGE), ("subject_token", subject_token),
                                       ("subject_token_type", subject_token_type)]
        if scopes:
            form.append(("scope", " ".join(sorted(scopes))))
        if audience is not None:
            form.append(("resource", audience))
        return self._request(token_endpoint, form)

    def _request(self, token_endpoint: str, form: list[tuple[str, str]]) -> HTTPRequest:
        headers: list[tuple[str, str]] = [
            ("content-type", "application/x-www-form-urlencoded"),
            ("accept", "application/json"),
            ("user-agent", USER_AGENT),
        ]
        self.auth.apply(headers, form, now=self._wall_clock())
        if self.dpop_key is not None:
            headers.append(("dpop", self.dpop_key.proof("POST", token_endpoint, nonce=self.dpop_nonce)))
        return HTTPRequest("POST", token_endpoint, tuple(headers), urlencode(form).encode("ascii"))

    def note_response(self, response: HTTPResponse) -> bool:
        """Keep a new `DPoP-Nonce` from any answer (RFC 9449 §8); True if it changed."""
        nonce = response.header("dpop-nonce")
        if self.dpop_key is None or not nonce or nonce == self.dpop_nonce or len(nonce) > 512:
            return False
        self.dpop_nonce = nonce
        return True
