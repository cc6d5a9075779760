"""Runbook definitions: which notebook, with which parameters, when, and where audits go.

One YAML file per runbook; each environment may override the parameters and carries its
cron schedule (the seed's by default). drkit ships its runbooks and their notebooks as
package data (``definitions/`` and ``notebooks/`` beside this module; the checkout's top-level
``runbooks`` and ``notebooks`` are links to them). The setting ``runbooks``
(``DRKIT_RUNBOOKS``) adds a folder of one's own, searched first: a runbook there hides drkit's
of the same name, drkit's others stay. A notebook a runbook names is looked up beside its YAML
file first, then among drkit's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import yaml
from croniter import croniter
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
)

from drkit.config import Settings, Side, describe_errors
from drkit.errors import ConfigError, RunbookNotFoundError

_PACKAGE = resources.files("drkit.runbooks")
# A wheel installs unpacked, so drkit's own runbooks are real files papermill can open.
PACKAGED_RUNBOOKS = Path(str(_PACKAGE / "definitions"))
PACKAGED_NOTEBOOKS = Path(str(_PACKAGE / "notebooks"))
Folders = Sequence[Path]


def runbook_dirs(settings: Settings | None = None) -> list[Path]:
    """Where runbooks are looked up, first match wins: the configured folder (``runbooks``,
    ``DRKIT_RUNBOOKS``), then drkit's own."""
    if settings is None or settings.runbooks is None:
        return [PACKAGED_RUNBOOKS]
    folder = settings.runbooks.expanduser()
    if not folder.is_dir():
        raise ConfigError(f"The runbook folder {folder} (setting runbooks, or DRKIT_RUNBOOKS) "
                          "does not exist or is not a folder.",
                          "Point it at a folder of runbook YAML files, or unset it to use "
                          "drkit's own runbooks.")
    return [folder.absolute(), PACKAGED_RUNBOOKS]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Timeouts(Strict):
    cell_seconds: int = Field(3600, ge=1)
    total_seconds: int = Field(10800, ge=1)


class AuditDestination(Strict):
    container: str = "dr-audit"


def _cron(schedule: str | None) -> str | None:
    if schedule is not None and not croniter.is_valid(schedule):
        raise ValueError(f"{schedule!r} is not a cron schedule (minute hour day month weekday)")
    return schedule


class EnvironmentRun(Strict):
    # None: run by a person (the failover), never by cron
    schedule: Annotated[str | None, AfterValidator(_cron)] = None
    parameters: dict[str, Any] = {}


class Runbook(Strict):
    name: str
    description: str = ""
    notebook: Path
    parameters: dict[str, Any] = {}
    timeouts: Timeouts = Timeouts()
    audit: AuditDestination = AuditDestination()
    environments: dict[str, EnvironmentRun] = Field(min_length=1)
    # Which side of the estate runs it (docs/immutability.md): the backup host (backup) or
    # the Azure side, which holds the identity and the credential that deletes (azure).
    # A runbook that names none (both) is scheduled wherever its environment has a cron.
    side: Side = "both"
    _directory: Path = PrivateAttr(PACKAGED_RUNBOOKS)  # where the YAML file was read

    def runs_on(self, side: Side) -> bool:
        """Whether a config of ``side`` schedules this runbook: its own side's, or every
        runbook for a config of both sides."""
        return "both" in (self.side, side) or self.side == side

    def notebook_path(self) -> Path:
        beside = self._directory / self.notebook  # an absolute notebook stays as it is
        return beside if beside.exists() else PACKAGED_NOTEBOOKS / self.notebook

    def parameters_for(self, environment: str, overrides: dict[str, Any]) -> dict[str, Any]:
        """Defaults, then the environment's, then the caller's."""
        return {**self.parameters, **self.environment(environment).parameters, **overrides}

    def environment(self, environment: str) -> EnvironmentRun:
        try:
            return self.environments[environment]
        except KeyError:
            raise RunbookNotFoundError(
                f"Runbook {self.name} has no environment {environment!r}.",
                f"Use one of: {', '.join(self.environments)}.") from None


def load_runbook(name: str, folders: Folders = (PACKAGED_RUNBOOKS,)) -> Runbook:
    """The runbook ``name`` from the first folder that has it."""
    path = next((f / f"{name}.yaml" for f in folders if (f / f"{name}.yaml").is_file()), None)
    if path is None:
        known = ", ".join(sorted({p.stem for f in folders for p in f.glob("*.yaml")})) or "none"
        raise RunbookNotFoundError(
            f"There is no runbook {name!r} in {' or '.join(str(f) for f in folders)}.",
            f"Known runbooks: {known}.")
    try:
        data = yaml.safe_load(path.read_text())
        if not isinstance(data, dict):
            raise ConfigError(f"Runbook {path} must hold a mapping (name, notebook, "
                              "environments, ...).")
        runbook = Runbook(**data)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"Runbook {path} is not valid YAML{where}.") from None
    except ValidationError as exc:
        raise ConfigError(f"Runbook {path} is invalid: {describe_errors(exc)}.") from None
    if runbook.name != name:
        raise ConfigError(f"Runbook {path} calls itself {runbook.name!r}.",
                          f"Name the file {runbook.name}.yaml, or set name: {name}.")
    runbook._directory = path.parent
    if not runbook.notebook_path().is_file():
        raise ConfigError(f"Runbook {path} names the notebook {runbook.notebook}, which is "
                          f"neither beside it nor one of drkit's own.")
    return runbook


def all_runbooks(folders: Folders = (PACKAGED_RUNBOOKS,)) -> list[Runbook]:
    """Every runbook of the folders; one of the first folder hides drkit's of the same name."""
    names = sorted({p.stem for f in folders for p in f.glob("*.yaml")})
    return [load_runbook(name, folders) for name in names]


def schedule_interval(runbook_name: str, environment: str,
                      folders: Folders = (PACKAGED_RUNBOOKS,)) -> timedelta | None:
    """Time between two scheduled runs of a runbook in an environment (None: unscheduled)."""
    try:
        run = load_runbook(runbook_name, folders).environments.get(environment)
    except RunbookNotFoundError:
        return None
    if run is None or run.schedule is None:
        return None
    times = croniter(run.schedule, datetime.now(UTC))
    first = times.get_next(datetime)
    return times.get_next(datetime) - first


def rpo_objective(environment: str, folders: Folders = (PACKAGED_RUNBOOKS,)) -> timedelta:
    """The drill's RPO objective for the environment, else one backup interval plus an hour."""
    drill = load_runbook("restore-drill", folders)
    hours = drill.parameters_for(environment, {}).get("rpo_hours") \
        if environment in drill.environments else None
    if hours:
        return timedelta(hours=hours)
    interval = schedule_interval("nightly-backup", environment, folders) or timedelta(days=1)
    return interval + timedelta(hours=1)
