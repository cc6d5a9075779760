"""Every failure drkit reports, each with its own exit code, in families by what failed.

A drkit error is one sentence naming what failed plus, where we know it, what to do.
The CLI prints ``str(error)`` and exits with ``error.exit_code``, one of
:class:`drkit.exitstatus.ExitStatus`. Each family owns a range of codes (``codes``): a new
error joins the family of what failed and takes a free code of its range.

An error is never changed once raised: :meth:`DrkitError.with_context` builds a new one.
"""

from __future__ import annotations

from typing import ClassVar, Self

from drkit.exitstatus import ExitStatus
from drkit.redact import redact


class DrkitError(Exception):
    """Base of every error drkit reports to a user (raised as itself, it exits 1 as a bug
    does: every error a user can cause belongs to a family)."""

    exit_code: ClassVar[ExitStatus] = ExitStatus.INTERNAL_ERROR
    codes: ClassVar[frozenset[int]]  # a family's range of exit codes (set on each family)

    def __init__(self, message: str, fix: str | None = None) -> None:
        self.message = redact(message)
        self.fix = redact(fix) if fix else None
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.message} {self.fix}" if self.fix else self.message

    def with_context(self, sentence: str = "", *, fix: str | None = None) -> Self:
        """This error told with more: ``sentence`` after its message and, if given, ``fix``
        in place of its fix. A new error of the same class with the same attributes,
        redacted as any other; raise it ``from`` this one, which stays as it was raised."""
        return self._retold(f"{self.message} {sentence}" if sentence else self.message,
                            self.fix if fix is None else fix)

    def with_names(self, names: dict[str, str]) -> Self:
        """This error told with each name of ``names`` replaced by what it stands for (a
        restore's scratch copy, ``drkit_restore_*``, by the database it is restored as)."""
        def told(text: str) -> str:
            for name, meaning in names.items():
                text = text.replace(name, meaning)
            return text
        return self._retold(told(self.message), told(self.fix) if self.fix else None)

    def _retold(self, message: str, fix: str | None) -> Self:
        """A new error of this class with this one's attributes, ``message`` and ``fix``."""
        told = type(self).__new__(type(self))
        told.__dict__.update(vars(self))
        DrkitError.__init__(told, message, fix)
        return told


# --- setup (2-9): what a run is given or needs before it starts ---------------------------

class SetupError(DrkitError):
    """The command line, the config, a secret, a program or the sandbox failed the run."""

    codes = frozenset(range(2, 10))


class ParameterError(SetupError):
    """A command-line value that cannot be what it is for (a runbook parameter's type)."""

    exit_code = ExitStatus.USAGE


class ConfigError(SetupError):
    exit_code = ExitStatus.CONFIG_INVALID


class SecretError(SetupError):
    exit_code = ExitStatus.SECRET_UNRESOLVED


class SecretStoreUnreachable(SecretError):
    """A secret store that did not answer (in time): the next reference is tried, and the
    store is not asked again in the same run."""

    exit_code = ExitStatus.SECRET_STORE_UNREACHABLE


class MissingProgramError(SetupError):
    exit_code = ExitStatus.PROGRAM_MISSING


class SandboxError(SetupError):
    exit_code = ExitStatus.SANDBOX_FAILED


class AwsRefusedError(SetupError):
    """An AWS service drkit sets up (CloudWatch's alarms) refused it: a permission to grant."""

    exit_code = ExitStatus.AWS_REFUSED


class BackupKeyError(SetupError):
    """An encrypted backup cannot be opened: no identity configured, or not one of its
    recipients (drkit.stream.encryption)."""

    exit_code = ExitStatus.BACKUP_KEY_REFUSED


# --- server (10-12, 17-19): a MySQL server -------------------------------------------------

class ServerError(DrkitError):
    """A MySQL server could not be reached, refused the login or lacks a database."""

    codes = frozenset([*range(10, 13), *range(17, 20)])


class ServerUnreachableError(ServerError):
    exit_code = ExitStatus.SERVER_UNREACHABLE


class AccessDeniedError(ServerError):
    exit_code = ExitStatus.ACCESS_DENIED


class UnknownDatabaseError(ServerError):
    exit_code = ExitStatus.UNKNOWN_DATABASE


class TlsError(ServerError):
    """TLS to a MySQL server failed: its certificate, its name, or no TLS at all."""

    exit_code = ExitStatus.TLS_FAILED


# --- storage (13-16): Azure Storage ----------------------------------------------------------

class StorageError(DrkitError):
    """Azure Storage failed; raised itself (16) when it is none of the failures below."""

    codes = frozenset(range(13, 17))
    exit_code = ExitStatus.STORAGE_FAILED


class StorageAuthError(StorageError):
    exit_code = ExitStatus.STORAGE_AUTH_REFUSED


class BlobLockedError(StorageError):
    """Azure refused to delete a blob (version) its immutability policy still protects."""


class ContainerMissingError(StorageError):
    exit_code = ExitStatus.CONTAINER_MISSING


class ContainerPublicError(StorageError):
    exit_code = ExitStatus.CONTAINER_PUBLIC


# --- backup (20-29): taking a backup, or finding one ---------------------------------------

class BackupError(DrkitError):
    """A backup could not be taken, or none matches what was asked for."""

    codes = frozenset(range(20, 30))


class DumpFailedError(BackupError):
    exit_code = ExitStatus.DUMP_FAILED


class UploadFailedError(BackupError):
    exit_code = ExitStatus.UPLOAD_FAILED


class BackupExistsError(BackupError):
    exit_code = ExitStatus.BACKUP_EXISTS


class LockHeldError(BackupError):
    exit_code = ExitStatus.LOCK_HELD


class BackupNotFoundError(BackupError):
    exit_code = ExitStatus.BACKUP_NOT_FOUND


# --- verify (30-33, 38): a backup that is not what its manifest says ------------------------

class VerifyError(DrkitError):
    """A backup found bad, by verify or by a restore reading it. Verify records the
    ``outcome`` on the backup (its index tags), and restore refuses a backup that has one."""

    codes = frozenset([*range(30, 34), 38])
    outcome: ClassVar[str]


class ManifestMissingError(VerifyError):
    exit_code = ExitStatus.MANIFEST_MISSING
    outcome = "manifest-missing"


class ChecksumMismatchError(VerifyError):
    exit_code = ExitStatus.CHECKSUM_MISMATCH
    outcome = "checksum-mismatch"


class TruncatedBackupError(VerifyError):
    exit_code = ExitStatus.BACKUP_TRUNCATED
    outcome = "truncated"


class ManifestMismatchError(VerifyError):
    exit_code = ExitStatus.MANIFEST_MISMATCH
    outcome = "manifest-mismatch"


class UnrestorableBackupError(VerifyError):
    """A statement of the backup could not be run by a restore (it names where it is)."""

    exit_code = ExitStatus.BACKUP_UNRESTORABLE
    outcome = "unrestorable"


# --- restore (34-37, 39): loading a backup into a target and proving it --------------------

class RestoreError(DrkitError):
    """A restore was refused, failed, or its proof or swap failed."""

    codes = frozenset([*range(34, 38), 39])


class ProofFailedError(RestoreError):
    """Carries the proof (``drkit.mysql.proof.ProofResult``) to show every difference."""

    exit_code = ExitStatus.PROOF_FAILED

    def __init__(self, message: str, fix: str | None = None, proof: object = None) -> None:
        super().__init__(message, fix)
        self.proof = proof


class TargetNotEmptyError(RestoreError):
    exit_code = ExitStatus.TARGET_NOT_EMPTY


class RestoreFailedError(RestoreError):
    exit_code = ExitStatus.RESTORE_FAILED


class RestoreBlockedError(RestoreError):
    exit_code = ExitStatus.RESTORE_BLOCKED


class SwapFailedError(RestoreError):
    """restore --replace could not put the proven copy in place (undone, or where the data is)."""

    exit_code = ExitStatus.SWAP_FAILED


# --- runbook (40-44): a runbook run and its audit record ----------------------------------

class RunbookError(DrkitError):
    """A runbook could not be found or run, its record not published, or its drill breached
    an objective."""

    codes = frozenset(range(40, 45))


class RunbookStepError(RunbookError):
    """A notebook cell failed with an error that is not one of drkit's own."""

    exit_code = ExitStatus.RUNBOOK_STEP_FAILED


class RunbookEngineError(RunbookError):
    """papermill or the kernel failed: kernel missing or dead, or a timeout."""

    exit_code = ExitStatus.RUNBOOK_ENGINE_FAILED


class AuditRefusedError(RunbookError):
    exit_code = ExitStatus.AUDIT_REFUSED


class RunbookNotFoundError(RunbookError):
    exit_code = ExitStatus.RUNBOOK_NOT_FOUND


class ObjectiveBreachedError(RunbookError):
    exit_code = ExitStatus.OBJECTIVE_BREACHED


# --- failover (45-47): the failover to Azure -------------------------------------------------

class FailoverError(DrkitError):
    """A failover step not approved, or the Flexible Server refused, failed or was late."""

    codes = frozenset(range(45, 48))


class NotApprovedError(FailoverError):
    exit_code = ExitStatus.NOT_APPROVED


class AzureControlError(FailoverError):
    """Azure Resource Manager refused or failed an operation on the Flexible Server."""

    exit_code = ExitStatus.AZURE_CONTROL_FAILED


class ControlTimeoutError(FailoverError):
    exit_code = ExitStatus.CONTROL_TIMEOUT


# --- binlog (48-50): the binlog archive and the standby it feeds -------------------------

class BinlogError(DrkitError):
    """The binlog archive cannot go on, is damaged, or has a gap."""

    codes = frozenset(range(48, 51))


class BinlogArchiveError(BinlogError):
    """The binlog archive cannot go on as it is: binary logging off, or what the source sends
    does not continue what the archive holds."""

    exit_code = ExitStatus.BINLOG_ARCHIVE_BROKEN


class BinlogGapError(BinlogError):
    """The binlog archive has a gap (the source purged a binlog before it was archived): a
    point-in-time restore cannot cross it."""

    exit_code = ExitStatus.BINLOG_GAP


class StandbyError(BinlogError):
    """The target has no standby to follow, or one whose position cannot be followed on
    (``drkit standby``)."""

    exit_code = ExitStatus.STANDBY_UNUSABLE


# --- stopped (128 + signal): a signal stopped the run (drkit.interrupts) -------------------

class RunStopped(DrkitError):
    """A signal stopped the run cleanly: what it started was stopped and cleaned up. A run
    killed outright (KILLED) is never raised; only its record, closed later, says so."""

    codes = frozenset([ExitStatus.INTERRUPTED, ExitStatus.KILLED, ExitStatus.TERMINATED])


class RunInterrupted(RunStopped):
    """SIGINT (Ctrl-C): the run stopped cleanly (drkit.interrupts)."""

    exit_code = ExitStatus.INTERRUPTED


class RunTerminated(RunStopped):
    """SIGTERM (cron's timeout, systemd, kill): the run stopped cleanly."""

    exit_code = ExitStatus.TERMINATED


def error_families() -> list[type[DrkitError]]:
    """The families, each with its range of exit codes (``codes``)."""
    return [cls for cls in DrkitError.__subclasses__() if "codes" in vars(cls)]


def error_classes() -> list[type[DrkitError]]:
    """DrkitError and every error raised with its own exit code (a family with none aside)."""
    classes, pending = [], [DrkitError]
    while pending:
        cls = pending.pop()
        if "exit_code" in vars(cls):
            classes.append(cls)
        pending.extend(cls.__subclasses__())
    return classes


def exit_codes() -> dict[int, str]:
    """Exit code -> error class name (the README's table)."""
    return {cls.exit_code: cls.__name__ for cls in error_classes()}
