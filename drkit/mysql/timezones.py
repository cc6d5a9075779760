"""Named time zones on the target: a backup's events and routines keep the zone they were
made in, and Flexible Server's time-zone tables are empty until ``mysql.az_load_timezone()``
runs. Checked, and loaded where the server offers its procedure, before a restore loads
anything."""

from __future__ import annotations

import contextlib

import pymysql

from drkit.console import log_event
from drkit.errors import RestoreBlockedError
from drkit.manifest import Manifest
from drkit.mysql.connection import Server, connect

HOW_TO_LOAD = ("load them with CALL mysql.az_load_timezone() on Flexible Server, or "
               "mysql_tzinfo_to_sql /usr/share/zoneinfo | mysql -u root mysql elsewhere")


def ensure(server: Server, manifest: Manifest) -> None:
    """The named time zones the backup's events and routines use exist on the target;
    Flexible Server's own procedure loads them where it can, before anything is loaded."""
    if not manifest.time_zones:
        return
    with contextlib.closing(connect(server)) as connection:
        try:
            missing = missing_zones(connection, manifest.time_zones)
            if missing and has_az_load_timezone(connection):
                with connection.cursor() as cursor:
                    cursor.execute("CALL mysql.az_load_timezone()")
                log_event("restore.time_zones", f"Loaded the target's time-zone tables (CALL "
                          f"mysql.az_load_timezone()): the backup uses {', '.join(missing)}",
                          zones=missing)
                missing = missing_zones(connection, manifest.time_zones)
        except pymysql.err.MySQLError as exc:
            raise RestoreBlockedError(
                f"Preparing the target's time zones for backup {manifest.name} failed "
                f"({exc.args[-1]}); nothing was restored.",
                HOW_TO_LOAD[0].upper() + HOW_TO_LOAD[1:] + ".") from None
    if missing:
        raise RestoreBlockedError(
            f"Backup {manifest.name}'s events or routines use the time zone(s) "
            f"{', '.join(missing)}, which the target {server.address} does not know; nothing "
            "was restored.", HOW_TO_LOAD[0].upper() + HOW_TO_LOAD[1:] + ".")


def missing_zones(connection: pymysql.Connection, zones: list[str]) -> list[str]:
    """Zones the server cannot convert to (CONVERT_TZ needs no privilege on mysql.*)."""
    missing = []
    with connection.cursor() as cursor:
        for zone in zones:
            cursor.execute("SELECT CONVERT_TZ('2000-01-01 00:00:00', '+00:00', %s)", (zone,))
            if cursor.fetchone()[0] is None:
                missing.append(zone)
    return missing


def has_az_load_timezone(connection: pymysql.Connection) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM information_schema.ROUTINES WHERE "
                       "ROUTINE_SCHEMA = 'mysql' AND ROUTINE_NAME = 'az_load_timezone'")
        return bool(cursor.fetchone()[0])
