"""Finding the outside programs and optional extras drkit needs, with the install hint when
one is missing (exit 5)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass

from drkit.errors import MissingProgramError


@dataclass(frozen=True)
class Program:
    names: tuple[str, ...]
    install_hint: str


PROGRAMS: dict[str, Program] = {
    "mariadbd": Program(("mariadbd", "mysqld"), "install the Debian package mariadb-server"),
    "mariadb-install-db": Program(
        ("mariadb-install-db", "mysql_install_db"), "install the Debian package mariadb-server"
    ),
    "mysqldump": Program(
        ("mysqldump", "mariadb-dump"), "install the Debian package mariadb-client"
    ),
    "mysql": Program(("mysql", "mariadb"), "install the Debian package mariadb-client"),
    "azurite-blob": Program(
        ("azurite-blob",), "install the npm package azurite (npm install -g azurite)"
    ),
    "moto_server": Program(
        ("moto_server",), "install the PyPI package moto[server] (pip install 'drkit[sandbox]')"
    ),
}

# Daemons live in sbin, which a non-root PATH often lacks; the venv's bin holds moto_server
# and the azurite link that install.sh makes.
_EXTRA_DIRS = (os.path.dirname(sys.executable), "/usr/sbin", "/usr/local/sbin")


def find_program(key: str) -> str:
    program = PROGRAMS[key]
    search = os.pathsep.join([os.environ.get("PATH", ""), *_EXTRA_DIRS])
    for name in program.names:
        path = shutil.which(name, path=search)
        if path:
            return path
    raise MissingProgramError(f"{program.names[0]} was not found: {program.install_hint}.")


# extra -> the modules it brings that drkit uses (pyproject.toml's optional-dependencies).
EXTRAS: dict[str, tuple[str, ...]] = {
    "sandbox": ("moto", "flask", "flask_cors"),
    "lab": ("jupyterlab",),
    "fleet": ("dagster", "dagster_webserver"),
}


def require_extra(extra: str, purpose: str) -> None:
    """Fail with the pip command when ``extra`` is not installed."""
    missing = [m for m in EXTRAS[extra] if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingProgramError(
            f"{purpose} needs drkit's '{extra}' extra ({', '.join(missing)} not installed).",
            f"Install it with: pip install 'drkit[{extra}]'.")
