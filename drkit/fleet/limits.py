"""At most ``per_source_concurrency`` runs against one source server at once, across every
process of this host: one lock file per slot (``SOURCE_KEY.slotN.lock`` in the fleet's
state folder), held with ``flock`` for the whole run.

Dagster's own limits (the run coordinator's tag limits, README "Fleet") hold runs back before
they start; this lock is what holds whatever started them (``drkit fleet run``, ``dagster
dev``, two of them at once), and a run killed with -9 frees its slot as its process ends.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Iterator
from pathlib import Path

from drkit.console import log_event


def _file_word(source_key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", source_key)


@contextlib.contextmanager
def source_slot(state_dir: Path, source_key: str, slots: int) -> Iterator[int]:
    """Hold one of the ``slots`` slots of ``source_key``, waiting for one when all are held;
    yields the slot's number."""
    folder = state_dir / "locks"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    paths = [folder / f"source-{_file_word(source_key)}.slot{n}.lock" for n in range(slots)]
    handles = [os.open(path, os.O_CREAT | os.O_RDWR, 0o600) for path in paths]
    try:
        held = _first_free(handles)
        if held is None:  # all busy: wait on one (spread by pid so waiters do not pile up)
            held = os.getpid() % slots
            log_event("fleet.slot_wait", f"Waiting for a free slot of source {source_key} "
                      f"({slots} at once)", source=source_key)
            fcntl.flock(handles[held], fcntl.LOCK_EX)
        yield held
    finally:
        for handle in handles:  # closing releases the lock held on it
            os.close(handle)


def _first_free(handles: list[int]) -> int | None:
    for number, handle in enumerate(handles):
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue
        return number
    return None
