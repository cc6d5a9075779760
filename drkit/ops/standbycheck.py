"""``drkit standby check``: proves that the standby still equals the source, while the source
is alive, without a trigger or a table of drkit's on the source (as pt-table-checksum does).

1. The source's databases are dumped in one consistent snapshot at exact binlog coordinates,
   the way the backup takes them (:func:`drkit.mysql.dump.snapshot_coordinates`: MariaDB's
   snapshot coordinates, else table locks while the snapshot starts), and scanned as the
   backup scans: each table's rows and digest (order-free for tables without a row order).
2. The archive is made to hold those coordinates (``binlog stream --once``; when another
   streamer holds the archive, its next flush is waited for).
3. The standby catches up to exactly those coordinates, not one event further: it then holds
   what the snapshot saw.
4. The standby's copy is dumped and compared with the snapshot by the restore's proof
   (:func:`drkit.mysql.proof.prove`): rows, digests, definitions and objects. A difference
   names the table; it is recorded on the standby, which is never followed again (exit 50).

The check holds the follower lock throughout, so no follower moves the standby past the
coordinates meanwhile; while a follower holds it, the check is refused (exit 23): run it
between two ``follow --once`` or with the follower stopped.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from drkit import __version__
from drkit.binlog import position
from drkit.binlog.records import file_order
from drkit.config import Settings
from drkit.console import Environment, log_event
from drkit.errors import BinlogArchiveError, LockHeldError, StandbyError
from drkit.manifest import Digest, Manifest, TableEntry
from drkit.mysql import dump, inventory, snapshotlock
from drkit.mysql.connection import connect, source_server, target_server
from drkit.mysql.proof import ProofResult, prove
from drkit.ops import binlog_archive
from drkit.ops.restore import azure_rewrites
from drkit.ops.standby import (
    MAKE_AGAIN,
    Coordinates,
    archive_of,
    catch_up,
    followable_position,
    one_follower,
)
from drkit.stream.dumpscan import DumpScanner
from drkit.units import duration


@dataclass
class StandbyCheck:
    """What one check compared, at which source coordinates, and what differed."""

    ok: bool
    file: str  # the source's snapshot coordinates, which the standby was brought to
    offset: int
    databases: dict[str, str]  # the source's name -> the standby's
    tables_checked: int
    rows_checked: int
    objects_checked: int
    transactions: int  # the standby's catch-up to the coordinates
    snapshot_seconds: float  # the source's dump and scan
    catch_up_seconds: float
    compare_seconds: float  # the standby's dump, scan and comparison
    coordinates_method: str  # how the snapshot's coordinates were read
    differences: list[dict[str, str]] = field(default_factory=list)
    tables: list[dict[str, Any]] = field(default_factory=list)  # per table: rows, matches

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_standby(settings: Settings, env: Environment | None = None) -> StandbyCheck:
    """The standby compared with the source at one consistent snapshot; StandbyError (50)
    naming every table that differs."""
    env = env or Environment()
    server = target_server(settings)
    with one_follower(server) as still_the_follower:
        at = followable_position(server)
        clock = time.monotonic()
        snapshot = source_snapshot(settings, list(at.databases))
        snapshot_seconds = time.monotonic() - clock
        stop_at: Coordinates = (snapshot.consistency["binlog_snapshot"]["file"],
                                snapshot.consistency["binlog_snapshot"]["position"])
        if (file_order(at.file), at.offset) > (file_order(stop_at[0]), stop_at[1]):
            raise StandbyError(
                f"The standby stands at {at.file}:{at.offset}, past the source's snapshot at "
                f"{stop_at[0]}:{stop_at[1]}: it follows another source, or the source's "
                "binary log was reset.", MAKE_AGAIN)
        archive_holds(settings, stop_at)
        still_the_follower()
        caught_up = catch_up(settings, server, stop_at=stop_at)
        if (caught_up.file, caught_up.offset) != stop_at:
            raise BinlogArchiveError(
                f"The standby's catch-up ended at {caught_up.file}:{caught_up.offset}, not at "
                f"the source's snapshot {stop_at[0]}:{stop_at[1]}: the two cannot be "
                "compared; nothing was concluded.", "Look at drkit binlog status; run the "
                "check again.")
        clock = time.monotonic()
        proof = prove(snapshot, server, at.databases, azure_rewrites(settings))
        result = _result(at.databases, snapshot, proof, caught_up.transactions,
                         (snapshot_seconds, caught_up.catch_up_seconds,
                          time.monotonic() - clock))
        if not proof.ok:
            why = (f"at the source's {stop_at[0]}:{stop_at[1]} it differs in "
                   + "; ".join(f"{d['kind']} {d['name']} (source {d['expected']}, standby "
                               f"{d['actual']})" for d in result.differences[:5]))
            with contextlib.closing(connect(server)) as connection, \
                    connection.cursor() as cursor:
                position.record_divergence(cursor, why)
            log_event("standby.check_failed", f"Standby check FAILED: {why}",
                      **result.as_dict())
            raise StandbyError(f"The standby no longer equals the source: {why}.", MAKE_AGAIN)
    log_event("standby.checked", f"Standby check passed: {result.tables_checked} tables, "
              f"{result.rows_checked} rows equal the source's at {result.file}:"
              f"{result.offset} (snapshot {duration(result.snapshot_seconds)}, catch-up "
              f"{duration(result.catch_up_seconds)}, compare "
              f"{duration(result.compare_seconds)})", **result.as_dict())
    return result


def _result(databases: dict[str, str], snapshot: Manifest, proof: ProofResult,
            transactions: int, seconds: tuple[float, float, float]) -> StandbyCheck:
    coordinates = snapshot.consistency["binlog_snapshot"]
    return StandbyCheck(
        ok=proof.ok, file=coordinates["file"], offset=coordinates["position"],
        databases=databases, tables_checked=proof.tables_checked,
        rows_checked=proof.rows_checked, objects_checked=proof.objects_checked,
        transactions=transactions, snapshot_seconds=round(seconds[0], 3),
        catch_up_seconds=round(seconds[1], 3), compare_seconds=round(seconds[2], 3),
        coordinates_method=snapshot.consistency["binlog_method"],
        differences=[{"kind": d.kind, "name": d.name, "expected": d.expected,
                      "actual": d.actual} for d in proof.differences],
        tables=proof.tables)


def source_snapshot(settings: Settings, databases: list[str]) -> Manifest:
    """The source's ``databases`` dumped in one snapshot and scanned, as a manifest the proof
    compares with: its coordinates exact, or StandbyError (the check cannot say anything)."""
    server = source_server(settings)
    client = dump.dump_client()
    started = datetime.now(UTC)
    with contextlib.closing(connect(server)) as connection:
        info = inventory.server_version(connection)
        engines = inventory.table_engines(connection, databases)
        before = inventory.binlog_position(connection, info["flavour"])
        options = dump.snapshot_options(
            client, info["flavour"], before, info["flavour"] == "mariadb"
            and inventory.binlog_gtid_readable(connection, before))
        scanner = DumpScanner()
        with snapshotlock.for_dump(settings, server, databases, info["flavour"],
                                   snapshot_gives_none=not options
                                   and bool(before.get("file"))) as locked:
            chunks = dump.dump_chunks(server, databases, "for the standby check", options)
            with contextlib.closing(chunks):
                for chunk in locked.watch(chunks):
                    scanner.feed(chunk)
        scanner.close()
        after = inventory.binlog_position(connection, info["flavour"])
        objects = inventory.stored_objects(connection, databases)
    if not scanner.complete:
        raise StandbyError("The source's dump for the standby check ended without "
                           "mysqldump's completion trailer; nothing was compared.",
                           "Run the check again; see the source's error log.")
    consistency = dump.snapshot_coordinates(scanner.snapshot, before, after, locked)
    if not consistency["binlog_exact"]:
        raise StandbyError(
            "The source's snapshot for the standby check has no exact binlog coordinates "
            f"({consistency['binlog_method'].removeprefix('none: ')}); nothing was compared.",
            "With binlog.enabled: true and binlog.snapshot_lock_seconds above 0 the table "
            "locks give them; or run the check when the source is quieter.")
    finished = datetime.now(UTC)
    at = consistency["binlog_snapshot"]
    return Manifest(
        name=f"the source at {at['file']}:{at['position']}", drkit_version=__version__,
        started_at=started, finished_at=finished,
        duration_seconds=round((finished - started).total_seconds(), 3),
        source={"host": server.host, "port": server.port, **info}, databases=databases,
        consistency=consistency, dump={"client": client.path, "options": list(options)},
        compression={}, compressed=Digest(size=0, sha256=""),
        sql=Digest(size=0, sha256=""), objects=objects, definitions=scanner.definitions,
        tables={f"{database}.{table}": TableEntry(
            rows=content.rows, sha256=content.digest,
            unordered_digest=content.unordered_digest,
            engine=engines.get(f"{database}.{table}"))
            for (database, table), content in sorted(scanner.tables.items())})


def archive_holds(settings: Settings, coordinates: Coordinates,
                  wait_seconds: float | None = None) -> None:
    """Makes the binlog archive hold the source's binary log up to ``coordinates``: archives
    it now, or, when another streamer holds the archive (a follower), waits for its next
    flush (``binlog.flush_seconds``, and a margin)."""
    with contextlib.suppress(LockHeldError):  # the other streamer archives it
        binlog_archive.stream(settings, once=True)
    wait = settings.binlog.flush_seconds + 30 if wait_seconds is None else wait_seconds
    deadline = time.monotonic() + wait
    wanted = (file_order(coordinates[0]), coordinates[1])
    while True:
        files = archive_of(settings).files()
        if files and max((file_order(f.file), f.size) for f in files) >= wanted:
            return
        if time.monotonic() >= deadline:
            raise BinlogArchiveError(
                f"The binlog archive does not reach the source's {coordinates[0]}:"
                f"{coordinates[1]} after {duration(wait)}: the standby cannot be brought "
                "there; nothing was compared.",
                "Look at drkit binlog status and the streamer (drkit binlog stream).")
        time.sleep(1)
