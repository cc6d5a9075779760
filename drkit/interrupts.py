"""SIGTERM and SIGINT as exceptions, so that an interrupted run cleans up and says so.

Python's default for SIGTERM ends the process at once: no ``finally`` runs, no log line, no
failure metric, papermill left running. Inside :func:`interruptible` the first SIGTERM or
SIGINT raises :class:`RunTerminated` (exit 143) or :class:`RunInterrupted` (exit 130) in the
main thread instead; every cleanup on the way out runs (mysqldump stopped, staged blocks
left to expire, locks released last), and the run is logged and recorded as interrupted.
Inside :func:`deferred_signals` (a publish that must not stop halfway) the signal waits
until the block is done. Signals that arrive while stopping are logged, not raised again.
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


class _State:
    received: list[int] = []  # signals seen by this process's handler
    deferring = 0  # depth of deferred_signals blocks
    pending: int | None = None  # a signal that arrived while deferring


def _raise(signum: int, completed: str = "") -> None:
    name = signal.Signals(signum).name
    if completed:  # a deferred signal: the block it waited for was done
        raise _EXCEPTIONS[signum](f"Interrupted by {name} after this was done: {completed}; "
                                  "nothing after it ran.")
    raise _EXCEPTIONS[signum](f"Interrupted by {name}; what this run had started was "
                              "stopped and nothing half-done was published.")


def _handler(signum: int, _frame: object) -> None:
    name = signal.Signals(signum).name
    if _State.received:
        log_event("run.signal", f"{name} received again while stopping; still stopping",
                  logging.WARNING, signal=name)
        return
    _State.received.append(signum)
    if _State.deferring:
        _State.pending = signum
        log_event("run.signal", f"{name} received; stopping once this step is done",
                  logging.WARNING, signal=name)
        return
    _raise(signum)


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Turn SIGTERM/SIGINT into exceptions for the duration (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _State.received, _State.pending = [], None
    previous = {signum: signal.signal(signum, _handler) for signum in _EXCEPTIONS}
    try:
        yield
    finally:
        for signum, action in previous.items():
            signal.signal(signum, action)


def carry_on() -> None:
    """The signal just raised was answered without stopping (a first Ctrl-C that only asks
    to confirm): the next one raises again."""
    _State.received, _State.pending = [], None


@contextlib.contextmanager
def deferred_signals(completed: str = "") -> Iterator[None]:
    """A signal that arrives inside waits until the block is done, then stops the run;
    ``completed`` says what the block did, for that message."""
    _State.deferring += 1
    try:
        yield
    finally:
        _State.deferring -= 1
    if not _State.deferring and _State.pending is not None:  # the block succeeded
        signum, _State.pending = _State.pending, None
        _raise(signum, completed)
