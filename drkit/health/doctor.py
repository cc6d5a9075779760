"""``drkit doctor``: every dependency checked, each failure with its fix.

Modelled on barman's and pgBackRest's ``check``: one line per check with OK, WARNING or
CRITICAL (UNKNOWN when a check itself broke), what was found, and for a failure the fix in a
sentence or two. The seed's
troubleshooting list (cron not running, ERROR 2003, AuthenticationFailed, No space left on
device, AccessDeniedException) is covered by the checks below. Exit codes are Nagios's.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from drkit.azure.blobstore import BackupStore
from drkit.azure.catalog import CLOCK_SKEW, BackupEntry, Catalog, fresh_verdicts
from drkit.azure.verdicts import FORGED
from drkit.checks import CRITICAL, OK, UNKNOWN, WARNING, Check, Perfdata
from drkit.config import Settings, is_reference, references
from drkit.errors import DrkitError
from drkit.health import binlog_checks
from drkit.health.key_checks import coverage_checks, key_checks
from drkit.health.leftovers import leftover_checks
from drkit.health.side_checks import immutability_checks, storage_side_checks
from drkit.health.standby_checks import standby_checks
from drkit.mysql import dump, inventory
from drkit.mysql.connection import connect, source_server, target_server
from drkit.mysql.swap import pending_journals
from drkit.ops.claim import orphan_claims
from drkit.ops.readback import failed_verification
from drkit.redact import redact
from drkit.runbooks.runbook import all_runbooks, runbook_dirs, schedule_interval
from drkit.secrets import resolver_for, without_schemes
from drkit.units import duration

# What a consistent dump of tables, views, routines, triggers and events needs.
DUMP_PRIVILEGES = ("SELECT", "SHOW VIEW", "TRIGGER", "EVENT", "LOCK TABLES")


Purpose = Literal["all", "failover"]


@dataclass
class Doctor:
    settings: Settings
    environment: str
    purpose: Purpose = "all"
    config_path: Path | None = None  # the cron check looks for this config's entries

    def __post_init__(self) -> None:
        if self.purpose == "failover":
            # The failover runs when AWS is down: check it as if it were, asking no AWS
            # store for any credential (a copy of the settings with a resolver of its own).
            self.settings = without_schemes(self.settings, frozenset({"secret"}))

    def run(self) -> list[Check]:
        if self.purpose == "failover" and self.settings.side == "backup":
            # The backup host holds neither the identity nor the Azure side's credentials:
            # every failover check would fail on what this config rightly lacks.
            return [Check("config", CRITICAL, "this is the backup side's config (side: "
                          "backup); the failover runs on the Azure side, with its config",
                          "Run drkit doctor --for failover where the failover runs, with the "
                          "Azure side's config (side: azure or both; DRKIT_CONFIG names it).")]
        checks: list[Check] = [Check("config", OK, f"valid ({self.environment})")]
        for check in CHECKS[self.purpose]:
            name = check.__name__.removeprefix("check_").replace("_", " ")
            try:
                checks.extend(check(self))
            except DrkitError as error:
                checks.append(Check(name, CRITICAL, error.message, error.fix or ""))
            except Exception as exc:  # a bug in the check: Nagios's UNKNOWN, not a finding
                checks.append(Check(name, UNKNOWN, redact(f"internal error: "
                                                          f"{type(exc).__name__}: {exc}"),
                                    "This is a drkit bug; rerun with DRKIT_DEBUG=1 and "
                                    "report the traceback."))
                if os.environ.get("DRKIT_DEBUG"):
                    traceback.print_exc()
        return checks

    # Shared helpers -----------------------------------------------------------------------
    def store(self, container: str | None = None) -> BackupStore:
        return BackupStore.from_settings(self.settings, container=container,
                                         prefix=None if container is None else "")

    def backup_interval(self) -> timedelta | None:
        return schedule_interval("nightly-backup", self.environment,
                                 runbook_dirs(self.settings))


def check_secrets(doctor: Doctor) -> list[Check]:
    settings = doctor.settings
    storage_credential = {"key": [settings.storage.key], "sas": [settings.storage.sas],
                          "aad": []}[settings.storage.auth]
    settings_references = [settings.source.password, *storage_credential,
                           settings.storage.account, settings.azure.tenant_id,
                           settings.azure.subscription_id]
    if settings.target:
        settings_references.append(settings.target.password)
    keys = sorted({r.split(":", 1)[1] for value in settings_references if is_reference(value)
                   for r in references(value) if r.startswith("secret:")})
    if not keys:
        return [Check("secrets", OK, "no Secrets Manager references")]
    held = resolver_for(settings).provider("secret").load()
    missing = [key for key in keys if key not in held]
    if missing:
        return [Check("secrets", CRITICAL,
                      f"secret {settings.aws.secret_id} lacks {', '.join(missing)}",
                      f"Add {', '.join(repr(k) for k in missing)} to the secret's JSON.")]
    return [Check("secrets", OK, f"{settings.aws.secret_id} holds {', '.join(keys)}"),
            *_azure_side_secrets_in_aws(settings, held)]


# The seed's keys of what only the Azure side needs: the account key deletes and overwrites
# every backup, the DR target's password writes the database the failover restores into.
AZURE_SIDE_SECRETS = ("azure_storage_key", "azure_mysql_password")


def _azure_side_secrets_in_aws(settings: Settings, held: dict) -> list[Check]:
    """On the backup side, the AWS secret it reads should hold nothing of the Azure side's:
    an attacker in the AWS account reads that secret as the backup host does."""
    found = [key for key in AZURE_SIDE_SECRETS if key in held]
    if settings.side != "backup" or not found:
        return []
    return [Check("Azure-side secrets in AWS", WARNING,
                  f"secret {settings.aws.secret_id}, which the backup host reads, holds "
                  f"{', '.join(found)}: anyone in the AWS account reads them, and the "
                  "storage account key deletes every backup",
                  f"Remove {', '.join(found)} from the secret's JSON and keep them in the DR "
                  "region's Key Vault, where the Azure side's config reads them "
                  "(keyvault:NAME).")]


def check_failover_credentials(doctor: Doctor) -> list[Check]:
    """Each credential the failover needs answers from a store outside AWS."""
    settings = doctor.settings
    storage = settings.storage
    needed = {"storage.account": storage.account,
              **{"key": {"storage.key": storage.key}, "sas": {"storage.sas": storage.sas},
                 "aad": {}}[storage.auth]}
    if settings.target:
        needed["target.password"] = settings.target.password
    if settings.azure.flexible_server:
        needed["azure.tenant_id"] = settings.azure.tenant_id
        needed["azure.subscription_id"] = settings.azure.subscription_id
        if settings.azure.client_secret:
            needed["azure.client_secret"] = settings.azure.client_secret
    checks = []
    for name, value in needed.items():
        if not is_reference(value):
            checks.append(Check(f"{name} without AWS", OK, "set in the config"))
            continue
        try:
            answered = resolver_for(settings).answering(value)
        except DrkitError as error:
            only_aws = all(r.startswith("secret:") for r in references(value))
            checks.append(Check(
                f"{name} without AWS", CRITICAL,
                f"only in AWS Secrets Manager ({', '.join(references(value))})" if only_aws
                else error.message,
                f"List a reference after it that answers when AWS is down, e.g. "
                f"[{references(value)[0]}, keyvault:{name.replace('.', '-').replace('_', '-')}"
                "], and put the value in the DR region's Key Vault." if only_aws
                else error.fix or ""))
            continue
        checks.append(Check(f"{name} without AWS", OK, f"from {answered}"))
    return checks


def check_time_zones(doctor: Doctor) -> list[Check]:
    """The named time zones of the newest verified backup: known to the target, or loaded
    by Flexible Server's procedure when the restore starts."""
    from drkit.azure.catalog import load_manifest
    from drkit.mysql import timezones

    store = doctor.store()
    verified = [e for e in Catalog(store).entries() if e.verified == "ok"]
    if not verified or doctor.settings.target is None:
        return []
    zones = load_manifest(store, verified[-1].name).time_zones
    if not zones:
        return [Check("time zones", OK, "the newest verified backup uses no named zone")]
    with contextlib.closing(connect(target_server(doctor.settings))) as connection:
        missing = timezones.missing_zones(connection, zones)
        loader = timezones.has_az_load_timezone(connection)
    if missing and not loader:
        return [Check("time zones", CRITICAL, f"the target does not know {', '.join(missing)}"
                      ", which the newest verified backup's events or routines use",
                      timezones.HOW_TO_LOAD[0].upper() + timezones.HOW_TO_LOAD[1:] + ".")]
    return [Check("time zones", OK, f"{', '.join(zones)}: " + (
        "loaded by mysql.az_load_timezone() when the restore starts" if missing
        else "known to the target"))]


def check_flexible_server(doctor: Doctor) -> list[Check]:
    if not doctor.settings.azure.flexible_server:
        if doctor.purpose == "all":
            return []  # the nightly work needs no server control; the failover check says
        return [Check("Flexible Server control", WARNING, "no azure.flexible_server configured",
                      "Set azure.resource_group and azure.flexible_server so the failover "
                      "can start the DR server.")]
    from drkit.azure.flexserver import FlexibleServer

    state = FlexibleServer(doctor.settings).state()
    return [Check("Flexible Server control", OK,
                  f"{doctor.settings.azure.flexible_server} is {state}")]


def check_source(doctor: Doctor) -> list[Check]:
    settings = doctor.settings
    server = source_server(settings)
    try:
        socket.create_connection((server.host, server.port), timeout=5).close()
    except OSError as exc:
        return [Check("source reachable", CRITICAL,
                      f"{server.address}: {exc.strerror or exc} (ERROR 2003)",
                      "Allow this host in the RDS security group and check routing "
                      f"(nc -vz {server.host} {server.port}).")]
    checks = [Check("source reachable", OK, server.address)]
    with contextlib.closing(connect(server)) as connection:
        version = inventory.server_version(connection)
        checks.append(Check("source login", OK, f"{server.user}@{server.address}, "
                                                f"{version['flavour']} {version['version']}"))
        missing = _missing_privileges(connection, settings.source.databases)
        for database in settings.source.databases:
            connect(server, database).close()
        checks.append(Check(
            "source privileges", CRITICAL if missing else OK,
            f"{server.user} lacks {', '.join(missing)}" if missing
            else f"{server.user} can dump {', '.join(settings.source.databases)}",
            f"GRANT {', '.join(missing)} ON *.* TO the backup user." if missing else ""))
    checks.append(_dump_client_check(version))
    return checks


def _missing_privileges(connection, databases: list[str]) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT CURRENT_USER()")
        user, _, host = cursor.fetchone()[0].partition("@")
        grantee = f"'{user}'@'{host}'"
        cursor.execute("SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES "
                       "WHERE GRANTEE = %s", (grantee,))
        held = {row[0] for row in cursor.fetchall()}
        for database in databases:
            cursor.execute("SELECT PRIVILEGE_TYPE FROM information_schema.SCHEMA_PRIVILEGES "
                           "WHERE GRANTEE = %s AND TABLE_SCHEMA = %s", (grantee, database))
            held |= {row[0] for row in cursor.fetchall()}
    return [p for p in DUMP_PRIVILEGES if p not in held]


def _dump_client_check(version: dict[str, str]) -> Check:
    client = dump.dump_client()
    detail = f"{client.path}: {client.version}"
    if version["flavour"] != client.flavour:
        # MariaDB's mysqldump against MySQL 8 writes generated columns' values into INSERTs
        # that MySQL refuses (ERROR 3105) and misreads MySQL 8's column statistics; MySQL's
        # against MariaDB misses its sequences and system-versioned tables.
        wanted = ("MySQL's own client (Debian/Ubuntu: mysql-client from the MySQL APT "
                  "repository) of the server's major version" if version["flavour"] == "mysql"
                  else "MariaDB's client (mariadb-client)")
        return Check("mysqldump", CRITICAL,
                     f"{detail} is {client.flavour}'s, the server is {version['flavour']} "
                     f"{version['version']}: generated columns break the restore (ERROR 3105)",
                     f"Install {wanted} and put it first on PATH.")
    return Check("mysqldump", OK, detail)


def check_storage(doctor: Doctor) -> list[Check]:
    store = doctor.store()
    store.check()  # credentials, existence, privacy: each failure has its own message and fix
    checks = [Check("backup container", OK, f"{store.where} exists and is private")]
    checks.append(_clock_skew(store))
    for claim in orphan_claims(store):  # a backup stopped with the storage could not remove it
        checks.append(Check("backup name claim", WARNING, (
            f"{claim['blob']} was left by a backup that stopped before its commit (pid "
            f"{claim['pid']} on {claim['host']}, {claim['claimed_at']}"
            + (", marked failed" if claim.get("failed_at") else "") + "); it holds no data"),
            "The Azure side's drkit prune --yes deletes it (or: az storage blob delete "
            f"--container-name {store.container_name} --name {claim['blob']})."))
    return checks


def _clock_skew(store: BackupStore) -> Check:
    service_time = store.service_time()
    if service_time is None:
        return Check("clock skew", WARNING, "the storage service sent no Date header")
    skew = abs((datetime.now(UTC) - service_time).total_seconds())
    status = OK if skew < 60 else WARNING if skew < 600 else CRITICAL
    return Check("clock skew", status, f"{duration(skew)} against the storage service",
                 "" if status == OK else "Run NTP (chrony/systemd-timesyncd); Azure rejects "
                 "signed requests more than 15 minutes off.")


def check_audit_container(doctor: Doctor) -> list[Check]:
    containers = {r.audit.container for r in all_runbooks(runbook_dirs(doctor.settings))}
    checks = []
    for container in sorted(containers):
        store = doctor.store(container)
        probe = f".drkit-doctor/{uuid.uuid4().hex}"
        try:
            if store.may_delete:
                store.write(probe, b"probe")
                store.delete(probe)
            else:  # the backup side: one probe per host, rewritten, as it cannot delete
                probe = f".drkit-doctor/{socket.gethostname()}"
                found = store.read_if_present(probe)
                store.write(probe, b"probe", replacing=found[1] if found else None)
        except DrkitError as error:
            checks.append(Check("audit container", CRITICAL, error.message,
                                error.fix or f"Create the private container {container}."))
            continue
        checks.append(Check("audit container", OK, f"{container} is writable"))
    return checks


def check_target(doctor: Doctor) -> list[Check]:
    if doctor.settings.side == "backup":
        return [] if doctor.settings.target is None else [Check(
            "restore target", WARNING, "the backup side's config names the DR target, which "
            "the backup host never uses", "Remove the target section (and its password from "
            "the backup host's secret): whoever holds the AWS side should not reach Azure's "
            "data.")]
    if doctor.settings.target is None:
        return [Check("restore target", WARNING, "no target configured",
                      "Add a target section so drills and failovers have somewhere to go.")]
    server = target_server(doctor.settings)
    with contextlib.closing(connect(server)) as connection, connection.cursor() as cursor:
        checks = [Check("restore target", OK, f"{server.user}@{server.address} answers")]
        cursor.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE "
                       "SCHEMA_NAME LIKE 'drkit\\_restore\\_%' OR "
                       "SCHEMA_NAME LIKE 'drkit\\_replaced\\_%' OR "
                       "SCHEMA_NAME LIKE 'drkit\\_drill\\_%'")
        left = sorted(row[0] for row in cursor.fetchall())
    journals = pending_journals(doctor.settings.backup.state_dir.expanduser() / "swaps")
    return checks + leftover_checks(left, journals, server.address, datetime.now(UTC))


def check_cron(doctor: Doctor) -> list[Check]:
    from drkit.runbooks.schedule import Crontab, installed_for

    try:
        lines = Crontab().read()
    except DrkitError as error:
        return [Check("cron entries", WARNING, error.message, error.fix or "")]
    installed = installed_for(lines, doctor.environment, doctor.config_path)
    daemon = subprocess.run(["pgrep", "-x", "cron|crond"], capture_output=True).returncode == 0
    checks = [Check("cron entries", OK if installed else WARNING,
                    f"installed for {doctor.environment}" if installed
                    else f"none for {doctor.environment}",
                    "" if installed else f"drkit schedule install --env {doctor.environment}")]
    checks.append(Check("cron daemon", OK if daemon else (CRITICAL if installed else WARNING),
                        "running" if daemon else "not running",
                        "" if daemon else "Start it: systemctl enable --now cron."))
    if installed:
        checks.append(cron_time_zone(time.localtime().tm_gmtoff, time.strftime("%Z")))
    return checks


def cron_time_zone(offset_seconds: int, zone: str) -> Check:
    """The schedules are UTC; the block says CRON_TZ=UTC, which Debian's cron (vixie 3.0)
    ignores: on a host whose zone is not UTC its jobs run at the local hour instead."""
    if offset_seconds == 0:
        return Check("cron time zone", OK, f"the host's zone is UTC ({zone})")
    return Check("cron time zone", WARNING,
                 f"the host's zone is {zone} (UTC{offset_seconds / 3600:+g} h): a cron without "
                 "CRON_TZ (Debian's) runs the UTC schedules at that local hour",
                 "Set the host's zone to UTC (timedatectl set-timezone UTC), or use cronie.")


def check_disk(doctor: Doctor) -> list[Check]:
    backup = doctor.settings.backup
    places = {"state": backup.state_dir.expanduser()}
    if backup.local_copy_dir:
        places["local copies"] = backup.local_copy_dir.expanduser()
    checks = []
    for what, path in places.items():
        existing = next(p for p in [path, *path.parents] if p.exists())
        usage = shutil.disk_usage(existing)
        free = usage.free / usage.total
        status = OK if free > 0.10 else WARNING if free > 0.02 else CRITICAL
        checks.append(Check(f"disk ({what})", status,
                            f"{usage.free / 2**30:.1f} GiB free ({free:.0%}) at {existing}",
                            "" if status == OK else "Free space: old local dumps "
                            f"(du -sh {existing}/*), or grow the volume (No space left on "
                            "device otherwise)."))
    return checks


def check_backup_age(doctor: Doctor) -> list[Check]:
    interval = doctor.backup_interval()
    everything = Catalog(doctor.store()).entries()
    now = datetime.now(UTC)
    checks = []
    future = [e for e in everything if e.taken_at > now + CLOCK_SKEW]
    if future:
        checks.append(Check(
            "backup names in the future", WARNING,
            f"{len(future)} backup(s) named after now, e.g. {future[-1].name}: never counted "
            "as the newest", "A backup host's clock is ahead: fix its NTP; the names stay."))
    entries = [e for e in everything if e not in future]
    checks += forged_verdicts(entries)
    # The backup host checks what it wrote as ciphertext only: only the Azure side's
    # verify (its verify-backup runbook, its drill, drkit verify) makes a backup verified.
    # Holding no identity, the backup host cannot check that verdict's signature: there it
    # reads "unchecked", which is enough to tell whether the Azure side's verifies run.
    verifies = ("The Azure side verifies backups (its verify-backup runbook, after each "
                "nightly): check its schedule (drkit schedule show there)."
                if doctor.settings.side == "backup" else None)
    counted = fresh_verdicts(doctor.settings.side)
    for label, chosen in (("newest backup", entries[-1:]),
                          ("newest verified backup",
                           [e for e in entries if e.verified in counted][-1:])):
        verifier = verifies if label == "newest verified backup" else None
        if not chosen:
            checks.append(Check(label, CRITICAL, "none", verifier or
                                "Run drkit run nightly-backup (and check cron)."))
            continue
        age = now - chosen[0].taken_at
        perfdata = Perfdata(f"{label.replace(' ', '_')}_age", age.total_seconds())
        if interval is None:
            status = OK
            limit = "no schedule in this environment"
        else:
            # One interval plus an hour for the run itself is on time; past two, runs are missing.
            warn, crit = interval + timedelta(hours=1), 2 * interval + timedelta(hours=1)
            status = OK if age <= warn else WARNING if age <= crit else CRITICAL
            limit = f"schedule allows {duration(warn.total_seconds())}"
            perfdata.warning_seconds = warn.total_seconds()
            perfdata.critical_seconds = crit.total_seconds()
        checks.append(_unless_verify_failed(Check(
            label, status, f"{chosen[0].name}, {duration(age.total_seconds())} old ({limit})",
            "" if status == OK else verifier or "Backups are not running on "
            "schedule: see the cron checks and the run log.", perfdata), chosen[0]))
    return checks


def forged_verdicts(entries: list[BackupEntry]) -> list[Check]:
    """Backups tagged ``ok`` without the Azure side's signature (drkit.azure.verdicts):
    someone who can write the container's tags (the backup side's SAS) tagged them, after
    overwriting the backup or not. Never counted as verified; named here so it is seen."""
    forged = [e.name for e in entries if e.verified == FORGED]
    if not forged:
        return []
    return [Check("forged verdicts", CRITICAL,
                  f"{len(forged)} backup(s) tagged verified without this side's signature: "
                  f"{', '.join(forged[-3:])}; not counted as verified",
                  "Someone with the backup side's SAS wrote these tags: rotate that SAS and "
                  "look at the backup host. Then drkit verify each one (it reads the backup "
                  "back and signs its real outcome); verdicts of an identity no longer in "
                  "encryption.identity read the same: re-verify them.")]


def _unless_verify_failed(check: Check, entry: BackupEntry) -> Check:
    """``check``, or CRITICAL when a verify found ``entry`` bad: on time or not, restores
    refuse it, so the newest backup a failover has is an older one."""
    if failed_verification(entry.verified) is None:
        return check
    check.status = CRITICAL
    check.detail += (f", but its verify FAILED ({entry.verified}, {entry.verified_at}): "
                     "restores refuse it")
    check.fix = (f"Take a new backup (drkit run nightly-backup, on the backup host), then see "
                 f"what verify found with drkit show {entry.name.rsplit('/', 1)[-1]}: a "
                 "backup or manifest changed after it was written means someone wrote to "
                 "the storage account.")
    return check


def check_binlog_source(doctor: Doctor) -> list[Check]:
    return binlog_checks.source_checks(doctor.settings, doctor.backup_interval())


def check_binlog_archive(doctor: Doctor) -> list[Check]:
    return binlog_checks.archive_checks(doctor.settings)


def check_storage_side(doctor: Doctor) -> list[Check]:
    return storage_side_checks(doctor.settings)


def check_immutability(doctor: Doctor) -> list[Check]:
    return immutability_checks(doctor.settings)


def check_standby(doctor: Doctor) -> list[Check]:
    return standby_checks(doctor.settings)


def check_encryption_keys(doctor: Doctor) -> list[Check]:
    return key_checks(doctor.settings)


def check_encryption_in_use(doctor: Doctor) -> list[Check]:
    return coverage_checks(doctor.settings)


CHECKS: dict[Purpose, list[Callable[[Doctor], list[Check]]]] = {
    "all": [check_secrets, check_source, check_storage, check_storage_side,
            check_immutability, check_audit_container, check_target,
            check_cron, check_disk, check_backup_age, check_flexible_server,
            check_binlog_source, check_binlog_archive, check_standby, check_encryption_in_use],
    # What the failover needs, with AWS taken to be down.
    "failover": [check_failover_credentials, check_storage, check_audit_container,
                 check_target, check_time_zones, check_flexible_server,
                 check_encryption_keys],
}
