"""Each type a runbook parameter may have, converted from what was typed or written in YAML,
or refused naming the parameter (drkit.runbooks.parameters)."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from drkit.errors import ParameterError
from drkit.runbooks.parameters import check_parameters, notebook_parameters

PARAMETERS = """from drkit.runbooks.parameters import DatabaseNames, DrillMode, PointInTime
config_path: str = None
environment: str = None
results_path: str = None
count: int = 3  # how many
ratio: float = 0.5
label: str = "nightly"
databases: list = []
approve: bool = False
until: str = None
when: PointInTime = None
mode: DrillMode = "restore"
only: DatabaseNames = None
"""


@pytest.fixture
def notebook(tmp_path):
    path = tmp_path / "typed.ipynb"
    path.write_text(json.dumps({
        "cells": [{"cell_type": "code", "id": "p", "metadata": {"tags": ["parameters"]},
                   "source": PARAMETERS, "outputs": [], "execution_count": None}],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "python3",
                                    "language": "python"}},
        "nbformat": 4, "nbformat_minor": 5}))
    return path


def _typed(notebook, **values):
    return check_parameters("typed", notebook, values, frozenset(values))


def test_the_parameters_cell_gives_each_type_default_and_help(notebook):
    declared = notebook_parameters(notebook)
    assert declared["count"] == {"type": "int", "default": 3, "help": "how many"}
    assert declared["databases"]["default"] == [] and declared["until"]["default"] is None
    assert {name: spec["type"] for name, spec in declared.items()
            if name in ("ratio", "label", "databases", "approve")} == {
        "ratio": "float", "label": "str", "databases": "list", "approve": "bool"}


@pytest.mark.parametrize(("value", "expected"), [("7", 7), (" 12 ", 12), (5, 5)])
def test_whole_numbers(notebook, value, expected):
    assert check_parameters("typed", notebook, {"count": value}) == {"count": expected}


@pytest.mark.parametrize("value", ["7.5", "seven", True, ""])
def test_what_is_no_whole_number_is_refused(notebook, value):
    with pytest.raises(ParameterError, match="Parameter count takes a whole number"):
        check_parameters("typed", notebook, {"count": value})


@pytest.mark.parametrize(("value", "expected"), [("0", 0.0), ("2.5", 2.5), (3, 3)])
def test_amounts(notebook, value, expected):
    assert _typed(notebook, ratio=value) == {"ratio": expected}


@pytest.mark.parametrize("value", ["-1", "nan", "inf", False])
def test_an_amount_negative_or_not_finite_is_refused(notebook, value):
    with pytest.raises(ParameterError, match="ratio takes a finite number, 0 or more"):
        _typed(notebook, ratio=value)


@pytest.mark.parametrize(("value", "expected"), [
    ("shop,crm", ["shop", "crm"]), (" shop , crm ,", ["shop", "crm"]),
    ("[shop, 'a,b']", ["shop", "a,b"]), (["x"], ["x"]), ("", [])])
def test_lists_of_names_comma_separated_or_bracketed(notebook, value, expected):
    assert _typed(notebook, databases=value) == {"databases": expected}


@pytest.mark.parametrize("value", ["[1, 2]", "[shop", 5, [1]])
def test_a_list_that_is_not_of_names_is_refused(notebook, value):
    with pytest.raises(ParameterError, match=r"databases takes a list of names \(a,b or"):
        _typed(notebook, databases=value)


def test_text_stays_text_and_a_number_from_yaml_is_no_text(notebook):
    assert _typed(notebook, label=" two words ") == {"label": " two words "}
    with pytest.raises(ParameterError, match="label takes text, not 5"):
        check_parameters("typed", notebook, {"label": 5})


@pytest.mark.parametrize("value", ["null", "None", "~", None])
def test_a_parameter_whose_default_is_none_takes_null(notebook, value):
    assert check_parameters("typed", notebook, {"until": value}) == {"until": None}


def test_null_is_no_value_of_a_parameter_with_a_default(notebook):
    with pytest.raises(ParameterError, match="count takes a whole number, not 'null'"):
        _typed(notebook, count="null")


def test_an_injected_parameter_may_come_from_drkit_run_but_not_from_p(notebook):
    assert check_parameters("typed", notebook, {"environment": "prod"}) == \
        {"environment": "prod"}
    with pytest.raises(ParameterError, match="environment is set by drkit run itself"):
        _typed(notebook, environment="prod")


def test_an_unknown_parameter_lists_the_ones_there_are_without_the_injected(notebook):
    with pytest.raises(ParameterError) as refused:
        _typed(notebook, cuont="3")
    assert refused.value.fix == ("Its parameters: approve, count, databases, label, mode, "
                                 "only, ratio, until, when.")


@pytest.mark.parametrize("value", ["latest", " Latest ", "2026-11-27T14:03:00",
                                   "2026-11-27 14:03:00+09:00", "2026-11-27"])
def test_a_time_is_what_restore_until_takes_and_stays_as_written(notebook, value):
    assert _typed(notebook, when=value) == {"when": value}


def test_a_time_written_unquoted_in_yaml_is_passed_on_as_iso_text(notebook):
    assert check_parameters("typed", notebook, {"when": datetime(2026, 11, 27, 14, 3)}) == \
        {"when": "2026-11-27T14:03:00"}


@pytest.mark.parametrize("value", ["garbage", "", "yesterday", "2026-13-01", 5])
def test_what_is_no_time_is_refused_before_anything_runs(notebook, value):
    with pytest.raises(ParameterError, match=r"Parameter when takes a time: latest, or ISO "
                                             r"8601 such as 2026-11-27T14:03:00 \(UTC\)"):
        _typed(notebook, when=value)


def test_a_mode_is_one_of_its_set_spelt_exactly(notebook):
    assert _typed(notebook, mode="standby") == {"mode": "standby"}
    for value in ("garbage", "Standby", " restore", "null"):
        with pytest.raises(ParameterError, match="Parameter mode takes restore or standby, not "):
            _typed(notebook, mode=value)


def test_database_names_are_names_the_config_would_take(notebook):
    assert _typed(notebook, only="shop, crm") == {"only": ["shop", "crm"]}
    for value in ("shop,a\nb", "[shop, 'a\tb']", "x" * 65):
        with pytest.raises(ParameterError, match="only takes a list of database names") as no:
            _typed(notebook, only=value)
        assert "\n" not in no.value.message and "\t" not in no.value.message


@pytest.mark.parametrize("value", ["", " ", ",", "[]"])
def test_database_names_that_name_no_database_are_refused(notebook, value):
    """Empty would back up the config's databases while the record says []."""
    with pytest.raises(ParameterError, match=r"only takes a list of database names .* \(it "
                                             r"names no database; null backs up the config's"):
        _typed(notebook, only=value)


def test_a_database_name_with_a_full_width_letter_is_refused_as_the_config_refuses_it(notebook):
    with pytest.raises(ParameterError) as refused:
        _typed(notebook, only="shop,\uff53hop")
    assert "('\uff53' (U+FF53) in a database name is a lookalike of 's': type the name in " \
        "plain characters)." in refused.value.message


@pytest.mark.parametrize(("values", "field"), [
    ({"when": "9" * 5000}, "when"), ({"only": "x" * 5000}, "only"),
    ({"count": "1\n" * 3000}, "count"), ({"x" * 5000: "1"}, "parameter")])
def test_a_refused_value_is_shown_by_its_start_and_length_only(notebook, values, field):
    with pytest.raises(ParameterError) as refused:
        _typed(notebook, **values)
    assert field in refused.value.message and "characters)" in refused.value.message
    assert len(refused.value.message) < 300 and "\n" not in refused.value.message
