"""``drkit restore --until TIME``: a full backup, then the archived binlog up to TIME.

The base is the newest verified full backup taken before TIME whose binlog coordinates are
exact (see :func:`drkit.mysql.dump.snapshot_coordinates`), with the archive gap-free from
there. It is restored and proven as any restore; then the archived events from its snapshot
position are applied, transaction by transaction, up to the last one that began at or
before TIME. Every archived range is checked against its sha256 as it is read. Row events
are applied as plain INSERT/UPDATE/DELETE (:mod:`drkit.binlog.rowevents` says why), DDL of
the restored databases as itself; what belongs to other databases is passed over.

A restore with ``until`` (:class:`drkit.ops.restore.Restore`) plans here before it loads
anything (:func:`plan_replay`) and replays here once the base is loaded and proven
(:func:`replay`).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from drkit.azure.blobstore import BackupStore
from drkit.azure.catalog import NOT_FAILED, BackupEntry, Catalog, load_manifest, parse_time
from drkit.binlog.archived import archived_events
from drkit.binlog.events import GTID_EVENTS, QUERY, TRANSACTION_PAYLOAD, XID
from drkit.binlog.records import Archive, ArchivedFile, ArchiveListing, file_order
from drkit.binlog.replay import RowApplier
from drkit.config import Settings
from drkit.console import Environment, Progress, log_event
from drkit.errors import (
    BackupNotFoundError,
    BinlogArchiveError,
    BinlogGapError,
    ParameterError,
    ProofFailedError,
    RestoreBlockedError,
)
from drkit.manifest import Manifest, binlog_coordinates
from drkit.mysql.connection import Server
from drkit.ops.binlog_verify import refuse_broken
from drkit.ops.claim import NAME_SLACK
from drkit.ops.verify import verify_backup
from drkit.units import duration, few


@dataclass(frozen=True)
class ReplayPlan:
    """A point-in-time restore as decided before anything is loaded: TIME, the base backup
    restored first, and the archived binlog then applied to it."""

    moment: datetime
    base: BackupEntry
    manifest: Manifest
    databases: list[str]  # those restored: as named, or all the base holds
    archive: Archive
    files: list[ArchivedFile]
    beat_interval: float | None  # the heartbeat's, when the source writes one


@dataclass(frozen=True)
class ReplayResult:
    """What the replay applied and the time the restored data reaches (ISO 8601, UTC)."""

    until: str
    reached: str
    heartbeat: str | None  # the newest heartbeat replayed
    transactions: int
    events: int
    rows: int
    skipped_rows: int  # updated or deleted on the source, not found on the copy
    replay_seconds: float
    # Where the copy stands in the archive when it took all of it: what a later run
    # compares with the archive's end to know the copy lacks nothing. None when TIME stopped it.
    archive_end: dict[str, Any] | None
    events_per_second: int
    loaded_rows: int = 0  # of ``rows``, inserted by LOAD DATA (drkit.binlog.batch)


def reached_by(replay: ReplayResult | None) -> str:
    """How a restored copy got to the time its data reaches, as summaries say it."""
    return f"base + {replay.transactions} transactions replayed" if replay else "base only"


def plan_replay(settings: Settings, until: str, databases: list[str] | None,
                env: Environment) -> ReplayPlan:
    """TIME and the base of a restore of ``databases`` (to be named when the backups hold
    several) to it: the newest base holding them, verified first if it never was. A gap, or
    a file missing or not matching its record, between the base and TIME refuses it."""
    archive = Archive(BackupStore.from_settings(settings, prefix=settings.binlog.prefix))
    # Listed once, when first needed: TIME, the check and the replay read the same files.
    listed = functools.cache(archive.listed)
    moment, entry, manifest = resolve(settings, until, databases, listed)
    databases = databases or manifest.databases
    store = BackupStore.from_settings(settings)
    # Before anything is loaded (verifying the base loads it).
    _refuse_gaps(archive, manifest, moment)
    refuse_broken(settings, manifest, moment, listed())
    database = ", ".join(databases)
    if entry.verified != "ok":  # never restored from before it is known to be good
        log_event("restore.verify_base", f"Base {entry.name} of {database} is not verified "
                  f"({entry.verified or 'never'}): verifying it first", backup=entry.name)
        verify_backup(store, entry, env)
    files = listed().files
    log_event("restore.until", f"Point in time {moment:%Y-%m-%d %H:%M:%S} UTC of {database}: "
              f"base {entry.name}, then the binlog from "
              f"{binlog_coordinates(manifest.consistency['binlog_snapshot'])}",
              databases=databases,
              backup=entry.name)
    return ReplayPlan(moment, entry, manifest, databases, archive, files,
                      settings.binlog.beat_interval if settings.binlog.heartbeat else None)


def replay(plan: ReplayPlan, server: Server, load_as: dict[str, str],
           env: Environment) -> ReplayResult:
    """The archived binlog from the base's snapshot to TIME, applied to the loaded copy
    (original -> loaded name); refused where the copy provably is not the source's state at
    TIME."""
    replayed = apply_binlog(plan, server, load_as, env)
    if replayed.skipped_rows:
        raise ProofFailedError(
            f"{replayed.skipped_rows} rows the binlog updates or deletes were not "
            "on the target as on the source: the copy is not the source's state at "
            "that time.", "Report it with the restore's log; restore to an earlier "
            "time, or restore the full backup alone.")
    if plan.beat_interval is not None:
        replayed = replace(replayed, reached=heartbeat_reached(replayed.heartbeat,
                                                               plan.moment,
                                                               plan.beat_interval))
    return replayed


def resolve(settings: Settings, until: str, databases: list[str] | None = None,
            listed: Callable[[], ArchiveListing] | None = None,
            ) -> tuple[datetime, BackupEntry, Manifest]:
    """TIME as a moment, and the base backup a restore of ``databases`` to it starts from.
    What the user gave is checked first (TIME, the databases), the archive after (by
    ``listed``, the command's listing, if it keeps one)."""
    try:
        asked = point_in_time(until)
    except ValueError:
        raise ParameterError(f"--until {until!r} is not a time.",
                             "Write it as 2026-11-27T14:03:00 (UTC), with an offset "
                             "(+09:00), or latest.") from None
    store = BackupStore.from_settings(settings)
    entries = Catalog(store).entries()
    databases = base_databases(entries, databases)
    listed = listed or Archive(BackupStore.from_settings(
        settings, prefix=settings.binlog.prefix)).listed
    newest = listed().newest_event_at
    if newest is None:
        raise BinlogArchiveError("The binlog archive is empty: there is no point in time to "
                                 "restore to beyond a full backup.",
                                 "Run drkit binlog stream (drkit schedule prints its unit).")
    moment = asked or datetime.fromisoformat(newest)
    if moment > datetime.fromisoformat(newest):
        raise BackupNotFoundError(f"{moment:%Y-%m-%d %H:%M:%S} UTC is after the newest "
                                  f"archived event ({newest}).",
                                  "Restore to it or earlier, or use --until latest.")
    return moment, *choose_base(store, moment, databases, entries)


def base_databases(entries: list[BackupEntry], databases: list[str] | None) -> list[str]:
    """The databases a point-in-time restore restores: those named, or the only one the
    backups hold; a choice between several is never made for the user."""
    held = sorted({db for entry in entries for db in entry.databases})
    if databases is None and len(held) > 1:
        raise RestoreBlockedError(
            f"The backups hold {len(held)} databases ({few(held)}); a point-in-time restore "
            "restores the one you name; nothing was restored.", "Name it with --database DB.")
    if databases is None and not held:
        raise BackupNotFoundError("There is no full backup to start a point-in-time restore "
                                  "from.", "Take one: drkit backup, then drkit verify.")
    if missing := [db for db in databases or () if db not in held]:
        raise BackupNotFoundError(f"No backup holds database {few(missing)} (they hold "
                                  f"{few(held)}); nothing was restored.",
                                  "Name a database that is backed up with --database.")
    return databases or held


def choose_base(store: BackupStore, moment: datetime, databases: list[str],
                entries: list[BackupEntry]) -> tuple[BackupEntry, Manifest]:
    """The newest backup holding ``databases`` taken before ``moment`` with exact
    coordinates, that verify has not found bad (one never verified is verified before it
    is restored). Another database's backup is never taken for them."""
    database = ", ".join(databases)
    for entry in reversed(entries):
        # A name is a second later per run that claimed its second first (two backups in
        # one second): only the manifest's finish time is exact.
        if entry.taken_at - NAME_SLACK > moment or \
                not set(databases) <= set(entry.databases) or entry.verified not in NOT_FAILED:
            continue
        manifest = load_manifest(store, entry.name)
        # Binlog times are whole seconds: every transaction before the snapshot began by
        # the backup's end, so in its second or earlier, which TIME includes.
        if manifest.consistency.get("binlog_exact") and \
                manifest.finished_at.replace(microsecond=0) <= moment:
            return entry, manifest
    bases = [e for e in entries if set(databases) <= set(e.databases)
             and e.verified in NOT_FAILED]
    earliest = next((load_manifest(store, e.name) for e in bases if load_manifest(
        store, e.name).consistency.get("binlog_exact")), None)
    raise BackupNotFoundError(
        f"No full backup of {database} with exact binlog coordinates was finished before "
        f"{moment:%Y-%m-%d %H:%M:%S} UTC"
        + (f"; the earliest reachable time is {earliest.finished_at:%Y-%m-%d %H:%M:%S} UTC, "
           f"when {earliest.name} finished." if earliest else "."),
        "Pick a later time, or take and verify a full backup (drkit backup; drkit verify).")



def _refuse_gaps(archive: Archive, manifest: Manifest, moment: datetime) -> None:
    start = manifest.consistency["binlog_snapshot"]["file"]
    for gap in archive.gaps():
        if file_order(gap["after_file"]) >= file_order(start) and (
                gap["after_event_at"] is None or
                datetime.fromisoformat(gap["after_event_at"]) < moment):
            raise BinlogGapError(
                f"The binlog archive has a gap after {gap['after_file']} ({gap['missing']}) "
                f"between backup {manifest.name} and {moment:%Y-%m-%d %H:%M:%S} UTC.",
                "Pick a time before the gap, or one after a full backup taken after it "
                "(drkit binlog status).")


def apply_binlog(plan: ReplayPlan, server: Server, load_as: dict[str, str],
                 env: Environment) -> ReplayResult:
    snapshot = plan.manifest.consistency["binlog_snapshot"]
    files = plan.files
    names = [f.file for f in files]
    if snapshot["file"] not in names:
        raise BinlogGapError(f"The binlog archive does not hold {snapshot['file']}, where "
                             f"backup {plan.manifest.name} stands.", "See drkit binlog status.")
    files = files[names.index(snapshot["file"]):]
    with env.progress(f"replay binlog to {plan.moment:%Y-%m-%d %H:%M:%S}",  # to the archive's
                      sum(f.size for f in files) - snapshot["position"]) as progress:  # end at most
        return _replay_files(plan, files, server, load_as, progress)


def _replay_files(plan: ReplayPlan, files: list[ArchivedFile], server: Server,
                  load_as: dict[str, str], progress: Progress) -> ReplayResult:
    clock = time.monotonic()
    replaying = _Replay(plan, RowApplier(server, load_as), progress)
    try:
        stopped = replaying.files(files)
        replaying.applier.finish()
    finally:
        replaying.applier.close()
    seconds = time.monotonic() - clock
    reached = replaying.reached
    result = ReplayResult(
        until=plan.moment.isoformat(),
        reached=datetime.fromtimestamp(reached, UTC).isoformat() if reached
        else plan.manifest.finished_at.isoformat(),
        heartbeat=replaying.applier.heartbeat, transactions=replaying.transactions,
        events=replaying.events, rows=replaying.applier.rows,
        skipped_rows=replaying.applier.skipped_rows, replay_seconds=round(seconds, 3),
        archive_end=None if stopped else archive_end(files),
        events_per_second=round(replaying.events / max(seconds, 1e-6)),
        loaded_rows=replaying.applier.loaded_rows)
    log_event("restore.replayed", f"Replayed {result.transactions} transactions ({result.rows} "
              f"rows) up to {result.reached} in {duration(seconds)}", **asdict(result))
    return result


class _Replay:
    """The archived events from the base's snapshot applied in order, transaction by
    transaction, up to the last transaction that began at or before TIME."""

    def __init__(self, plan: ReplayPlan, applier: RowApplier, progress: Progress) -> None:
        self.archive = plan.archive
        self.snapshot = plan.manifest.consistency["binlog_snapshot"]
        self.until = plan.moment.timestamp()
        self.applier = applier
        self.progress = progress
        self.reached: int | None = None  # the last committed transaction's time
        self.transactions = 0
        self.events = 0

    def files(self, files: list[ArchivedFile]) -> bool:
        """Replays ``files`` (the snapshot's first); whether TIME stopped it before their end."""
        read = -self.snapshot["position"]  # bytes of the archive from the snapshot
        for archived in files:
            if self._file(archived, read):
                return True
            read += archived.size
        return False

    def _file(self, archived: ArchivedFile, read: int) -> bool:
        first = archived.file == self.snapshot["file"]
        # Closed as soon as it is left, also by an error: its read-ahead stops with it.
        start_at = self.snapshot["position"] if first else 0
        with contextlib.closing(archived_events(self.archive, archived,
                                                start_at)) as events_of_file:
            for position, kind, timestamp, data in events_of_file:
                if first and position < self.snapshot["position"]:
                    self.applier.note(kind, data)  # the format and table maps, nothing applied
                elif not self.event(kind, timestamp, data):
                    return True  # TIME reached
                self.progress.update(max(0, read + position))
        return False

    def event(self, kind: int, timestamp: int, data: bytes) -> bool:
        """Applies one event; False once the next transaction begins after TIME."""
        applier = self.applier
        if kind in GTID_EVENTS or (kind == QUERY and applier.is_begin(data)):
            if timestamp > self.until:
                return False
            applier.begin()
        if kind == TRANSACTION_PAYLOAD:  # MySQL 8's compressed transaction: its events
            return all(self.event(inner[4], timestamp, applier.framed(inner))
                       for inner in applier.payload(data))
        applier.apply(kind, data)
        self.events += 1
        if kind == XID or (kind == QUERY and applier.committed):
            self.transactions += 1
            self.reached = timestamp
        return True


def archive_end(files: list[ArchivedFile]) -> dict[str, Any] | None:
    """The archive's last file and its committed size: where a copy that took all of it
    stands."""
    return {"file": files[-1].file, "size_bytes": files[-1].size} if files else None


def heartbeat_reached(beat: str | None, moment: datetime, every: float) -> str:
    """The time the data provably reached: ``beat``, the newest heartbeat replayed (UTC),
    which must be within one interval before TIME, or the archive did not hold what it
    should have."""
    reached = datetime.fromisoformat(beat).replace(tzinfo=UTC) if beat else None
    # Binlog times are whole seconds: a beat at 12:00:07.2 is one of 12:00:07.
    if reached is None or reached.replace(microsecond=0) > moment or \
            (moment - reached).total_seconds() > every + 1:
        raise ProofFailedError(
            f"The replayed data reaches {reached or 'no heartbeat at all'} by its newest "
            f"heartbeat, not {moment:%Y-%m-%d %H:%M:%S} UTC (beats every {every:g} s): the "
            "binlog archive does not hold everything up to that time.",
            "Look at drkit binlog status (lag, gaps) and whether the streamer and its "
            "heartbeat run; restore to an earlier time.")
    return reached.isoformat()


def point_in_time(text: str) -> datetime | None:
    """TIME as ``restore --until`` and the drill's ``until`` take it: None for ``latest``,
    else the moment written (ISO 8601; no zone means UTC) in UTC, whole seconds. ValueError
    for anything else."""
    if text.strip().lower() == "latest":
        return None
    return parse_time(text.strip()).astimezone(UTC).replace(microsecond=0)
