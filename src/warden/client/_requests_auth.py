"""`requests` adapter for `ClientCredentials` (RFC 6750 §2.1, §3.1; RFC 9449 §7.1, §9).

Imported only by `ClientCredentials.requests_auth()`, so `requests` is needed
only by those who use it. On a 401 whose challenge says `invalid_token`, a
fresh token is fetched once and the request is resent on the same connection,
the way `requests.auth.HTTPDigestAuth` resends; a DPoP `use_dpop_nonce`
challenge is answered once with the server's nonce. `requests` itself strips
`Authorization` when a redirect leaves the host (T64).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from requests.auth import AuthBase
from requests.cookies import extract_cookies_to_jar
from requests.models import PreparedRequest, Response

from warden.client._request import CacheKey

if TYPE_CHECKING:
    from warden.client._access_token import AccessToken
    from warden.client._resource_auth import KeyedTokens, ResourceAuth

__all__ = ["RequestsAuth"]

_MAX_RESENDS = 2  # one fresh token plus one DPoP nonce, at most


class RequestsAuth(AuthBase):
    """Adds the token of one cache key to `requests` requests."""

    def __init__(self, tokens: KeyedTokens, presenter: ResourceAuth, key: CacheKey, owner: str) -> None:
        self._tokens = tokens
        self._presenter = presenter
        self._key = key
        self._owner = owner

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        url = str(request.url)
        self._presenter.check_origin(url)
        token = self._tokens.get(self._key)
        request.headers.update(self._presenter.headers(str(request.method), url, token))
        done: set[str] = set()

        def on_response(response: Response, **kwargs: Any) -> Response:
            return self._handle(response, token, done, kwargs)

        request.register_hook("response", on_response)
        return request

    def _handle(
        self, response: Response, token: AccessToken, done: set[str], send_kwargs: dict[str, Any]
    ) -> Response:
        for _ in range(_MAX_RESENDS):
            prepared = response.request
            url = str(prepared.url)
            action = self._presenter.retry_action(
                url,
                response.status_code,
                [response.headers.get("www-authenticate", "")],
                response.headers.get("dpop-nonce"),
                token,
                done,
            )
            if action is None:
                return response
            if action == "token":
                self._tokens.discard(self._key, token)
                token = self._tokens.get(self._key)
            response.content  # noqa: B018 - drain, so the connection can be reused for the resend
            response.close()
            resend = prepared.copy()
            resend.hooks = {"response": []}  # this handler drives any further resend itself
            jar: Any = resend._cookies
            extract_cookies_to_jar(jar, prepared, response.raw)
            resend.prepare_cookies(jar)
            resend.headers.update(self._presenter.headers(str(resend.method), url, token))
            retried = response.connection.send(resend, **send_kwargs)
            retried.history.append(response)
            retried.request = resend
            response = retried
        return response

    def __repr__(self) -> str:
        return f"<requests auth for {self._owner}>"
