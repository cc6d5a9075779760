"""Doctor checks of the binlog archive and of what the source must give it.

A point-in-time restore needs, on the source: binary logging in ROW format, binlogs kept
long enough to bridge the time between full backups (on RDS: ``binlog retention hours``,
which is NULL, purge at once, unless set), and a user allowed to read them as a replica; in
the archive: no gap or break (a file missing or not matching its record) since the oldest
base, and a small lag.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from drkit.binlog.records import UNREADABLE_INDEX
from drkit.checks import CRITICAL, OK, WARNING, Check, Perfdata
from drkit.config import Settings
from drkit.mysql.connection import connect, source_server
from drkit.mysql.inventory import binlog_retention
from drkit.units import duration

REPLICA_PRIVILEGES = ("REPLICATION SLAVE", "REPLICATION CLIENT")
# Settings under which the binlog holds changes drkit's replay cannot read as rows (it refuses
# them when it meets them): the value each needs. Both servers' row image, MySQL 8's partial
# JSON, MariaDB's compression and encryption (MySQL 8's transaction compression it reads).
READABLE_SETTINGS = {"binlog_row_image": "FULL", "binlog_row_value_options": "",
                     "log_bin_compress": "OFF", "encrypt_binlog": "OFF"}


def source_checks(settings: Settings, backup_interval: timedelta | None) -> list[Check]:
    """What the source gives the archive; ``backup_interval``: the time between scheduled
    full backups (None: unscheduled, taken as a day)."""
    if not settings.binlog.enabled:
        return []
    with contextlib.closing(connect(source_server(settings))) as connection:
        with connection.cursor() as cursor:
            cursor.execute("SELECT @@log_bin, @@binlog_format")
            log_bin, binlog_format = cursor.fetchone()
            cursor.execute("SHOW GLOBAL VARIABLES WHERE Variable_name IN (" +
                           ", ".join(["%s"] * len(READABLE_SETTINGS)) + ")",
                           list(READABLE_SETTINGS))
            unreadable = {name: value for name, value in cursor.fetchall()
                          if str(value).upper() != READABLE_SETTINGS[name]}
            cursor.execute("SHOW GRANTS")
            grants = " ".join(row[0].upper() for row in cursor.fetchall())
        retention = binlog_retention(connection)
    checks = [Check("binary log", OK if log_bin and binlog_format == "ROW" else CRITICAL,
                    f"log_bin {'ON' if log_bin else 'OFF'}, binlog_format {binlog_format}",
                    "" if log_bin and binlog_format == "ROW" else
                    "Turn on binary logging in ROW format (RDS: automated backups on, and "
                    "binlog_format ROW in the DB parameter group).")]
    found = ", ".join(f"{name} {value or repr('')}" for name, value in unreadable.items())
    fix = ", ".join(f"{name} = {READABLE_SETTINGS[name] or repr('')}" for name in unreadable)
    checks.append(Check("binlog replayable", CRITICAL if unreadable else OK,
                        f"{found}: drkit's replay refuses what these write" if unreadable
                        else "full row images, neither compressed nor encrypted",
                        f"Set {fix} (RDS: in the DB parameter group)." if unreadable else ""))
    missing = [p for p in REPLICA_PRIVILEGES
               if p not in grants and "ALL PRIVILEGES ON *.*" not in grants]
    checks.append(Check("binlog privileges", CRITICAL if missing else OK,
                        f"{settings.source.user} lacks {', '.join(missing)}" if missing
                        else f"{settings.source.user} may read the binary log",
                        f"GRANT {', '.join(missing)} ON *.* TO the backup user."
                        if missing else ""))
    needed = backup_interval or timedelta(days=1)
    if retention is None:
        checks.append(Check("binlog retention", CRITICAL, "RDS purges binlogs as soon as it "
                            "can (binlog retention hours is NULL)",
                            f"CALL mysql.rds_set_configuration('binlog retention hours', "
                            f"{max(24, int(needed.total_seconds() // 3600) + 6)});"))
    else:
        status = OK if retention >= needed else WARNING
        checks.append(Check("binlog retention", status,
                            f"{duration(retention.total_seconds())}; full backups every "
                            f"{duration(needed.total_seconds())}",
                            "" if status == OK else "Keep binlogs at least as long as the "
                            "time between full backups, so a stopped streamer can catch up."))
    return checks


def archive_checks(settings: Settings) -> list[Check]:
    """The archive's gaps, breaks and lag."""
    from drkit.ops.binlog_archive import status

    report = status(settings, "listing")  # every file, not only what the index vouches for
    if not report["files"] and not report["verify"]["files"]:  # no record, and no blob
        return [Check("binlog archive", CRITICAL, "empty",
                      "Start the streamer: drkit binlog stream (drkit schedule prints its "
                      "systemd unit).")] if settings.binlog.enabled else []
    check = _archive_state(settings, report)
    if not settings.binlog.enabled:  # written all the same: restores and failovers use it
        check.detail += "; binlog.enabled is false, so its lag goes unwatched by the alarms"
        check.fix = " ".join(filter(None, [check.fix, "Set binlog.enabled: true in the config "
                                           "(restores and the failover use the archive "
                                           "either way)."]))
        check.status = CRITICAL if check.status == CRITICAL else WARNING
    return [check]


def _archive_state(settings, report: dict) -> Check:
    open_gaps = [g for g in report["gaps"] if not g["superseded_by"]]
    if open_gaps:
        return Check("binlog archive", CRITICAL, f"gap after {open_gaps[0]['after_file']}: "
                     f"{open_gaps[0]['missing']}", "Take a full backup now (drkit backup, "
                     "then drkit verify): point-in-time restores start after it.")
    # Records and blobs, cheaply (drkit.ops.binlog_verify): a file missing or not matching
    # its record cuts off times no gap record mentions.
    if broken := [b for b in report["verify"]["breaks"] if not b["superseded_by"]]:
        more = f" (and {len(broken) - 1} more breaks)" if len(broken) > 1 else ""
        return Check("binlog archive", CRITICAL, broken[0]["detail"].rstrip(".") + more,
                     "Take a full backup now (drkit backup, then drkit verify): later times "
                     "restore from it; drkit binlog verify lists every break and the times "
                     "that can be restored.")
    lag = report["lag_seconds"]
    late = lag is not None and lag > settings.binlog.lag_alarm_seconds
    if (problems := report["verify"]["index_problems"]) and not late:
        consequence = "binlog status lists the whole archive instead" \
            if problems[0] == UNREADABLE_INDEX else \
            "binlog status reads the index and may show what the archive does not hold"
        return Check("binlog archive", WARNING, f"{problems[0]}; {consequence}",
                     "Restart drkit binlog "
                     "stream (it writes the index anew); if it comes back, something other "
                     "than drkit writes the archive: check who holds the backup side's "
                     "storage credential.")
    ago = "no event yet" if lag is None else f"{duration(lag)} ago"
    return Check("binlog archive", WARNING if late else OK,
                 f"{report['files']} files, newest event {report['newest_event_at']} ({ago})",
                 "Is the streamer running? drkit binlog status; with an idle source, turn on "
                 "binlog.heartbeat." if late else "",
                 None if lag is None else Perfdata("binlog_archive_lag", lag,
                                                   settings.binlog.lag_alarm_seconds))
