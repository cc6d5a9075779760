"""Which databases a restore loads, and the names it gives them on the target.

All the backup holds under their own names; those ``--database`` names; one under the name
``--as`` gives it, refused where its objects' bodies name their own database (restored
under another name, they would act on the original). A refusal names a few databases, never
a backup's hundreds.
"""

from __future__ import annotations

from drkit.binlog import position
from drkit.errors import ParameterError, RestoreBlockedError
from drkit.manifest import Manifest
from drkit.stream.rewrite import SYSTEM_SCHEMAS
from drkit.stream.schema import names_own_database
from drkit.units import few


def restore_names(manifest: Manifest, rename_to: str | None,
             databases: list[str] | None = None) -> dict[str, str]:
    """Name in the backup -> name on the target, for the databases this restore loads."""
    chosen = _chosen(manifest, databases)
    system = sorted(d for d in {*chosen, rename_to or ""} if d.lower() in SYSTEM_SCHEMAS)
    if system:
        raise RestoreBlockedError(
            f"Backup {manifest.name} would restore into the system schema "
            f"{', '.join(system)}; nothing was restored and nothing was changed.",
            "Restore application databases only, under another name with --as, or choose "
            "one with --database.")
    if rename_to is None:
        return {db: db for db in chosen}
    if not 1 <= len(rename_to) <= 64 or "\x00" in rename_to or rename_to.endswith(" ") \
            or any(ord(c) > 0xFFFF for c in rename_to):
        raise ParameterError(f"--as {rename_to!r} is not a database name.",
                             "Give 1 to 64 characters up to U+FFFF (MySQL's names hold no "
                             "emoji), without a trailing space.")
    if rename_to.lower().startswith(_HELPERS):
        raise ParameterError(f"--as {rename_to!r} is a name drkit gives its own scratch "
                             "databases (doctor would advise dropping it).",
                             "Choose a name that does not begin with drkit_restore_ or "
                             "drkit_replaced_.")
    if rename_to.lower() == position.SCHEMA:
        raise ParameterError(f"--as {rename_to!r} is where drkit keeps a standby's position "
                             "(dropping it retires the standby).", "Choose another name.")
    if len(chosen) != 1:
        raise RestoreBlockedError(
            f"Backup {manifest.name} holds {len(chosen)} databases ({few(chosen)}); --as "
            "renames a single database; nothing was restored.",
            "Choose the one to rename with --database DB --as NAME, or restore them all "
            "under their own names.")
    _refuse_self_references(manifest, chosen[0], rename_to)
    return {chosen[0]: rename_to}


# The swap's own databases (drkit.mysql.swap): recovery and doctor treat them as leftovers.
_HELPERS = ("drkit_restore_", "drkit_replaced_")


def _chosen(manifest: Manifest, databases: list[str] | None) -> list[str]:
    """The databases a restore loads: all the backup holds, or those named (--database)."""
    if databases is None:
        return list(manifest.databases)
    if missing := [db for db in databases if db not in manifest.databases]:
        raise ParameterError(
            f"Backup {manifest.name} holds no database {few(missing)} (it holds "
            f"{few(manifest.databases)}); nothing was changed.",
            "Name one it holds with --database, or another backup (drkit list shows each "
            "backup's databases).")
    return list(databases)


def _refuse_self_references(manifest: Manifest, database: str, rename_to: str) -> None:
    """Objects whose bodies name their own database cannot be restored under another name:
    a drill's copy would write into the original (on the target, the real one)."""
    naming = sorted(key for key, text in manifest.only([database]).definitions.items()
                    if not key.startswith("table ") and names_own_database(
                        key.partition(" ")[0], text))
    if naming:
        raise RestoreBlockedError(
            f"Backup {manifest.name} holds objects whose bodies name their own database "
            f"({few(naming)}); restored as {rename_to} they would act on the original; "
            "nothing was restored.",
            "Restore under the original name (with --replace), or define those objects "
            "without the database name.")
