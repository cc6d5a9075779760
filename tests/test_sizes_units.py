"""Byte sizes and durations as people write them and as drkit prints them (drkit.units)."""

from __future__ import annotations

import pytest

from drkit.units import few, human_size, parse_duration, parse_size


@pytest.mark.parametrize(("text", "size"), [
    ("4096", 4096), ("4MiB", 4 * 1024 ** 2), ("1GiB", 1024 ** 3), ("500M", 500 * 1024 ** 2),
    ("2k", 2048), ("1.5G", 3 * 1024 ** 3 // 2), (" 3 TiB ", 3 * 1024 ** 4), ("7B", 7),
    ("64mb", 64 * 1024 ** 2)])
def test_sizes_are_read_in_powers_of_1024(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "MiB", "-1MiB", "4PiB", "4 MiBs", "1,5G", "0x10"])
def test_a_text_that_is_no_size_is_named_with_an_example(text):
    with pytest.raises(ValueError, match="is not a size; write e.g. 4MiB or 1GiB"):
        parse_size(text)


@pytest.mark.parametrize(("text", "seconds"), [
    ("90s", 90), ("6h", 21600), ("30d", 2592000), ("2w", 1209600), ("1.5min", 90),
    (" 1D ", 86400)])
def test_durations_are_read_in_seconds(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["30", "1y", "d", "-5s", "5 days"])
def test_a_text_that_is_no_duration_is_named_with_an_example(text):
    with pytest.raises(ValueError, match="is not a duration; write e.g. 30d, 12h, 90min or 90s"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["99999999999999999999d", "36501d"])
def test_a_duration_no_date_can_be_that_far_back_is_refused_with_an_example(text):
    with pytest.raises(ValueError, match="is longer than 100 years; write e.g. 30d"):
        parse_duration(text)


@pytest.mark.parametrize(("size", "shown"), [
    (0, "0B"), (1023, "1023B"), (1024, "1.0K"), (2560, "2.5K"), (10 * 1024, "10K"),
    (512 * 1024, "512K"), (2.5 * 1024 ** 2, "2.5M"), (3 * 1024 ** 3, "3.0G"),
    (12 * 1024 ** 3, "12G"), (5 * 1024 ** 4, "5.0T")])
def test_sizes_are_printed_as_the_seeds_log_printed_them(size, shown):
    assert human_size(size) == shown


def test_a_list_of_names_shows_a_few_then_how_many_more():
    names = [f"t{n}" for n in range(200)]
    assert few(names) == "t0, t1, t2, t3, t4 and 195 more"
    assert few(names[:6]) == "t0, t1, t2, t3, t4, t5"  # "and 1 more" would be no shorter
    assert few(names[:7]) == "t0, t1, t2, t3, t4 and 2 more"
    assert few(names[:3], shown=2) == "t0, t1, t2"
    assert few([]) == ""
