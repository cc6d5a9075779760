"""The dump client installed here (mysqldump, or MariaDB's under that name): whose it is,
MariaDB's or MySQL's, which decides the TLS options every client program is given and the
dump options it takes.

Below :mod:`drkit.mysql.connection` (whose option files name the client's TLS options) and
:mod:`drkit.mysql.dump`: it imports neither.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from functools import cache

from drkit.programs import find_program

# The seed's options, plus what a faithful, restorable dump needs.
BASE_OPTIONS = [
    "--single-transaction",
    "--routines",
    "--triggers",
    "--events",
    "--hex-blob",
    "--default-character-set=utf8mb4",
    "--quick",
    "--order-by-primary",
    # A row is one packet: the client's default (16-24 MiB) would refuse a bigger one.
    "--max-allowed-packet=1G",
]
# Options only MySQL 8's own client knows; without them it queries tables RDS lacks and
# writes GTID statements Flexible Server rejects.
MYSQL8_OPTIONS = ["--set-gtid-purged=OFF", "--column-statistics=0"]


@dataclass(frozen=True)
class DumpClient:
    path: str
    flavour: str  # "mariadb" or "mysql"
    version: str
    supported: frozenset[str]

    @property
    def options(self) -> list[str]:
        """The dump options this client takes (recorded in the manifest)."""
        return [*BASE_OPTIONS, *(o for o in MYSQL8_OPTIONS if o.split("=")[0] in self.supported)]

    def command(self, option_file: os.PathLike[str], databases: list[str],
                extra: tuple[str, ...] = ()) -> list[str]:
        # --defaults-file must come first; it is the only source of options and password.
        return [self.path, f"--defaults-file={option_file}", *self.options, *extra,
                "--databases", *databases]

    def supports(self, option: str) -> bool:
        return option in self.supported


@cache
def dump_client() -> DumpClient:
    path = find_program("mysqldump")
    version = subprocess.run([path, "--version"], capture_output=True, text=True).stdout.strip()
    help_text = subprocess.run([path, "--no-defaults", "--help"], capture_output=True,
                               text=True).stdout
    supported = frozenset(re.findall(r"^\s+(--[a-z0-9-]+)", help_text, re.M))
    return DumpClient(path=path, flavour="mariadb" if "MariaDB" in version else "mysql",
                      version=version, supported=supported)
