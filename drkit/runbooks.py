"""Runbook definitions: which notebook, with which parameters, when, and where audits go.

One YAML file per runbook under ``runbooks/``; each environment may override the
parameters and carries its cron schedule (the seed's by default).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from drkit.config import describe_errors
from drkit.errors import ConfigError, RunbookNotFoundError

RUNBOOK_DIR = Path(__file__).resolve().parent.parent / "runbooks"


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

    def notebook_path(self) -> Path:
        return self.notebook if self.notebook.is_absolute() else RUNBOOK_DIR.parent / self.notebook

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


def load_runbook(name: str, directory: Path = RUNBOOK_DIR) -> Runbook:
    path = directory / f"{name}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in directory.glob("*.yaml"))) or "none"
        raise RunbookNotFoundError(f"There is no runbook {name!r} in {directory}.",
                                   f"Known runbooks: {known}.")
    try:
        return Runbook(**yaml.safe_load(path.read_text()))
    except ValidationError as exc:
        raise ConfigError(f"Runbook {path} is invalid: {describe_errors(exc)}.") from None


def all_runbooks(directory: Path = RUNBOOK_DIR) -> list[Runbook]:
    return [load_runbook(p.stem, directory) for p in sorted(directory.glob("*.yaml"))]


def schedule_interval(runbook_name: str, environment: str) -> timedelta | None:
    """Time between two scheduled runs of a runbook in an environment (None: unscheduled)."""
    try:
        run = load_runbook(runbook_name).environments.get(environment)
    except RunbookNotFoundError:
        return None
    if run is None or run.schedule is None:
        return None
    times = croniter(run.schedule, datetime.now(UTC))
    first = times.get_next(datetime)
    return times.get_next(datetime) - first
