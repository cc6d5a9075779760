"""Every exit code drkit uses, by name: the documented contract (README, "Exit codes").

It must only ever grow. Nothing else in drkit writes an exit code as a number (a unit test
looks): an error's code is its class's ``exit_code`` (drkit.errors), a doctor's its status's.
"""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """One name per exit code; an alias names a number used in a second sense."""

    OK = 0
    INTERNAL_ERROR = 1  # a bug (DRKIT_DEBUG=1 shows the traceback)
    USAGE = 2  # click's own code for a bad command line, and a runbook parameter's type
    CONFIG_INVALID = 3
    SECRET_UNRESOLVED = 4
    PROGRAM_MISSING = 5
    SANDBOX_FAILED = 6
    SECRET_STORE_UNREACHABLE = 7
    BACKUP_KEY_REFUSED = 8  # no identity, or not one of an encrypted backup's recipients
    AWS_REFUSED = 9  # an AWS service drkit configures (CloudWatch alarms) refused: a grant
    SERVER_UNREACHABLE = 10
    ACCESS_DENIED = 11
    UNKNOWN_DATABASE = 12
    STORAGE_AUTH_REFUSED = 13
    CONTAINER_MISSING = 14
    CONTAINER_PUBLIC = 15
    STORAGE_FAILED = 16
    TLS_FAILED = 17
    DUMP_FAILED = 20
    UPLOAD_FAILED = 21
    BACKUP_EXISTS = 22
    LOCK_HELD = 23
    BACKUP_NOT_FOUND = 24
    MANIFEST_MISSING = 30
    CHECKSUM_MISMATCH = 31
    BACKUP_TRUNCATED = 32
    MANIFEST_MISMATCH = 33
    PROOF_FAILED = 34
    TARGET_NOT_EMPTY = 35
    RESTORE_FAILED = 36
    RESTORE_BLOCKED = 37
    BACKUP_UNRESTORABLE = 38
    SWAP_FAILED = 39
    RUNBOOK_STEP_FAILED = 40
    RUNBOOK_ENGINE_FAILED = 41
    AUDIT_REFUSED = 42
    RUNBOOK_NOT_FOUND = 43
    OBJECTIVE_BREACHED = 44
    NOT_APPROVED = 45
    AZURE_CONTROL_FAILED = 46
    CONTROL_TIMEOUT = 47
    BINLOG_ARCHIVE_BROKEN = 48
    BINLOG_GAP = 49
    STANDBY_UNUSABLE = 50
    INTERRUPTED = 128 + 2  # SIGINT
    KILLED = 128 + 9  # SIGKILL: only in a runbook's record, closed by the next run
    TERMINATED = 128 + 15  # SIGTERM

    # Other names for the same numbers (aliases: ExitStatus(1) is INTERNAL_ERROR).
    SANDBOX_UNHEALTHY = 1  # drkit sandbox status
    # drkit doctor is a Nagios plug-in and exits with Nagios's codes instead.
    NAGIOS_OK = 0
    NAGIOS_WARNING = 1
    NAGIOS_CRITICAL = 2
    NAGIOS_UNKNOWN = 3  # the doctor itself failed (a bug), never a finding
