"""What signing an access token costs with keys in a PKCS#11 token, against keys in the database.

Makes a private SoftHSM2 token in a temporary directory, creates one key per algorithm in each
backend (`services.key_backends.DatabaseKeys` and `services.pkcs11_keys.Pkcs11Keys`), and signs a
typical access-token payload with the signer the server uses (`keyring.Signer.compact.sign`: JWS
signing input, signature, base64url), in interleaved rounds (database, pkcs11, database, ...) so
both see the same machine. Reports the median time per token of each and their ratio, and
writes bench/results/hsm_sign.json.

Usage: nice python bench/hsm_sign.py [--rounds 15] [--tokens 200]
Needs softhsm2 (apt-get install softhsm2) and the hsm extra.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODULES = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
           "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so")
PAYLOAD = json.dumps({"iss": "https://auth.example.com", "sub": "billing-7f3a", "client_id": "billing-7f3a",
                      "aud": "https://orders.example.com", "scope": "orders:read orders:write",
                      "iat": 1764700000, "exp": 1764700900, "jti": "Yq3Qe0fJ6v3WcT1mH8sXzKpA",
                      "status": {"status_list": {"idx": 4711, "uri": "https://auth.example.com/status/1"}}},
                     separators=(",", ":")).encode()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--tokens", type=int, default=200, help="tokens signed per backend per round")
    args = parser.parse_args()
    module = next((m for m in MODULES if os.path.exists(m)), None)
    if shutil.which("softhsm2-util") is None or module is None:
        print("softhsm2 is not installed (apt-get install softhsm2)", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="warden-hsm-bench-"))
    try:
        (root / "tokens").mkdir()
        conf = root / "softhsm2.conf"
        conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
        os.environ["SOFTHSM2_CONF"] = str(conf)
        subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "bench", "--pin", "1234",
                        "--so-pin", "5678"], check=True, capture_output=True)
        return run(module, args.rounds, args.tokens)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run(module: str, rounds: int, tokens: int) -> int:
    from warden.jose import encode_header
    from warden.secret import Secret
    from warden.services.kek import KeyMaterial
    from warden.services.key_backends import DatabaseKeys
    from warden.services.keyring import Signer
    from warden.services.pkcs11_keys import Pkcs11Keys
    from warden.settings import Pkcs11Settings

    database = DatabaseKeys(KeyMaterial.from_kek(os.urandom(32)))
    pkcs11 = Pkcs11Keys(Pkcs11Settings(module=module, token_label="bench", pin=Secret("1234")))
    results: dict[str, dict[str, float]] = {}
    print(f"{'alg':>6} {'database us/token':>18} {'pkcs11 us/token':>16} {'ratio':>7}")
    for alg in ("ES256", "RS256", "EdDSA"):
        signers = {}
        for backend in (database, pkcs11):
            kid = f"{alg.lower()}-bench-{backend.name}"
            made = backend.generate(kid, alg)
            header = encode_header({"alg": alg, "typ": "at+jwt", "kid": kid})
            signers[backend.name] = Signer(kid, alg, backend.sign(kid, alg, made.ref), header)
        times: dict[str, list[float]] = {"database": [], "pkcs11": []}
        for name, signer in signers.items():  # warm-up
            for _ in range(20):
                signer.compact.sign(PAYLOAD)
        for _ in range(rounds):
            for name, signer in signers.items():
                sign = signer.compact.sign
                started = time.perf_counter()
                for _ in range(tokens):
                    sign(PAYLOAD)
                times[name].append((time.perf_counter() - started) / tokens * 1e6)
        db, hsm = statistics.median(times["database"]), statistics.median(times["pkcs11"])
        results[alg] = {"database_us": round(db, 1), "pkcs11_us": round(hsm, 1), "ratio": round(hsm / db, 2)}
        print(f"{alg:>6} {db:>18.1f} {hsm:>16.1f} {hsm / db:>6.2f}x")
    out = HERE / "results" / "hsm_sign.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"module": module, "rounds": rounds, "tokens_per_round": tokens,
                               "median_us_per_token": results}, indent=2) + "\n")
    print(f"wrote {out.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
