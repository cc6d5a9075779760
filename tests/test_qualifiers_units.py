"""Which names in SQL text are databases, as SQL's grammar reads them: the replay's renaming
of binlog DDL (``restore --until --as``) and the object-body check of ``restore --as``.

``db.tbl`` where a table is named, ``db.tbl.col`` and ``db.routine(`` are databases;
``tbl.col`` in an expression is not, so a table or alias named like its database is never
renamed. The statements are shaped as MySQL's and MariaDB's grammar accepts them and as
mysqldump/mariadb-dump and SHOW CREATE VIEW write them; there is no server here.
"""

from __future__ import annotations

import pytest

from drkit.binlog.qualifiers import rename_qualified
from drkit.stream.qualifier_reader import database_qualifiers
from drkit.stream.schema import as_placeholder, names_own_database

SHOP = {"shop": "pit"}

# (where the shape comes from, statement, as renamed shop -> pit)
SHAPES = [
    ("mysqldump view (MySQL 8, MariaDB): tbl.col everywhere, db.tbl in FROM",
     "/*!50001 CREATE ALGORITHM=UNDEFINED */\n/*!50013 DEFINER=`root`@`localhost` SQL "
     "SECURITY DEFINER */\n/*!50001 VIEW `v` AS select `t`.`a` AS `a` from `shop`.`t` */",
     "/*!50001 CREATE ALGORITHM=UNDEFINED */\n/*!50013 DEFINER=`root`@`localhost` SQL "
     "SECURITY DEFINER */\n/*!50001 VIEW `v` AS select `t`.`a` AS `a` from `pit`.`t` */"),
    ("MySQL 8 SHOW CREATE VIEW: a join of aliased tables",
     "CREATE ALGORITHM=UNDEFINED DEFINER=`root`@`%` SQL SECURITY DEFINER VIEW `v` AS select "
     "`a`.`id` AS `id`,`b`.`x` AS `x` from (`shop`.`t1` `a` join `shop`.`t2` `b` "
     "on((`a`.`id` = `b`.`id`)))",
     "CREATE ALGORITHM=UNDEFINED DEFINER=`root`@`%` SQL SECURITY DEFINER VIEW `v` AS select "
     "`a`.`id` AS `id`,`b`.`x` AS `x` from (`pit`.`t1` `a` join `pit`.`t2` `b` "
     "on((`a`.`id` = `b`.`id`)))"),
    ("MariaDB SHOW CREATE VIEW: an alias named like the database",
     "CREATE OR REPLACE VIEW `v` AS select `shop`.`id` AS `id` from `shop`.`orders` `shop` "
     "where `shop`.`id` > 0",
     "CREATE OR REPLACE VIEW `v` AS select `shop`.`id` AS `id` from `pit`.`orders` `shop` "
     "where `shop`.`id` > 0"),
    ("CREATE TRIGGER ... ON db.t, body INSERT INTO db.log (NEW is the row)",
     "CREATE DEFINER=`root`@`localhost` TRIGGER shop.tr BEFORE INSERT ON shop.t FOR EACH ROW "
     "INSERT INTO shop.log (id) VALUES (NEW.id)",
     "CREATE DEFINER=`root`@`localhost` TRIGGER `pit`.tr BEFORE INSERT ON `pit`.t FOR EACH "
     "ROW INSERT INTO `pit`.log (id) VALUES (NEW.id)"),
    ("mysqldump trigger: body UPDATE db.t SET t.c",
     "/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`%`*/ /*!50003 TRIGGER `tr` AFTER UPDATE ON "
     "`t` FOR EACH ROW UPDATE shop.t2 SET t2.c = NEW.c WHERE t2.id = OLD.id */",
     "/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`%`*/ /*!50003 TRIGGER `tr` AFTER UPDATE ON "
     "`t` FOR EACH ROW UPDATE `pit`.t2 SET t2.c = NEW.c WHERE t2.id = OLD.id */"),
    ("UPDATE db.t SET t.c", "UPDATE shop.t SET t.c = 1", "UPDATE `pit`.t SET t.c = 1"),
    ("ALTER TABLE ... REFERENCES db.p(id) ON DELETE/UPDATE",
     "ALTER TABLE shop.t ADD FOREIGN KEY (p) REFERENCES shop.p(id) ON DELETE CASCADE "
     "ON UPDATE CASCADE",
     "ALTER TABLE `pit`.t ADD FOREIGN KEY (p) REFERENCES `pit`.p(id) ON DELETE CASCADE "
     "ON UPDATE CASCADE"),
    ("RENAME TABLE, a list", "RENAME TABLE shop.a TO shop.b, shop.c TO shop.d",
     "RENAME TABLE `pit`.a TO `pit`.b, `pit`.c TO `pit`.d"),
    ("ALTER TABLE ... RENAME AS", "ALTER TABLE shop.a RENAME AS shop.b",
     "ALTER TABLE `pit`.a RENAME AS `pit`.b"),
    ("CREATE TABLE ... LIKE", "CREATE TABLE shop.t LIKE shop.u",
     "CREATE TABLE `pit`.t LIKE `pit`.u"),
    ("CREATE TABLE ... (LIKE)", "CREATE TABLE IF NOT EXISTS shop.t (LIKE shop.u)",
     "CREATE TABLE IF NOT EXISTS `pit`.t (LIKE `pit`.u)"),
    ("DROP TABLE, a list", "DROP TEMPORARY TABLE IF EXISTS shop.a, shop.b",
     "DROP TEMPORARY TABLE IF EXISTS `pit`.a, `pit`.b"),
    ("INSERT ... SELECT with aliases",
     "INSERT INTO shop.t SELECT a.x FROM shop.u a JOIN shop.v AS b ON a.id = b.id",
     "INSERT INTO `pit`.t SELECT a.x FROM `pit`.u a JOIN `pit`.v AS b ON a.id = b.id"),
    ("multi-table DELETE", "DELETE a, shop.b FROM shop.t1 a, shop.b WHERE a.id = b.id",
     "DELETE a, `pit`.b FROM `pit`.t1 a, `pit`.b WHERE a.id = b.id"),
    ("CALL db.proc()", "CALL shop.proc()", "CALL `pit`.proc()"),
    ("a stored function by database", "SELECT shop.fn(1), fn(shop.x)",
     "SELECT `pit`.fn(1), fn(`pit`.x)"),
    ("db.tbl.col and db.tbl.*", "SELECT shop.t.c, shop.t.* FROM shop.t",
     "SELECT `pit`.t.c, `pit`.t.* FROM `pit`.t"),
    ("CREATE INDEX ... ON", "CREATE UNIQUE INDEX i ON shop.t (c)",
     "CREATE UNIQUE INDEX i ON `pit`.t (c)"),
    ("CREATE PROCEDURE: DDL and DML in its body",
     "CREATE PROCEDURE shop.p(IN a INT) BEGIN DROP TABLE IF EXISTS shop.t; "
     "UPDATE u SET u.x = a WHERE u.id IN (SELECT t.id FROM shop.v t); END",
     "CREATE PROCEDURE `pit`.p(IN a INT) BEGIN DROP TABLE IF EXISTS `pit`.t; "
     "UPDATE u SET u.x = a WHERE u.id IN (SELECT t.id FROM `pit`.v t); END"),
    ("a parenthesized join", "SELECT 1 FROM t1 LEFT JOIN (t2, shop.t3) ON t2.a = t3.a",
     "SELECT 1 FROM t1 LEFT JOIN (t2, `pit`.t3) ON t2.a = t3.a"),
    ("a derived table named like the database",
     "SELECT shop.a FROM (SELECT 1 AS a) AS shop", "SELECT shop.a FROM (SELECT 1 AS a) AS shop"),
    ("EXTRACT(... FROM col) is no table", "SELECT EXTRACT(YEAR FROM shop.d) FROM shop",
     "SELECT EXTRACT(YEAR FROM shop.d) FROM shop"),
    ("MariaDB sequences", "SELECT NEXTVAL(shop.s), NEXT VALUE FOR shop.s",
     "SELECT NEXTVAL(`pit`.s), NEXT VALUE FOR `pit`.s"),
    ("MySQL 8.0.19 row alias", "INSERT INTO t VALUES (1) AS shop ON DUPLICATE KEY UPDATE "
     "c = shop.c", "INSERT INTO t VALUES (1) AS shop ON DUPLICATE KEY UPDATE c = shop.c"),
    ("strings, comments and numbers hold none",
     "SELECT 'shop.t', 1.5 /* shop.t */ FROM t -- shop.t\n# shop.t\n",
     "SELECT 'shop.t', 1.5 /* shop.t */ FROM t -- shop.t\n# shop.t\n"),
    ("MariaDB executable comment", "/*M!100301 DROP TABLE shop.t */",
     "/*M!100301 DROP TABLE `pit`.t */"),
    ("a variable is no qualifier", "SET @shop.t = 1, @@session.sql_mode = ''",
     "SET @shop.t = 1, @@session.sql_mode = ''"),
]


@pytest.mark.parametrize("source,sql,renamed", SHAPES, ids=[s[0] for s in SHAPES])
def test_qualifiers_are_renamed_where_the_grammar_makes_them_databases(source, sql, renamed):
    seen: set[str] = set()
    assert rename_qualified(sql.encode(), SHOP, seen).decode() == renamed
    assert seen == ({"shop"} if renamed != sql else set())


def test_seen_holds_every_database_named_and_no_table():
    seen: set[str] = set()
    rename_qualified(b"INSERT INTO shop.t SELECT o.id, sales.total FROM other.o, sales "
                     b"WHERE o.id = archive.t.id", SHOP, seen)
    assert seen == {"shop", "other", "archive"}


def test_new_and_old_are_the_row_in_a_trigger_even_beside_a_database_of_that_name():
    sql = b"CREATE TRIGGER tr BEFORE UPDATE ON t FOR EACH ROW SET NEW.total = OLD.total + 1"
    seen: set[str] = set()
    assert rename_qualified(sql, {"new": "x", "old": "y"}, seen) == sql
    assert seen == set()


def test_ansi_quotes_name_with_double_quotes():
    sql = b'UPDATE "shop"."t" SET "t"."c" = "shop".f(1) WHERE "t".d = \'shop.x\''
    assert rename_qualified(sql, SHOP, ansi_quotes=True) == \
        b'UPDATE `pit`."t" SET "t"."c" = `pit`.f(1) WHERE "t".d = \'shop.x\''


# -- the issue: employees has a database and a table both called employees ---------------
EMPLOYEES = {"employees": "emp_r"}


@pytest.mark.parametrize("sql", [
    "CREATE VIEW v AS SELECT employees.emp_no FROM employees",
    # as mysqldump and SHOW CREATE VIEW write it
    "/*!50001 CREATE ALGORITHM=UNDEFINED */\n/*!50013 DEFINER=`root`@`localhost` SQL "
    "SECURITY DEFINER */\n/*!50001 VIEW `v` AS select `employees`.`emp_no` AS `emp_no` from "
    "`employees` */",
    "select `employees`.`emp_no` AS `emp_no` from `employees`",
    "SELECT employees.emp_no FROM t AS employees",  # an alias named like the database
])
def test_a_table_named_like_its_database_is_no_database(sql):
    seen: set[str] = set()
    assert rename_qualified(sql.encode(), EMPLOYEES, seen) == sql.encode()
    assert seen == set()


def test_the_database_positions_beside_a_table_named_like_it_are_renamed():
    seen: set[str] = set()
    sql = b"SELECT employees.employees.emp_no FROM employees.employees"
    assert rename_qualified(sql, EMPLOYEES, seen) == \
        b"SELECT `emp_r`.employees.emp_no FROM `emp_r`.employees"
    assert seen == {"employees"}


def test_a_qualifier_naming_no_table_of_the_statement_is_a_guess_renamed_all_the_same():
    """``x.c`` where the statement names no table x: the source ran it, so x stood where
    this reader knows no table's place; renamed, a wrong guess fails on the target rather
    than acting on the original database."""
    assert [(q.name, q.certain) for q in database_qualifiers(b"SELECT x.c FROM t")] == \
        [("x", False)]
    assert rename_qualified(b"SELECT shop.c FROM t", SHOP) == b"SELECT `pit`.c FROM t"


# -- restore --as: bodies that name their own database ------------------------------------
def _definition(sql: str) -> str:
    return as_placeholder(sql, "employees")  # as the manifest keeps it


@pytest.mark.parametrize("kind,sql,naming", [
    ("view", "/*!50001 CREATE ALGORITHM=UNDEFINED */\n/*!50013 SQL SECURITY DEFINER */\n"
             "/*!50001 VIEW `v` AS select `employees`.`emp_no` AS `emp_no` from `employees` "
             "*/", False),
    ("view", "CREATE VIEW v AS SELECT employees.emp_no FROM employees", False),
    ("view", "CREATE VIEW `v` AS select `employees`.`emp_no` AS `emp_no` from "
             "`employees`.`employees`", True),
    ("view", "CREATE VIEW `v` AS select `employees`.`employees`.`emp_no` AS `emp_no` from "
             "`t`", True),
    ("trigger", "/*!50003 CREATE*/ /*!50017 */ /*!50003 TRIGGER `tr` BEFORE INSERT ON "
                "`employees` FOR EACH ROW INSERT INTO `employees`.`log` VALUES (NEW.id) */",
     True),
    ("trigger", "CREATE TRIGGER `employees`.`tr` BEFORE INSERT ON `employees`.`employees` "
                "FOR EACH ROW SET NEW.hired = (SELECT MAX(employees.hired) FROM employees)",
     False),
    ("trigger", "CREATE TRIGGER `x for each row` BEFORE INSERT ON `employees`.`t` FOR EACH "
                "ROW SET NEW.a = 1", False),
    ("procedure", "CREATE PROCEDURE `p`()\nBEGIN\n  CALL employees.q();\nEND", True),
    ("function", "CREATE FUNCTION `f`() RETURNS int\nRETURN employees.g(1)", True),
    ("event", "CREATE EVENT `e` ON SCHEDULE EVERY 1 DAY DO DELETE FROM employees "
              "WHERE employees.emp_no < 0", False),
])
def test_a_body_names_its_own_database_only_where_the_grammar_makes_it_one(kind, sql, naming):
    assert names_own_database(kind, _definition(sql)) is naming
