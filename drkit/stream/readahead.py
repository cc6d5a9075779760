"""Reading ahead: the next pieces of a stream are fetched on a thread of their own while the
caller works on this one, so waiting on the network and computing overlap."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

Item = TypeVar("Item")
_END = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def read_ahead(source: Iterable[Item], depth: int = 4) -> Iterator[Item]:
    """The items of ``source``, in order, with at most ``depth`` fetched ahead. An error of
    ``source`` is raised where its item would have been; stopping early stops the reader."""
    pending: queue.Queue[object] = queue.Queue(depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                pending.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in source:
                if not put(item):
                    return
        except BaseException as error:  # noqa: BLE001 - raised to the caller, in order
            put(_Failure(error))
            return
        put(_END)

    thread = threading.Thread(target=run, name="read-ahead", daemon=True)
    thread.start()
    try:
        while (item := pending.get()) is not _END:
            if isinstance(item, _Failure):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join(timeout=30)  # a read under way ends within the SDK's timeout
