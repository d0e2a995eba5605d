"""Pre-fork supervision for `warden serve --workers N`: one listening socket, N worker processes.

The supervisor binds the socket (so a busy port is reported once, before any
worker starts) and spawns workers that all accept from it; the kernel hands
each connection to one of them. Workers are started with the `spawn` method, so
each builds its application from a clean interpreter, never from a copy of
the supervisor's state. A worker that dies is replaced (after a pause, so a
crashing worker cannot spin). SIGTERM or SIGINT asks every worker to drain and
waits for them; SIGHUP starts a fresh set of workers and, once they serve (their
application has started), drains the old ones, so no request waits on a restart.

Before the first worker starts, the supervisor creates the shared-memory tables of the
per-client rate limits and failed-authentication budgets (`SharedLimits`); every worker,
replacements and SIGHUP's fresh set included, attaches to the same tables, so each limit
holds once for the server rather than once per worker.

Workers do not outlive the supervisor, however it ends (SIGKILL included): on Linux each asks the
kernel for SIGTERM when its parent dies (prctl PR_SET_PDEATHSIG), and everywhere each watches the
pipe multiprocessing keeps open to its parent (`parent_process().sentinel`), which the kernel closes
when the supervisor dies. Either way the worker drains and, at most `_ORPHAN_GRACE` seconds later,
exits, so the port is free within 5 seconds.

A worker that stops answering is replaced: each worker's event loop stamps a heartbeat into shared
memory about four times per `server.heartbeat_timeout`; a serving worker whose stamp is older than
that (its loop is stuck in a busy loop, or the process is stopped) is killed with SIGKILL, logged,
counted in `warden_worker_replacements_total{cause="unresponsive"}`, and replaced at once.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from multiprocessing.process import BaseProcess
from multiprocessing.reduction import ForkingPickler
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event

from warden.secret import Secret
from warden.server.metrics import worker_replacements
from warden.server.worker import SharedLimits, run_worker
from warden.settings import Settings

__all__ = ["Supervisor"]


def _reduce_secret(secret: Secret) -> tuple[type[Secret], tuple[str]]:
    return Secret, (secret.reveal(),)


# Workers receive the settings through the spawn pipe, secrets (database URL, key-encryption key)
# included. Only multiprocessing's own pickler learns to carry a Secret: `pickle.dumps` still refuses,
# so a secret cannot end up in a cache, a log or a file by way of pickling.
ForkingPickler.register(Secret, _reduce_secret)

log = logging.getLogger("warden.server")

_RESTART_PAUSE = 1.0  # seconds between a worker's death and its replacement


_READY_TIMEOUT = 120.0  # how long SIGHUP waits for new workers to serve before draining the old ones
_ORPHAN_GRACE = 4.0  # seconds an orphaned worker may drain before it exits regardless
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_supervisor() -> None:
    """Make this worker stop when its supervisor dies, whatever the cause (see the module docstring)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        except (OSError, AttributeError):  # no usable libc: the pipe below still works
            pass
    parent = multiprocessing.parent_process()
    if parent is None:  # pragma: no cover - a spawned worker always has one
        return

    def watch() -> None:
        parent.join()  # returns once the pipe to the supervisor is closed: it has died
        log.warning("worker %d: supervisor %s is gone; stopping", os.getpid(), parent.pid)
        os.kill(os.getpid(), signal.SIGTERM)  # the usual drain (a no-op if PDEATHSIG already sent it)
        time.sleep(_ORPHAN_GRACE)
        os._exit(1)

    threading.Thread(target=watch, name="warden-supervisor-watch", daemon=True).start()


def _worker_main(settings: Settings, sock: socket.socket, serving: Event, shared: SharedLimits,
                 heartbeat: Synchronized[float]) -> None:
    _die_with_supervisor()

    def beat() -> None:
        heartbeat.value = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process of the machine

    raise SystemExit(run_worker(settings, sock, on_serving=serving.set, shared=shared,
                                heartbeat=beat if settings.server.heartbeat_timeout > 0 else None))


class Supervisor:
    def __init__(self, settings: Settings, sock: socket.socket) -> None:
        self._settings = settings
        self._sock = sock
        self._context = multiprocessing.get_context("spawn")
        self._shared = SharedLimits.create(self._context)  # before any worker: all of them attach to it
        self._workers: list[BaseProcess] = []
        self._serving: dict[int, Event] = {}  # id(process) -> set once that worker accepts connections
        self._heartbeats: dict[int, Synchronized[float]] = {}  # id(process) -> its loop's last beat (monotonic)
        self._signals: list[int] = []
        self._replacements = worker_replacements()

    def _spawn(self) -> BaseProcess:
        serving = self._context.Event()
        heartbeat = self._context.Value("d", 0.0, lock=False)
        process = self._context.Process(target=_worker_main, daemon=False,
                                        args=(self._settings, self._sock, serving, self._shared, heartbeat))
        process.start()
        self._serving[id(process)] = serving
        self._heartbeats[id(process)] = heartbeat
        log.info("started worker %s", process.pid)
        return process

    def _forget(self, process: BaseProcess) -> None:
        self._serving.pop(id(process), None)
        self._heartbeats.pop(id(process), None)

    def _silent_for(self, process: BaseProcess) -> float:
        """Seconds since a serving worker's last heartbeat (0 before its first)."""
        heartbeat = self._heartbeats.get(id(process))
        last = heartbeat.value if heartbeat is not None else 0.0
        return time.monotonic() - last if last else 0.0

    def _wait_serving(self, workers: list[BaseProcess]) -> None:
        deadline = time.monotonic() + _READY_TIMEOUT
        for process in workers:
            serving = self._serving[id(process)]
            while not serving.wait(0.2) and process.is_alive() and time.monotonic() < deadline:
                pass

    def _on_signal(self, signum: int, frame: object) -> None:
        self._signals.append(signum)

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        self._workers = [self._spawn() for _ in range(self._settings.server.workers)]
        while True:
            time.sleep(0.2)  # a signal interrupts the sleep early
            while self._signals:
                signum = self._signals.pop(0)
                if signum == signal.SIGHUP:
                    log.info("SIGHUP: starting new workers, draining the old ones")
                    old, self._workers = self._workers, [self._spawn() for _ in self._workers]
                    self._wait_serving(self._workers)
                    self._stop(old)
                else:
                    log.info("%s: draining %d worker(s)", signal.Signals(signum).name, len(self._workers))
                    self._stop(self._workers)
                    log.info("supervisor shutdown complete")
                    return 0
            timeout = self._settings.server.heartbeat_timeout
            for i, process in enumerate(self._workers):
                if not process.is_alive():
                    log.warning("worker %s exited with status %s; replacing it", process.pid, process.exitcode)
                    self._replacements.labels("exited").inc()
                    self._forget(process)
                    time.sleep(_RESTART_PAUSE)
                    self._workers[i] = self._spawn()
                elif timeout > 0 and (silent := self._silent_for(process)) > timeout:
                    log.warning("worker %s stopped answering (no heartbeat for %.1fs); killing and replacing it",
                                process.pid, silent)
                    self._replacements.labels("unresponsive").inc()
                    process.kill()  # SIGKILL: a stopped or spinning process cannot drain
                    process.join(5.0)
                    self._forget(process)
                    self._workers[i] = self._spawn()

    def _stop(self, workers: list[BaseProcess]) -> None:
        for process in workers:
            if process.is_alive():
                process.terminate()  # SIGTERM: the worker drains
        deadline = time.monotonic() + self._settings.server.graceful_timeout + 5.0
        for process in workers:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.warning("worker %s did not stop in time; killing it", process.pid)
                process.kill()
                process.join()
            self._forget(process)
