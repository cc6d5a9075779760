"""SIGTERM and SIGINT as exceptions, so that an interrupted run cleans up and says so.

Python's default for SIGTERM ends the process at once: no ``finally`` runs, no log line, no
failure metric, papermill left running. Inside :func:`interruptible` the first SIGTERM or
SIGINT raises :class:`RunTerminated` (exit 143) or :class:`RunInterrupted` (exit 130) in the
main thread instead; every cleanup on the way out runs (mysqldump stopped, staged blocks
left to expire, locks released last), and the run is logged and recorded as interrupted.
Signals that arrive while that cleanup runs are logged, not raised again.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator

from drkit.console import log_event
from drkit.errors import RunInterrupted, RunTerminated

_EXCEPTIONS = {signal.SIGINT: RunInterrupted, signal.SIGTERM: RunTerminated}


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Turn SIGTERM/SIGINT into exceptions for the duration (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def handler(signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if received:
            log_event("run.signal", f"{name} received again while stopping; still stopping",
                      logging.WARNING, signal=name)
            return
        received.append(signum)
        raise _EXCEPTIONS[signum](f"Interrupted by {name}; what this run had started was "
                                  "stopped and nothing half-done was published.")

    previous = {signum: signal.signal(signum, handler) for signum in _EXCEPTIONS}
    try:
        yield
    finally:
        for signum, action in previous.items():
            signal.signal(signum, action)
