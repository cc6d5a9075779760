"""The seed's optional local copy of a backup (``backup.local_copy_dir``): the compressed
bytes as they are uploaded, kept only if the backup is published, pruned after
``backup.local_copy_max_age_hours``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO


class LocalCopy:
    """The seed's local copy, written under a temporary name and renamed on success."""

    def __init__(self, path: Path | None, handle: IO[bytes] | None) -> None:
        self.path = path
        self._handle = handle

    @classmethod
    def open(cls, directory: Path | None, blob_name: str) -> LocalCopy:
        if directory is None:
            return cls(None, None)
        directory = directory.expanduser()
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / blob_name.rsplit("/", 1)[-1]
        return cls(path, open(path.with_name(path.name + ".partial"), "wb"))  # noqa: SIM115

    def write(self, data: bytes) -> None:
        if self._handle:
            self._handle.write(data)

    def keep(self) -> Path | None:
        if not self._handle or not self.path:
            return None
        self._handle.close()
        Path(self._handle.name).rename(self.path)
        return self.path

    def discard(self) -> None:
        if self._handle:
            self._handle.close()
            Path(self._handle.name).unlink(missing_ok=True)
            self._handle = None

    @staticmethod
    def prune(directory: Path | None, max_age_hours: float) -> int:
        if directory is None:
            return 0
        cutoff = (datetime.now(UTC) - timedelta(hours=max_age_hours)).timestamp()
        removed = 0
        for path in directory.expanduser().glob("backup-*.sql.*"):
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        return removed
