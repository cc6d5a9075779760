"""A check's result in Nagios terms, shared by ``drkit doctor`` and the failover assessment.

The status is also the exit code of a Nagios plug-in: OK 0, WARNING 1, CRITICAL 2, and
UNKNOWN 3 when the check itself could not run (an internal error, not a finding).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from drkit.exitstatus import ExitStatus


class Status(StrEnum):
    OK = "OK"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"
    UNKNOWN = "UNKNOWN"

    @property
    def exit_code(self) -> ExitStatus:
        return _EXIT_CODES[self]


_EXIT_CODES = {Status.OK: ExitStatus.NAGIOS_OK, Status.WARNING: ExitStatus.NAGIOS_WARNING,
               Status.CRITICAL: ExitStatus.NAGIOS_CRITICAL,
               Status.UNKNOWN: ExitStatus.NAGIOS_UNKNOWN}
# A finding outranks a check that could not run: CRITICAL pages even if another check broke.
_SEVERITY = [Status.OK, Status.WARNING, Status.UNKNOWN, Status.CRITICAL]
OK, WARNING, CRITICAL, UNKNOWN = Status.OK, Status.WARNING, Status.CRITICAL, Status.UNKNOWN


@dataclass
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""


def worst(checks: list[Check]) -> Status:
    return max((c.status for c in checks), key=_SEVERITY.index, default=OK)
