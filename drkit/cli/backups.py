"""``drkit backup``, ``list``, ``verify``, ``restore``, ``prove``, ``prune``: the backups."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import click

from drkit.cli.context import Context, pass_context, print_table, with_options
from drkit.console import Environment

if TYPE_CHECKING:
    from drkit.ops.restore import RestoreRequest

_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?")


def parse_target(value: str) -> tuple[str, int | None]:
    """``HOST[:PORT]`` as (host, port); ValueError with the one sentence otherwise."""
    host, colon, port = value.partition(":")
    if not _HOST.fullmatch(host) or (colon and not re.fullmatch(r"[0-9]{1,5}", port)) \
            or (colon and not 1 <= int(port) <= 65535):
        raise ValueError(f"{value!r} is not HOST[:PORT] (a host name or IPv4 address, then "
                         "optionally ':' and a port from 1 to 65535)")
    return host, int(port) if colon else None


def _target(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    from drkit.errors import ParameterError

    try:
        host, port = parse_target(value)
    except ValueError as exc:
        raise ParameterError(f"--target {exc}; nothing was done.") from None
    return host if port is None else f"{host}:{port}"


def _names(_ctx: click.Context, param: click.Parameter, values):
    """Database names as given; an empty one is refused before any client runs (mysqldump
    would take it for none, a server for a syntax error)."""
    from drkit.config import _identifier  # the config's own rule for source.databases
    from drkit.errors import ParameterError

    for value in values if isinstance(values, tuple) else [values]:
        if value is None:
            continue
        try:
            _identifier(value)
            if not value.strip():
                raise ValueError("a database name is more than spaces")
        except ValueError as exc:
            raise ParameterError(f"{param.opts[0]} {value!r} is not a database name ({exc}); "
                                 "nothing was done.") from None
    return values


@click.command("backup")
@click.option("--database", "-d", "databases", multiple=True, callback=_names,
              help="Database to back up (repeatable; default: source.databases).")
@click.option("--compression", type=click.Choice(["gzip", "zstd"]),
              help="Override backup.compression.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_context
def backup_command(context: Context, databases: tuple[str, ...], compression: str | None,
                   as_json: bool) -> None:
    """Dump the source, compress and stream it to Azure Blob; print the blob name."""
    from drkit.ops.backup import run_backup

    settings = context.settings
    context.env.configure_logging(settings.backup.log_file)
    result = run_backup(settings, context.env, databases=list(databases) or None,
                        compression=compression)
    if as_json:
        context.env.print_json(result.summary())
    else:
        context.env.print(result.name)


@click.command("list")
@click.option("--versions", is_flag=True,
              help="List the earlier versions blob versioning keeps, and what they cost.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_context
def list_command(context: Context, versions: bool, as_json: bool) -> None:
    """List the backups, oldest first, with size, databases and verification."""
    from drkit.azure.catalog import Catalog
    from drkit.units import human_size

    if versions:
        _list_versions(context, Catalog(context.store()), as_json)
        return
    entries = Catalog(context.store()).entries()
    if as_json:
        context.env.print_json({"ok": True, "backups": [e.as_dict() for e in entries]})
        return
    print_table(context.env, ["backup", "taken (UTC)", "size", "databases", "compression",
                         "manifest", "verified"],
           [[e.name, f"{e.taken_at:%Y-%m-%d %H:%M:%S}", human_size(e.size),
             ", ".join(e.databases) or "?", e.compression, "yes" if e.has_manifest else "NO",
             f"{e.verified} {e.verified_at}" if e.verified else "-"] for e in entries])


def _list_versions(context: Context, catalog, as_json: bool) -> None:
    """Earlier versions per backup (its blob and manifest together)."""
    from drkit.manifest import SIDECAR_SUFFIX
    from drkit.units import human_size

    current = {b.name.removesuffix(SIDECAR_SUFFIX) for b in catalog.store.blobs()}
    rows: dict[str, dict] = {}
    for version in catalog.previous_versions():
        backup = version.name.removesuffix(SIDECAR_SUFFIX)
        row = rows.setdefault(backup, {"backup": backup, "current": backup in current,
                                       "versions": 0, "versions_bytes": 0,
                                       "oldest": version.last_modified})
        row["versions"] += 1
        row["versions_bytes"] += version.size
        row["oldest"] = min(row["oldest"], version.last_modified)
    listed = [{**r, "oldest": r["oldest"].isoformat()} for _, r in sorted(rows.items())]
    total = sum(r["versions_bytes"] for r in listed)
    if as_json:
        context.env.print_json({"ok": True, "backups": listed, "versions_bytes": total})
        return
    if not listed:
        context.env.print("no earlier versions (blob versioning is off, or nothing was "
                          "overwritten or deleted)")
        return
    print_table(context.env, ["backup", "current", "earlier versions", "size", "oldest (UTC)"],
                [[r["backup"], "yes" if r["current"] else "deleted", r["versions"],
                  human_size(r["versions_bytes"]), r["oldest"][:19]] for r in listed])
    context.env.print(f"earlier versions cost {human_size(total)}; drkit prune deletes those "
                      "of the backups it deletes")


_backup_argument = click.argument("backup", default="latest")


@click.command("show")
@_backup_argument
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_context
def show_command(context: Context, backup: str, as_json: bool) -> None:
    """One backup on one screen: its manifest, verification, how far a point-in-time
    restore reaches from it, and the earlier versions blob versioning keeps."""
    from drkit.ops.show import show_backup

    shown = show_backup(context.settings, backup)
    if as_json:
        context.env.print_json(shown.as_dict())
        return
    for label, value in shown.rows():
        context.env.print(f"{label:<10} {value}")


@click.command("verify")
@_backup_argument
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_context
def verify_command(context: Context, backup: str, as_json: bool) -> None:
    """Read BACKUP back and check it against its manifest (default: latest).

    BACKUP is a blob name, latest, latest-verified, or a time (the newest at or before it).
    """
    from drkit.azure.catalog import Catalog
    from drkit.ops.verify import verify_backup

    store = context.store()
    result = verify_backup(store, Catalog(store).select(backup), context.env)
    if as_json:
        context.env.print_json(result.as_dict())
    else:
        context.env.print(f"{result.name}: ok ({result.tables} tables, {result.rows} rows)")


_target_options = [
    click.option("--target", "target_address", metavar="HOST[:PORT]", callback=_target,
                 help="Restore target (default: the configured target)."),
    click.option("--database", "databases", metavar="DB", multiple=True, callback=_names,
                 help="Only this database of the backup (repeatable; required by --until "
                      "when the backups hold several)."),
    click.option("--as", "rename_to", metavar="NAME", callback=_names,
                 help="Restore under this database name (the one database restored)."),
]



@click.command("restore")
@_backup_argument
@with_options(_target_options)
@click.option("--replace", is_flag=True, help="Drop and replace a non-empty target database.")
@click.option("--check", is_flag=True, help="Report rewrites and blockers; load nothing.")
@click.option("--compat/--no-compat", "azure", default=None,
              help="Azure Flexible Server rewrites (default: on for an azure target).")
@click.option("--definer", type=click.Choice(["strip", "admin"]),
              help="Strip DEFINER clauses or give objects the target's admin user.")
@click.option("--no-prove", is_flag=True, help="Skip the proof against the manifest.")
@click.option("--until", metavar="TIME",
              help="Point in time (UTC, or latest): the newest full backup before it, then "
                   "the archived binlog up to it. BACKUP is then chosen, not given.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--recover-swap", is_flag=True,
              help="Only finish or undo the swaps killed runs left on the target (their "
                   "journals under backup.state_dir/swaps/); restore nothing.")
@pass_context
def restore_command(context: Context, backup: str, target_address: str | None,
                    databases: tuple[str, ...], rename_to: str | None, replace: bool,
                    check: bool, azure: bool | None, definer: str | None, no_prove: bool,
                    until: str | None,
                    as_json: bool, recover_swap: bool = False) -> None:
    """Stream BACKUP into the target, then prove it against the manifest."""
    from drkit.errors import ProofFailedError
    from drkit.ops.restore import RestoreRequest, run_restore
    from drkit.units import duration, human_size

    request = RestoreRequest(backup=backup, until=until, target_address=target_address,
                             databases=_chosen(databases), rename_to=rename_to, replace=replace,
                             prove=not no_prove, azure=azure, definer=definer)
    context.env.configure_logging(context.settings.backup.log_file)
    if recover_swap:
        return _recover_swaps(context, target_address, as_json,
                              check or request != RestoreRequest(target_address=target_address))
    if until is not None and backup != "latest":
        raise click.UsageError("--until chooses the base backup itself; give BACKUP or "
                               "--until, not both.")
    if until is not None:
        return _restore_until(context, request, check, as_json)
    if check:
        return _check(context, request, as_json)
    try:
        result = run_restore(context.settings, request, context.env)
    except ProofFailedError as error:
        _print_proof(context.env, error.proof, as_json)
        raise
    if as_json:
        context.env.print_json(result.as_dict())
    else:
        databases = ", ".join(result.databases.values())
        done = (f"replaced {', '.join(result.replaced)} on {result.target} with {result.backup}"
                if result.replaced else
                f"restored {result.backup} into {databases} on {result.target}")
        context.env.print(f"{done}: "
                          f"{human_size(result.compressed_bytes)} read "
                          f"({human_size(result.sql_bytes)} of SQL) in {duration(result.seconds)} "
                          f"({human_size(result.sql_bytes / max(result.seconds, 1e-3))}/s)"
                          + ("; proof passed" if result.proof else "; not proven"))


def _recover_swaps(context: Context, target_address: str | None, as_json: bool,
                   other_options: bool) -> None:
    """``restore --recover-swap``: the recovery a restore runs first, alone."""
    from drkit.mysql.connection import target_server
    from drkit.mysql.swap import recover_swaps

    if other_options:
        raise click.UsageError("--recover-swap only recovers; it takes no BACKUP and no "
                               "other option than --target and --json.")
    settings = context.settings
    server = target_server(settings, target_address)
    done = recover_swaps(server, settings.backup.state_dir.expanduser() / "swaps",
                         settings.restore.swap_lock_wait_seconds)
    if as_json:
        context.env.print_json({"ok": True, "target": server.address, "recovered": done})
        return
    for sentence in done or [f"No interrupted swap to recover on {server.address}."]:
        context.env.print(sentence)


def _check(context: Context, request: RestoreRequest, as_json: bool) -> None:
    """``restore --check``: what the restore would rewrite, and what would block it."""
    from drkit.errors import RestoreBlockedError
    from drkit.ops.restorecheck import check_backup

    report = check_backup(context.settings, request)
    if as_json:
        context.env.print_json(report.as_dict())
    else:
        print_table(context.env, ["would rewrite", "count"],
                    [[k, str(v)] for k, v in report.rewrites.items()] or [["nothing", "0"]])
        for note in report.notes:
            context.env.print(f"NOTE: {note}")
        for blocker in report.blockers:
            context.env.print(f"BLOCKER: {blocker}")
        context.env.print(_check_verdict(report))
    if report.blockers:
        raise RestoreBlockedError(f"Backup {report.backup} cannot be restored as it is: "
                                  f"{'; '.join(report.blockers)}.")


def _check_verdict(report) -> str:
    """``restore --check``'s last line: whether the restore would go through."""
    if report.blockers:
        count = len(report.blockers)
        return (f"verdict: {report.backup} cannot be restored as it is: {count} "
                f"blocker{'s' * (count > 1)} above")
    return f"verdict: {report.backup} can be restored" + (
        ", with the rewrites above" if report.rewrites else " as it is")


def _restore_until(context: Context, request: RestoreRequest, check: bool, as_json: bool) -> None:
    from drkit.ops.restore import run_restore

    if check or not request.prove:
        raise click.UsageError("--until restores, proves the base backup, then replays; it "
                               "does not combine with --check or --no-prove.")
    result = run_restore(context.settings, request, context.env)
    replay = result.replay
    if as_json:
        context.env.print_json(result.as_dict())
    else:
        restored = ", ".join(f"{a} as {b}" if a != b else a
                             for a, b in result.databases.items())
        context.env.print(
            f"restored {restored} from base {result.backup} on "
            f"{result.target}, proof passed; then {replay.transactions} transactions "
            f"({replay.rows} rows) from the binlog: the data now stands at "
            f"{replay.reached} (asked: {replay.until}); "
            f"{replay.events_per_second} events/s")


def _chosen(databases: tuple[str, ...]) -> list[str] | None:
    """--database as given (each once), or None: all the backup holds."""
    return list(dict.fromkeys(databases)) or None


@click.command("prove")
@_backup_argument
@with_options(_target_options)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_context
def prove_command(context: Context, backup: str, target_address: str | None,
                  databases: tuple[str, ...], rename_to: str | None, as_json: bool) -> None:
    """Compare the target's copy of BACKUP with its manifest; list every difference."""
    from drkit.errors import ProofFailedError
    from drkit.ops.restore import RestoreRequest
    from drkit.ops.restorecheck import prove_backup

    context.env.configure_logging(context.settings.backup.log_file)
    try:
        proof = prove_backup(context.settings, RestoreRequest(
            backup=backup, target_address=target_address, databases=_chosen(databases),
            rename_to=rename_to))
    except ProofFailedError as error:
        _print_proof(context.env, error.proof, as_json)
        raise
    _print_proof(context.env, proof, as_json)


def _print_proof(env: Environment, proof, as_json: bool) -> None:
    if as_json:
        env.print_json(proof.as_dict())
    elif proof.differences:
        print_table(env, ["kind", "name", "expected", "found"],
               [[d.kind, d.name, d.expected, d.actual] for d in proof.differences])
    else:
        env.print(f"proof passed: {proof.tables_checked} tables, {proof.rows_checked} rows, "
                  f"{proof.objects_checked} objects match the manifest")


def _print_locked(env: Environment, locked: dict[str, str]) -> None:
    for name, until in locked.items():
        env.print(f"locked: {name} (the container's immutability policy keeps it until "
                  f"{until}; a later prune deletes it)")


@click.command("prune")
@click.option("--older-than", "older_than", default="30d", show_default=True,
              help="Age past which backups go (the seed's lifecycle rule: 30 days).")
@click.option("--yes", is_flag=True, help="Delete; without it, only show what would go.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@pass_context
def prune_command(context: Context, older_than: str, yes: bool, as_json: bool) -> None:
    """Delete old backups, keeping each database's newest verified one and anything newer
    (dry run unless --yes)."""
    from drkit.ops.prune import execute_prune, plan_prune
    from drkit.units import human_size, parse_duration

    try:
        seconds = parse_duration(older_than)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--older-than") from None
    store = context.store()
    plan = plan_prune(store, seconds, context.settings.binlog.prefix)
    if yes:
        execute_prune(store, plan)
    if as_json:
        context.env.print_json({**plan.as_dict(), "dry_run": not yes})
        return
    verb = "deleted" if yes else "would delete"
    for database, why in plan.databases.items():
        context.env.print(f"{database}: {why}")
    for name in plan.delete:
        context.env.print(f"{verb}: {name}")
    for name, why in plan.keep.items():
        context.env.print(f"kept: {name} ({why})")
    for name in plan.binlogs:
        context.env.print(f"{verb}: {name} (archived binlog before the oldest backup kept)")
    if plan.versions or plan.deleted_versions:
        count = len(plan.deleted_versions) if yes else len(plan.versions)
        context.env.print(f"{verb}: {count} earlier versions of the deleted blobs (blob "
                          f"versioning; {human_size(plan.versions_bytes)})"
                          + ("" if yes else "; deleting makes one more of each"))
    _print_locked(context.env, plan.locked)
    if not plan.delete:
        context.env.print(f"nothing older than {older_than} to delete")
    context.env.print("lifecycle rule: not checked here (reading it needs Azure Resource "
                      "Manager access); the seed's rule deleteOldBackups deletes blobs under "
                      f"{store.prefix} 30 days after their last change, verified or not.")
