"""Byte sizes and durations as people write them (``1GiB``, ``30d``) and as the seed prints them."""

from __future__ import annotations

import re

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B?)\s*$", re.IGNORECASE)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$", re.IGNORECASE)
_SECONDS = {"s": 1, "min": 60, "h": 3600, "d": 86400, "w": 604800}
_LONGEST_SECONDS = 100 * 365 * 86400  # "now minus it" must stay a date; past any retention


def parse_size(text: str) -> int:
    """``"4MiB"``, ``"1GiB"``, ``"500M"`` or a plain number of bytes."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size; write e.g. 4MiB or 1GiB")
    number, unit, _ = match.groups()
    return int(float(number) * 1024 ** " KMGT".index(unit.upper() or " "))


def parse_duration(text: str) -> float:
    """``"30d"``, ``"12h"``, ``"90min"``, ``"90s"`` in seconds. A bare ``m`` is refused: a
    minute to some, a month to others (``--older-than 1m``)."""
    match = _DURATION.match(text)
    unit = match.group(2).lower() if match else ""
    if unit == "m":
        raise ValueError(f"{text!r} is ambiguous (minutes or months?); write e.g. "
                         f"{match.group(1)}min, or days: 30d")
    if unit not in _SECONDS:
        raise ValueError(f"{text!r} is not a duration; write e.g. 30d, 12h, 90min or 90s")
    seconds = float(match.group(1)) * _SECONDS[unit]
    if seconds > _LONGEST_SECONDS:
        raise ValueError(f"{text!r} is longer than 100 years; write e.g. 30d, 12h, 90min or 90s")
    return seconds


def duration(seconds: float) -> str:
    """How long, in one style everywhere: ``4.2 s``, ``42 s``, ``23 min``, ``1 h 2 min``,
    ``3 d 4 h``: seconds only under a minute, two units at most."""
    if seconds < 9.95:  # a tenth of a second tells in a short step; "5 s", not "5.0 s"
        return f"{seconds:.1f}".removesuffix(".0") + " s"
    if seconds < 59.5:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(round(seconds / 3600), 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


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
