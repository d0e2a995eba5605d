"""`python tests/faults/busy_warden.py ARGS...`: Warden's CLI, where SIGUSR1 sends a process into a
busy loop on its main thread (the thread of the event loop), as a bug that spins would. Test-only.

Workers of `warden serve --workers N` are started with multiprocessing's `spawn`, which imports
this file in every worker (as `__mp_main__`), so the handler is installed there too.
"""

from __future__ import annotations

import signal
import sys
import types


def _spin(signum: int, frame: types.FrameType | None) -> None:
    while True:  # never returns: the event loop stops turning, the process stays alive
        pass


signal.signal(signal.SIGUSR1, _spin)

if __name__ == "__main__":
    from warden.cli.main import main

    raise SystemExit(main(sys.argv[1:]))
