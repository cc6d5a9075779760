"""What killed runs left on the restore target, for ``drkit doctor``: each swap a journal
says stopped halfway, with its recovery as the fix, and each helper database no journal
names (``drkit_restore_*``, ``drkit_replaced_*``, ``drkit_drill_*``), with its age (from
the stamp in its name) and the statement that drops it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from drkit.checks import CRITICAL, WARNING, Check
from drkit.mysql.swap import SwapJournal
from drkit.stream.statement import quote_name
from drkit.units import duration

_KINDS = {"drkit_restore_": "an unproven restored copy", "drkit_replaced_": "old tables a "
          "swap set aside", "drkit_drill_": "a drill's copy"}
_STAMP = re.compile(r"_(\d{14})(?:_|$)")


def age(seconds: float) -> str:
    """``3 h old``: how long ago something a run left was made."""
    return f"{duration(seconds)} old"


def _kind(name: str) -> str:
    return next(kind for prefix, kind in _KINDS.items() if name.startswith(prefix))


def _database_age(name: str, now: datetime) -> str:
    """From the UTC stamp restores and drills put in their helpers' names."""
    match = _STAMP.search(name)
    if match is None:
        return "age unknown"
    made = datetime.strptime(match.group(1), "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    return age(max(0.0, (now - made).total_seconds()))


def leftover_checks(databases: list[str], journals: list[SwapJournal | Path], target: str,
                    now: datetime) -> list[Check]:
    """The swaps killed runs left (their journals), then the helper databases no journal
    names, each with its age and what to run: a journal's helpers are its recovery's to
    drop, never by hand (a drkit_replaced_* may hold the only copy of the old tables)."""
    checks, named = [], set()
    for journal in journals:
        if isinstance(journal, Path):
            checks.append(Check(
                "interrupted swaps", WARNING, f"{journal} is not a swap journal this drkit "
                "can replay", "It is an earlier drkit's (the old objects' SQL only): compare "
                "it with its database by hand, then delete it."))
            continue
        named |= {journal.scratch, journal.old}
        option = "" if journal.target == target else f" --target {journal.target}"
        started = datetime.fromisoformat(journal.started)
        checks.append(Check(
            "interrupted swaps", CRITICAL,
            f"a restore swapping {journal.scratch} in for {journal.place} on "
            f"{journal.target} stopped halfway; its journal {journal.path} is "
            f"{age((now - started).total_seconds())}: {journal.place} may lack views, "
            f"triggers, routines or events until it is recovered; {journal.old} and "
            f"{journal.scratch} belong to it",
            f"drkit restore --recover-swap{option} (it finishes or undoes the swap from the "
            "journal; do not drop those databases by hand)."))
    for prefix, check in (("drkit_re", "restore leftovers"), ("drkit_drill_", "drill leftovers")):
        found = [name for name in databases if name.startswith(prefix) and name not in named]
        if not found:
            continue
        described = "; ".join(f"{name} ({_kind(name)}, {_database_age(name, now)})"
                              for name in found)
        drops = " ".join(f"DROP DATABASE {quote_name(name)};" for name in found)
        if check == "restore leftovers":
            # A killed restore's copy no journal here names: no swap of this host waits on it.
            checks.append(Check(
                check, WARNING, f"databases left by killed restores: {described}",
                "No swap journal on this host names them (a drkit_replaced_* may still hold "
                "the only copy of the tables it replaced if another host ran that restore: "
                "run drkit restore --recover-swap there first). Once no restore runs on the "
                f"target: {drops}"))
        else:
            # A drill drops its copy at its end, also on failure; one killed (kill -9, a
            # reboot) cannot, and the copy would hold the target's storage for good.
            checks.append(Check(
                check, WARNING, f"copies left by interrupted restore drills: {described}",
                f"A drill's copy is never needed after it ends; once no drill runs: {drops}"))
    return checks
