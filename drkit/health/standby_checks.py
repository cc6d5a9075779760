"""Doctor's check of the standby (``drkit standby``): how far behind the archive it is, and
whether it can go on at all (a gap in the archive after its position, or a copy that no
longer equals the source: CRITICAL)."""

from __future__ import annotations

from typing import Any

from drkit.checks import CRITICAL, OK, WARNING, Check
from drkit.config import Settings
from drkit.errors import BinlogGapError, ServerError
from drkit.mysql.connection import target_server
from drkit.ops.standby import archive_of, read_position, refuse_gap, standby_status

_NAME = "standby"


def standby_checks(settings: Settings) -> list[Check]:
    """Nothing when the target has no standby (or cannot be reached: the target check says
    so); else its lag against ``standby.max_lag_minutes``, CRITICAL past a gap."""
    if settings.target is None or settings.side == "backup":
        return []
    try:
        at = read_position(target_server(settings))
    except ServerError:
        return []
    if at is None:
        return []
    archive = archive_of(settings)
    try:
        refuse_gap(archive, archive.files(), at.file)
    except BinlogGapError as error:
        return [Check(_NAME, CRITICAL, error.message, error.fix or "")]
    return [lag_check(standby_status(settings), settings.standby.max_lag_minutes)]


def lag_check(report: dict[str, Any], max_lag_minutes: float) -> Check:
    """The standby's lag (``standby status``'s report) against the limit."""
    names = ", ".join(report["databases"].values())
    if report.get("promoted"):  # the primary now: its lag is no one's concern
        return Check(_NAME, OK, f"{names} was promoted by {report['promoted']}; it is no "
                     "standby any more")
    if report.get("diverged"):
        return Check(_NAME, CRITICAL, f"{names} no longer equals the source: "
                     f"{report['diverged']}", "Make it again: drop its databases and "
                     "drkit_standby, then drkit standby init.")
    lag = report["lag_seconds"]
    if lag is None:
        return Check(_NAME, WARNING, f"{names} has not caught up since it was made "
                     f"({report['lag_bytes']} archived bytes to apply)",
                     "Run drkit standby follow (drkit schedule prints its unit).")
    detail = f"{names} {lag / 60:.1f} min behind the archive ({report['lag_bytes']} bytes); " \
        f"last catch-up {report['caught_up_at'] or 'never'}"
    if lag > max_lag_minutes * 60:
        return Check(_NAME, WARNING, f"{detail} (more than {max_lag_minutes:g} min)",
                     "See whether drkit standby follow runs, and its log.")
    return Check(_NAME, OK, detail)
