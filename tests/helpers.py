"""Small helpers shared by tests: pointing drkit at the sandbox, running the CLI in-process,
waiting for an event, probing processes and ports."""

from __future__ import annotations

import io
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from drkit.cli.main import main
from drkit.console import Environment
from drkit.sandbox.estate import Sandbox


def point_cli_at(sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point drkit (CLI and library) at ``sandbox``, under a fresh blob prefix and this
    test's own state directory (locks, audit records) and maintenance page; return the
    prefix."""
    prefix = f"t-{uuid.uuid4().hex[:8]}/"
    monkeypatch.setenv("DRKIT_CONFIG", str(sandbox.config_path))
    monkeypatch.setenv("DRKIT_STORAGE__PREFIX", prefix)
    # Its own binlog archive too: restores and failovers use any archive they find.
    monkeypatch.setenv("DRKIT_BINLOG__PREFIX", f"{prefix}binlogs/")
    monkeypatch.setenv("DRKIT_BACKUP__STATE_DIR", str(tmp_path / "state"))
    # $web is the account's one static website: each test's page in a folder of its own.
    monkeypatch.setenv("DRKIT_AZURE__WEBSITE_PAGE", f"{prefix}index.html")
    return prefix


def wait_until(condition: Callable[[], object], what: str, seconds: float = 60,
               every: float = 0.1) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``seconds``. A test
    waits for the event it needs (a line, a file, a process state, a server's answer), never
    for a length of time it hopes is enough."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {seconds:g} s"
        time.sleep(every)


# What a binlog in clear holds that ciphertext does not by chance: each 6 bytes or more, so
# 100 MB of ciphertext holds one by chance about once in three million runs (b"\xfebin",
# 4 bytes, turned up in a CI run's 40 MB).
_CLEAR_BINLOG = (b"-MariaDB", b"binlog_probe", b"INSERT INTO", b"\x04shop\x00",
                 b"archived unread")


def assert_no_readable_binlog(name: str, stored: bytes) -> None:
    """An archived blob as Azure holds it: age files only, no binlog or SQL text in clear."""
    from drkit.stream.encryption import HEADER

    assert stored.startswith(HEADER), f"{name} is not an age file"
    for readable in _CLEAR_BINLOG:
        assert readable not in stored, f"{name} holds {readable!r} in clear"


def process_stopped(pid: int) -> bool:
    """Whether process ``pid`` is stopped (SIGSTOP: a failpoint's ``:stop``)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


def run_cli(*args: str) -> CliResult:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), Environment(stdout=out, stderr=err))
    return CliResult(code, out.getvalue(), err.getvalue())


def process_alive(pid: int) -> bool:
    """True for a running process; a zombie (exited, not yet reaped) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def port_listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0
