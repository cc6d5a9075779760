"""Small helpers shared by tests: running the CLI in-process, probing processes and ports."""

from __future__ import annotations

import io
import socket
from dataclasses import dataclass
from pathlib import Path

from drkit.cli.main import main
from drkit.console import Environment


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
