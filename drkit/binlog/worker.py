"""A connection that runs statements on a thread of its own, so that the caller prepares the
next ones while the server works on these: pymysql lets go of the GIL while it waits on the
socket, so decoding and the server's work overlap on two cores.

At most ``depth`` pieces of work wait (memory stays bounded by what they hold). The first
error stops the work after it and is raised to the caller at its next call.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from typing import TypeVar

import pymysql
from pymysql.cursors import Cursor

from drkit.failpoints import failpoint

Result = TypeVar("Result")


class ConnectionWorker:
    def __init__(self, connection: pymysql.connections.Connection, depth: int = 2) -> None:
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
