"""The dump lexer, the scanner on top of it and the rewrites, on dumps as mysqldump writes them.

``fixtures/mysql8_columns.sql`` is written from MySQL 8.0's client/mysqldump.cc output format
(column lists for generated and invisible columns, single-line INSERTs, GIPK ``my_row_id``);
there is no MySQL 8 server here to produce it.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from drkit.stream.dumpscan import DumpScanner, TableContent
from drkit.stream.lexer import LexError, SqlLexer, statements
from drkit.stream.rewrite import Rewriter
from drkit.stream.statement import has_row_order_key

MYSQL8 = (Path(__file__).parent / "fixtures" / "mysql8_columns.sql").read_bytes()


def lex(data: bytes, chunk: int | None = None) -> list:
    lexer = SqlLexer()
    size = chunk or len(data) or 1
    out = [s for start in range(0, len(data), size) for s in lexer.feed(data[start:start + size])]
    return out + list(lexer.close())


@pytest.mark.parametrize("chunk", [1, 2, 7, 64, None])
def test_chunk_boundaries_never_change_the_statements(chunk):
    reference = [(s.sql, s.kind, s.database, s.table, s.line, s.offset) for s in lex(MYSQL8)]
    assert [(s.sql, s.kind, s.database, s.table, s.line, s.offset)
            for s in lex(MYSQL8, chunk)] == reference


def test_quotes_comments_and_conditional_comments_as_the_mysql_client_reads_them():
    dump = (b"SELECT 'a;b', \"c;d\", `e;f`, 'it\\'s;', 'x'';y';\n"
            b"SELECT 1 -- trailing comment;\n;\n"
            b"# a whole line; of comment\n"
            b"SELECT 2 /* inline; comment */ + 1;\n"
            b"/*!40101 SET NAMES utf8mb4 */;\n"
            b"SELECT 3--1;\n")
    found = [s.sql for s in lex(dump)]
    assert found == [b"SELECT 'a;b', \"c;d\", `e;f`, 'it\\'s;', 'x'';y'",
                     b"SELECT 1 -- trailing comment;",
                     b"SELECT 2 /* inline; comment */ + 1",
                     b"/*!40101 SET NAMES utf8mb4 */",
                     b"SELECT 3--1"]


def test_delimiter_blocks_keep_bodies_whole_and_comments_inside_them():
    found = {s.name: s for s in lex(MYSQL8) if s.kind == "create_object"}
    trigger, procedure = found["count_items"], found["stamp"]
    assert trigger.sql.endswith(b"END */") and b"-- a comment with ;; inside" in trigger.sql
    assert procedure.sql.endswith(b"END") and b"# ;; hash comment" in procedure.sql
    assert (trigger.object_kind, trigger.table) == ("trigger", "order items")
    assert procedure.object_kind == "procedure" and procedure.table is None


def test_inserts_with_column_lists_are_rows_of_their_table():
    inserts = [s for s in lex(MYSQL8) if s.kind == "insert"]
    assert [(s.database, s.table, s.columns) for s in inserts] == [
        ("app", "priced", ("id", "net", "note", "sql_log_bin_off")),
        ("app", "keyless", ("my_row_id", "v")),
        ("app", "order items", None),
        ("app", "order", None)]
    assert inserts[0].sql[inserts[0].values:].startswith(b" (1,10.00,'a),(b',0)")


def test_scanner_counts_column_list_rows_and_digests_the_column_list():
    scanner = DumpScanner()
    for start in range(0, len(MYSQL8), 13):
        scanner.feed(MYSQL8[start:start + 13])
    scanner.close()
    rows = {table: content.rows for (_, table), content in scanner.tables.items()}
    assert rows == {"priced": 3, "keyless": 2, "order items": 2, "order": 3}
    assert scanner.complete and scanner.disagreements() == []
    # The column list is part of the digest: the same rows under other columns differ.
    other = DumpScanner()
    other.feed(MYSQL8.replace(b"(`my_row_id`, `v`) VALUES", b"(`my_row_id`, `w`) VALUES"))
    other.close()
    assert other.tables[("app", "keyless")].rows == 2
    assert other.tables[("app", "keyless")].digest != scanner.tables[("app", "keyless")].digest


def test_a_table_without_row_order_gets_an_order_free_digest():
    def scan(rows: bytes) -> DumpScanner:
        scanner = DumpScanner()
        scanner.feed(b"USE `d`;\nCREATE TABLE `t` (\n  `a` int DEFAULT NULL,\n"
                     b"  UNIQUE KEY `u` (`a`)\n) ENGINE=InnoDB;\n"
                     b"INSERT INTO `t` VALUES " + rows + b";\n")
        scanner.close()
        return scanner

    one, two = scan(b"(1),(NULL),(NULL)"), scan(b"(NULL),(1),(NULL)")
    first, second = one.tables[("d", "t")], two.tables[("d", "t")]
    assert first.digest != second.digest  # dump order differs: verify is exact
    assert first.unordered_digest == second.unordered_digest is not None
    assert scan(b"(1),(NULL)").tables[("d", "t")].unordered_digest != first.unordered_digest


def test_row_order_keys():
    assert has_row_order_key(b"CREATE TABLE `t` (\n  `id` int NOT NULL,\n"
                             b"  PRIMARY KEY (`id`)\n)")
    assert has_row_order_key(b"CREATE TABLE `t` (\n  `a` int NOT NULL,\n"
                             b"  UNIQUE KEY `u` (`a`)\n)")
    assert not has_row_order_key(b"CREATE TABLE `t` (\n  `a` int DEFAULT NULL,\n"
                                 b"  UNIQUE KEY `u` (`a`)\n)")
    assert not has_row_order_key(b"CREATE TABLE `order` (\n  `id` int DEFAULT NULL COMMENT "
                                 b"'NOT NULL PRIMARY KEY (`id`)'\n)")


def test_rewrites_touch_only_what_mysqldump_writes_for_them():
    rewriter = Rewriter(azure=True)
    kept = [r for s in lex(MYSQL8) if (r := rewriter.rewrite(s)) is not None]
    sql = {s.name if s.kind == "create_object" else s.table: s.sql for s in kept
           if s.kind in ("create_table", "create_object")}
    assert b"`sql_log_bin_off` tinyint(1)" in sql["priced"]  # a column, not the statement
    assert b"ENGINE=MyISAM" not in sql["order"].replace(b"'ENGINE=MyISAM;", b"")
    assert sql["order"].count(b"ENGINE = InnoDB") == 2 and b"COMMENT 'ENGINE=MyISAM;" in \
        sql["order"]
    assert b"DEFINER" not in sql["count_items"]
    assert b"SELECT 'DEFINER=`x`@`y`; SQL_LOG_BIN' AS s" in sql["stamp"]  # bodies stay
    assert sql["stamp"].startswith(b"CREATE PROCEDURE `stamp`()")
    assert not any(b"GTID_PURGED" in s.sql or b"@@SESSION.SQL_LOG_BIN" in s.sql for s in kept)
    assert rewriter.changes == {"removed SQL_LOG_BIN statements": 3,
                                "removed GTID_PURGED statements": 1,
                                "removed DEFINER clauses": 2,
                                "converted MyISAM tables to InnoDB": 3}


def test_a_statement_the_lexer_does_not_know_passes_unchanged():
    found = lex(b"GRANT SELECT ON *.* TO 'x'@'%';\nFROB `a` 'b;c';\nINSERT INTO `t` SELECT 1;\n")
    assert [(s.kind, s.sql) for s in found] == [
        ("other", b"GRANT SELECT ON *.* TO 'x'@'%'"), ("other", b"FROB `a` 'b;c'"),
        ("other", b"INSERT INTO `t` SELECT 1")]


@pytest.mark.parametrize(("dump", "what", "line"), [
    (b"SELECT 1;\nSELECT 'no end;\n", "inside a quoted string", 2),
    (b"SELECT 1;\n\n/* never closed\n", "inside a comment", 3),
    (b"DELIMITER ;;\nCREATE PROCEDURE p() BEGIN SELECT \"x;; END ;;\n", "quoted string", 2),
])
def test_a_stream_ending_inside_a_statement_names_where(dump, what, line):
    with pytest.raises(LexError, match=f"{what}.*line {line}"):
        statements(dump)


def test_positions_are_stream_lines_and_bytes():
    found = lex(b"-- header\n\nUSE `a`;\nSELECT 1;\n", chunk=3)
    assert [(s.kind, s.line, s.offset) for s in found] == [("use", 3, 11), ("other", 4, 20)]


def test_unquoted_names_keep_their_case():
    # SHOW CREATE TRIGGER gives the trigger as it was written: names need not be quoted.
    (trigger,) = lex(b"/*!50003 CREATE*/ /*!50017 DEFINER=`a`@`%`*/ /*!50003 TRIGGER "
                     b"orders_Round BEFORE INSERT ON Orders FOR EACH ROW SET NEW.x = 1 */;\n")
    assert (trigger.name, trigger.table) == ("orders_Round", "Orders")


def test_both_insert_layouts_give_one_digest_with_separators_inside_strings():
    header = (b"USE `d`;\nCREATE TABLE `t` (\n  `id` int NOT NULL,\n  PRIMARY KEY (`id`)\n"
              b");\n")
    rows = [b"(1,'a),(b')", b"(2,'x\\'),(y')", b"(3,'p\\\\')", b"(4,'),(')", b"(5,NULL)"]

    def scan(body: bytes) -> tuple[int, str]:
        scanner = DumpScanner()
        scanner.feed(header + body + b";\n-- Dump completed\n")
        scanner.close()
        content = scanner.tables[("d", "t")]
        return content.rows, content.digest

    mysql = scan(b"INSERT INTO `t` VALUES " + b",".join(rows))
    assert mysql == scan(b"INSERT INTO `t` VALUES\n" + b",\n".join(rows))
    assert mysql[0] == 5


def test_mariadbs_column_list_layout_counts_every_row():
    # mariadb-dump puts the first row on the VALUES line when it writes a column list.
    scanner = DumpScanner()
    scanner.feed(b"USE `d`;\nCREATE TABLE `inv` (\n  `id` int NOT NULL,\n  PRIMARY KEY (`id`)\n"
                 b");\nINSERT INTO `inv` (`id`, `s`) VALUES (1,'x'),\n(2,'y'),\n(3,'z');\n"
                 b"-- Dump completed\n")
    scanner.close()
    assert scanner.tables[("d", "inv")].rows == 3
    other = DumpScanner()
    other.feed(b"USE `d`;\nCREATE TABLE `inv` (\n  `id` int NOT NULL,\n  PRIMARY KEY (`id`)\n"
               b");\nINSERT INTO `inv` (`id`, `s`) VALUES (1,'x'),(2,'y'),(3,'z');\n"
               b"-- Dump completed\n")
    other.close()
    assert other.tables[("d", "inv")].digest == scanner.tables[("d", "inv")].digest


@pytest.mark.parametrize("keyed", [True, False])
@pytest.mark.parametrize("seed", range(6))
def test_single_line_rows_are_cut_only_outside_strings(seed, keyed):
    # Strings made of the bytes that matter to the quote pairing, escaped as mysqldump does:
    # runs of backslashes before quotes, "),(" and lone parentheses inside strings.
    rng = random.Random(seed)
    pieces = [b"\\", b"'", b"),(", b"(", b")", b",", b"x", b"\n", b"\\'"]

    def value() -> bytes:
        if rng.random() < 0.3:
            return rng.choice([b"NULL", b"-1.5", b"0x00ff", b"42"])
        return b"'" + _escaped(b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 6)))) \
            + b"'"

    rows = [b"(%d,%s,%s)" % (number, value(), value()) for number in range(rng.randint(1, 60))]
    key = b",\n  PRIMARY KEY (`id`)" if keyed else b""
    header = b"USE `d`;\nCREATE TABLE `t` (\n  `id` int NOT NULL" + key + b"\n);\n"

    def scan(body: bytes) -> TableContent:
        scanner = DumpScanner()
        scanner.feed(header + body + b";\n-- Dump completed\n")
        scanner.close()
        return scanner.tables[("d", "t")]

    single = scan(b"INSERT INTO `t` VALUES " + b",".join(rows))
    per_line = scan(b"INSERT INTO `t` VALUES\n" + b",\n".join(rows))
    assert single.rows == per_line.rows == len(rows)
    assert single.digest == per_line.digest
    assert single.unordered_digest == per_line.unordered_digest


def _escaped(text: bytes) -> bytes:
    """A string's content as mysqldump writes it (mysql_real_escape_string)."""
    return text.replace(b"\\", b"\\\\").replace(b"'", b"\\'").replace(b"\n", b"\\n")


def test_a_trigger_written_with_database_qualifiers_is_named_and_renamed():
    # A trigger keeps the text it was created with, so its header may name the database
    # (SHOW CREATE TRIGGER; mysqldump writes it as is): --as must move it, not leave it.
    (trigger,) = lex(b"/*!50003 CREATE*/ /*!50017 DEFINER=`a`@`%`*/ /*!50003 TRIGGER shop.t "
                     b"BEFORE INSERT ON `shop`.`order items` FOR EACH ROW "
                     b"SET NEW.x = 'shop.' */;\n")
    assert (trigger.name, trigger.table) == ("t", "order items")
    trigger.database = "shop"
    rewritten = Rewriter(azure=True, rename={"shop": "copy"}).rewrite(trigger)
    assert bytes(rewritten.sql) == (b"/*!50003 CREATE*/ /*!50017 */ /*!50003 TRIGGER copy.t "
                                    b"BEFORE INSERT ON `copy`.`order items` FOR EACH ROW "
                                    b"SET NEW.x = 'shop.' */")


def test_a_bare_name_beyond_ascii_is_read_whole():
    """MariaDB keeps a trigger's text as written: `CREATE TRIGGER shop.t_ü` stays bare in
    the dump, and the swap checks the place by these names."""
    sql = ("/*!50003 CREATE*/ /*!50003 TRIGGER shop.pitr_tgf7_ü BEFORE INSERT ON shop.t "
           "FOR EACH ROW SET NEW.v = 1 */;\n").encode()
    lexer = SqlLexer()
    (statement,) = [*lexer.feed(sql), *lexer.close()]
    assert (statement.object_kind, statement.name) == ("trigger", "pitr_tgf7_ü")
