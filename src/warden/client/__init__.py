"""Warden client library: access tokens with the OAuth 2.0 client credentials grant (RFC 6749 §4.4).

    from warden.client import ClientCredentials
    cc = ClientCredentials(issuer="https://warden.example", client_id=cid, client_secret=secret,
                           audience="https://api.example", scope="read")
    token = cc.get_token()            # `await cc.aget_token()` in async code
    httpx.get(url, auth=cc)           # an httpx.Auth, sync and async
    requests.get(url, auth=cc.requests_auth())

Implements: RFC 8414 §3 discovery with issuer pinning; client authentication by
`client_secret_basic`/`client_secret_post` (RFC 6749 §2.3.1), `private_key_jwt`
(RFC 7523) and mutual TLS (RFC 8705); the RFC 8707 `resource` parameter;
DPoP-bound tokens (RFC 9449); bearer use and `invalid_token` challenges (RFC 6750);
finding the authorization server from a 401 that names protected resource metadata
(`discover_authorization_server`, RFC 9728).
Tokens are cached per (audience, scope set), renewed ahead of expiry at a
jittered point, fetched once for any number of concurrent callers, and retried
with capped, jittered exponential backoff that honours `Retry-After`.

Only the base install is needed (`cryptography`, `httpx`); `requests` is
imported only by `ClientCredentials.requests_auth()`.
"""

from warden.client._access_token import AccessToken
from warden.client._cache import CacheEntry, TokenStats
from warden.client._client_auth import CLIENT_AUTH_METHODS, AuthMethod
from warden.client._credentials import ClientCredentials
from warden.client._dpop import DPoPKey
from warden.client._errors import TokenError
from warden.client._flow import Clock, MonotonicClock, RefreshPolicy, RetryPolicy
from warden.client._keys import SigningKey
from warden.client._request import CacheKey
from warden.client._resource_discovery import (
    Discovery,
    ResourceMetadata,
    adiscover_authorization_server,
    discover_authorization_server,
)
from warden.secret import SECRET_ENV_VAR, Secret

__all__ = [
    "CLIENT_AUTH_METHODS",
    "SECRET_ENV_VAR",
    "AccessToken",
    "AuthMethod",
    "CacheEntry",
    "CacheKey",
    "ClientCredentials",
    "Clock",
    "DPoPKey",
    "Discovery",
    "MonotonicClock",
    "RefreshPolicy",
    "ResourceMetadata",
    "RetryPolicy",
    "Secret",
    "SigningKey",
    "TokenError",
    "TokenStats",
    "adiscover_authorization_server",
    "discover_authorization_server",
]
