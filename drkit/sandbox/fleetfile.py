"""The sandbox's ``fleet.yaml`` beside its ``drkit.yaml``: the fleet of its one source (one
member, the sandbox's config), for ``drkit fleet`` and ``dagster dev -m drkit.fleet``."""

from __future__ import annotations

from pathlib import Path

import yaml

FLEET_FILE = "fleet.yaml"


def write_fleet_file(directory: Path, config_path: Path) -> Path:
    """Write ``directory/fleet.yaml`` unless it exists (a fleet the user edited is kept)."""
    path = directory / FLEET_FILE
    if not path.exists():
        fleet = {"fleet": {"per_source_concurrency": 1, "state_dir": "fleet-state"},
                 "members": {"sandbox": {"config": config_path.name,
                                         "objectives": {"rpo_minutes": 60, "drill_days": 1}}}}
        path.write_text("# The sandbox as a fleet of one, written by `drkit sandbox up`; add "
                        "members (drkit configs) to it.\n" + yaml.safe_dump(fleet))
    return path
