"""The ``drkit`` command line: thin wrappers that parse arguments and print results.

Every failure is a :class:`drkit.errors.DrkitError`; :func:`main` prints its one sentence and
exits with its code (README, "Exit codes").
"""

from __future__ import annotations

import gc
import os
import sys
import traceback

import click

from drkit import __version__
from drkit.cli import backups, binlog, fleet, health, maintenance, runbooks, sandbox, standby
from drkit.cli.context import Context
from drkit.console import Environment
from drkit.errors import DrkitError
from drkit.exitstatus import ExitStatus
from drkit.interrupts import interruptible
from drkit.redact import redact


# click suggests a close match for a mistyped command (8.4+) and option itself.
@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="drkit")
@click.option("--config", "config_path", envvar="DRKIT_CONFIG", type=click.Path(),
              help="drkit YAML config (default: $DRKIT_CONFIG).")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """drkit: back up RDS MySQL to Azure Blob, prove restores, fail over to Azure."""
    if ctx.obj is None:
        ctx.obj = Context(Environment(), config_path)
    ctx.obj.config_path = config_path


for _command in (backups.backup_command, backups.list_command, backups.show_command,
                 backups.verify_command, backups.restore_command, backups.prove_command,
                 backups.prune_command,
                 runbooks.run_command, runbooks.failover, runbooks.audit,
                 runbooks.schedule_command, maintenance.maintenance,
                 health.doctor_command, health.monitor, sandbox.sandbox, binlog.binlog,
                 fleet.fleet, standby.standby):
    cli.add_command(_command)


def main(argv: list[str] | None = None, env: Environment | None = None) -> int:
    """Entry point of the ``drkit`` script; returns the exit code."""
    env = env or Environment()
    try:
        # Without standalone mode click returns a command's ``ctx.exit(code)`` as the value.
        with interruptible():
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
        return ExitStatus.INTERRUPTED
    except Exception as exc:  # a bug: say so without a traceback full of values
        if os.environ.get("DRKIT_DEBUG"):
            traceback.print_exc(file=env.stderr)
        env.stderr.write(redact(f"drkit: internal error: {type(exc).__name__}: {exc} "
                                "(set DRKIT_DEBUG=1 for the traceback)\n"))
        return ExitStatus.INTERNAL_ERROR
    return code if isinstance(code, int) else ExitStatus.OK


def run() -> None:
    code = main()
    # The process ends here: the objects its libraries made (Dagster's, SQLAlchemy's,
    # Jupyter's: millions) need no last collection on the way out, which took 1 to 3 s of a
    # one-member `drkit fleet run` (docs/fleet.md, "Cost per run"). Frozen, the exit skips
    # them; atexit handlers still run and the standard streams are flushed.
    gc.freeze()
    sys.exit(code)
