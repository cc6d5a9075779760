"""Value readers the binary log's decoders share: MySQL's packed integers and binary
DECIMALs, read the same inside a row image (:mod:`drkit.binlog.rowevents`), a binary JSON
document (:mod:`drkit.binlog.jsonbinary`) and an event's status variables
(:mod:`drkit.binlog.events`). Pure bytes: it imports nothing of drkit.
"""

from __future__ import annotations

_DIG2BYTES = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4]  # bytes of a group of 0..9 decimal digits


class UnsupportedColumn(Exception):
    """A column type drkit cannot turn into a value (its name is the message)."""


def packed_int(data: bytes, offset: int) -> tuple[int, int]:
    """MySQL's packed integer (net_field_length_ll) at ``offset``; and the offset after it."""
    first = data[offset]
    if first < 251:
        return first, offset + 1
    size = {252: 2, 253: 3, 254: 8}[first]
    return int.from_bytes(data[offset + 1:offset + 1 + size], "little"), offset + 1 + size


def decimal_text(data: bytes, offset: int, precision: int, scale: int) -> bytes:
    """MySQL's binary DECIMAL as its text: groups of 9 digits in 4 bytes, the sign in the
    top bit, a negative number stored with every bit inverted (``strings/decimal.c``)."""
    integer, fraction, size = _decimal_layout(precision, scale)
    raw = bytearray(data[offset:offset + size])
    negative = not raw[0] & 0x80
    raw[0] ^= 0x80
    if negative:
        raw = bytearray(b ^ 0xFF for b in raw)
    position, parts = 0, []
    for groups in (integer, fraction):
        text = []
        for width, count in groups:
            text.append(f"{int.from_bytes(raw[position:position + width], 'big'):0{count}d}")
            position += width
        parts.append("".join(text))
    whole = ("-" if negative else "") + (parts[0].lstrip("0") or "0")
    return (whole + ("." + parts[1] if scale else "")).encode()


def decimal_size(precision: int, scale: int) -> int:
    """The bytes of a binary DECIMAL(precision, scale)."""
    return _decimal_layout(precision, scale)[2]


def _decimal_layout(precision: int, scale: int) -> tuple[list, list, int]:
    """(integer groups, fraction groups, bytes): each group (bytes, digits)."""
    full_int, rest_int = divmod(precision - scale, 9)
    full_frac, rest_frac = divmod(scale, 9)
    integer = [(w, c) for w, c in ((_DIG2BYTES[rest_int], rest_int), *([(4, 9)] * full_int))
               if w]
    fraction = [(w, c) for w, c in (*([(4, 9)] * full_frac), (_DIG2BYTES[rest_frac], rest_frac))
                if w]
    return integer, fraction, sum(w for w, _ in integer + fraction)
