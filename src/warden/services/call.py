"""What the token, introspection and revocation steps work on: one authenticated call.

The HTTP layer fills the inputs (the parsed form, the credentials and proofs the request carries,
who sent it, when); the steps fill the rest as they run. Nothing here knows about HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from cryptography import x509

from warden.core.revocation import StatusEntry
from warden.protocol.client_auth import PresentedCredentials
from warden.protocol.client_credentials import TokenRequest
from warden.protocol.dpop import VerifiedProof
from warden.protocol.form import Form
from warden.protocol.revocation import TokenReference
from warden.protocol.token_exchange import TokenExchangeRequest
from warden.protocol.transaction_tokens import TransactionTokenRequest
from warden.services.auth_throttle import ANONYMOUS
from warden.services.registry import ClientEntry, Registry
from warden.services.tokens import IssuedToken
from warden.storage.contract import Store

__all__ = ["Call", "DPoPInput", "ServingState"]


class ServingState(Protocol):
    """The parts of a running server the steps read: its registry and store, once loaded."""

    @property
    def registry(self) -> Registry: ...

    def is_serving(self) -> bool: ...

    def current_store(self) -> Store: ...


@dataclass(frozen=True, slots=True)
class DPoPInput:
    """The request's DPoP header (RFC 9449 §4.3) and what the proof must be bound to."""

    proof: str
    repeated: bool
    method: str
    url: str


@dataclass(slots=True)  # not frozen: the steps fill it in; built on every token request
class Call:
    form: Form
    authorization: str | None
    authorization_repeated: bool
    query_names: list[str]
    source: str
    now: float
    certificate: x509.Certificate | None = None
    dpop: DPoPInput | None = None
    # filled in by the steps
    presented: PresentedCredentials | None = None
    identity: str = ANONYMOUS
    caller: ClientEntry | None = None
    token_request: TokenRequest | None = None
    exchange_request: TokenExchangeRequest | None = None  # token exchange: the request; `claims`: the subject's
    transaction_request: TransactionTokenRequest | None = None  # a Txn-Token request (a kind of token exchange)
    proof: VerifiedProof | None = None
    status: StatusEntry | None = None  # the token's Token Status List entry
    issued: IssuedToken | None = None
    decided: Any = None  # with tracing on: the policy step's decision, which the signing step signs
    token_reference: TokenReference | None = None  # introspection and revocation: the token named
    claims: dict[str, Any] | None = None  # ... and its claims, if it is a valid Warden token
    token_state: str = "invalid"

    @property
    def authenticated(self) -> ClientEntry:
        """The authenticated caller; only for steps that run after authentication."""
        assert self.caller is not None, "step runs before authentication"
        return self.caller

    def __repr__(self) -> str:  # never the form: it may hold a secret, an assertion or a token
        return f"Call(source={self.source!r}, identity={self.identity!r})"
