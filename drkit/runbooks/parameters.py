"""A runbook's parameters, typed by its notebook and checked before anything runs.

Each notebook's ``parameters`` cell annotates every parameter (``approve: bool = False``), so
``papermill --help-notebook`` shows the types and drkit reads them back through papermill's
own inspection. A value from ``-p`` or from the runbook's YAML is converted to that type or
refused with one sentence naming the parameter: a boolean is exactly true/false, yes/no or 1/0
(or Python's True/False), nothing else: ``approve=maybe``, ``TRUE`` or `` true`` approve
nothing, they are errors, since consent must be what was typed on purpose. A number must
parse, an unknown name is refused. A parameter whose default is ``None`` also takes ``null``
(the config decides). Beyond Python's types, a cell may annotate with the ones drkit names
(imported there): ``DatabaseNames`` (as source.databases takes them), ``PointInTime`` (what
``restore --until`` takes), ``DrillMode`` and ``Compression`` (closed sets): a time that is
none, or a mode not in the set, is refused here as well, not steps later in the notebook. So
are values that do not go together (the restore drill's ``mode=standby`` with a ``backup`` or
an ``until``).
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, NewType, get_args

from drkit.config import Compression, _identifier
from drkit.errors import ParameterError
from drkit.ops.drill import DrillMode, check_drill_choice
from drkit.ops.pitr import point_in_time

# A point in time as restore --until takes it (latest, or ISO 8601: no zone means UTC); the
# notebook gets the text, checked.
PointInTime = NewType("PointInTime", str)
# Database names, as source.databases takes them (a newline in one names no database).
DatabaseNames = NewType("DatabaseNames", list[str])
# Set by drkit run itself, never by -p.
INJECTED = frozenset({"config_path", "environment", "results_path"})
# Exact spellings only (no case folding, no blanks): these values are consent to failover steps.
_TRUE, _FALSE = {"true", "yes", "1", "True"}, {"false", "no", "0", "False"}
_NONE = {"null", "none", "~"}
# How much of a refused value an error repeats: enough to recognise it, never a screenful.
_SHOWN_CHARACTERS = 40


class _Refused(ValueError):
    """A value refused for a reason worth saying (a database name's rule), not only its type."""


def notebook_parameters(notebook: Path) -> dict[str, dict[str, Any]]:
    """``name -> {"type": ..., "default": ..., "help": ...}`` from the parameters cell."""
    import papermill

    found = papermill.inspect_notebook(str(notebook))
    return {name: {"type": spec["inferred_type_name"], "default": _literal(spec["default"]),
                   "help": spec.get("help", "")} for name, spec in found.items()}


def check_parameters(runbook_name: str, notebook: Path, values: Mapping[str, Any],
                     from_command_line: frozenset[str] = frozenset()) -> dict[str, Any]:
    """``values`` converted to the notebook's types; ParameterError (exit 2) otherwise.

    ``from_command_line`` names the values a person typed (strings, to be converted).
    """
    declared = notebook_parameters(notebook)
    checked = {}
    for name, value in values.items():
        if name in INJECTED and name in from_command_line:
            raise ParameterError(f"Parameter {name} is set by drkit run itself.",
                                 "Use --config and --env instead.")
        if name not in declared:
            known = ", ".join(sorted(set(declared) - INJECTED)) or "none"
            raise ParameterError(f"Runbook {runbook_name} has no parameter {_shown(name)}.",
                                 f"Its parameters: {known}.")
        spec = declared[name]
        checked[name] = _convert(name, value, spec["type"], spec["default"] is None)
    if rule := _BETWEEN_PARAMETERS.get(notebook.name):
        rule({name: spec["default"] for name, spec in declared.items()} | checked)
    return checked


def _drill_choice(values: Mapping[str, Any]) -> None:
    check_drill_choice(values["mode"], values["backup"], values["until"])


# What a notebook's parameters must hold together (each right by its type alone), with the
# defaults for those not given: refused here, not when the notebook reaches them.
_BETWEEN_PARAMETERS: dict[str, Callable[[Mapping[str, Any]], None]] = {
    "restore_drill.ipynb": _drill_choice}


def _convert(name: str, value: Any, type_name: str, nullable: bool) -> Any:
    text = value.strip() if isinstance(value, str) else None
    if nullable and (value is None or (text is not None and text.lower() in _NONE)):
        return None
    converter = _CONVERTERS.get(type_name)
    if converter is None:
        return value
    try:
        return converter(value)
    except (ValueError, TypeError, SyntaxError) as refused:
        why = f" ({refused})" if isinstance(refused, _Refused) else ""
        raise ParameterError(
            f"Parameter {name} takes {_DESCRIPTIONS[type_name]}, not {_shown(value)}{why}.",
            f"Pass -p {name}=VALUE with such a value.") from None


def _shown(value: Any) -> str:
    """``value`` as an error repeats it: as typed, but a newline or another control character
    escaped (one line, seen), and of a long one only its start and its length."""
    text = value if isinstance(value, str) else repr(value)
    head = text[:_SHOWN_CHARACTERS]
    if isinstance(value, str):
        head = f"'{head}'" if head.isprintable() else repr(head)
    if len(text) <= _SHOWN_CHARACTERS:
        return head
    quote = head[-1] if isinstance(value, str) else ""
    return f"{head.removesuffix(quote)}...{quote} ({len(text)} characters)"


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value in _TRUE | _FALSE:
        return value in _TRUE
    raise ValueError(value)


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(value)
    return value if isinstance(value, int) else int(str(value).strip())


def _number(value: Any) -> float:
    """A finite number, not negative: every number a runbook takes is an amount."""
    if isinstance(value, bool):
        raise ValueError(value)
    number = value if isinstance(value, int | float) else float(str(value).strip())
    if not math.isfinite(number) or number < 0:
        raise ValueError(value)
    return number


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(value)
    return value


def _names(value: Any) -> list[str]:
    """A list: given as YAML/JSON-style ``[a, b]`` or comma-separated ``a,b``."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    if not isinstance(value, str):
        raise TypeError(value)
    text = value.strip()
    if text.startswith("["):
        import yaml

        try:
            parsed = yaml.safe_load(text)
        except yaml.YAMLError:  # "[shop": refused as the other malformed lists are
            raise ValueError(value) from None
        if isinstance(parsed, list) and all(isinstance(v, str) for v in parsed):
            return parsed
        raise ValueError(value)
    return [part.strip() for part in text.split(",") if part.strip()]


def _database_names(value: Any) -> list[str]:
    """Names as ``source.databases`` takes them, at least one: an empty list would back up
    what the config names while the record says ``[]`` (null is how to say "the config's")."""
    names = _names(value)
    if not names:
        raise _Refused("it names no database; null backs up the config's source.databases")
    for name in names:
        try:
            _identifier(name)
        except ValueError as rule:
            raise _Refused(str(rule)) from None
    return names


def _time(value: Any) -> str:
    """The text as given, once it reads as a time; a time written unquoted in YAML (a
    datetime) as ISO 8601 text."""
    if isinstance(value, datetime):
        return value.isoformat()
    point_in_time(_text(value))
    return value


def _one_of(choices: Any) -> Callable[[Any], str]:
    """A converter to one of the ``Literal`` ``choices``, spelt exactly."""
    def convert(value: Any) -> str:
        if value not in get_args(choices):
            raise ValueError(value)
        return value
    return convert


def _either(choices: Any) -> str:
    return " or ".join(get_args(choices))


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "bool": _boolean, "int": _integer, "float": _number, "str": _text, "list": _names,
    "DatabaseNames": _database_names, "PointInTime": _time, "DrillMode": _one_of(DrillMode),
    "Compression": _one_of(Compression)}
_DESCRIPTIONS = {"bool": "true or false (yes/no, 1/0)", "int": "a whole number",
                 "float": "a finite number, 0 or more", "str": "text",
                 "list": "a list of names (a,b or [a, b])",
                 "DatabaseNames": "a list of database names (a,b or [a, b]), no control "
                                  "characters",
                 "PointInTime": "a time: latest, or ISO 8601 such as 2026-11-27T14:03:00 "
                                "(UTC) or with an offset (+09:00)",
                 "DrillMode": _either(DrillMode), "Compression": _either(Compression)}


def _literal(source: str) -> Any:
    try:
        return ast.literal_eval(source)
    except (ValueError, SyntaxError):
        return source
