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
    from rich.console import Console
    from rich.table import Table

    table = Table("service", "stands in for", "port", "pid", "health", "detail")
    for s in statuses:
        health = "[green]healthy[/]" if s.healthy else ("[red]unhealthy[/]" if s.running
                                                       else "[red]stopped[/]")
        table.add_row(s.name, s.role, str(s.port or "-"), str(s.pid or "-"), health, s.detail)
    Console(file=env.stdout, width=max(120, Console(file=env.stdout).width)).print(table)


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
