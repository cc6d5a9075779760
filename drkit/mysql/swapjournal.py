"""A swap's journal: all a recovery needs, on disk before the swap changes anything.

Written whole (a temporary file, fsync'd, linked into place: never over another journal),
mode 0600 under ``backup.state_dir/swaps/``, and locked (flock) by the swap while it runs,
so that a recovery leaves a running swap's journal alone; the lock goes with the process,
so a killed swap's journal is free at once. The object statements are mysqldump's bytes
(invalid UTF-8 kept through ``surrogateescape``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drkit.errors import SwapFailedError
from drkit.stream.statement import Statement, name_statement

JOURNAL_FORMAT = "drkit-swap-journal/1"
# Moved with the tables in the one RENAME: where it is says whether they moved, also when
# neither database has a table (lower case: Azure folds names).
MARKER = "drkit_swap_marker"
RECOVER_FIX = ("Run drkit restore --recover-swap (a restore on this target runs it first "
               "too); it finishes or undoes the swap from its journal.")


@dataclass
class SwapJournal:
    """Everything a recovery needs, written before the swap changes anything."""

    target: str  # host:port
    place: str
    scratch: str
    old: str
    place_existed: bool
    old_tables: list[str]
    new_tables: list[str]
    old_objects: list[Statement]
    new_objects: list[Statement]
    started: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    marker: str = MARKER
    path: Path | None = None  # where it was read from

    def to_json(self) -> bytes:
        def statements(items: list[Statement]) -> list[dict[str, str]]:
            return [{"database": s.database,
                     "sql": bytes(s.sql).decode("utf-8", "surrogateescape")} for s in items]

        return json.dumps({
            "format": JOURNAL_FORMAT, "target": self.target, "place": self.place,
            "scratch": self.scratch, "old": self.old, "place_existed": self.place_existed,
            "started": self.started, "marker": self.marker, "old_tables": self.old_tables,
            "new_tables": self.new_tables, "old_objects": statements(self.old_objects),
            "new_objects": statements(self.new_objects)}, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes, path: Path | None = None) -> SwapJournal:
        """The journal in ``data``; ValueError if it is none (another file, another format)."""
        try:
            record: dict[str, Any] = json.loads(data)
            if not isinstance(record, dict) or record.get("format") != JOURNAL_FORMAT:
                raise ValueError(f"not a {JOURNAL_FORMAT}")

            def statements(items: list[dict[str, str]]) -> list[Statement]:
                found = []
                for item in items:
                    statement = Statement(item["sql"].encode("utf-8", "surrogateescape"),
                                          "other", item["database"])
                    name_statement(statement)  # as the lexer names it
                    found.append(statement)
                return found

            return cls(record["target"], record["place"], record["scratch"], record["old"],
                       bool(record["place_existed"]), list(record["old_tables"]),
                       list(record["new_tables"]), statements(record["old_objects"]),
                       statements(record["new_objects"]), record["started"],
                       record["marker"], path)
        except (KeyError, TypeError, UnicodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not a readable swap journal ({exc})") from None


def pending_journals(directory: Path) -> list[SwapJournal | Path]:
    """The swap journals under ``directory`` (oldest first), and as a bare path each file
    there that is not one this drkit can replay; a journal a running swap holds is left out."""
    found: list[SwapJournal | Path] = []
    for path in journal_files(directory):
        with claimed(path) as data:
            if data is None:
                continue
            try:
                found.append(SwapJournal.from_json(data, path))
            except ValueError:
                found.append(path)
    return sorted(found, key=lambda j: j.started if isinstance(j, SwapJournal) else "")


def journal_files(directory: Path) -> list[Path]:
    """The files a recovery reads, oldest name first; a temporary one over an hour old was
    left by a swap killed while writing it, before anything changed, and goes."""
    if not directory.is_dir():
        return []
    for stale in directory.glob(".*.tmp"):  # a journal killed while written: nothing changed
        with contextlib.suppress(FileNotFoundError):
            if time.time() - stale.stat().st_mtime > 3600:
                stale.unlink()
    return sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))


@contextlib.contextmanager
def claimed(path: Path) -> Iterator[bytes | None]:
    """The file's bytes under its lock; None if a running swap holds it or it is gone. The
    lock goes with the process, so a killed swap's journal is free at once."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        yield None
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        if os.fstat(fd).st_nlink == 0:  # removed by the swap that held it
            yield None
            return
        with open(fd, "rb", closefd=False) as stream:
            data = stream.read()
        yield data
    finally:
        os.close(fd)


def write_journal(path: Path, journal: SwapJournal) -> int:
    """Write ``journal`` whole to ``path`` (never over an existing one), synced, and return
    its descriptor, locked for as long as the swap runs."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        data = memoryview(journal.to_json())
        while data:
            data = data[os.write(fd, data):]
        os.fsync(fd)
        try:
            os.link(temporary, path)  # the whole journal appears at once, or not at all
        except FileExistsError:
            raise SwapFailedError(f"A swap journal {path} already exists; nothing was "
                                  "changed.", RECOVER_FIX) from None
        finally:
            temporary.unlink(missing_ok=True)
        _sync_directory(path.parent)
    except BaseException:
        os.close(fd)
        raise
    journal.path = path
    return fd


def remove_journal(path: Path) -> None:
    path.unlink(missing_ok=True)
    _sync_directory(path.parent)


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

