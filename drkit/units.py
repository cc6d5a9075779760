"""Byte sizes and durations as people write them (``1GiB``, ``30d``) and as the seed prints them."""

from __future__ import annotations

import re

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B?)\s*$", re.IGNORECASE)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_size(text: str) -> int:
    """``"4MiB"``, ``"1GiB"``, ``"500M"`` or a plain number of bytes."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size; write e.g. 4MiB or 1GiB")
    number, unit, _ = match.groups()
    return int(float(number) * 1024 ** " KMGT".index(unit.upper() or " "))


def parse_duration(text: str) -> float:
    """``"30d"``, ``"6h"``, ``"90s"`` in seconds."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration; write e.g. 30d, 6h or 90s")
    return float(match.group(1)) * _SECONDS[match.group(2).lower()]


def human_size(size: float) -> str:
    """The seed's log style: ``512K``, ``2.5M``."""
    for unit in ("B", "K", "M", "G"):
        if size < 1024:
            return f"{size:.0f}{unit}" if unit == "B" or size >= 10 else f"{size:.1f}{unit}"
        size /= 1024
    return f"{size:.1f}T"


def few(names: list[str], shown: int = 5) -> str:
    """A list of names for a sentence: the first few, then how many more (never 200)."""
    if len(names) <= shown + 1:
        return ", ".join(names)
    return f"{', '.join(names[:shown])} and {len(names) - shown} more"
