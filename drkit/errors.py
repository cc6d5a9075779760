"""Every failure drkit reports, each with its own exit code.

A drkit error is one sentence naming what failed plus, where we know it, what to do.
The CLI prints ``str(error)`` and exits with ``error.exit_code``; the table below is the
documented contract (README, "Exit codes") and must only ever grow.
"""

from __future__ import annotations

from drkit.redact import redact


class DrkitError(Exception):
    """Base of every error drkit reports to a user."""

    exit_code = 1

    def __init__(self, message: str, fix: str | None = None) -> None:
        self.message = redact(message)
        self.fix = redact(fix) if fix else None
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.message} {self.fix}" if self.fix else self.message


class ParameterError(DrkitError):
    """A command-line value that cannot be what it is for (a runbook parameter's type)."""

    exit_code = 2


class ConfigError(DrkitError):
    exit_code = 3


class SecretError(DrkitError):
    exit_code = 4


class SecretStoreUnreachable(SecretError):
    """A secret store that did not answer (in time): the next reference is tried, and the
    store is not asked again in the same run."""

    exit_code = 7


class MissingProgramError(DrkitError):
    exit_code = 5


class SandboxError(DrkitError):
    exit_code = 6


class ServerUnreachableError(DrkitError):
    exit_code = 10


class AccessDeniedError(DrkitError):
    exit_code = 11


class UnknownDatabaseError(DrkitError):
    exit_code = 12


class TlsError(DrkitError):
    """TLS to a MySQL server failed: its certificate, its name, or no TLS at all."""

    exit_code = 17


class StorageAuthError(DrkitError):
    exit_code = 13


class ContainerMissingError(DrkitError):
    exit_code = 14


class ContainerPublicError(DrkitError):
    exit_code = 15


class StorageError(DrkitError):
    exit_code = 16


class DumpFailedError(DrkitError):
    exit_code = 20


class UploadFailedError(DrkitError):
    exit_code = 21


class BackupExistsError(DrkitError):
    exit_code = 22


class LockHeldError(DrkitError):
    exit_code = 23


class BackupNotFoundError(DrkitError):
    exit_code = 24


class ManifestMissingError(DrkitError):
    exit_code = 30


class ChecksumMismatchError(DrkitError):
    exit_code = 31


class TruncatedBackupError(DrkitError):
    exit_code = 32


class ManifestMismatchError(DrkitError):
    exit_code = 33


class ProofFailedError(DrkitError):
    """Carries the proof (``drkit.mysql.proof.ProofResult``) to show every difference."""

    exit_code = 34

    def __init__(self, message: str, fix: str | None = None, proof: object = None) -> None:
        super().__init__(message, fix)
        self.proof = proof


class TargetNotEmptyError(DrkitError):
    exit_code = 35


class RestoreFailedError(DrkitError):
    exit_code = 36


class RestoreBlockedError(DrkitError):
    exit_code = 37


class UnrestorableBackupError(DrkitError):
    """A statement of the backup could not be run by a restore (it names where it is)."""

    exit_code = 38


class SwapFailedError(DrkitError):
    """restore --replace could not put the proven copy in place (undone, or where the data is)."""

    exit_code = 39


class RunbookStepError(DrkitError):
    """A notebook cell failed with an error that is not one of drkit's own."""

    exit_code = 40


class RunbookEngineError(DrkitError):
    """papermill or the kernel failed: kernel missing or dead, or a timeout."""

    exit_code = 41


class AuditRefusedError(DrkitError):
    exit_code = 42


class RunbookNotFoundError(DrkitError):
    exit_code = 43


class ObjectiveBreachedError(DrkitError):
    exit_code = 44


class NotApprovedError(DrkitError):
    exit_code = 45


class AzureControlError(DrkitError):
    """Azure Resource Manager refused or failed an operation on the Flexible Server."""

    exit_code = 46


class ControlTimeoutError(DrkitError):
    exit_code = 47


class BinlogArchiveError(DrkitError):
    """The binlog archive cannot go on as it is: binary logging off, or what the source sends
    does not continue what the archive holds."""

    exit_code = 48


class BinlogGapError(DrkitError):
    """The binlog archive has a gap (the source purged a binlog before it was archived): a
    point-in-time restore cannot cross it."""

    exit_code = 49


class BackupKeyError(DrkitError):
    """An encrypted backup cannot be opened: no identity configured, or not one of its
    recipients (drkit.stream.encryption)."""

    exit_code = 50


class RunInterrupted(DrkitError):
    """SIGINT (Ctrl-C): the run stopped cleanly (drkit.interrupts)."""

    exit_code = 130


class RunTerminated(DrkitError):
    """SIGTERM (cron's timeout, systemd, kill): the run stopped cleanly."""

    exit_code = 143


def error_classes() -> list[type[DrkitError]]:
    """DrkitError and every subclass."""
    classes, pending = [], [DrkitError]
    while pending:
        cls = pending.pop()
        classes.append(cls)
        pending.extend(cls.__subclasses__())
    return classes


def exit_codes() -> dict[int, str]:
    """Exit code -> error class name (the README's table)."""
    return {cls.exit_code: cls.__name__ for cls in error_classes()}
