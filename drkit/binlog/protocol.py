"""Reading the source's binary log as a replica does: the binlog dump protocol over PyMySQL.

Why the protocol and not ``mysqlbinlog --read-from-remote-server --raw``: ``--raw`` writes
files to local disk (its only output), its exit does not say how far it got, and the client of
the server's flavour would have to be installed (MariaDB's misreads MySQL 8's events). Over
the protocol drkit receives each event's bytes exactly as the server stores them, knows the
position after every event, and needs nothing but the connection it already makes (with its
TLS and credentials). ``COM_BINLOG_DUMP`` with ``BINLOG_DUMP_NON_BLOCK`` ends at the log's
current end, which is what ``--once`` wants; without it the server keeps sending.

The archive keeps every file byte for byte as the server has it (the 4-byte magic, then the
events), so ``mysqlbinlog`` reads an archived file as it reads the server's.
"""

from __future__ import annotations

import contextlib
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pymysql
from pymysql.constants import COMMAND

from drkit.errors import BinlogArchiveError
from drkit.mysql.connection import Server, connect

MAGIC = b"\xfebin"
HEADER = 19  # timestamp, type, server id, size, next position, flags
ROTATE_EVENT = 4
FORMAT_DESCRIPTION_EVENT = 15
MYSQL_GTID_EVENT = 33
MARIADB_GTID_EVENT = 162
HEARTBEAT_EVENTS = {27, 159}  # MySQL's and MariaDB's heartbeat: never stored
ARTIFICIAL = 0x20  # LOG_EVENT_ARTIFICIAL_F: made up by the dump thread, not in the file
NON_BLOCK = 0x01  # BINLOG_DUMP_NON_BLOCK
SEND_ANNOTATE_ROWS = 0x02  # MariaDB's BINLOG_SEND_ANNOTATE_ROWS_EVENT


@dataclass(frozen=True)
class Event:
    file: str
    position: int  # where the event starts in its file
    next_position: int
    timestamp: int
    type: int
    server_id: int
    data: bytes
    gtid: str | None = None


def binary_logs(server: Server) -> list[tuple[str, int]]:
    """The source's binary logs, oldest first, with their sizes (``SHOW BINARY LOGS``)."""
    connection = connect(server)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW BINARY LOGS")
            return [(row[0], int(row[1])) for row in cursor.fetchall()]
    finally:
        connection.close()


@dataclass(frozen=True)
class DumpOptions:
    """How a dump session reads: as which replica, past the log's current end or not."""

    replica_id: int  # the server id the session announces (unique among the replicas)
    follow: bool = False  # keep reading as the server writes; else stop at the current end
    heartbeat_seconds: float = 5.0  # while idle, the server sends a heartbeat this often


class BinlogReader:
    """One dump session from ``file`` at ``position``; iterate it for the stored events."""

    def __init__(self, server: Server, file: str, position: int, options: DumpOptions) -> None:
        self.connection = connect(server)
        self.file = file
        self.position = position
        self._checksum = 0
        with self.connection.cursor() as cursor:
            # Announce that we take checksummed events as the server writes them, and (on
            # MariaDB) its GTID events as they are rather than rewritten for an old replica.
            cursor.execute("SELECT @@GLOBAL.binlog_checksum")
            algorithm = cursor.fetchone()[0]
            cursor.execute("SET @master_binlog_checksum = @@GLOBAL.binlog_checksum")
            cursor.execute("SET @mariadb_slave_capability = 4")
            # While idle, the server sends a heartbeat this often: the caller gets control
            # back (None from the iterator) to flush what it holds.
            cursor.execute("SET @master_heartbeat_period = %s",
                           (int(options.heartbeat_seconds * 1e9),))
            self._checksum = 4 if algorithm and algorithm.upper() != "NONE" else 0
        flags = 0 if options.follow else NON_BLOCK
        if "mariadb" in self.connection.get_server_info().lower():
            # Without it MariaDB leaves out its ANNOTATE_ROWS events: the copy would have
            # holes, and the statement text beside row events is worth keeping.
            flags |= SEND_ANNOTATE_ROWS
        payload = struct.pack("<IHI", min(position, 0xFFFFFFFF), flags,
                              options.replica_id) + file.encode()
        self.connection._execute_command(COMMAND.COM_BINLOG_DUMP, payload)

    def close(self) -> None:
        with contextlib.suppress(pymysql.err.Error):
            self.connection.close()

    def __iter__(self) -> Iterator[Event | None]:
        """The stored events in order; None for a heartbeat (nothing new, time passed)."""
        while True:
            try:
                packet = self.connection._read_packet()
            except pymysql.err.MySQLError as exc:
                code, message = (exc.args + ("", ""))[:2]
                raise BinlogArchiveError(
                    f"Reading {self.file} from position {self.position} on the source failed "
                    f"({code}: {str(message)[:200]}).",
                    "Run drkit binlog stream again: it resumes where the archive ends; if the "
                    "source says the position is impossible, compare drkit binlog status with "
                    "SHOW BINARY LOGS.") from None
            if packet.is_eof_packet():
                return
            data = packet.get_all_data()[1:]
            timestamp, kind, server_id, size, next_position, flags = struct.unpack(
                "<IBIIIH", data[:HEADER])
            if kind in HEARTBEAT_EVENTS:
                yield None
                continue
            if kind == ROTATE_EVENT and (flags & ARTIFICIAL or next_position == 0):
                # The dump thread says which file it reads now (at a start or a rotation).
                self.file = data[HEADER + 8:len(data) - self._checksum].decode()
                self.position = struct.unpack("<Q", data[HEADER:HEADER + 8])[0]
                continue
            if kind == FORMAT_DESCRIPTION_EVENT and next_position == 0:
                continue  # re-sent when starting mid-file; the file has its own at 4
            start = next_position - size
            event = Event(self.file, start, next_position, timestamp, kind, server_id, data,
                          _gtid(kind, server_id, data))
            self.position = next_position
            if kind == ROTATE_EVENT:  # the real one, last in its file: the next file follows
                self.file = data[HEADER + 8:len(data) - self._checksum].decode()
                self.position = 4
            yield event


def _gtid(kind: int, server_id: int, data: bytes) -> str | None:
    """The transaction's GTID: MariaDB's domain-server-sequence, MySQL's uuid:number."""
    if kind == MARIADB_GTID_EVENT:
        sequence, domain = struct.unpack("<QI", data[HEADER:HEADER + 12])
        return f"{domain}-{server_id}-{sequence}"
    if kind == MYSQL_GTID_EVENT:
        sid, number = data[HEADER + 1:HEADER + 17], struct.unpack(
            "<q", data[HEADER + 17:HEADER + 25])[0]
        uuid = sid.hex()
        return f"{uuid[:8]}-{uuid[8:12]}-{uuid[12:16]}-{uuid[16:20]}-{uuid[20:]}:{number}"
    return None


HEARTBEAT_DATABASE = "drkit_heartbeat"
HEARTBEAT_TABLE = "beat"


class Heartbeat:
    """Writes the time (UTC) into ``drkit_heartbeat.beat`` on the source, now and then every
    ``seconds``: each beat lands in the binary log, so a point-in-time restore can say which
    time its data really reached (the newest beat it replayed)."""

    def __init__(self, server: Server, seconds: float) -> None:
        self.server, self.seconds = server, seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        connection = connect(server)
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE IF NOT EXISTS {HEARTBEAT_DATABASE}")
                cursor.execute(f"CREATE TABLE IF NOT EXISTS {HEARTBEAT_DATABASE}."
                               f"{HEARTBEAT_TABLE} (id TINYINT PRIMARY KEY, at DATETIME(6) "
                               "NOT NULL)")
        finally:
            connection.close()
        self.beat()

    def beat(self) -> None:
        connection = connect(self.server)
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"REPLACE INTO {HEARTBEAT_DATABASE}.{HEARTBEAT_TABLE} "
                               "VALUES (1, UTC_TIMESTAMP(6))")
            connection.commit()
        finally:
            connection.close()

    def start(self) -> Heartbeat:
        def run() -> None:
            while not self._stop.wait(self.seconds):
                with contextlib.suppress(pymysql.err.Error):  # the next beat tries again
                    self.beat()

        self._thread = threading.Thread(target=run, name="heartbeat", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
