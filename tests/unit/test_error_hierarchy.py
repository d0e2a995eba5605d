"""`NotFound` and `Conflict` describe the request, not the store: they never answer 503."""

from __future__ import annotations

import asyncio

import pytest

from warden.errors import Conflict, NotFound, StorageError, WardenError
from warden.server import app as app_module
from warden.server.http import Request
from warden.server.metrics import Metrics


def test_not_found_and_conflict_are_not_storage_failures():
    for error in (NotFound, Conflict):
        assert issubclass(error, WardenError) and not issubclass(error, StorageError)


@pytest.mark.parametrize(("error", "status"), [(NotFound("gone"), 404), (Conflict("taken"), 409),
                                               (StorageError("down"), 503)])
def test_errors_escaping_an_endpoint_render_by_what_they_mean(monkeypatch: pytest.MonkeyPatch,
                                                             error: Exception, status: int):
    async def endpoint(request: Request, runtime: object) -> object:
        raise error

    monkeypatch.setitem(app_module.ROUTES, "/oauth2/token", (endpoint, True))
    app = object.__new__(app_module.WardenApp)
    app.runtime = None  # type: ignore[assignment]
    app._count_http = Metrics().http
    app._tracer = None
    request = Request.from_pairs("POST", "/oauth2/token", b"", [], "127.0.0.1")
    response = asyncio.run(app.respond(request))
    assert response.status == status
