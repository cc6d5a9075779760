"""Exact binlog coordinates for a dump where the server cannot give them inside the snapshot
(MySQL 8; MariaDB when BINLOG_GTID_POS cannot answer), without a global lock.

What MySQL Shell's dumper does when FLUSH TABLES WITH READ LOCK is refused (RDS), from its
``modules/util/dump/dumper.cc``: ``LOCK TABLES ... READ`` on the dumped tables, start the
dump's transaction, read the coordinates, unlock. While the tables are locked no transaction
that writes them can commit, so every change to them before the coordinates is in the
snapshot and none after it is. Writes to those tables wait for at most
``binlog.snapshot_lock_seconds``; reads never wait. The coordinates come from
``performance_schema.log_status`` (file, position and GTID set read at one instant, MySQL
8.0.14+, needs BACKUP_ADMIN) or else from SHOW MASTER STATUS.

mysqldump has started its transaction once it writes ``-- Current Database:`` (or, with
``--skip-comments``, ``USE``): both flavours' ``main()`` run ``start_transaction()`` before
``dump_databases()``, whose ``init_dumping()`` writes them first for each database given
with ``--databases``.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pymysql

from drkit.config import Settings
from drkit.mysql.connection import Server, connect, kill_query
from drkit.mysql.inventory import binlog_position

# What mysqldump writes for the first database, after its transaction started (the comment
# unless --skip-comments, then USE).
_STARTED = (b"\n-- Current Database: ", b"\nUSE `")


@contextlib.contextmanager
def for_dump(settings: Settings, server: Server, databases: list[str], flavour: str, *,
             snapshot_gives_none: bool) -> Iterator[TableLockCoordinates]:
    """The dumped tables locked for exact coordinates where the dump's snapshot gives none
    of a binary log the source writes (``snapshot_gives_none``) and the binlog archive needs
    them (else nothing is locked); unlocked at the latest on leaving."""
    seconds = settings.binlog.snapshot_lock_seconds
    holder = TableLockCoordinates(server, databases, flavour, seconds, wanted=bool(
        snapshot_gives_none and settings.binlog.enabled and seconds))
    try:
        if holder.wanted:
            holder.lock()
        yield holder
    finally:
        holder.release()


@dataclass
class TableLockCoordinates:
    """:meth:`lock` before the dump starts; :meth:`watch` its output."""

    server: Server
    databases: list[str]
    flavour: str
    seconds: float
    wanted: bool = True
    coordinates: dict[str, Any] | None = None
    method: str = ""
    refusal: str = ""  # why there are no coordinates
    _connection: pymysql.connections.Connection | None = None
    _locking: bool = False
    _guard: threading.RLock = field(default_factory=threading.RLock)

    def lock(self) -> None:
        """Locks the dumped tables for reading; if that fails or takes too long, nothing is
        locked and ``refusal`` says why."""
        self._connection = connect(self.server)
        try:
            with self._connection.cursor() as cursor:
                cursor.execute("SELECT CONNECTION_ID()")
                own = cursor.fetchone()[0]
                cursor.execute(
                    "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE "
                    "TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA IN (" +
                    ", ".join(["%s"] * len(self.databases)) + ")", self.databases)
                tables = [f"`{d.replace('`', '``')}`.`{t.replace('`', '``')}` READ"
                          for d, t in cursor.fetchall()]
                if not tables:
                    self.refusal = "the dumped databases hold no tables"
                else:
                    # One deadline for everything: LOCK TABLES waits for each table in turn
                    # (lock_wait_timeout each) while holding those it has, so the watchdog
                    # stops it (KILL QUERY), or unlocks once locked.
                    self._timer = threading.Timer(self.seconds, self._give_up, (own,))
                    self._timer.daemon = True
                    self._locking = True
                    self._timer.start()
                    cursor.execute(f"SET SESSION lock_wait_timeout = {math.ceil(self.seconds)}")
                    try:
                        cursor.execute("LOCK TABLES " + ", ".join(tables))
                    finally:
                        self._locking = False
        except pymysql.err.MySQLError as exc:
            self.refusal = self.refusal or f"LOCK TABLES ... READ: {exc.args[-1]}"
        if self.refusal:
            self.release()

    def watch(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """The dump's output, passed on; the coordinates are read (and the tables unlocked)
        as soon as it shows that the dump's transaction has started."""
        tail = b""
        for chunk in chunks:
            if self._connection is not None:
                if any(marker in tail + chunk for marker in _STARTED):
                    self._capture()
                tail = chunk[-32:]
            yield chunk
        self.release()  # the dump's output ended: no lock outlives it, whatever it showed

    def release(self) -> None:
        """Unlocks; ``coordinates``, ``method`` and ``refusal`` are final once this returns."""
        with self._guard:
            timer = getattr(self, "_timer", None)
            if timer is not None:
                timer.cancel()
            if self._connection is not None:
                with contextlib.suppress(pymysql.err.Error):
                    self._connection.cursor().execute("UNLOCK TABLES")
                with contextlib.suppress(pymysql.err.Error):
                    self._connection.close()
                self._connection = None

    def _capture(self) -> None:
        with self._guard:
            if self._connection is None:
                return  # given up already
            try:
                self.coordinates, self.method = self._read()
            except pymysql.err.MySQLError as exc:
                self.refusal = f"reading the coordinates: {exc.args[-1]}"
        self.release()

    def _give_up(self, own: int) -> None:
        with self._guard:
            if self._connection is None or self.coordinates is not None:
                return
            self.refusal = (f"the dumped tables were not locked with the dump's transaction "
                            f"started within {self.seconds:g} s")
            if self._locking:  # stop the LOCK TABLES under way; lock() then unlocks
                kill_query(self.server, own)
                return
        self.release()

    def _read(self) -> tuple[dict[str, Any] | None, str]:
        with self._connection.cursor() as cursor:
            try:
                cursor.execute("SELECT LOCAL FROM performance_schema.log_status")
                return (log_status_coordinates(cursor.fetchone()[0]),
                        "table locks while the snapshot started; performance_schema.log_status")
            except (pymysql.err.MySQLError, TypeError, KeyError, ValueError):
                pass  # MariaDB, or no BACKUP_ADMIN: the status statement, under the same locks
        position = binlog_position(self._connection, self.flavour)
        if not position.get("file"):
            self.refusal = position.get("unavailable", "binary logging is off")
            return None, ""
        return ({k: position.get(k) for k in ("file", "position", "gtid")},
                "table locks while the snapshot started; SHOW MASTER STATUS")


def log_status_coordinates(local: str) -> dict[str, Any]:
    """The coordinates in ``performance_schema.log_status``'s LOCAL column (a JSON object
    with ``binary_log_file``, ``binary_log_position`` and ``gtid_executed``)."""
    status = json.loads(local)
    return {"file": status["binary_log_file"], "position": int(status["binary_log_position"]),
            "gtid": status.get("gtid_executed") or None}
