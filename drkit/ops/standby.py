"""``drkit standby``: the DR target kept current from the binlog archive.

``init`` restores the newest verified point-in-time base into the target, proven as any
restore, and records on the target where in the archive it stands: the base's snapshot
coordinates (:mod:`drkit.binlog.position`). ``follow`` applies what the archive holds beyond
that position with the replayer ``restore --until`` uses (same DDL rules, triggers set aside,
refusals), each source transaction's new position written by the transaction group that
commits it: a follower killed at any instant leaves the target at a position and holding
exactly the changes before it, and the next run goes on from there (nothing applied twice,
nothing skipped). DDL commits by itself: it is noted as pending first, and a run after a
follower killed between a DDL and its position tells from the definitions whether it took
effect (:func:`drkit.binlog.position.settle_ddl`). A gap in the archive after the position
is refused: the standby cannot cross it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from drkit.aws import metrics
from drkit.azure.blobstore import BackupStore
from drkit.azure.catalog import Catalog
from drkit.binlog import position
from drkit.binlog.archived import archived_events
from drkit.binlog.events import GTID_EVENTS, QUERY, TRANSACTION_PAYLOAD, XID
from drkit.binlog.position import Position
from drkit.binlog.records import Archive, ArchivedFile, file_order
from drkit.binlog.replay import RowApplier
from drkit.binlog.triggers import TriggersAside
from drkit.config import Settings
from drkit.console import Environment, log_event
from drkit.errors import (
    BinlogGapError,
    ConfigError,
    LockHeldError,
    RunStopped,
    ServerUnreachableError,
    StandbyError,
    TargetNotEmptyError,
)
from drkit.failpoints import failpoint
from drkit.interrupts import deferred_signals
from drkit.mysql.connection import Server, connect, target_server
from drkit.ops.binlog_verify import refuse_broken
from drkit.ops.pilotlight import last_position, pilot_light, read_ledger, summary
from drkit.ops.pitr import base_databases, choose_base
from drkit.ops.restore import RestoreRequest, objects_in, refuse_to_overwrite, run_restore
from drkit.ops.restorenames import restore_names
from drkit.ops.verify import verify_backup
from drkit.units import duration

Coordinates = tuple[str, int]  # a binlog file and an offset in it

_FOLLOWER_LOCK = "drkit_standby.follow"
# Held by the session that applies: the server ends a killed follower's session only once
# its last statement is done (a COMMIT may still land), so a catch-up reads the position
# after it has gone. Seconds that last statement may take at most.
_APPLY_LOCK = "drkit_standby.apply"
_APPLY_LOCK_WAIT = 120
MAKE_AGAIN = "Make it again: drop its databases and drkit_standby, then drkit standby init."
_NO_STANDBY = ("The target has no standby (no drkit_standby.position).",
               "Make one with drkit standby init.")


_OCCUPIED = ("A standby is made into a database that holds nothing: keep it under another "
             "name with drkit standby init --as NAME (one database), or drop that database "
             "on the target first.")


def existing_standby(at: Position) -> StandbyError:
    """Why ``standby init`` makes no standby on a target that has ``at``, and what does work
    there: following it, unless a failover promoted it or it no longer equals the source."""
    found = f"The target already has a standby ({_names(at)}, from base {at.base_backup})"
    if at.promoted:
        return StandbyError(f"{found}, promoted by {at.promoted}: it is the primary now; "
                            "nothing was restored.",
                            "Leave it as it is: a new standby goes on another target.")
    if at.diverged:
        return StandbyError(f"{found}, which no longer equals the source ({at.diverged}); "
                            "nothing was restored.", MAKE_AGAIN)
    return StandbyError(f"{found}; nothing was restored.",
                        "Follow it with drkit standby follow; to start again, drop its "
                        "databases and drkit_standby first.")


def init_standby(settings: Settings, env: Environment | None = None, *,
                 rename_to: str | None = None,
                 databases: list[str] | None = None) -> dict[str, Any]:
    """Restore the newest point-in-time base into the target, proven, and record the
    standby's position there: the base's snapshot coordinates."""
    env = env or Environment()
    server = target_server(settings)
    with _cursor(server) as cursor:
        existing, unfinished = position.read(cursor), position.unfinished_init(cursor)
    if existing is not None:
        raise existing_standby(existing)
    # The newest base of all: a standby goes on from its snapshot, whatever the archive
    # holds after it yet.
    moment = datetime.now(UTC)
    store = BackupStore.from_settings(settings)
    entries = Catalog(store).entries()
    entry, manifest = choose_base(store, moment, base_databases(entries, databases), entries)
    snapshot = manifest.consistency["binlog_snapshot"]
    start = Position(restore_names(manifest, rename_to, databases or manifest.databases),
                     entry.name, snapshot["file"], snapshot["position"])
    if unfinished is not None and _in_place(server, unfinished, start):
        log_event("standby.init_finished", f"An earlier standby init had restored "
                  f"{_names(unfinished)} and was stopped before it recorded its position: "
                  "recorded now", backup=unfinished.base_backup)
        return _finished(server, unfinished)
    archive = archive_of(settings)
    listing = archive.listed()  # once: the gap and the cheap check read the same files
    refuse_gap(archive, listing.files, snapshot["file"])
    refuse_broken(settings, manifest, moment, listing)
    if entry.verified != "ok":  # never restored from before it is known to be good
        verify_backup(store, entry, env)
    # Refused before the note: a database in place after it is then this init's restore.
    try:
        refuse_to_overwrite(server, objects_in(server, list(start.databases.values())),
                            replace=False)
    except TargetNotEmptyError as error:
        raise error.with_context(fix=_OCCUPIED) from error
    with _cursor(server) as cursor:
        position.begin_init(cursor, start)
    try:
        restored = run_restore(settings, RestoreRequest(
            backup=entry.name, rename_to=rename_to, databases=databases or manifest.databases),
            env)
    except TargetNotEmptyError as error:  # restore's fix offers --replace, which init has not
        _forget_init(server)
        raise error.with_context(fix=_OCCUPIED) from error
    except BaseException:  # nothing of it in place: nothing to finish
        _forget_init(server)
        raise
    failpoint("standby.init")  # restored and proven, its position not yet written
    made = _finished(server, start)
    return {**made, "restore_seconds": round(restored.seconds, 3),
            "proof": restored.proof.as_dict() if restored.proof else None}


def _in_place(server: Server, unfinished: Position, start: Position) -> bool:
    """Whether the standby an init noted and was stopped before recording (``unfinished``)
    is in place: its restore swaps each database in only once the copy is proven, and the
    init noted it only where they held nothing. Refused when it is in part, or not what
    this init makes."""
    names = list(unfinished.databases.values())
    there = [name for name, objects in objects_in(server, names).items() if objects]
    if not there:
        return False  # stopped before its restore put anything in place: made anew
    if len(there) < len(names) or unfinished.databases != start.databases:
        raise StandbyError(
            f"An earlier drkit standby init on {server.address} was stopped before it "
            f"recorded its position ({_names(unfinished)} from {unfinished.base_backup}; "
            f"in place: {', '.join(there)}); nothing was restored.",
            f"Drop {', '.join(there)} and the database drkit_standby on the target, then run "
            "drkit standby init again.")
    return True


def _forget_init(server: Server) -> None:
    with contextlib.suppress(ServerUnreachableError), _cursor(server) as cursor:
        position.forget_init(cursor)


def _finished(server: Server, start: Position) -> dict[str, Any]:
    """The standby's position written (the init done)."""
    with _cursor(server) as cursor:
        position.create(cursor, start)
    log_event("standby.init", f"Standby {_names(start)} on {server.address} from "
              f"{start.base_backup}, at {start.file}:{start.offset}", backup=start.base_backup)
    return {"backup": start.base_backup, "target": server.address,
            "databases": start.databases, "file": start.file, "offset": start.offset,
            "restore_seconds": 0.0, "proof": None}


@dataclass
class CatchUp:
    """What one catch-up applied, and where it left the standby."""

    started_at: str
    catch_up_seconds: float
    transactions: int
    events: int
    rows: int
    file: str
    offset: int
    lag_seconds: float | None  # source time between what it applied and the archive's newest

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def follow(settings: Settings, once: bool = True) -> CatchUp:
    """Catch up with the archive; without ``once``, again every ``standby.poll_seconds``
    until stopped (SIGTERM: between two events, what was applied is committed). With the
    pilot light (``standby.stop_server_after``), the stopped server is started for the
    catch-up and stopped after it."""
    if not settings.standby.stop_server_after:
        return _follow(settings, once)
    if not once:
        raise ConfigError("standby.stop_server_after stops the server after a catch-up: "
                          "it is for drkit standby follow --once, not a follower that keeps "
                          "running.", "Run drkit standby follow --once from cron, or set "
                          "standby.stop_server_after: false.")
    with pilot_light(settings) as left_at:
        done = _follow(settings, once)
        left_at(read_position(target_server(settings)))  # status reads it while stopped
        return done


def _follow(settings: Settings, once: bool) -> CatchUp:
    server = target_server(settings)
    with one_follower(server) as still_the_follower:
        while True:
            still_the_follower()
            done = catch_up(settings, server)
            if once:
                return done
            if not done.events:  # caught up: the archive grew meanwhile otherwise
                time.sleep(settings.standby.poll_seconds)  # SIGTERM stops the wait at once


@contextlib.contextmanager
def one_follower(server: Server) -> Iterator[Callable[[], None]]:
    """One follower per standby, from any host: a lock on the target, held by a session of
    its own (the server frees it when the follower dies); a callable checks it is still
    held (the session may have been ended meanwhile)."""
    connection = connect(server)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT GET_LOCK(%s, 0)", (_FOLLOWER_LOCK,))
            if cursor.fetchone()[0] != 1:
                raise LockHeldError(
                    f"Another drkit standby follow is applying to {server.address} (it holds "
                    f"the lock {_FOLLOWER_LOCK}); this one was not started.",
                    "One follower per standby: stop the other, or let it run.")

            def still_held() -> None:
                cursor.execute("SELECT IS_USED_LOCK(%s) = CONNECTION_ID()", (_FOLLOWER_LOCK,))
                if cursor.fetchone()[0] != 1:
                    raise LockHeldError(f"This follower lost its lock {_FOLLOWER_LOCK} on "
                                        f"{server.address}; it stopped.",
                                        "Start it again (systemd restarts it).")

            yield still_held
    finally:
        connection.close()


def catch_up(settings: Settings, server: Server, stop_at: Coordinates | None = None) -> CatchUp:
    """Applies what the archive holds beyond the standby's position; with ``stop_at`` (a
    transaction boundary: a snapshot's binlog coordinates), nothing from there on."""
    with _cursor(server) as cursor:
        _apply_lock(cursor)  # a killed follower's session has ended: its commits are in
        cursor.execute("SELECT RELEASE_LOCK(%s)", (_APPLY_LOCK,))
        _settle_ddl(cursor)  # as the killed run left the triggers: set aside
    start = followable_position(server)
    archive = archive_of(settings)
    listing = archive.listed()
    refuse_gap(archive, listing.files, start.file)
    files = listing.files[[f.file for f in listing.files].index(start.file):]
    began, clock = datetime.now(UTC), time.monotonic()
    newest = listing.newest_event_at  # the files are in order: the newest is in the tail
    with _cursor(server) as cursor:
        _put_back_left_aside(cursor, start)
    if lag_bytes(start, files) == 0:  # nothing new: no trigger set aside, nothing read
        return _caught_up(settings, server, start, CatchUp(
            began.isoformat(), round(time.monotonic() - clock, 3), 0, 0, 0, start.file,
            start.offset, lag_seconds(start, newest)))
    with _cursor(server) as cursor:  # before the replay sets them aside (drops them)
        position.keep_triggers(cursor, list(start.databases.values()))
    replay = _replayed(server, start, stop_at, archive, files)
    # Nothing is applied past the last transaction's end: the events after it, if no
    # transaction was open there, are passed by the position in a commit of its own.
    file, offset = replay.idle_at or replay.last_end
    lag = None if newest is None or replay.reached is None else \
        max(0.0, datetime.fromisoformat(newest).timestamp() - replay.reached)
    return _caught_up(settings, server, start, CatchUp(
        began.isoformat(), round(time.monotonic() - clock, 3), replay.transactions,
        replay.events, replay.applier.rows, file, offset, lag), replay.idle_at)


def _replayed(server: Server, start: Position, stop_at: Coordinates | None, archive: Archive,
              files: list[ArchivedFile]) -> _Replay:
    """The archive's ``files`` applied from ``start``; StandbyError when rows it changes
    were not on the standby as on the source (recorded: never followed again)."""
    replay = _Replay(server, start, stop_at)
    try:
        replay.files(archive, files)
    except RunStopped:
        replay.finish()  # between two events: what ended is committed
        raise
    finally:
        replay.applier.close()
        if replay.finished:  # its triggers are back in place
            with _cursor(server) as cursor:
                position.forget_triggers(cursor)
    if replay.applier.skipped_rows:
        why = (f"{replay.applier.skipped_rows} rows the binlog updates or deletes up to "
               f"{replay.file}:{replay.end} were not on it as on the source.")
        with _cursor(server) as cursor:
            position.record_divergence(cursor, why)
        raise StandbyError(f"The standby no longer equals the source: {why}", MAKE_AGAIN)
    return replay


def _caught_up(settings: Settings, server: Server, start: Position, done: CatchUp,
               idle_at: tuple[str, int] | None = None) -> CatchUp:
    """Records the catch-up ``done`` on the standby, logs it, publishes its lag."""
    with _cursor(server) as cursor:
        position.record_catch_up(cursor, done.as_dict(), idle_at)
    if done.transactions:  # a follower polls every few seconds: only what changed
        log_event("standby.caught_up", f"Standby caught up: {done.transactions} transactions "
                  f"({done.rows} rows) in {duration(done.catch_up_seconds)}, at "
                  f"{done.file}:{done.offset}",
                  **done.as_dict())
    if done.lag_seconds is not None:  # never fails the catch-up: AWS may be the thing down
        metrics.publish(settings, list(start.databases),
                        {"StandbyLagSeconds": (done.lag_seconds, "Seconds")},
                        timeout=settings.secret_timeout_seconds)
    return done


class _Replay:
    """The archive's events applied from a position (up to ``stop_at``, when given); where
    the event being applied ends is what each transaction's mark records."""

    def __init__(self, server: Server, start: Position, stop_at: Coordinates | None) -> None:
        self.start = start
        self.stop_at = None if stop_at is None else (file_order(stop_at[0]), stop_at[1])
        self.file, self.end, self.timestamp = start.file, start.offset, 0
        self.transactions = self.events = 0
        self.last_end = (start.file, start.offset)  # of the last transaction applied
        self.reached = start.last_event_at.timestamp() if start.last_event_at else None
        self.in_transaction = False
        self.finished = False
        # Where the last event read ended, when no transaction was open there: the format,
        # rotate and GTID-list events between transactions are passed by the position too.
        self.idle_at: tuple[str, int] | None = None
        self.applier = RowApplier(server, start.databases, mark=self)

    # -- the position, kept by the applier (drkit.binlog.replay.PositionMarks) -------------
    def session_started(self, cursor: Any) -> None:
        _apply_lock(cursor)

    def transaction_end(self) -> bytes:
        failpoint("standby.mark")  # a transaction ended, its group not yet committed
        self.last_end, self.reached = (self.file, self.end), self.timestamp
        return position.advance(self.file, self.end, self.timestamp, self.applier.heartbeat)

    def before_ddl(self) -> Callable[[Any], None]:
        return position.ddl_ahead(self.file, self.end, self.timestamp, self.applier.heartbeat,
                                  list(self.start.databases.values()))

    def files(self, archive: Archive, files: list[ArchivedFile]) -> None:
        for archived in files:
            first = archived.file == self.start.file
            if first and archived.complete and self.start.offset >= archived.size:
                continue  # read to its end already; the next file opens with its own format
            start_at = self.start.offset if first else 0
            with contextlib.closing(archived_events(archive, archived, start_at)) as events:
                for at, kind, timestamp, data in events:
                    if first and at < self.start.offset:
                        self.applier.note(kind, data)  # the format and table maps only
                        continue
                    if self.stop_at and (file_order(archived.file), at) >= self.stop_at:
                        self.finish()
                        return
                    self.file, self.end = archived.file, at + len(data)
                    with deferred_signals("an event applied"):
                        self.event(kind, timestamp, data)
                    self.idle_at = None if self.in_transaction else (self.file, self.end)
        self.finish()

    def finish(self) -> None:
        """Commits what ended, undoes what did not, puts the triggers back."""
        self.applier.finish()
        self.finished = True

    def event(self, kind: int, timestamp: int, data: bytes) -> None:
        applier = self.applier
        if kind in GTID_EVENTS or (kind == QUERY and applier.is_begin(data)):
            applier.begin()
            self.in_transaction = True
        if kind == TRANSACTION_PAYLOAD:  # MySQL 8's compressed transaction: its events
            for inner in applier.payload(data):
                self.event(inner[4], timestamp, applier.framed(inner))
            return
        self.timestamp = timestamp
        applier.apply(kind, data)
        self.events += 1
        if kind == XID or (kind == QUERY and applier.committed):
            self.transactions += 1
            self.in_transaction = False


def _apply_lock(cursor: Any) -> None:
    """Takes the lock of the session that applies, once a killed follower's has ended."""
    cursor.execute("SELECT GET_LOCK(%s, %s)", (_APPLY_LOCK, _APPLY_LOCK_WAIT))
    if cursor.fetchone()[0] != 1:
        raise LockHeldError(f"A stopped follower's session still applies to the standby "
                            f"after {_APPLY_LOCK_WAIT} s (it holds {_APPLY_LOCK}); nothing "
                            "was applied.", "Look for that session on the target (SHOW "
                            "PROCESSLIST) and let it end, then start the follower again.")


def _settle_ddl(cursor: Any) -> None:
    """A DDL statement a killed follower ran or not before its position: settled."""
    at = position.read(cursor)
    if at is None:
        return
    position.add_ddl_pending(cursor)
    took_effect = position.settle_ddl(cursor, list(at.databases.values()))
    if took_effect is not None:
        log_event("standby.ddl_settled", "A stopped follower's last DDL statement " +
                  ("had taken effect: the position is now past it" if took_effect else
                   "had not taken effect: it runs again"), took_effect=took_effect)


def _put_back_left_aside(cursor: Any, start: Position) -> None:
    """Triggers a killed catch-up set aside and never put back are created again."""
    left = position.triggers_left_aside(cursor)
    if left:
        aside = TriggersAside(list(start.databases.values()))
        aside.saved = {(t.database.lower(), t.name.lower()): t for t in left}
        aside.put_back(cursor)
        log_event("standby.triggers", f"Put back {len(left)} triggers a stopped catch-up "
                  "had set aside", triggers=[f"{t.database}.{t.name}" for t in left])


def refuse_gap(archive: Archive, files: list[ArchivedFile], file: str) -> None:
    """A standby at ``file`` cannot go on past a gap: a binlog the archive lacks after it."""
    names = [f.file for f in files]
    if file not in names:
        raise BinlogGapError(f"The binlog archive does not hold {file}, where the standby "
                             "stands: it cannot catch up.",
                             "Make the standby again from a newer base (drkit standby init); "
                             "see drkit binlog status.")
    following = names[names.index(file):]
    for before, after in zip(following, following[1:], strict=False):
        if file_order(after)[1] != file_order(before)[1] + 1:
            _gap(before, f"the archive goes on at {after}")
    for gap in archive.gaps():
        if file_order(gap["after_file"]) >= file_order(file):
            _gap(gap["after_file"], gap["missing"])


def _gap(after: str, missing: str) -> None:
    raise BinlogGapError(f"The binlog archive has a gap after {after} ({missing}): the "
                         "standby cannot cross it; nothing after it was applied.",
                         "Make the standby again from a full backup taken after the gap "
                         "(drkit backup; drkit verify; drkit standby init).")


def standby_status(settings: Settings) -> dict[str, Any]:
    """Where the standby stands and how far behind the archive: seconds of source time
    and bytes."""
    position_from: Literal["target", "last catch-up"] = "target"
    try:
        at = read_position(target_server(settings))
    except ServerUnreachableError:
        # The pilot light's server is stopped between catch-ups: where the last one left it.
        at = last_position(read_ledger(settings)) if settings.standby.stop_server_after \
            else None
        if at is None:
            raise
        position_from = "last catch-up"
    if at is None:
        raise StandbyError(*_NO_STANDBY)
    listing = archive_of(settings).listed()
    newest = listing.newest_event_at
    return {"databases": at.databases, "base_backup": at.base_backup, "file": at.file,
            "offset": at.offset, "last_event_at": _iso(at.last_event_at),
            "heartbeat": _iso(at.heartbeat), "updated_at": _iso(at.updated_at),
            "caught_up_at": _iso(at.caught_up_at), "last_catch_up": at.last_catch_up,
            "diverged": at.diverged, "promoted": at.promoted,
            "pilot_light": summary(read_ledger(settings)), "position_from": position_from,
            "archive_newest_event_at": newest, "lag_seconds": lag_seconds(at, newest),
            "lag_bytes": lag_bytes(at, listing.files)}


def lag_seconds(at: Position, newest: str | None) -> float | None:
    """Source time between the standby's last transaction and the archive's newest event
    (None before its first catch-up applied one)."""
    if newest is None or at.last_event_at is None:
        return None
    return max(0.0, (datetime.fromisoformat(newest) - at.last_event_at).total_seconds())


def lag_bytes(at: Position, files: list[ArchivedFile]) -> int:
    """Archived bytes after the standby's position."""
    return sum(f.size for f in files if file_order(f.file) > file_order(at.file)) + \
        next((max(0, f.size - at.offset) for f in files if f.file == at.file), 0)


def followable_position(server: Server) -> Position:
    """The standby's position, if it can be followed on (StandbyError: the target has no
    standby, it was promoted, or it was found unlike the source)."""
    at = read_position(server)
    if at is None:
        raise StandbyError(*_NO_STANDBY)
    if at.promoted:
        raise StandbyError(f"The standby was promoted by {at.promoted}: it is the primary "
                           "now, and no follower applies the archive to it again.",
                           "Stop its follower (cron entry or systemd unit); a new standby "
                           "goes on another target.")
    if at.diverged:
        raise StandbyError(f"The standby no longer equals the source: {at.diverged}",
                           MAKE_AGAIN)
    return at


def read_position(server: Server) -> Position | None:
    """The target's standby position, None when it has no standby."""
    with _cursor(server) as cursor:
        return position.read(cursor)


@contextlib.contextmanager
def _cursor(server: Server) -> Iterator[Any]:
    connection = connect(server)
    try:
        with connection.cursor() as cursor:
            yield cursor
    finally:
        connection.close()


def archive_of(settings: Settings) -> Archive:
    """The binlog archive the standby is fed from."""
    return Archive(BackupStore.from_settings(settings, prefix=settings.binlog.prefix))


def _names(at: Position) -> str:
    return ", ".join(at.databases.values())


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
