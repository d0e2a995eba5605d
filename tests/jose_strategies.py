"""Hypothesis strategies for JOSE input of every JSON type (issue 8 #5), shared by the property
tests of every JOSE entry point (tests/unit/test_jose_entry_points.py) and the HTTP fuzz run
(tests/integration/test_fuzz_endpoints.py).

A header or claims set starts from a valid one and has some members replaced by a value of any
JSON type (null, bool, int including integers too large for a float, float, string, array,
object) or removed, so the mutated member is reached by the checks after it: a `typ` of the
wrong type must get past parsing, an `exp` of 10**400 past the signature.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from hypothesis import strategies as st

from warden.jose import PrivateKey, encode_header, sign_compact

__all__ = ["DROP", "HUGE_INTS", "json_scalars", "json_values", "mutated", "signed"]

DROP: Any = object()  # a member to remove

# Integers that do not fit a float (10**400 raised OverflowError) and ones at its edges.
HUGE_INTS = st.sampled_from([10**400, -(10**400), 2**1024, 2**53 + 1, 2**63, -(2**63), 10**20, 253_402_300_800])

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | HUGE_INTS
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([1e300, -1e300, 5e-324, 0.5, -0.0])
    | st.text(max_size=12)
)
# Containers as often as scalars, and the values that broke things (huge integers, a list or an
# object where a string is due) often enough to be met in a hundred examples.
json_values = (
    HUGE_INTS
    | st.sampled_from([[], {}, ["JWT"], {"typ": "JWT"}, [[]], True, None, ""])
    | st.recursive(json_scalars,
                   lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children,
                                                                                       max_size=3),
                   max_leaves=6)
)


def mutated(base: Mapping[str, Any], extra: Sequence[str] = (), *, unchanged: bool = False
            ) -> st.SearchStrategy[dict[str, Any]]:
    """`base` with one or two of its members (or of `extra`) replaced by any JSON value or removed;
    with `unchanged`, also `base` itself (so that the other part of a token is often valid)."""
    names = sorted(set(base) | set(extra))

    def apply(changes: dict[str, Any]) -> dict[str, Any]:
        out = {**base, **changes}
        return {k: v for k, v in out.items() if v is not DROP}

    changed = st.dictionaries(st.sampled_from(names), json_values | st.just(DROP), min_size=1,
                           max_size=min(2, len(names))).map(apply)
    return (st.just(dict(base)) | changed) if unchanged else changed


def signed(header: Mapping[str, Any], claims: Mapping[str, Any], key: PrivateKey, alg: str) -> str:
    """A compact JWS of `claims` under `header` (as given, whatever its types), signed with `key`."""
    return sign_compact(encode_header(header), json.dumps(claims).encode(), key, alg)
