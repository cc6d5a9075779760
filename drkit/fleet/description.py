"""The fleet description, ``fleet.yaml``: its members (each a drkit config) and its limits.

::

    fleet:
      per_source_concurrency: 1   # dumps or restores against one source server at once
      global_concurrency: 4       # runs of the whole fleet at once
      locks: blob                 # every member run's backup.locks (blob: across hosts)
      failure_webhook: env:DRKIT_FLEET_WEBHOOK   # a failed run's verdict is POSTed here
      state_dir: .drkit-fleet     # the per-source locks (relative: beside fleet.yaml)
      retry: {max_retries: 3, backoff_seconds: 30}
    members:
      shop:
        config: shop/drkit.yaml   # relative: beside fleet.yaml
        schedules: {nightly-backup: "0 2 * * *"}
        objectives: {rpo_minutes: 1560, drill_days: 7}

Loading it reads no member config and touches no service: a 500-member fleet loads in a
fraction of a second (``Member.settings`` reads a member's config when asked).
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal, NamedTuple, get_args

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from drkit.config import Settings, Side, describe_errors, load_settings
from drkit.errors import ConfigError
from drkit.runbooks.runbook import load_runbook, runbook_dirs

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
FLEET_ENV = "DRKIT_FLEET"
# A member's name is a Dagster partition key and part of lock and log file names.
_MEMBER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
# What a fleet's asset kind runs: the runbook of that name, as ``drkit run`` does.
RUNBOOKS = {"backup": "nightly-backup", "verify": "verify-backup", "drill": "restore-drill"}


def _cron(schedule: str) -> str:
    from croniter import croniter

    if not croniter.is_valid(schedule):
        raise ValueError(f"{schedule!r} is not a cron schedule (minute hour day month weekday)")
    return schedule


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Objectives(_Strict):
    rpo_minutes: float | None = Field(None, gt=0, description="newest verified backup's age")
    drill_days: float | None = Field(None, gt=0, description="time since the last good drill")
    archive_lag_minutes: float | None = Field(
        None, gt=0, description="binlog archive lag; default: the member's "
                                "binlog.lag_alarm_seconds, when binlog.enabled")


class Retry(_Strict):
    max_retries: int = Field(3, ge=0, le=20)
    backoff_seconds: float = Field(30, ge=0, description="doubled after each retry")


class Limits(_Strict):
    per_source_concurrency: int = Field(1, ge=1)
    global_concurrency: int = Field(4, ge=1)
    locks: Literal["local", "blob"] = Field(
        "blob", description="every member run's backup.locks: blob holds across hosts")
    failure_webhook: str | None = Field(
        None, description="a failed run's verdict is POSTed here (JSON); env:NAME reads the "
                          "URL from the environment (it is a credential)")
    state_dir: Path = Path(".drkit-fleet")
    retry: Retry = Retry()


class RunbookContext(NamedTuple):
    """What a member's runbook schedules depend on: its environment (which cron), its side
    (which runbooks it schedules, as ``drkit schedule`` does) and its runbook folders."""

    environment: str
    side: Side
    folders: list[Path]


class Member(_Strict):
    config: Path
    schedules: dict[str, Annotated[str, AfterValidator(_cron)]] = {}
    objectives: Objectives = Objectives()
    # Where fleet.yaml names the config (set by load_fleet): what a missing one asks to fix.
    _entry: str = PrivateAttr("its member's config in the fleet description")

    @cached_property
    def settings(self) -> Settings:
        """The member's drkit config, read on first use."""
        return load_settings(self.config, named_in=self._entry)

    def runbook_context(self) -> RunbookContext:
        """The member's environment, side and runbook folders. Dagster's definitions ask it
        of every member at load, so a config that sets no runbook folder is only parsed for
        those two fields (libyaml), not loaded: a tenth of the time (issue 28: 500 members
        under 5 s)."""
        if "settings" in self.__dict__ or os.environ.get("DRKIT_RUNBOOKS"):
            return self._context_from_settings()
        try:
            data = yaml.load(self.config.read_text(), Loader=_LOADER)
        except (OSError, yaml.YAMLError):
            data = None
        if not isinstance(data, dict) or data.get("runbooks") is not None:
            return self._context_from_settings()  # its own errors
        fields = Settings.model_fields
        environment = os.environ.get("DRKIT_ENVIRONMENT") or data.get("environment") \
            or fields["environment"].default
        side = os.environ.get("DRKIT_SIDE") or data.get("side") or fields["side"].default
        if side not in get_args(Side):
            return self._context_from_settings()  # its own error, naming the field
        return RunbookContext(str(environment), side, runbook_dirs(None))

    def _context_from_settings(self) -> RunbookContext:
        settings = self.settings
        return RunbookContext(settings.environment, settings.side, runbook_dirs(settings))

    def source_key(self) -> str:
        """Which server the member's dumps and restores hit: ``host:port`` of its source."""
        source = self.settings.source
        return f"{source.host}:{source.port}"


class Fleet(_Strict):
    fleet: Limits = Limits()
    members: dict[str, Member] = Field(min_length=1)
    _path: Path = Path("fleet.yaml")

    @property
    def path(self) -> Path:
        return self._path

    def member(self, name: str) -> Member:
        try:
            return self.members[name]
        except KeyError:
            raise ConfigError(f"The fleet {self._path} has no member {name!r}.",
                              f"Use one of: {', '.join(sorted(self.members))}.") from None

    def subset(self, names: list[str]) -> Fleet:
        """This fleet with only the members ``names`` (its limits, its path)."""
        return self.model_copy(update={"members": {name: self.member(name)
                                                   for name in names}})

    def members_running(self, kind: str) -> list[str]:
        """The members whose side runs ``kind``'s runbook, as ``drkit schedule`` decides
        (``drkit fleet run``'s default: the backup side dumps, the Azure side reads back)."""
        running, runbooks = [], {}  # read once per runbook folders, not once per member
        for name, member in sorted(self.members.items()):
            _, side, folders = member.runbook_context()
            key = tuple(folders)
            if key not in runbooks:
                runbooks[key] = load_runbook(RUNBOOKS[kind], folders)
            if runbooks[key].runs_on(side):
                running.append(name)
        return running

    def rpo(self, name: str) -> timedelta | None:
        minutes = self.members[name].objectives.rpo_minutes
        return None if minutes is None else timedelta(minutes=minutes)


def load_fleet(path: str | Path | None = None) -> Fleet:
    """The fleet of ``path`` (else ``$DRKIT_FLEET``), member configs and the state folder
    resolved beside it; ConfigError (exit 3) with the field when it is invalid."""
    path = path or os.environ.get(FLEET_ENV)
    if not path:
        raise ConfigError("No fleet description: pass --fleet FILE or set DRKIT_FLEET.",
                          "Write a fleet.yaml naming the members' drkit configs "
                          "(README, \"Fleet\").")
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"The fleet description {path} cannot be read: {exc.strerror}.",
                          "Pass --fleet with an existing file.") from None
    except yaml.YAMLError:
        raise ConfigError(f"The fleet description {path} is not valid YAML.") from None
    try:
        fleet = Fleet.model_validate(data if isinstance(data, dict) else {"members": data})
    except ValidationError as exc:
        raise ConfigError(f"The fleet description {path} is invalid: "
                          f"{describe_errors(exc)}.") from None
    bad = [name for name in fleet.members if not _MEMBER_NAME.fullmatch(name)]
    if bad:
        raise ConfigError(f"The fleet description {path} names a member {bad[0]!r}: a member's "
                          "name may hold only letters, digits, '.', '_' and '-'.")
    base = path.parent.absolute()
    for name, member in fleet.members.items():
        member.config = base / member.config.expanduser()
        member._entry = f"members.{name}.config of {path}"
    fleet.fleet.state_dir = base / fleet.fleet.state_dir.expanduser()
    fleet._path = path
    return fleet
