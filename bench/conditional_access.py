"""Micro-benchmark: what the conditional-access authentication step costs per token request.

Times `CallerAuthentication.enforce_client_conditions` for a client without conditions and for
one with a three-network allow-list (answers remembered per source and list), in-process.

    .venv/bin/python bench/conditional_access.py
"""

from __future__ import annotations

import timeit

from warden.core.client import Client
from warden.core.client_metadata import parse_client_metadata
from warden.protocol.form import parse_form
from warden.services.call import Call
from warden.services.caller_auth import CallerAuthentication
from warden.services.registry import ClientEntry


def main() -> int:
    call = Call(parse_form(b"grant_type=client_credentials"), None, False, [], "10.1.2.3", 0.0)
    step = CallerAuthentication.enforce_client_conditions
    cases = (("no conditions", {}),
             ("allow-list of 3 networks", {"allowed_ips": ["192.0.2.0/24", "2001:db8::/32", "10.0.0.0/8"]}))
    for label, metadata in cases:
        call.caller = ClientEntry(Client("c", "n", metadata=parse_client_metadata(metadata)), (), ())
        n = 200_000
        best = min(timeit.repeat(lambda: step(call), number=n, repeat=5)) / n
        print(f"{label:28s} {best * 1e9:7.0f} ns per request")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
