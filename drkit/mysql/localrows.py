"""A connection whose ``LOAD DATA LOCAL INFILE`` reads rows drkit holds in memory, never a
file.

``LOAD DATA LOCAL`` costs the server about half of what parsing the same rows as a
multi-row INSERT does (bench/binlog_bench.py). In the protocol the server, not the client,
names the file to send: pymysql's own handler opens whatever path it is asked for, so a
hostile or mistaken server could read any file drkit's user can. Here the answer comes only
from :meth:`LocalRowsConnection.offer`: the bytes offered under the name the statement
gave, once; any other request gets nothing (an empty file) and fails the statement. Nothing
is written to disk; what is offered is the caller's bounded buffer.
"""

from __future__ import annotations

from typing import Any

import pymysql
from pymysql.connections import MySQLResult
from pymysql.constants import CR
from pymysql.protocol import LoadLocalPacketWrapper

from drkit.mysql.connection import Connection

# The rows go in packets of this size, as MySQL's and pymysql's own clients send a file:
# far below any max_allowed_packet the server may have, which refuses a larger packet.
_CHUNK = 16 * 1024


class LocalRowsConnection(Connection):
    """A pymysql connection that announces LOAD DATA LOCAL and serves only offered rows."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, local_infile=True, **kwargs)
        self._offered: dict[bytes, bytes | memoryview] = {}

    def offer(self, name: str, data: bytes | memoryview) -> None:
        """``data`` is what the next ``LOAD DATA LOCAL INFILE 'name'`` reads."""
        self._offered[name.encode()] = data

    def withdraw(self) -> None:
        """Forgets what was offered and not asked for (a statement before it failed)."""
        self._offered.clear()

    def _read_query_result(self, unbuffered: bool = False) -> int:
        # pymysql's own, with the result class that answers a LOAD DATA LOCAL request.
        self._result = None
        result = _OfferedRowsResult(self)
        if unbuffered:
            result.init_unbuffered_query()
        else:
            result.read()
        self._result = result
        if result.server_status is not None:
            self.server_status = result.server_status
        return result.affected_rows


class _OfferedRowsResult(MySQLResult):
    def _read_load_local_packet(self, first_packet: Any) -> None:
        connection: LocalRowsConnection = self.connection
        name = LoadLocalPacketWrapper(first_packet).filename
        data = connection._offered.pop(name, None)
        try:
            _send_file(connection, data or b"")
        finally:
            answer = connection._read_packet()  # raises the server's error, if any
        if data is None:
            raise pymysql.err.OperationalError(
                CR.CR_UNKNOWN_ERROR,
                f"The server asked for local file {name[:80]!r}, which drkit did not offer; "
                "nothing was sent.")
        if not answer.is_ok_packet():
            raise pymysql.err.OperationalError(CR.CR_COMMANDS_OUT_OF_SYNC,
                                               "Commands Out of Sync")
        self._read_ok_packet(answer)


def _send_file(connection: LocalRowsConnection, data: bytes | memoryview) -> None:
    """``data`` as the packets of a local file and its end (an empty packet), in one write:
    the statements' thread then waits once for the GIL, which the thread decoding the next
    rows holds, not once a packet (up to sys.getswitchinterval(), 5 ms, each)."""
    view, sequence, packets = memoryview(data), connection._next_seq_id, []
    for piece in [view[start:start + _CHUNK] for start in range(0, len(view), _CHUNK)] + [b""]:
        packets += [len(piece).to_bytes(3, "little") + bytes([sequence]), piece]
        sequence = (sequence + 1) % 256
    connection._write_bytes(b"".join(packets))  # as pymysql's write_packet does, at once
    connection._next_seq_id = sequence
