"""Reading ahead: the next pieces of a stream are fetched on a thread of their own while the
caller works on this one, so waiting on the network and computing overlap."""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterable, Iterator
from typing import Generic, TypeVar

Item = TypeVar("Item")
_END = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Reader(threading.Thread, Generic[Item]):
    """Puts ``source``'s items in ``pending`` until they end or ``stop`` is set."""

    def __init__(self, source: Iterable[Item], depth: int) -> None:
        super().__init__(name="read-ahead", daemon=True)
        self.source = source
        self.pending: queue.Queue[object] = queue.Queue(depth)
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            for item in self.source:
                if not self._put(item):
                    return
        except BaseException as error:  # noqa: BLE001 - raised to the caller, in order
            self._put(_Failure(error))
            return
        finally:
            # Here, on the thread that ran it: a generator left early runs its own cleanup
            # (stops its own reader, say) when the caller stops.
            if isinstance(self.source, Generator):
                self.source.close()
        self._put(_END)

    def _put(self, item: object) -> bool:
        while not self.stop.is_set():
            try:
                self.pending.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False


def read_ahead(source: Iterable[Item], depth: int = 4) -> Iterator[Item]:
    """The items of ``source``, in order, with at most ``depth`` fetched ahead. An error of
    ``source`` is raised where its item would have been; stopping early stops the reader
    (and closes ``source``, a generator, on the reader's thread)."""
    reader = _Reader(source, depth)
    reader.start()
    try:
        while (item := reader.pending.get()) is not _END:
            if isinstance(item, _Failure):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        reader.stop.set()
        reader.join(timeout=30)  # a read under way ends within the SDK's timeout
