"""Benchmark: access-token validation cost per algorithm.

For each of ES256, RS256, PS256 and EdDSA, on the same RFC 9068 token, this
measures in one interleaved run:

- bare:     `cryptography` signature verification alone (signature already in the
            form the library wants: DER for ECDSA), the floor for any validator;
- uncached: `warden.resource.Validator.validate` with the validation cache off
            (keys cached, as in steady state);
- cached:   `Validator.validate` on a token it has already validated;
- pyjwt:    `jwt.decode` with the same key, issuer, audience and required claims.

Each round runs every measurement once, in an order that rotates; the reported
figure is the median over rounds of the per-call time, in microseconds. Results
are printed as a table and written to bench/results/validate.json.

Usage: python bench/validate.py [--rounds N] [--calls N]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import jwt as pyjwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from warden.jose import encode_header, generate_private_key, public_jwk, sign_compact
from warden.jose._b64 import b64url_decode
from warden.protocol.status_list import StatusList, status_list_claims
from warden.resource import StatusPolicy, Validator

ISSUER = "https://issuer.bench.example"
AUDIENCE = "https://api.bench.example"
ALGORITHMS = ("ES256", "RS256", "PS256", "EdDSA")
RESULTS = Path(__file__).resolve().parent / "results" / "validate.json"


def _bare_verifier(alg: str, key: object, token: str) -> Callable[[], None]:
    """The bare `cryptography` call, with every argument prepared outside the timing."""
    head, payload, signature_b64 = token.encode("ascii").split(b".")
    signing_input = head + b"." + payload
    signature = b64url_decode(signature_b64)
    public = key.public_key()  # type: ignore[attr-defined]
    if alg == "ES256":
        der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
        ecdsa = ec.ECDSA(hashes.SHA256())
        return lambda: public.verify(der, signing_input, ecdsa)
    if alg == "RS256":
        pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()
        return lambda: public.verify(signature, signing_input, pkcs1, sha256)
    if alg == "PS256":
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        sha256 = hashes.SHA256()
        return lambda: public.verify(signature, signing_input, pss, sha256)
    return lambda: public.verify(signature, signing_input)


def _per_call(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=400, help="calls per measurement per round")
    args = parser.parse_args()

    keys = {alg: generate_private_key(alg) for alg in ALGORITHMS}
    jwks = {"keys": [public_jwk(key, kid=f"k-{alg}", alg=alg) for alg, key in keys.items()]}

    now = int(time.time())
    status_uri = f"{ISSUER}/status/1"
    status_token = sign_compact(
        encode_header({"typ": "statuslist+jwt", "alg": "ES256", "kid": "k-ES256"}),
        json.dumps(status_list_claims(status_uri, now, now + 3600, 3600, StatusList(1 << 20))).encode(),
        keys["ES256"], "ES256")

    def issuer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/status/1":
            return httpx.Response(200, content=status_token.encode(),
                                  headers={"content-type": "application/statuslist+jwt"})
        if request.url.path == "/.well-known/oauth-authorization-server":
            return httpx.Response(200, json={"issuer": ISSUER, "jwks_uri": f"{ISSUER}/jwks"})
        return httpx.Response(200, json=jwks, headers={"cache-control": "max-age=600"})

    http = httpx.Client(transport=httpx.MockTransport(issuer))
    cached = Validator(ISSUER, AUDIENCE, http_client=http,
                       status_policy=StatusPolicy(min_ttl=3600, max_ttl=3600))
    uncached = Validator(ISSUER, AUDIENCE, jwks=cached.jwks, cache_size=0)

    cases: dict[str, dict[str, Callable[[], object]]] = {}
    for alg, key in keys.items():
        claims = {
            "iss": ISSUER, "sub": "svc-bench", "client_id": "svc-bench", "aud": AUDIENCE,
            "scope": "read write", "iat": now, "exp": now + 3600, "jti": uuid.uuid4().hex,
        }
        header = encode_header({"typ": "at+jwt", "alg": alg, "kid": f"k-{alg}"})
        token = sign_compact(header, json.dumps(claims, separators=(",", ":")).encode(), key, alg)
        cached.validate(token, scopes=["read"])
        uncached.validate(token, scopes=["read"])
        pyjwt_key = pyjwt.PyJWK(public_jwk(key, alg=alg))
        options = {"require": ["exp", "iat", "iss", "aud", "sub", "jti"]}

        def run_pyjwt(token: str = token, pyjwt_key: pyjwt.PyJWK = pyjwt_key, alg: str = alg,
                      options: dict[str, list[str]] = options) -> object:
            return pyjwt.decode(token, pyjwt_key, algorithms=[alg], audience=AUDIENCE, issuer=ISSUER,
                                options=options)  # type: ignore[arg-type]

        run_pyjwt()
        cases[alg] = {
            "bare": _bare_verifier(alg, key, token),
            "uncached": lambda token=token: uncached.validate(token, scopes=["read"]),
            "cached": lambda token=token: cached.validate(token, scopes=["read"]),
            "pyjwt": run_pyjwt,
        }
        if alg == "ES256":  # the same token with a Token Status List entry: what the status check adds
            with_status = sign_compact(header, json.dumps(
                {**claims, "jti": uuid.uuid4().hex, "status": {"status_list": {"idx": 4242, "uri": status_uri}}},
                separators=(",", ":")).encode(), key, alg)
            cached.validate(with_status, scopes=["read"])
            cases[alg]["cached_status"] = lambda token=with_status: cached.validate(token, scopes=["read"])

    samples: dict[str, dict[str, list[float]]] = {alg: {name: [] for name in fns} for alg, fns in cases.items()}
    order = [(alg, name) for alg, fns in cases.items() for name in fns]
    for alg, name in order:  # warm-up
        _per_call(cases[alg][name], args.calls // 4 or 1)
    for round_ in range(args.rounds):
        shift = round_ % len(order)
        for alg, name in order[shift:] + order[:shift]:
            calls = args.calls * 20 if name.startswith("cached") else args.calls
            samples[alg][name].append(_per_call(cases[alg][name], calls))
    http.close()

    results = {}
    print(f"{'alg':<6} {'bare µs':>9} {'uncached':>9} {'cached':>8} {'pyjwt':>8}"
          f" {'unc/bare':>9} {'pyjwt/unc':>10}")
    for alg in ALGORITHMS:
        med = {name: statistics.median(values) for name, values in samples[alg].items()}
        row = {
            **{f"{name}_us": round(value, 3) for name, value in med.items()},
            "uncached_over_bare": round(med["uncached"] / med["bare"], 3),
            "pyjwt_over_uncached": round(med["pyjwt"] / med["uncached"], 3),
        }
        results[alg] = row
        print(f"{alg:<6} {med['bare']:>9.2f} {med['uncached']:>9.2f} {med['cached']:>8.2f} {med['pyjwt']:>8.2f}"
              f" {row['uncached_over_bare']:>8.3f}x {row['pyjwt_over_uncached']:>9.2f}x")

    es = results["ES256"]
    es["status_check_us"] = round(es["cached_status_us"] - es["cached_us"], 3)
    print(f"status check on a cached validation (ES256, cached with status - cached): {es['status_check_us']:.3f} µs")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "rounds": args.rounds,
        "calls": args.calls,
        "results": results,
    }, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
