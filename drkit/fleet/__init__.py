"""Many drkit configs as one fleet, run on Dagster (README, "Fleet").

May import the top-level modules, ``stream``, the adapters, ``binlog``, ``ops`` and
``runbooks``. Only ``definitions`` and ``jobs`` import dagster (drkit's ``fleet`` extra):
``description`` and ``state`` (``drkit fleet show``) work without it.

This package is the Dagster code location: ``DRKIT_FLEET=fleet.yaml dagster dev -m
drkit.fleet`` finds ``defs``, built from that fleet when first asked for (importing the
package alone imports no dagster).
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name != "defs":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from drkit.fleet.definitions import build_definitions
    from drkit.fleet.description import load_fleet

    global defs
    defs = build_definitions(load_fleet())
    return defs


def __dir__() -> list[str]:
    return sorted([*globals(), "defs"])
