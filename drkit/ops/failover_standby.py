"""The failover's standby (``drkit standby``): whether the target's standby may be promoted,
its catch-up to the archive's newest event, the proof of the time that reached, and the mark
that keeps every follower off it once it is the primary.

A standby is promoted only where everything says it holds exactly the source up to its
position: not found unlike the source, not promoted already, keeping every database the
backup holds, its databases on the target, the archive gap-free after its position and the
position inside what the archive holds. Otherwise, or when its catch-up fails, the failover
restores the backup and the archive instead (:class:`drkit.ops.failover.Failover`), saying
why.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from drkit.azure.blobstore import BackupStore
from drkit.azure.catalog import load_manifest
from drkit.binlog import position
from drkit.binlog.position import Position
from drkit.binlog.records import ArchivedFile
from drkit.config import Settings
from drkit.errors import BinlogGapError
from drkit.mysql.connection import Server, connect
from drkit.ops.pitr import heartbeat_reached
from drkit.ops.standby import (
    CatchUp,
    archive_of,
    catch_up,
    lag_seconds,
    one_follower,
    read_position,
    refuse_gap,
)
from drkit.units import few


class _Gaps(Protocol):
    def gaps(self) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class StandbyChoice:
    """The target's standby as the failover finds it: None without one; ``why_not``:
    why it is not promoted, empty when it can be."""

    at: Position | None
    why_not: str = ""
    lag_seconds: float | None = None  # behind the archive's newest event, source time

    @property
    def promotable(self) -> bool:
        return self.at is not None and not self.why_not

    def names(self) -> str:
        return ", ".join(self.at.databases.values()) if self.at else "-"


@dataclass(frozen=True)
class Promotion:
    """A standby caught up to the archive's end, and the time its data provably reaches."""

    reached: datetime
    proven_by: str  # "heartbeat" or "last transaction"
    caught_up: CatchUp


def examine(settings: Settings, server: Server, databases: list[str]) -> StandbyChoice:
    """The target's standby and whether a failover that restores ``databases`` (the
    backup's) may promote it instead."""
    at = read_position(server)
    if at is None:
        return StandbyChoice(None)
    archive = archive_of(settings)
    files = archive.files()
    newest = max((f.last_event_at for f in files if f.last_event_at), default=None)
    return StandbyChoice(at, unfit(at, archive, files, databases, _schemas_on(server, at)) or "",
                         lag_seconds(at, newest))


def unfit(at: Position, archive: _Gaps, files: list[ArchivedFile], databases: list[str],
          on_target: set[str]) -> str | None:
    """Why the standby at ``at`` must not be promoted, None when nothing says so.
    ``on_target``: which of its databases the target has."""
    if at.promoted:
        return f"it was promoted by {at.promoted}"
    if at.diverged:
        return f"it no longer equals the source: {at.diverged}"
    if missing := [db for db in databases if db not in at.databases]:
        return f"it does not keep {few(missing)} of the backup's databases"
    if absent := [db for db in at.databases.values() if db not in on_target]:
        return f"its database {few(absent)} is not on the target"
    try:
        refuse_gap(archive, files, at.file)
    except BinlogGapError as error:
        return error.message
    size = next(f.size for f in files if f.file == at.file)
    if at.offset > size:
        return (f"its position {at.file}:{at.offset} is past the end of that file in the "
                f"archive ({size} bytes): it does not account for what it holds")
    newest = max((f.last_event_at for f in files if f.last_event_at), default=None)
    if at.last_event_at and newest and at.last_event_at > datetime.fromisoformat(newest):
        return (f"its last transaction ({at.last_event_at:%Y-%m-%d %H:%M:%S}) is after the "
                f"archive's newest event ({newest}): it does not account for what it holds")
    return None


def catch_up_and_prove(settings: Settings, server: Server) -> Promotion:
    """The standby caught up to the archive's newest event (as ``standby follow --once``:
    one follower, exactly once), and the time it reached, proven by the heartbeat where
    the source writes one (as ``restore --until``)."""
    with one_follower(server) as still_the_follower:
        still_the_follower()
        done = catch_up(settings, server)
    at = read_position(server)
    assert at is not None  # the catch-up just read and moved it
    files = archive_of(settings).files()
    newest = max((f.last_event_at for f in files if f.last_event_at), default=None)
    if newest and settings.binlog.heartbeat:
        beat = at.heartbeat.isoformat() if at.heartbeat else None
        reached = heartbeat_reached(beat, datetime.fromisoformat(newest),
                                    settings.binlog.beat_interval)
        return Promotion(datetime.fromisoformat(reached), "heartbeat", done)
    if at.last_event_at:
        return Promotion(at.last_event_at, "last transaction", done)
    # Nothing applied since its base: the data reaches the base's snapshot.
    base = load_manifest(BackupStore.from_settings(settings), at.base_backup)
    return Promotion(base.finished_at, "base", done)


def mark_promoted(server: Server, by: str) -> None:
    """The standby is the primary now: a follower refuses it from here on."""
    with contextlib.closing(connect(server)) as connection, connection.cursor() as cursor:
        position.record_promotion(cursor, by)


def _schemas_on(server: Server, at: Position) -> set[str]:
    names = list(at.databases.values())
    with contextlib.closing(connect(server)) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME "
                       "IN (" + ", ".join(["%s"] * len(names)) + ")", names)
        return {name for (name,) in cursor.fetchall()}
