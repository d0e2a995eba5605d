"""Tenant-scoped administration: what an admin caller with a tenant may see and change.

An admin caller is either global (no tenant: sees and changes everything, as before) or scoped to
one tenant T (its admin client has tenant T). A scoped caller:

- sees only clients of tenant T; every other client is absent from lists and, when named, is
  reported as not found, exactly as if it did not exist;
- sees shared APIs (no tenant) and tenant T's APIs, may create and change only tenant T's APIs,
  and may grant its clients only what it sees (another tenant's API is an unknown API to it);
- cannot put a client or an API into another tenant, or make one shared (refused: `Forbidden`);
- reads signing keys (their public metadata; keys sign for every tenant, so they are the global
  admins' to rotate) and revokes tokens by client only: a bare `jti` does not say whose token it
  is, and Warden writes the token's status-list entry into it, so a scoped caller could otherwise
  revoke another tenant's token.

The rule that holds for every caller: a client's grants name shared APIs or APIs of the client's
own tenant, so no grant, tenant move or API change ever lets a client obtain tokens for another
tenant's API. Pure rules, no I/O: `services.admin` applies them to what it loads.
"""

from __future__ import annotations

from dataclasses import dataclass

from warden.core.api import Api
from warden.core.client import Client

__all__ = ["AdminScope", "grant_crosses_tenant"]


@dataclass(frozen=True, slots=True)
class AdminScope:
    """The reach of one admin caller; `tenant` None is a global admin."""

    tenant: str | None = None

    @property
    def is_global(self) -> bool:
        return self.tenant is None

    def sees_client(self, client: Client) -> bool:
        return self.tenant is None or client.tenant == self.tenant

    def sees_api(self, api: Api) -> bool:
        return self.tenant is None or api.tenant is None or api.tenant == self.tenant

    def may_change_api(self, api: Api) -> bool:
        """A shared API is visible to every tenant but only a global admin changes it."""
        return self.tenant is None or api.tenant == self.tenant

    def may_assign(self, tenant: str | None) -> bool:
        """Whether this caller may put a client or an API into `tenant` (None: no tenant / shared)."""
        return self.tenant is None or tenant == self.tenant

    def default_tenant(self) -> str | None:
        """The tenant of what this caller creates without naming one."""
        return self.tenant


def grant_crosses_tenant(client_tenant: str | None, api: Api) -> bool:
    """True when granting `api` to a client of `client_tenant` would reach into another tenant."""
    return api.tenant is not None and api.tenant != client_tenant
