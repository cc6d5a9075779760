"""A backup's name, claimed before the dump starts so no two runs share it.

The claim is the manifest's place (``<blob>.manifest.json``) holding a small note (format
``drkit-claim/1``: databases, host, pid, time), created only if missing. A run that cannot
remove its claim (the storage went away with the run) leaves it; so does one on the backup
side, whose credential cannot delete: it marks the claim failed instead (``failed_at``).
:func:`orphan_claims` finds those for ``drkit doctor``, and the Azure side's prune deletes
them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

from drkit.azure.blobstore import BackupStore
from drkit.console import log_event
from drkit.errors import BackupExistsError, DrkitError
from drkit.interrupts import deferred_signals
from drkit.manifest import SIDECAR_SUFFIX
from drkit.stream import encryption
from drkit.stream.compression import CODECS

CLAIM_FORMAT = "drkit-claim/1"
_CLAIM_TRIES = 60
# So a backup's name may say a time up to this much after its run began.
NAME_SLACK = timedelta(seconds=_CLAIM_TRIES)
# A claim of another host's run is taken for left behind after this long (no backup runs
# for a day); one of this host's as soon as its process is gone.
_FOREIGN_CLAIM_AGE = timedelta(hours=24)


def backup_name(prefix: str, started: datetime, codec: str) -> str:
    return f"{prefix}backup-{started:%Y%m%d-%H%M%S}{CODECS[codec].extension}"


class NameClaim:
    """A backup name no other run uses, held for the run; given up unless committed.

    The claim is the manifest's place, created only if missing (If-None-Match) before the
    dump starts; the manifest replaces it at the end. Two runs that start in the same
    second (two databases from cron) get the names of consecutive seconds. However the run
    ends before its commit (error, SIGTERM), the claim is removed: nothing of it stays.
    """

    def __init__(self, store: BackupStore, started: datetime, codec_name: str,
                 databases: list[str], encrypted: bool = False) -> None:
        self.store, self.committed = store, False
        for second in range(_CLAIM_TRIES):
            self.name = backup_name(store.prefix, started + timedelta(seconds=second),
                                    codec_name) + (encryption.EXTENSION if encrypted else "")
            if store.exists(self.name):
                continue
            self.note = {"format": CLAIM_FORMAT, "databases": databases,
                         "host": socket.gethostname(), "pid": os.getpid(),
                         "claimed_at": datetime.now(UTC).isoformat()}
            try:
                self.etag = store.put_json(self.name + SIDECAR_SUFFIX, self.note)
                return
            except BackupExistsError:
                continue  # another run took this second
        raise BackupExistsError(f"Backup names for the {_CLAIM_TRIES} seconds from "
                                f"{started:%H:%M:%S} are all taken in the {store.where}.",
                                "Another drkit is writing backups every second; find it.")

    def __enter__(self) -> NameClaim:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.committed:
            return
        claim = self.name + SIDECAR_SUFFIX
        try:
            with deferred_signals():
                if self.store.may_delete:
                    self.store.delete(claim)
                    return
                # The backup side cannot delete: the claim says the run failed, so doctor
                # names it at once and the Azure side's prune deletes it.
                self.store.put_json(claim, {**self.note, "failed_at": datetime.now(
                    UTC).isoformat()}, replacing=self.etag)
            log_event("backup.claim_left", f"The name claim {claim} is marked failed (this "
                      "credential cannot delete); it holds no data, and the Azure side's "
                      "drkit prune deletes it.", logging.WARNING, blob=claim)
        except DrkitError as error:  # the storage is gone too: doctor names what is left
            log_event("backup.claim_left", f"The name claim {claim} could not be removed "
                      f"({error.message}); it holds no data and drkit doctor names it until "
                      "it is deleted.", logging.WARNING, blob=claim)


def orphan_claims(store: BackupStore, names: list[str] | None = None) -> list[dict[str, Any]]:
    """Claims no running backup holds: each with its blob name, host, pid, time and, for
    one its run marked failed, ``failed_at``. ``names``: the current blob names, where the
    caller has listed them already."""
    names = set(names if names is not None else (b.name for b in store.blobs()))
    claims = [n for n in names if n.endswith(SIDECAR_SUFFIX)
              and n.removesuffix(SIDECAR_SUFFIX) not in names]
    found = []
    for name in sorted(claims):
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            note = json.loads(store.read(name))
            if isinstance(note, dict) and note.get("format") == CLAIM_FORMAT \
                    and _left_behind(note):
                found.append({"blob": name, **{k: note.get(k) for k in (
                    "host", "pid", "claimed_at", "databases", "failed_at")}})
    return found


def _left_behind(note: dict[str, Any]) -> bool:
    if note.get("failed_at"):
        return True  # its run said so as it ended
    if note.get("host") == socket.gethostname():
        pid = note.get("pid")
        return not (isinstance(pid, int) and os.path.exists(f"/proc/{pid}"))
    try:
        claimed = datetime.fromisoformat(str(note.get("claimed_at")))
    except ValueError:
        return True
    return datetime.now(UTC) - claimed > _FOREIGN_CLAIM_AGE
