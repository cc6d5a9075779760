"""A connection that runs statements on a thread of its own, so that the caller prepares the
next ones while the server works on these: pymysql lets go of the GIL while it waits on the
socket, so decoding and the server's work overlap on two cores.

At most ``depth`` pieces of work wait (memory stays bounded by what they hold). The first
error stops the work after it and is raised to the caller at its next call.

While a worker runs, the interpreter hands the GIL on after 1 ms instead of 5: the
statements' thread (and the archive's read-ahead) need it briefly and often, between the
server's answer and the next statement, and would otherwise wait up to 5 ms each time for
the thread decoding the next rows (a replay 6-10 % faster, bench/binlog_bench.py).
"""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

import pymysql
from pymysql.cursors import Cursor

from drkit.failpoints import failpoint

Result = TypeVar("Result")


_SWITCH_INTERVAL = 0.001  # seconds; Python's default is 0.005


class _ShortSwitches:
    """The shorter switch interval while any worker runs; the one before after the last."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._before = sys.getswitchinterval()

    def start(self) -> None:
        with self._lock:
            if not self._running:
                self._before = sys.getswitchinterval()
                sys.setswitchinterval(min(self._before, _SWITCH_INTERVAL))
            self._running += 1

    def stop(self) -> None:
        with self._lock:
            self._running -= 1
            if not self._running:
                sys.setswitchinterval(self._before)


_SHORT_SWITCHES = _ShortSwitches()


class ConnectionWorker:
    def __init__(self, connection: pymysql.connections.Connection, depth: int = 2) -> None:
        _SHORT_SWITCHES.start()
        self._switching = True  # until closed
        self._connection = connection
        self._work: queue.Queue[Callable[[Cursor], object] | None] = queue.Queue(depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="drkit-apply", daemon=True)
        self._thread.start()

    def submit(self, work: Callable[[Cursor], object]) -> None:
        """Runs ``work(cursor)`` after what was submitted before; returns at once unless
        ``depth`` pieces already wait."""
        self._raise_error()
        self._work.put(work)

    def call(self, work: Callable[[Cursor], Result]) -> Result:
        """Runs ``work(cursor)`` after everything submitted, and returns its result."""
        results: list[Result] = []
        self.submit(lambda cursor: results.append(work(cursor)))
        self._work.join()
        self._raise_error()
        return results[0]

    def close(self, interrupt: Callable[[], None] | None = None) -> None:
        """What waits is dropped and the connection closed (the server rolls back a
        transaction left open). What runs is given a second to finish, then ``interrupt``
        stops it (a long statement would otherwise hold up a stop for as long as it runs)."""
        try:
            with contextlib.suppress(queue.Empty):
                while True:
                    self._work.get_nowait()
                    self._work.task_done()
            self._work.put(None)
            self._thread.join(timeout=1)
            if self._thread.is_alive() and interrupt is not None:
                interrupt()
            self._thread.join()
            with contextlib.suppress(pymysql.err.Error):
                self._connection.close()
        finally:
            if self._switching:
                self._switching = False
                _SHORT_SWITCHES.stop()

    def _run(self) -> None:
        cursor = self._connection.cursor()
        while True:
            work = self._work.get()
            try:
                if work is None:
                    return
                if self._error is None:
                    work(cursor)
                    failpoint("replay.round_trip")  # done on the target; the next not begun
            except BaseException as error:  # noqa: BLE001 - the caller raises it
                self._error = error
            finally:
                self._work.task_done()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error
