"""Runbook definitions: which notebook, with which parameters, when, and where audits go.

One YAML file per runbook; each environment may override the parameters and carries its
cron schedule (the seed's by default). drkit ships its runbooks and their notebooks as
package data (``definitions/`` and ``notebooks/`` beside this module; the checkout's top-level
``runbooks`` and ``notebooks`` are links to them). The setting ``runbooks``
(``DRKIT_RUNBOOKS``) points at a folder of one's own instead; a notebook named there is looked
up beside the YAML file first, then among drkit's own.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from drkit.config import Settings, describe_errors
from drkit.errors import ConfigError, RunbookNotFoundError

_PACKAGE = resources.files("drkit.runbooks")
# A wheel installs unpacked, so drkit's own runbooks are real files papermill can open.
PACKAGED_RUNBOOKS = Path(str(_PACKAGE / "definitions"))
PACKAGED_NOTEBOOKS = Path(str(_PACKAGE / "notebooks"))


def runbook_dir(settings: Settings | None = None) -> Path:
    """The configured runbook folder (``runbooks``, ``DRKIT_RUNBOOKS``), else drkit's own."""
    if settings is not None and settings.runbooks is not None:
        return settings.runbooks.expanduser()
    return PACKAGED_RUNBOOKS


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Timeouts(Strict):
    cell_seconds: int = Field(3600, ge=1)
    total_seconds: int = Field(10800, ge=1)


class AuditDestination(Strict):
    container: str = "dr-audit"


class EnvironmentRun(Strict):
    schedule: str | None = None  # None: run by a person (the failover), never by cron
    parameters: dict[str, Any] = {}


class Runbook(Strict):
    name: str
    description: str = ""
    notebook: Path
    parameters: dict[str, Any] = {}
    timeouts: Timeouts = Timeouts()
    audit: AuditDestination = AuditDestination()
    environments: dict[str, EnvironmentRun]
    _directory: Path = PrivateAttr(PACKAGED_RUNBOOKS)  # where the YAML file was read

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


def load_runbook(name: str, directory: Path = PACKAGED_RUNBOOKS) -> Runbook:
    path = directory / f"{name}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in directory.glob("*.yaml"))) or "none"
        raise RunbookNotFoundError(f"There is no runbook {name!r} in {directory}.",
                                   f"Known runbooks: {known}.")
    try:
        runbook = Runbook(**yaml.safe_load(path.read_text()))
    except ValidationError as exc:
        raise ConfigError(f"Runbook {path} is invalid: {describe_errors(exc)}.") from None
    runbook._directory = directory
    return runbook


def all_runbooks(directory: Path = PACKAGED_RUNBOOKS) -> list[Runbook]:
    return [load_runbook(p.stem, directory) for p in sorted(directory.glob("*.yaml"))]


def schedule_interval(runbook_name: str, environment: str,
                      directory: Path = PACKAGED_RUNBOOKS) -> timedelta | None:
    """Time between two scheduled runs of a runbook in an environment (None: unscheduled)."""
    try:
        run = load_runbook(runbook_name, directory).environments.get(environment)
    except RunbookNotFoundError:
        return None
    if run is None or run.schedule is None:
        return None
    times = croniter(run.schedule, datetime.now(UTC))
    first = times.get_next(datetime)
    return times.get_next(datetime) - first


def rpo_objective(environment: str, directory: Path = PACKAGED_RUNBOOKS) -> timedelta:
    """The drill's RPO objective for the environment, else one backup interval plus an hour."""
    drill = load_runbook("restore-drill", directory)
    hours = drill.parameters_for(environment, {}).get("rpo_hours") \
        if environment in drill.environments else None
    if hours:
        return timedelta(hours=hours)
    interval = schedule_interval("nightly-backup", environment, directory) or timedelta(days=1)
    return interval + timedelta(hours=1)
