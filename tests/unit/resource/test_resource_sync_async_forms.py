"""`validate` and `avalidate` take one list of keywords, with one set of defaults (issue 9: one flow,
two drivers), and refuse an unknown keyword rather than ignoring it (a misspelt `scope=` must never
skip the scope check)."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest
from resource_helpers import FakeIssuer

from warden.protocol.errors import InsufficientScope
from warden.resource import Validator
from warden.resource.validator import _DEFAULTS, _Presentation


def test_async_keywords_are_the_sync_ones_in_order() -> None:
    check_use = list(inspect.signature(Validator._check_use).parameters)[3:]  # after self, entry, token
    assert list(_DEFAULTS) == list(_Presentation.__annotations__) == check_use
    assert _DEFAULTS["scheme"] == "Bearer" and tuple(_DEFAULTS["scopes"]) == ()


def test_both_forms_refuse_an_unknown_keyword(validator: Validator, issuer: FakeIssuer) -> None:
    token = issuer.mint()
    typo: dict[str, Any] = {"scope": ["admin"]}
    with pytest.raises(TypeError):
        validator.validate(token, **typo)
    with pytest.raises(TypeError, match="scope"):
        asyncio.run(validator.avalidate(token, **typo))


def test_both_forms_apply_the_same_defaults_and_keywords(validator: Validator, issuer: FakeIssuer) -> None:
    token = issuer.mint()
    assert asyncio.run(validator.avalidate(token)).jti == validator.validate(token).jti
    for form in (lambda: validator.validate(token, scopes=["admin"]),
                 lambda: asyncio.run(validator.avalidate(token, scopes=["admin"]))):
        with pytest.raises(InsufficientScope):
            form()
