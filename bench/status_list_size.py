"""How big a Token Status List is on the wire: the Status List Token's `lst` for lists of Warden's
default size (2^20 entries) and for one list covering a whole day at 1,000 tokens/s (86.4 million
entries), with no revocations, 0.1 % of tokens revoked one by one, and 100 clients revoked whole
(blocks of 4,096, as busy clients get).

Usage: python bench/status_list_size.py
"""

from __future__ import annotations

import random
import time

from warden.protocol.status_list import INVALID, StatusList


def size_of(entries: int, singles: float, client_blocks: int, seed: int = 1) -> tuple[int, float]:
    rng = random.Random(seed)
    lst = StatusList(entries)
    for _ in range(int(entries * singles)):
        lst[rng.randrange(entries)] = INVALID
    for _ in range(client_blocks):
        start = rng.randrange(0, entries - 4096) // 4096 * 4096
        lst.set_range(start, 4096, INVALID)
    started = time.perf_counter()
    encoded = lst.encode()["lst"]
    return len(encoded), time.perf_counter() - started


def main() -> int:
    print(f"{'entries':>11} {'revoked':>22} {'lst bytes':>10} {'raw bytes':>10} {'encode s':>9}")
    for entries in (1 << 20, 86_400_000):
        for label, singles, blocks in (("none", 0.0, 0), ("0.1% singly", 0.001, 0), ("100 clients whole", 0.0, 100)):
            size, seconds = size_of(entries, singles, blocks)
            print(f"{entries:>11,} {label:>22} {size:>10,} {entries // 8:>10,} {seconds:>9.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
