"""The sandbox's ``fleet.yaml`` beside its ``drkit.yaml``, for ``drkit fleet`` and ``dagster
dev -m drkit.fleet``.

- one source (``drkit sandbox up``): a fleet of one member, the sandbox's config;
- two sources (``up --sources 2``): 2 sources x 3 databases (``app1`` to ``app3`` on each,
  small demo databases), a member per database, each a copy of drkit.yaml with its source,
  database, blob prefix and state folder (``fleet/MEMBER.yaml``, rewritten by every ``up``:
  ports change when a service restarts).

A ``fleet.yaml`` the user edited is kept; one as ``up`` wrote it follows ``--sources``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from drkit.sandbox import demodb

if TYPE_CHECKING:
    from drkit.sandbox.services import MariaDB

FLEET_FILE = "fleet.yaml"
SOURCES = ("source", "source2")  # the sandbox's source services, with --sources 2
FLEET_DATABASES = ("app1", "app2", "app3")  # on each of them
FLEET_DATABASE_SIZE = 256 * 1024  # a dump takes a moment, the fleet's six in seconds
_HEADER = ("# The sandbox as a fleet, written by `drkit sandbox up`; add members (drkit "
           "configs) to it.\n")


def build_fleet_databases(sources: Iterable[MariaDB]) -> None:
    """The fleet's databases on every source server, those missing built."""
    for source in sources:
        with contextlib.closing(source.root_connection()) as root:
            with root.cursor() as cursor:
                cursor.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")
                present = {name for (name,) in cursor.fetchall()}
            for database in FLEET_DATABASES:
                if database not in present:
                    demodb.build(root, database, FLEET_DATABASE_SIZE)


def write_fleet_file(directory: Path, config_path: Path, source_ports: dict[str, int]) -> Path:
    """Write ``directory/fleet.yaml`` for the sandbox's sources (name -> port) unless the
    user changed the one there; with two sources, its members' configs too."""
    path = directory / FLEET_FILE
    as_written = {_text(_fleet_of_one(config_path)), _text(_fleet_of_two())}
    if len(source_ports) > 1:
        _write_member_configs(directory, config_path, source_ports)
        fleet = _fleet_of_two()
    else:
        fleet = _fleet_of_one(config_path)
    if not path.exists() or path.read_text() in as_written:
        path.write_text(_text(fleet))
    return path


def _text(fleet: dict) -> str:
    return _HEADER + yaml.safe_dump(fleet)


def _fleet_of_one(config_path: Path) -> dict:
    return {"fleet": {"per_source_concurrency": 1, "state_dir": "fleet-state"},
            "members": {"sandbox": {"config": config_path.name,
                                    "objectives": {"rpo_minutes": 60, "drill_days": 1}}}}


def _members() -> dict[str, tuple[str, str]]:
    """member -> (source service, database), with two sources."""
    return {f"{source}-{database}": (source, database)
            for source in SOURCES for database in FLEET_DATABASES}


def _fleet_of_two() -> dict:
    return {"fleet": {"per_source_concurrency": 1, "global_concurrency": 4,
                      "state_dir": "fleet-state"},
            "members": {member: {"config": f"fleet/{member}.yaml",
                                 "objectives": {"rpo_minutes": 60, "drill_days": 1}}
                        for member in _members()}}


def _write_member_configs(directory: Path, config_path: Path,
                          source_ports: dict[str, int]) -> None:
    base = yaml.safe_load(config_path.read_text())
    folder = directory / "fleet"
    folder.mkdir(exist_ok=True)
    for member, (source, database) in _members().items():
        config = {**base,
                  "source": {**base["source"], "port": source_ports[source],
                             "databases": [database]},
                  "storage": {**base["storage"], "prefix": f"fleet/{member}/"},
                  "backup": {**base["backup"], "state_dir": str(folder / member)}}
        if source != "source":  # the moto RDS instance is the first source's
            config["source"].pop("rds_instance_id", None)
        if "binlog" in base:
            config["binlog"] = {**base["binlog"], "prefix": f"fleet/{member}/binlogs/"}
        (folder / f"{member}.yaml").write_text(
            "# A member of the sandbox's fleet, written by `drkit sandbox up --sources 2` "
            "from drkit.yaml.\n" + yaml.safe_dump(config, sort_keys=False))
