"""`make bench`: every benchmark, one after the other, results under bench/results/.

    .venv/bin/python bench/run.py [--quick]

--quick shortens each run (3 s) and the registry to 20,000 clients, for a smoke check;
the README figures come from a full run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    issuance = [sys.executable, str(HERE / "issuance.py")]
    if args.quick:
        issuance += ["--duration", "3", "--clients", "20000", "--spread", "5000"]
    steps = [issuance]
    steps.append([sys.executable, str(HERE / "validate.py")] + (["--rounds", "5"] if args.quick else []))
    # the herd against a real `warden serve`, counting token requests at the server
    steps.append([sys.executable, str(HERE / "herd.py"), "--warden"])
    failed = 0
    for argv in steps:
        print(f"\n== {Path(argv[1]).name}", flush=True)
        failed |= subprocess.run(argv).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
