"""A check's result in Nagios terms, shared by ``drkit doctor`` and the failover assessment.

The status is also the exit code of a Nagios plug-in: OK 0, WARNING 1, CRITICAL 2, and
UNKNOWN 3 when the check itself could not run (an internal error, not a finding).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
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
class Perfdata:
    """A figure behind a check, for Nagios's performance data (``label=12s;3600;7200``)."""

    label: str
    value_seconds: float
    warning_seconds: float | None = None
    critical_seconds: float | None = None

    def __str__(self) -> str:
        limits = [f"{limit:.0f}" if limit is not None else ""
                  for limit in (self.warning_seconds, self.critical_seconds)]
        return f"{self.label}={self.value_seconds:.0f}s;{';'.join(limits)}".rstrip(";")


@dataclass
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""
    perfdata: Perfdata | None = None

    def as_dict(self) -> dict:
        found = asdict(self)
        if self.perfdata is None:
            del found["perfdata"]
        return found


def worst(checks: list[Check]) -> Status:
    return max((c.status for c in checks), key=_SEVERITY.index, default=OK)


def status_line(checks: list[Check]) -> str:
    """Nagios's first line: the state, the checks that are not OK, then the performance data.

    ``DRKIT WARNING - 2 warnings: cron entries, cron daemon | newest_backup_age=612s;90000;...``
    """
    status = worst(checks)
    findings = []
    for severity in reversed(_SEVERITY[1:]):  # the worst first
        names = [c.name for c in checks if c.status == severity]
        if names:
            one, more = _NOUNS[severity]
            findings.append(f"{len(names)} {one if len(names) == 1 else more}: "
                            f"{', '.join(names)}")
    summary = "; ".join(findings) or f"{len(checks)} check{'s' * (len(checks) != 1)} OK"
    perfdata = " ".join(str(c.perfdata) for c in checks if c.perfdata is not None)
    # Nagios reads "|" as the start of the performance data: none may appear before it.
    line = f"DRKIT {status} - {summary.replace('|', '/')}"
    return f"{line} | {perfdata}" if perfdata else line


_NOUNS = {WARNING: ("warning", "warnings"), UNKNOWN: ("unknown", "unknown"),
          CRITICAL: ("critical", "critical")}
