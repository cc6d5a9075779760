"""The standby's pilot light (``standby.stop_server_after``): the DR Flexible Server is kept
stopped between catch-ups; ``standby follow --once`` starts it, catches up, and stops it
again, and counts the compute time that cost.

What each catch-up used is kept in a ledger under the state directory of the host that
follows (the server is stopped between catch-ups, so it cannot hold it): the last
catch-up's minutes and the running total since the first, which ``standby status`` shows.
A server found running (a failover, a drill, someone at the console) is left running and
its time is not the standby's cost.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drkit.binlog import position
from drkit.binlog.position import Position
from drkit.config import Settings
from drkit.console import log_event
from drkit.ops.lock import RunLock
from drkit.units import duration


@dataclass(frozen=True)
class ComputeUse:
    """One catch-up's use of the server."""

    started_at: str  # when the catch-up began (ISO 8601, UTC)
    started_server: bool  # False: it found the server running and left it so
    compute_seconds: float  # from the start request to the server Stopped; 0 if not started


def add(ledger: dict[str, Any], use: ComputeUse,
        left_at: Position | None = None) -> dict[str, Any]:
    """The ledger with one more catch-up: the totals since the first, this one, and where
    it left the standby (``left_at``; the earlier one's when it did not say)."""
    return {"since": ledger.get("since", use.started_at),
            "catch_ups": ledger.get("catch_ups", 0) + 1,
            "compute_seconds": round(ledger.get("compute_seconds", 0.0) + use.compute_seconds,
                                     3),
            "last": asdict(use),
            "position": position.to_record(left_at) if left_at else ledger.get("position")}


def last_position(ledger: dict[str, Any]) -> Position | None:
    """Where the last catch-up left the standby, as it was on the target then."""
    return position.from_record(ledger["position"]) if ledger.get("position") else None


def summary(ledger: dict[str, Any]) -> dict[str, Any] | None:
    """What the pilot light cost, as ``standby status`` reports it; None before its first
    catch-up."""
    if not ledger:
        return None
    return {"since": ledger["since"], "catch_ups": ledger["catch_ups"],
            "compute_seconds": ledger["compute_seconds"],
            "last_compute_seconds": ledger["last"]["compute_seconds"],
            "last_started_server": ledger["last"]["started_server"]}


def ledger_path(settings: Settings) -> Path:
    """The Flexible Server's ledger (the compute is that server's)."""
    return (settings.backup.state_dir.expanduser() / "standby" /
            f"compute-{settings.azure.flexible_server}.json")


def read_ledger(settings: Settings) -> dict[str, Any]:
    """Empty where no pilot light ever ran (or no Flexible Server is configured)."""
    if not settings.azure.flexible_server:
        return {}
    path = ledger_path(settings)
    return json.loads(path.read_text()) if path.exists() else {}


@contextlib.contextmanager
def pilot_light(settings: Settings) -> Iterator[Callable[[Position], None]]:
    """The stopped server started for what runs inside, stopped again after it (whether it
    worked or not), and the compute time counted; what runs inside tells where it left the
    standby (for ``standby status`` while the server is stopped). One at a time on this
    host: a second would stop the server under the first."""
    from drkit.azure.flexserver import FlexibleServer

    server = FlexibleServer(settings)  # none configured: said before anything is done
    with RunLock(ledger_path(settings).with_suffix(".lock"), "pilot-light catch-up"):
        began, clock = datetime.now(UTC), time.monotonic()
        started = server.start()  # waits until Ready; False when it was Ready already
        left: list[Position] = []
        try:
            yield left.append
        finally:
            try:
                if started:
                    server.stop()  # waits until Stopped: the compute time ends there
            finally:
                use = ComputeUse(began.isoformat(timespec="seconds"), started,
                                 round(time.monotonic() - clock, 3) if started else 0.0)
                _write(ledger_path(settings), add(read_ledger(settings), use,
                                                  left[-1] if left else None))
                log_event("standby.pilot_light",
                          f"Pilot light: Flexible Server {server.name} "
                          + (f"started and stopped again, {duration(use.compute_seconds)} of "
                             "compute" if started else "was running; left running"),
                          **asdict(use))


def _write(path: Path, ledger: dict[str, Any]) -> None:
    """Replaced whole (a reader never sees half of it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(ledger))
    os.replace(partial, path)
