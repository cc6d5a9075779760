"""The ``drkit`` command line: thin wrappers that parse arguments and print results.

Every failure is a :class:`drkit.errors.DrkitError`; :func:`main` prints its one sentence and
exits with its code (README, "Exit codes").
"""

from __future__ import annotations

import os
import sys
import traceback
from dataclasses import asdict
from pathlib import Path

import click

from drkit import __version__
from drkit.config import Settings, load_settings
from drkit.console import Environment
from drkit.errors import DrkitError
from drkit.redact import redact
from drkit.units import parse_size


class Context:
    def __init__(self, env: Environment, config_path: str | None) -> None:
        self.env = env
        self.config_path = config_path
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_path)
        return self._settings


pass_context = click.make_pass_decorator(Context)


@click.group()
@click.version_option(__version__, prog_name="drkit")
@click.option("--config", "config_path", envvar="DRKIT_CONFIG", type=click.Path(),
              help="drkit YAML config (default: $DRKIT_CONFIG).")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """drkit: back up RDS MySQL to Azure Blob, prove restores, fail over to Azure."""
    if ctx.obj is None:
        ctx.obj = Context(Environment(), config_path)
    ctx.obj.config_path = config_path


# -- backup ----------------------------------------------------------------------------
@cli.command("backup")
@click.option("--database", "-d", "databases", multiple=True,
              help="Database to back up (repeatable; default: source.databases).")
@click.option("--compression", type=click.Choice(["gzip", "zstd"]),
              help="Override backup.compression.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_context
def backup_command(context: Context, databases: tuple[str, ...], compression: str | None,
                   as_json: bool) -> None:
    """Dump the source, compress and stream it to Azure Blob; print the blob name."""
    from drkit.backup import run_backup

    settings = context.settings
    context.env.configure_logging(settings.backup.log_file)
    result = run_backup(settings, context.env, databases=list(databases) or None,
                        compression=compression)
    if as_json:
        context.env.print_json(result.summary())
    else:
        context.env.print(result.name)


# -- catalog, verify, restore, prove ----------------------------------------------------
def _store(context: Context):
    from drkit.blobstore import BackupStore
    from drkit.secrets import SecretResolver

    settings = context.settings
    context.env.configure_logging(settings.backup.log_file)
    return BackupStore.from_settings(settings, SecretResolver(settings))


def _table(env: Environment, columns: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns)
    for row in rows:
        table.add_row(*row)
    Console(file=env.stdout, width=max(120, Console(file=env.stdout).width)).print(table)


@cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_context
def list_command(context: Context, as_json: bool) -> None:
    """List the backups, oldest first, with size, databases and verification."""
    from drkit.catalog import Catalog
    from drkit.units import human_size

    entries = Catalog(_store(context)).entries()
    if as_json:
        context.env.print_json([e.as_dict() for e in entries])
        return
    _table(context.env, ["backup", "taken (UTC)", "size", "databases", "compression",
                         "manifest", "verified"],
           [[e.name, f"{e.taken_at:%Y-%m-%d %H:%M:%S}", human_size(e.size),
             ", ".join(e.databases) or "?", e.compression, "yes" if e.has_manifest else "NO",
             f"{e.verified} {e.verified_at}" if e.verified else "-"] for e in entries])


_backup_argument = click.argument("backup", default="latest")


@cli.command("verify")
@_backup_argument
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_context
def verify_command(context: Context, backup: str, as_json: bool) -> None:
    """Read BACKUP back and check it against its manifest (default: latest).

    BACKUP is a blob name, latest, latest-verified, or a time (the newest at or before it).
    """
    from drkit.catalog import Catalog
    from drkit.verify import verify_backup

    store = _store(context)
    result = verify_backup(store, Catalog(store).select(backup), context.env)
    if as_json:
        context.env.print_json(result.as_dict())
    else:
        context.env.print(f"{result.name}: ok ({result.tables} tables, {result.rows} rows)")


_target_options = [
    click.option("--target", "target_address", metavar="HOST[:PORT]",
                 help="Restore target (default: the configured target)."),
    click.option("--as", "rename_to", metavar="NAME", help="Restore under this database name."),
]


def _with(options):
    def decorate(function):
        for option in reversed(options):
            function = option(function)
        return function
    return decorate


@cli.command("restore")
@_backup_argument
@_with(_target_options)
@click.option("--replace", is_flag=True, help="Drop and replace a non-empty target database.")
@click.option("--check", is_flag=True, help="Report rewrites and blockers; load nothing.")
@click.option("--compat/--no-compat", "azure", default=None,
              help="Azure Flexible Server rewrites (default: on for an azure target).")
@click.option("--definer", type=click.Choice(["strip", "admin"]),
              help="Strip DEFINER clauses or give objects the target's admin user.")
@click.option("--no-prove", is_flag=True, help="Skip the proof against the manifest.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_context
def restore_command(context: Context, backup: str, target_address: str | None,
                    rename_to: str | None, replace: bool, check: bool, azure: bool | None,
                    definer: str | None, no_prove: bool, as_json: bool) -> None:
    """Stream BACKUP into the target, then prove it against the manifest."""
    from drkit.errors import ProofFailedError, RestoreBlockedError
    from drkit.restore import check_backup, restore_backup

    settings = context.settings
    context.env.configure_logging(settings.backup.log_file)
    if check:
        report = check_backup(settings, backup, rename_to=rename_to, azure=azure,
                              definer=definer)
        if as_json:
            context.env.print_json(report.as_dict())
        else:
            _table(context.env, ["would rewrite", "count"],
                   [[k, str(v)] for k, v in report.rewrites.items()] or [["nothing", "0"]])
            for blocker in report.blockers:
                context.env.print(f"BLOCKER: {blocker}")
        if report.blockers:
            raise RestoreBlockedError(f"Backup {report.backup} cannot be restored as it is: "
                                      f"{'; '.join(report.blockers)}.")
        return
    try:
        result = restore_backup(settings, backup, context.env, target_address=target_address,
                                rename_to=rename_to, replace=replace, azure=azure,
                                definer=definer, prove_after=not no_prove)
    except ProofFailedError as error:
        _print_proof(context.env, error.proof, as_json)
        raise
    if as_json:
        context.env.print_json(result.as_dict())
    else:
        databases = ", ".join(result.databases.values())
        context.env.print(f"restored {result.backup} into {databases} on {result.target} in "
                          f"{result.seconds:.1f} s ({result.throughput_mib_s} MiB/s)"
                          + ("; proof passed" if result.proof else "; not proven"))


@cli.command("prove")
@_backup_argument
@_with(_target_options)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_context
def prove_command(context: Context, backup: str, target_address: str | None,
                  rename_to: str | None, as_json: bool) -> None:
    """Compare the target's copy of BACKUP with its manifest; list every difference."""
    from drkit.errors import ProofFailedError
    from drkit.restore import prove_backup

    context.env.configure_logging(context.settings.backup.log_file)
    try:
        proof = prove_backup(context.settings, backup, target_address=target_address,
                             rename_to=rename_to)
    except ProofFailedError as error:
        _print_proof(context.env, error.proof, as_json)
        raise
    _print_proof(context.env, proof, as_json)


def _print_proof(env: Environment, proof, as_json: bool) -> None:
    if as_json:
        env.print_json(proof.as_dict())
    elif proof.differences:
        _table(env, ["kind", "name", "expected", "found"],
               [[d.kind, d.name, d.expected, d.actual] for d in proof.differences])
    else:
        env.print(f"proof passed: {proof.tables_checked} tables, {proof.rows_checked} rows, "
                  f"{proof.objects_checked} objects match the manifest")


@cli.command("prune")
@click.option("--older-than", "older_than", default="30d", show_default=True,
              help="Age past which backups go (the seed's lifecycle rule: 30 days).")
@click.option("--yes", is_flag=True, help="Delete; without it, only show what would go.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@pass_context
def prune_command(context: Context, older_than: str, yes: bool, as_json: bool) -> None:
    """Delete old backups, never the newest verified one (dry run unless --yes)."""
    from drkit.prune import execute_prune, plan_prune
    from drkit.units import parse_duration

    try:
        seconds = parse_duration(older_than)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--older-than") from None
    store = _store(context)
    plan = plan_prune(store, seconds)
    if yes:
        execute_prune(store, plan)
    if as_json:
        context.env.print_json({**plan.as_dict(), "dry_run": not yes})
        return
    verb = "deleted" if yes else "would delete"
    for name in plan.delete:
        context.env.print(f"{verb}: {name}")
    for name, why in plan.keep.items():
        context.env.print(f"kept: {name} ({why})")
    if not plan.delete:
        context.env.print(f"nothing older than {older_than} to delete")
    context.env.print("lifecycle rule: not checked here (reading it needs Azure Resource "
                      "Manager access); the seed's rule deleteOldBackups deletes blobs under "
                      f"{store.prefix} 30 days after their last change, verified or not.")


# -- runbooks, audit, schedule -------------------------------------------------------------
def _parameter(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> dict:
    import yaml

    parsed = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r}: write key=value")
        parsed[key] = yaml.safe_load(value) if value else None
    return parsed


@cli.command("run")
@click.argument("runbook")
@click.option("--env", "environment", help="Environment (default: the config's).")
@click.option("-p", "--parameter", "overrides", multiple=True, callback=_parameter,
              metavar="KEY=VALUE", help="Override a notebook parameter (YAML value).")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@pass_context
def run_command(context: Context, runbook: str, environment: str | None, overrides: dict,
                as_json: bool) -> None:
    """Execute RUNBOOK's notebook with papermill and publish its audit record."""
    from drkit.errors import ConfigError
    from drkit.runbooks import load_runbook
    from drkit.runner import run_runbook

    if not context.config_path:
        raise ConfigError("drkit run needs a config.", "Pass --config FILE or set DRKIT_CONFIG.")
    settings = context.settings
    context.env.configure_logging(settings.backup.log_file)
    outcome = run_runbook(settings, Path(context.config_path), load_runbook(runbook),
                          environment, overrides)
    if as_json:
        context.env.print_json(outcome.as_dict())
    else:
        context.env.print(f"{outcome.run_id}: {outcome.status} - {outcome.message}")
    if outcome.exit_code:
        raise click.exceptions.Exit(outcome.exit_code)


@cli.group()
def audit() -> None:
    """Audit records of runbook runs (executed notebooks, run.json)."""


def _audit_store(context: Context, container: str):
    from drkit.blobstore import BackupStore
    from drkit.secrets import SecretResolver

    settings = context.settings
    return BackupStore.from_settings(settings, SecretResolver(settings), container=container,
                                     prefix="")


_audit_container = click.option("--container", default="dr-audit", show_default=True,
                                 help="Audit container.")


@audit.command("publish")
@click.argument("notebook", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--runbook", "runbook_name", default="failover", show_default=True)
@click.option("--env", "environment", help="Environment (default: the config's).")
@pass_context
def audit_publish(context: Context, notebook: Path, runbook_name: str,
                  environment: str | None) -> None:
    """Keep a notebook run by hand (e.g. the failover in JupyterLab) as an audit record."""
    from drkit.runbooks import load_runbook
    from drkit.runner import record_notebook

    settings = context.settings
    context.env.configure_logging(settings.backup.log_file)
    outcome = record_notebook(settings, load_runbook(runbook_name), notebook, environment)
    context.env.print(f"{outcome.run_id}: {outcome.status} - {outcome.message}")
    if not outcome.published:
        raise click.exceptions.Exit(outcome.exit_code or 42)


@audit.command("list")
@_audit_container
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_context
def audit_list(context: Context, container: str, limit: int, as_json: bool) -> None:
    """Recent runs: runbook, environment, status, duration, RPO, RTO."""
    from drkit.audit import list_runs

    runs = list_runs(_audit_store(context, container), limit)
    if as_json:
        context.env.print_json(runs)
        return
    _table(context.env, ["run", "runbook", "env", "status", "duration s", "RPO s", "RTO s"],
           [[r["run_id"], r["runbook"], r["environment"], r["status"],
             _number(r["duration_seconds"]), _number(r["results"].get("rpo_seconds")),
             _number(r["results"].get("rto_seconds"))] for r in runs])


def _number(value) -> str:
    return "-" if value is None else f"{value:.0f}"


@audit.command("show")
@click.argument("run_id")
@_audit_container
@pass_context
def audit_show(context: Context, run_id: str, container: str) -> None:
    """Print a run's run.json."""
    from drkit.audit import RUN, find_run

    store = _audit_store(context, container)
    context.env.print(store.container.download_blob(find_run(store, run_id) + RUN)
                      .readall().decode())


@audit.command("verify")
@click.argument("run_id")
@_audit_container
@pass_context
def audit_verify(context: Context, run_id: str, container: str) -> None:
    """Check a published record's files against the hashes in its run.json."""
    from drkit.audit import verify_run

    run = verify_run(_audit_store(context, container), run_id)
    context.env.print(f"{run_id}: ok ({', '.join(run['files']) or 'run.json only'} match)")


@audit.command("report")
@_audit_container
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("drkit-audit-report.html"), show_default=True)
@click.option("--limit", default=200, show_default=True)
@pass_context
def audit_report(context: Context, container: str, output: Path, limit: int) -> None:
    """Write an HTML page with the run history and the RPO/RTO trend."""
    from drkit.audit import list_runs
    from drkit.report import write_report

    write_report(list_runs(_audit_store(context, container), limit), output)
    context.env.print(str(output))


@cli.command("schedule")
@click.argument("action", type=click.Choice(["show", "install", "remove"]))
@click.option("--env", "environment", help="Environment (default: the config's).")
@pass_context
def schedule_command(context: Context, action: str, environment: str | None) -> None:
    """Show, install or remove the crontab entries of an environment's runbooks."""
    from drkit.errors import ConfigError
    from drkit.runbooks import all_runbooks
    from drkit.schedule import Crontab, cron_block, install, remove

    if not context.config_path:
        raise ConfigError("drkit schedule needs a config.",
                          "Pass --config FILE or set DRKIT_CONFIG.")
    settings = context.settings
    environment = environment or settings.environment
    block = cron_block(settings, Path(context.config_path), environment, all_runbooks())
    if action == "show":
        context.env.print("\n".join(block))
    elif action == "install":
        install(Crontab(), block, environment)
        context.env.print(f"installed {len(block) - 2} crontab entries for {environment}")
    else:
        remove(Crontab(), environment)
        context.env.print(f"removed the crontab entries for {environment}")


# -- doctor and monitoring ---------------------------------------------------------------
@cli.command("doctor")
@click.option("--env", "environment", help="Environment (default: the config's).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--print-policy", is_flag=True,
              help="Print the least-privilege AWS IAM policy and Azure roles, and exit.")
@pass_context
def doctor_command(context: Context, environment: str | None, as_json: bool,
                   print_policy: bool) -> None:
    """Check every dependency; exit 0 OK, 1 WARNING, 2 CRITICAL (Nagios style)."""
    from drkit.doctor import CRITICAL, EXIT_CODES, Check, Doctor, policy, worst
    from drkit.errors import DrkitError

    try:
        settings = context.settings
    except DrkitError as error:  # an invalid config is a check result too
        checks = [Check("config", CRITICAL, error.message, error.fix or "")]
    else:
        if print_policy:
            context.env.print_json(policy(settings))
            return
        checks = Doctor(settings, environment or settings.environment).run()
    status = worst(checks)
    if as_json:
        context.env.print_json({"status": status, "checks": [asdict(c) for c in checks]})
    else:
        for check in checks:
            context.env.print(f"{check.status:<8} {check.name}: {check.detail}"
                              + (f"\n         fix: {check.fix}" if check.fix else ""))
        context.env.print(f"doctor: {status}")
    raise click.exceptions.Exit(EXIT_CODES[status])


@cli.group()
def monitor() -> None:
    """CloudWatch metrics and alarms on backup age."""


@monitor.command("publish")
@pass_context
def monitor_publish(context: Context) -> None:
    """Publish the age of the newest backup and the newest verified backup."""
    from drkit.monitor import publish_ages

    ages = publish_ages(context.settings)
    context.env.print_json(ages)


@monitor.command("install-alarms")
@click.option("--env", "environment", help="Environment (default: the config's).")
@click.option("--sns-topic", help="SNS topic ARN to notify.")
@pass_context
def monitor_install_alarms(context: Context, environment: str | None,
                           sns_topic: str | None) -> None:
    """Create CloudWatch alarms for backup failure and RPO breach."""
    from drkit.monitor import install_alarms

    settings = context.settings
    for name in install_alarms(settings, environment or settings.environment, sns_topic):
        context.env.print(name)


# -- sandbox ---------------------------------------------------------------------------
@cli.group()
def sandbox() -> None:
    """A local stand-in for RDS, Secrets Manager, Blob Storage and Flexible Server."""


_dir_option = click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
                           default=Path(".drkit-sandbox"), show_default=True,
                           help="Where the sandbox keeps all its state.")


def _size(_ctx: click.Context, _param: click.Parameter, value: str) -> int:
    try:
        return parse_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@sandbox.command("up")
@_dir_option
@click.option("--size", default="4MiB", show_default=True, callback=_size,
              help="Size of the demo database's dump, e.g. 1GiB for benchmarks.")
@pass_context
def sandbox_up(context: Context, directory: Path, size: int) -> None:
    """Start (or keep) every sandbox service and write DIR/drkit.yaml."""
    from drkit.sandbox import Sandbox

    box = Sandbox(directory, demo_size=size)
    statuses = box.up()
    _print_status(context.env, statuses, as_json=False)
    context.env.print(f"config: {box.config_path}  (export DRKIT_CONFIG={box.config_path})")


@sandbox.command("status")
@_dir_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_context
def sandbox_status(context: Context, directory: Path, as_json: bool) -> None:
    """Show each service's port, pid and health; exit 1 unless all are healthy."""
    from drkit.sandbox import Sandbox

    statuses = Sandbox(directory).status()
    _print_status(context.env, statuses, as_json)
    if not all(s.healthy for s in statuses):
        raise click.exceptions.Exit(1)


@sandbox.command("down")
@_dir_option
@pass_context
def sandbox_down(context: Context, directory: Path) -> None:
    """Stop every process the sandbox started; data stays under DIR."""
    from drkit.sandbox import Sandbox

    stopped = Sandbox(directory).down()
    context.env.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")


def _print_status(env: Environment, statuses, as_json: bool) -> None:
    if as_json:
        env.print_json([asdict(s) for s in statuses])
        return
    _table(env, ["service", "stands in for", "port", "pid", "health", "detail"],
           [[s.name, s.role, str(s.port or "-"), str(s.pid or "-"),
             "healthy" if s.healthy else ("unhealthy" if s.running else "stopped"), s.detail]
            for s in statuses])


def main(argv: list[str] | None = None, env: Environment | None = None) -> int:
    """Entry point of the ``drkit`` script; returns the exit code."""
    env = env or Environment()
    try:
        # Without standalone mode click returns a command's ``ctx.exit(code)`` as the value.
        code = cli.main(args=argv, obj=Context(env, None), standalone_mode=False)
    except DrkitError as error:
        env.stderr.write(f"drkit: {error}\n")
        return error.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show(file=env.stderr)
        return exc.exit_code
    except click.exceptions.Abort:
        env.stderr.write("drkit: aborted.\n")
        return 130
    except Exception as exc:  # a bug: say so without a traceback full of values
        if os.environ.get("DRKIT_DEBUG"):
            traceback.print_exc(file=env.stderr)
        env.stderr.write(redact(f"drkit: internal error: {type(exc).__name__}: {exc} "
                                "(set DRKIT_DEBUG=1 for the traceback)\n"))
        return 1
    return code if isinstance(code, int) else 0


def run() -> None:
    sys.exit(main())
