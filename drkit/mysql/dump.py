"""Running mysqldump (or mariadb-dump) as a stream, with the password in an option file."""

from __future__ import annotations

import contextlib
import fcntl
import subprocess
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from drkit.errors import DumpFailedError, TlsError
from drkit.mysql.clients import DumpClient, dump_client
from drkit.mysql.connection import OptionFile, Server, option_file
from drkit.programs import find_program

if TYPE_CHECKING:
    from drkit.mysql.snapshotlock import TableLockCoordinates

_STDERR_LIMIT = 64 * 1024


def snapshot_options(client: DumpClient, server_flavour: str, position: dict[str, Any],
                     gtid_readable: bool = True) -> tuple[str, ...]:
    """Ask mysqldump for its snapshot's binlog coordinates where that takes no lock: MariaDB
    reads them inside the consistent snapshot (binlog_snapshot_file/position). MySQL's
    mysqldump would take FLUSH TABLES WITH READ LOCK for them, which RDS refuses.

    MariaDB 10.11's mysqldump then asks BINLOG_GTID_POS for the position and crashes
    (SIGSEGV) when the server answers NULL, which it does in a binlog holding events larger
    than it reads back: ``gtid_readable`` is that question asked first."""
    if client.flavour == server_flavour == "mariadb" and position.get("file") and \
            "--master-data" in client.supported and gtid_readable:
        return ("--master-data=2",)
    return ()


def snapshot_coordinates(snapshot: dict[str, Any] | None, before: dict[str, Any],
                         after: dict[str, Any],
                         locked: TableLockCoordinates | None = None) -> dict[str, Any]:
    """The manifest's statement of where in the binary log the backup's data stands, and
    whether that is exact (a point-in-time restore may start there only if it is)."""
    if snapshot:
        return {"binlog_snapshot": snapshot, "binlog_exact": True,
                "binlog_method": "snapshot coordinates (binlog_snapshot_file/position)"}
    if locked and locked.coordinates:
        return {"binlog_snapshot": locked.coordinates, "binlog_exact": True,
                "binlog_method": locked.method}
    if before.get("file") and before == after:
        # Nothing was written during the dump: the snapshot saw exactly this position.
        return {"binlog_snapshot": {k: before.get(k) for k in ("file", "position", "gtid")},
                "binlog_exact": True, "binlog_method": "position unchanged during the dump"}
    why = locked.refusal if locked and locked.refusal else \
        "written to during the dump, or binary logging off"
    return {"binlog_snapshot": None, "binlog_exact": False, "binlog_method": f"none: {why}"}


class DumpProcess:
    """mysqldump with stdout as a byte stream and stderr kept (its tail) for the message."""

    def __init__(self, command: list[str], options: OptionFile) -> None:
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        pass_fds=(options.fd,))
        with contextlib.suppress(OSError):  # fewer wake-ups; Linux only, best effort
            fcntl.fcntl(self.process.stdout.fileno(), fcntl.F_SETPIPE_SZ, 1024 * 1024)
        self._stderr = bytearray()
        self._stderr_reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._stderr_reader.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _read_stderr(self) -> None:
        for line in self.process.stderr:
            self._stderr += line
            del self._stderr[:-_STDERR_LIMIT]

    def chunks(self, size: int = 1024 * 1024) -> Iterator[bytes]:
        """The output in chunks of exactly ``size`` bytes (the last one shorter).

        Large, even chunks keep the per-chunk work (scan, hash, compress) cheap; a pipe
        otherwise hands over 64 KiB at a time.
        """
        stream = self.process.stdout
        while chunk := stream.read(size):
            yield chunk

    def wait(self) -> int:
        code = self.process.wait()
        self._stderr_reader.join(timeout=5)
        return code

    @property
    def stderr(self) -> str:
        return self._stderr.decode("utf-8", "replace").strip()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.wait()


def dump_chunks(server: Server, databases: list[str], purpose: str,
                extra: tuple[str, ...] = ()) -> Iterator[bytes]:
    """mysqldump's output of ``databases``, as it comes. Close the iterator when done with
    it early (``contextlib.closing``): mysqldump is stopped then, never left blocked on a
    pipe nobody reads. A failed dump raises DumpFailedError naming ``purpose``."""
    client = dump_client()
    with option_file(server) as options:
        process = DumpProcess(client.command(options, databases, extra), options)
        try:
            yield from process.chunks()
        except BaseException:
            process.stop()
            raise
        code = process.wait()
    if code != 0:
        raise DumpFailedError(f"Dumping {', '.join(databases)} from the {server.role} server "
                              f"{purpose} failed ({process.stderr or code}).")


def client_tls_failure(program: str, server: Server, message: str,
                       consequence: str = "") -> TlsError | None:
    """A client program's TLS error (its last stderr line) as one sentence, or None."""
    if "SSL" not in message and "TLS" not in message:
        return None
    role = server.role
    return TlsError(f"TLS from {program} to the {role} server {server.address} failed "
                    f"({message}){consequence}.",
                    f"Check {role}.tls and {role}.ssl_ca: MariaDB's client verifies the host "
                    "name under verify-ca too (use a name the certificate holds, or tls: "
                    "required).")


def check_client_login(server: Server) -> None:
    """The mysql client logs in as mysqldump will (same options, TLS included): a restore
    checks this before loading, so a proof cannot fail on the connection afterwards."""
    client = find_program("mysql")
    with option_file(server) as options:
        result = subprocess.run([client, f"--defaults-file={options}", "-e", "SELECT 1"],
                                capture_output=True, text=True, pass_fds=(options.fd,),
                                timeout=60)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no message"])[-1]
        if (tls := client_tls_failure("the mysql client", server, last)) is not None:
            raise tls
        raise DumpFailedError(f"The mysql client cannot log in to the {server.role} server "
                              f"{server.address} ({last}).")
