"""`python tests/faults/skewed_warden.py OFFSET ARGS...`: Warden's CLI in a process whose wall clock
reads OFFSET seconds off, as on a host whose clock drifted (the fault suite's clock-skew tests).

`time.time` and `time.time_ns` are shifted before Warden is imported, so every reading of the wall
clock in the process (the `SystemClock` seam, the store's timestamps, log lines) agrees on the skew;
monotonic time is left alone, as a drifted host's is. Test-only: nothing in Warden reads a clock
offset setting.
"""

from __future__ import annotations

import sys
import time

_offset = float(sys.argv[1])
_time, _time_ns = time.time, time.time_ns
time.time = lambda: _time() + _offset
time.time_ns = lambda: _time_ns() + int(_offset * 1e9)

from warden.cli.main import main  # noqa: E402 (after the clock is shifted)

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[2:]))
