"""How the replay reads the binlog's trigger DDL (drkit.binlog.triggers): which trigger a
DROP TRIGGER names and where a CREATE TRIGGER's FOLLOWS/PRECEDES clause stands, in the
forms MariaDB and MySQL accept (quoted, ANSI-quoted, non-ASCII names; comments)."""

from __future__ import annotations

import pytest

from drkit.binlog.triggers import SavedTrigger, TriggersAside


def _aside(*names: tuple[str, str]) -> TriggersAside:
    aside = TriggersAside(["shop"])
    for database, name in names:
        aside.saved[(database, name.lower())] = SavedTrigger(database, name, "t", "", b"")
    return aside


@pytest.mark.parametrize("sql,database,key", [
    ("DROP TRIGGER tü_c", "shop", ("shop", "tü_c")),
    ("DROP TRIGGER IF EXISTS `shop`.`a``b`", None, ("shop", "a`b")),
    ('DROP TRIGGER "shop"."Q""x"', None, ("shop", 'q"x')),
])
def test_a_drop_trigger_forgets_the_one_it_names(sql, database, key):
    aside = _aside(key)
    assert aside.dropped(sql.encode(), database) is True
    assert key not in aside.saved


@pytest.mark.parametrize("sql", [
    "CREATE DEFINER=`drk ops`@`%` TRIGGER c BEFORE INSERT ON t FOR EACH ROW FOLLOWS a SET x=1",
    "CREATE TRIGGER `c for each row` BEFORE INSERT ON t FOR EACH ROW FOLLOWS `a` SET x=1",
    "CREATE TRIGGER c BEFORE INSERT ON t FOR EACH ROW /* 2nd */ FOLLOWS a SET x=1",
    "CREATE TRIGGER c BEFORE INSERT ON t FOR EACH ROW -- 2nd\n FOLLOWS a SET x=1",
    "CREATE TRIGGER c BEFORE INSERT ON t FOR EACH ROW # 2nd\nFOLLOWS a SET x=1",
    'CREATE OR REPLACE TRIGGER "c" BEFORE INSERT ON "s"."t" FOR EACH ROW FOLLOWS "a" SET x=1',
])
def test_an_order_clause_naming_a_trigger_set_aside_is_left_out(sql):
    created = _aside(("shop", "a")).creatable(sql.encode()).decode()
    assert "FOLLOWS" not in created and created.endswith(" SET x=1")


def test_an_order_clause_is_kept_where_it_names_no_trigger_set_aside_or_is_the_body():
    aside = _aside(("shop", "a"))
    for sql in ("CREATE TRIGGER c BEFORE INSERT ON t FOR EACH ROW FOLLOWS other SET x=1",
                "CREATE TRIGGER c BEFORE INSERT ON t FOR EACH ROW SET x='FOR EACH ROW "
                "FOLLOWS a'"):
        assert aside.creatable(sql.encode()) == sql.encode()


def test_a_trigger_is_placed_right_after_or_before_the_one_it_names():
    aside = _aside(("shop", "a"), ("shop", "b"), ("shop", "n"))
    aside._place(("shop", "n"), follows=True, anchor="a")
    assert list(aside.saved) == [("shop", "a"), ("shop", "n"), ("shop", "b")]
    aside._place(("shop", "n"), follows=False, anchor="a")
    assert list(aside.saved) == [("shop", "n"), ("shop", "a"), ("shop", "b")]
