"""The schema zoo: databases holding every schema feature a real backup must round-trip, and
an independent checker that compares the zoo on one server with a restored copy on another.

What the zoo covers (each database in :data:`ZOO_DATABASES` gets all of it; the first also
gets one big binary row):

- names that need quoting: a mixed-case database and a non-Latin-1 one with a space, a table
  called ``order`` next to ``order items`` (with triggers on the latter only), a column whose
  name holds a backtick, columns named ``select`` and ``sql_log_bin_off``;
- generated columns (VIRTUAL and STORED) and INVISIBLE columns;
- foreign keys: a self-referencing table and a cycle between two tables (added by ALTER);
- partitioning: a RANGE-partitioned InnoDB table and a HASH-partitioned MyISAM table;
- types: JSON, BIT(n), ENUM, SET, POINT with a SPATIAL index, DECIMAL(65,30), DATETIME(6),
  TIMESTAMP(6), BINARY/VARBINARY with 0x00/0x0A bytes, a latin1 column, a big LONGBLOB row;
- awkward keys: only a nullable UNIQUE key (several NULL rows), no key at all (duplicates);
- stored objects: two ordered triggers, a procedure whose body has ``;;`` in comments and
  DEFINER=`x`@`y` in a string literal, a function, a view and a view of that view, an event;
- awkward data: quotes, backslashes, ``),(``, ``;;``, comment markers, emoji, Korean, NULL
  next to the empty string, control characters.

Why the checker is independent: drkit proves a restore with its own dump-stream scanner and
proof code. A bug there (say, a scanner confused by ``),(`` inside a string, or a trigger on
``order items`` filed under ``order``) could hide a broken restore from itself. This module
imports nothing from drkit: it asks each server directly (``CHECKSUM TABLE ... EXTENDED``,
``COUNT(*)``, a client-side digest of every column including invisible ones, and the
``SHOW CREATE ...`` text of every object listed in information_schema) and compares.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import random
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pymysql

MIB = 2**20
ZOO_MIXED = "Zoo_Mixed"
ZOO_UNICODE = "zoo ü 한글"
ZOO_DATABASES: tuple[str, ...] = (ZOO_MIXED, ZOO_UNICODE)
BIG_TABLE = "big_blob"
DB_PLACEHOLDER = "`<database>`"

ConnectionFactory = Callable[..., pymysql.Connection]


def quote(name: str) -> str:
    """An identifier in backticks, inner backticks doubled."""
    return "`" + name.replace("`", "``") + "`"


# -- building -------------------------------------------------------------------------------

def build_zoo(connection_factory: ConnectionFactory, big_row_bytes: int = 40 * MIB) -> None:
    """(Re)create every zoo database; ``connection_factory(database=None)`` must return a
    connection that may create databases, routines, triggers and events."""
    _ensure_packet_fits(connection_factory, big_row_bytes)
    connection = connection_factory()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET time_zone = '+00:00'")
            for index, database in enumerate(ZOO_DATABASES):
                _create_database(cursor, database)
                for step in BUILD_STEPS:
                    step(cursor)
                if index == 0:
                    _big_row(cursor, big_row_bytes)
    finally:
        connection.close()


def drop_zoo(connection: pymysql.Connection, databases: Iterable[str] = ZOO_DATABASES) -> None:
    with connection.cursor() as cursor:
        for database in databases:
            cursor.execute(f"DROP DATABASE IF EXISTS {quote(database)}")


def _packet_needed(big_row_bytes: int) -> int:
    # The row travels in one INSERT, which PyMySQL writes as a hex literal: twice its size.
    return 2 * big_row_bytes + MIB


def _ensure_packet_fits(connection_factory: ConnectionFactory, big_row_bytes: int) -> None:
    needed = _packet_needed(big_row_bytes)
    connection = connection_factory()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT @@GLOBAL.max_allowed_packet")
            if cursor.fetchone()[0] < needed:
                # Needs SUPER (or SYSTEM_VARIABLES_ADMIN); new connections see the new value.
                cursor.execute(f"SET GLOBAL max_allowed_packet = {min(needed, 2**30)}")
    finally:
        connection.close()


def _create_database(cursor, database: str) -> None:
    cursor.execute(f"DROP DATABASE IF EXISTS {quote(database)}")
    cursor.execute(f"CREATE DATABASE {quote(database)} "
                   "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    cursor.execute(f"USE {quote(database)}")


def _generated_and_invisible(cursor) -> None:
    cursor.execute(
        "CREATE TABLE generated_cols ("
        " id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,"
        " price DECIMAL(10,2) NOT NULL, qty INT NOT NULL,"
        " total DECIMAL(14,2) AS (price * qty) VIRTUAL,"
        " label VARCHAR(40) AS (CONCAT('qty-', qty)) STORED,"
        " secret VARCHAR(20) INVISIBLE DEFAULT 'hidden',"
        " KEY label_idx (label)) ENGINE=InnoDB")
    cursor.executemany("INSERT INTO generated_cols (price, qty, secret) VALUES (%s, %s, %s)",
                       [("9.99", 3, "s3cret"), ("0.01", 100, None), ("5.00", 1, "hidden")])


def _foreign_keys(cursor) -> None:
    cursor.execute("CREATE TABLE employee (id INT PRIMARY KEY, manager_id INT NULL,"
                   " name VARCHAR(40),"
                   " CONSTRAINT employee_manager FOREIGN KEY (manager_id) REFERENCES employee (id)"
                   " ON DELETE SET NULL) ENGINE=InnoDB")
    cursor.execute("INSERT INTO employee VALUES (1, NULL, 'boss'), (2, 1, 'mid'), (3, 2, 'new')")
    cursor.execute("CREATE TABLE fk_a (id INT PRIMARY KEY, b_id INT NULL) ENGINE=InnoDB")
    cursor.execute("CREATE TABLE fk_b (id INT PRIMARY KEY, a_id INT NULL) ENGINE=InnoDB")
    cursor.execute("ALTER TABLE fk_a ADD CONSTRAINT a_to_b FOREIGN KEY (b_id) REFERENCES fk_b (id)")
    cursor.execute("ALTER TABLE fk_b ADD CONSTRAINT b_to_a FOREIGN KEY (a_id) REFERENCES fk_a (id)")
    cursor.execute("INSERT INTO fk_a VALUES (1, NULL), (2, NULL)")
    cursor.execute("INSERT INTO fk_b VALUES (10, 1), (20, 2)")
    cursor.execute("UPDATE fk_a SET b_id = id * 10")


def _partitions(cursor) -> None:
    cursor.execute(
        "CREATE TABLE range_parts (id INT NOT NULL, created DATE NOT NULL, note VARCHAR(20),"
        " PRIMARY KEY (id, created)) ENGINE=InnoDB"
        " PARTITION BY RANGE (YEAR(created)) ("
        " PARTITION p2022 VALUES LESS THAN (2023), PARTITION p2023 VALUES LESS THAN (2024),"
        " PARTITION pmax VALUES LESS THAN MAXVALUE)")
    cursor.execute("INSERT INTO range_parts VALUES (1, '2022-06-01', 'old'),"
                   " (2, '2023-12-31', 'edge'), (3, '2031-01-01', 'future')")
    cursor.execute("CREATE TABLE myisam_parts (id INT NOT NULL PRIMARY KEY, v VARCHAR(20))"
                   " ENGINE=MyISAM PARTITION BY HASH (id) PARTITIONS 3")
    cursor.execute("INSERT INTO myisam_parts VALUES (1, 'one'), (2, 'two'), (3, 'three'),"
                   " (4, NULL)")


def _types(cursor) -> None:
    cursor.execute(
        "CREATE TABLE types (id INT PRIMARY KEY, doc JSON, flags BIT(10),"
        " mood ENUM('sad','ok','happy'), colours SET('red','green','blue'),"
        " amount DECIMAL(65,30), at_dt DATETIME(6), at_ts TIMESTAMP(6) NULL DEFAULT NULL,"
        " bin BINARY(8), vbin VARBINARY(64), ratio DOUBLE,"
        " legacy VARCHAR(20) CHARACTER SET latin1 COLLATE latin1_swedish_ci) ENGINE=InnoDB")
    doc = json.dumps({"k": [1, 2.5, None, "ü 한글 😀"], "q": 'a"b\\c'}, ensure_ascii=False)
    rows = [
        (1, doc, 0b1000000001, "happy", "red,blue",
         "12345678901234567890123456789012345.123456789012345678901234567890",
         "2024-02-29 23:59:59.999999", "2024-02-29 12:34:56.123456",
         b"\x00\n\x00", b"\x00\x0a\x0d\x1a\\'\"\xff\x00", 1 / 3, "café"),
        (2, "[]", 0, "sad", "", "-0.000000000000000000000000000001",
         "1000-01-01 00:00:00.000000", "1970-01-01 00:00:01.000000",
         b"\n" * 8, b"", -0.0, ""),
        (3, None, None, None, None, None, None, None, None, None, None, None),
    ]
    cursor.executemany("INSERT INTO types VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
                       " %s, %s)", rows)


def _spatial(cursor) -> None:
    cursor.execute("CREATE TABLE places (id INT PRIMARY KEY, pt POINT NOT NULL,"
                   " SPATIAL INDEX pt_idx (pt)) ENGINE=InnoDB")
    cursor.execute("INSERT INTO places VALUES (1, ST_GeomFromText('POINT(1 2)')),"
                   " (2, ST_GeomFromText('POINT(-180 90.5)'))")


def _awkward_keys(cursor) -> None:
    cursor.execute("CREATE TABLE nullable_unique (code VARCHAR(10) NULL, note VARCHAR(20),"
                   " UNIQUE KEY code_uq (code)) ENGINE=InnoDB")
    cursor.execute("INSERT INTO nullable_unique VALUES ('a', 'x'), (NULL, 'n1'), (NULL, 'n2'),"
                   " (NULL, 'same'), (NULL, 'same')")
    cursor.execute("CREATE TABLE keyless (a INT, b VARCHAR(10)) ENGINE=InnoDB")
    cursor.execute("INSERT INTO keyless VALUES (1, 'dup'), (1, 'dup'), (1, 'dup'), (2, NULL),"
                   " (2, NULL), (3, '),(')")


def _orders_and_triggers(cursor) -> None:
    cursor.execute("CREATE TABLE `order` (id INT PRIMARY KEY, customer VARCHAR(40),"
                   " item_count INT NOT NULL DEFAULT 0) ENGINE=InnoDB")
    cursor.execute("CREATE TABLE `order items` (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,"
                   " order_id INT NOT NULL, sku VARCHAR(20), qty INT NOT NULL,"
                   " CONSTRAINT items_order FOREIGN KEY (order_id) REFERENCES `order` (id))"
                   " ENGINE=InnoDB")
    cursor.execute("CREATE TRIGGER `order items bi` BEFORE INSERT ON `order items` FOR EACH ROW"
                   " SET NEW.qty = GREATEST(NEW.qty, 1)")
    cursor.execute("CREATE TRIGGER `order items bi2` BEFORE INSERT ON `order items` FOR EACH ROW"
                   " FOLLOWS `order items bi` SET NEW.sku = UPPER(NEW.sku)")
    cursor.execute("CREATE TRIGGER `order items ai` AFTER INSERT ON `order items` FOR EACH ROW"
                   " UPDATE `order` SET item_count = item_count + NEW.qty"
                   " WHERE id = NEW.order_id")
    cursor.execute("INSERT INTO `order` (id, customer) VALUES (1, 'Ann'), (2, 'O''Brien'),"
                   " (3, '김철수')")
    cursor.execute("INSERT INTO `order items` (order_id, sku, qty) VALUES (1, 'ab-1', 2),"
                   " (1, 'cd-2', 0), (2, 'ef;;3', 5), (3, '한글', 1)")


PROCEDURE = """CREATE PROCEDURE `count items`(IN min_qty INT)
    READS SQL DATA
    COMMENT 'has ;; in comments'
BEGIN
  -- a line comment with ;; inside it
  /* a block comment ;; too */
  DECLARE note VARCHAR(64) DEFAULT 'DEFINER=`x`@`y`';
  SELECT note, COUNT(*) AS items FROM `order items` WHERE qty >= min_qty;
END"""

FUNCTION = """CREATE FUNCTION `order total`(wanted INT) RETURNS INT
    READS SQL DATA
    RETURN (SELECT COALESCE(SUM(qty), 0) FROM `order items` WHERE order_id = wanted)"""


def _routines_views_event(cursor) -> None:
    cursor.execute(PROCEDURE)
    cursor.execute(FUNCTION)
    cursor.execute("CREATE VIEW order_lines AS SELECT o.id, o.customer, COUNT(i.id) AS `lines`"
                   " FROM `order` o LEFT JOIN `order items` i ON i.order_id = o.id"
                   " GROUP BY o.id, o.customer")
    cursor.execute("CREATE VIEW `busy orders` AS SELECT id, customer FROM order_lines"
                   " WHERE `lines` > 1")
    cursor.execute("CREATE EVENT `zoo purge` ON SCHEDULE EVERY 1 DAY"
                   " ON COMPLETION PRESERVE DO DELETE FROM keyless WHERE a < 0")


TEXTS = [
    "O'Reilly", 'say "hi"', "back\\slash\\", "a),(b", "'),('", "x');DROP TABLE t;--",
    "DELIMITER ;;", "-- not a comment", "/* nor this */", "emoji 😀🦄👩‍👩‍👧", "한글 텍스트",
    "line\nbreak\ttab\rcr", "ctrl-z \x1a nul-free", "trailing spaces   ", "", None,
]


def _tricky_names_and_texts(cursor) -> None:
    cursor.execute("CREATE TABLE Texts (id INT PRIMARY KEY, s VARCHAR(200), t TEXT,"
                   " `select` INT, sql_log_bin_off TINYINT(1) NOT NULL DEFAULT 0,"
                   " `odd``name` VARCHAR(10)) ENGINE=InnoDB")
    rows = [(i, text, None if text is None else text * 3, i, i % 2, "`")
            for i, text in enumerate(TEXTS, start=1)]
    cursor.executemany("INSERT INTO Texts VALUES (%s, %s, %s, %s, %s, %s)", rows)


def _big_row(cursor, big_row_bytes: int) -> None:
    cursor.execute(f"CREATE TABLE {BIG_TABLE} (id INT PRIMARY KEY, b LONGBLOB) ENGINE=InnoDB")
    head = b"\x00\n\x00\r\n\\'\"\x1a"  # the bytes a dump must escape, then random ones
    data = (head + random.Random(20240229).randbytes(big_row_bytes))[:big_row_bytes]
    cursor.execute(f"INSERT INTO {BIG_TABLE} VALUES (1, %s)", (data,))


BUILD_STEPS: tuple[Callable[[Any], None], ...] = (
    _generated_and_invisible, _foreign_keys, _partitions, _types, _spatial, _awkward_keys,
    _orders_and_triggers, _routines_views_event, _tricky_names_and_texts,
)


# -- fingerprinting -------------------------------------------------------------------------

_DEFINER = re.compile(r"^(CREATE\b[^`'\"]*?)DEFINER=`(?:[^`]|``)*`@`(?:[^`]|``)*`\s*")
_AUTO_INCREMENT = re.compile(r"^(\).*?) AUTO_INCREMENT=\d+", re.MULTILINE)
# Columns of SHOW CREATE ... that legitimately differ on a restored copy.
_DROPPED_COLUMNS = {"Created"}
_MYISAM = re.compile(r"(ENGINE ?= ?)MyISAM")


def normalise_sql(text: str, database: str) -> str:
    """Drop the header's DEFINER clause (only that one: a DEFINER in a body's string literal
    stays), the AUTO_INCREMENT table option, and put a placeholder for the database name."""
    text = _DEFINER.sub(r"\1", text, count=1)
    text = _AUTO_INCREMENT.sub(r"\1", text)
    return text.replace(quote(database), DB_PLACEHOLDER)


def _query(cursor, sql: str, args: tuple | None = None) -> list[dict[str, Any]]:
    cursor.execute(sql, args)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _show_create(cursor, kind: str, qualified: str, database: str) -> dict[str, Any]:
    (row,) = _query(cursor, f"SHOW CREATE {kind} {qualified}")
    name_column = next(iter(row))  # Table / View / Procedure / Trigger / Event
    return {k: normalise_sql(v, database) if isinstance(v, str) else v
            for k, v in row.items() if k != name_column and k not in _DROPPED_COLUMNS}


def _names(cursor, sql: str, database: str) -> list[str]:
    return sorted(r[0] for r in _rows(cursor, sql, (database,)))


def _rows(cursor, sql: str, args: tuple) -> list[tuple]:
    cursor.execute(sql, args)
    return list(cursor.fetchall())


def _value_bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        return b"b%d:" % len(value) + bytes(value)
    text = repr(value).encode()
    return b"r%d:" % len(text) + text


def _rows_digest(cursor, database: str, table: str) -> str:
    """SHA-256 over every row (all columns, invisible ones too), independent of row order."""
    columns = _names_in_order(cursor, database, table)
    cursor.execute(f"SELECT {', '.join(map(quote, columns))} "
                   f"FROM {quote(database)}.{quote(table)}")
    digests = sorted(hashlib.sha256(b"".join(map(_value_bytes, row))).digest()
                     for row in cursor.fetchall())
    return hashlib.sha256(b"".join(digests)).hexdigest()


def _names_in_order(cursor, database: str, table: str) -> list[str]:
    return [r[0] for r in _rows(
        cursor, "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s"
        " AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION", (database, table))]


def _table_fingerprint(cursor, database: str, table: str) -> dict[str, Any]:
    qualified = f"{quote(database)}.{quote(table)}"
    (checksum,) = _rows(cursor, f"CHECKSUM TABLE {qualified} EXTENDED", ())
    (count,) = _rows(cursor, f"SELECT COUNT(*) FROM {qualified}", ())
    return {**_show_create(cursor, "TABLE", qualified, database),
            "checksum": checksum[1], "rows": count[0],
            "digest": _rows_digest(cursor, database, table)}


_LISTS = {
    "table": "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s"
             " AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED')",
    "view": "SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = %s",
    "procedure": "SELECT ROUTINE_NAME FROM information_schema.ROUTINES"
                 " WHERE ROUTINE_SCHEMA = %s AND ROUTINE_TYPE = 'PROCEDURE'",
    "function": "SELECT ROUTINE_NAME FROM information_schema.ROUTINES"
                " WHERE ROUTINE_SCHEMA = %s AND ROUTINE_TYPE = 'FUNCTION'",
    "trigger": "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s",
    "event": "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s",
}


def _trigger_extras(cursor, database: str, trigger: str) -> dict[str, Any]:
    (row,) = _query(cursor, "SELECT EVENT_OBJECT_TABLE AS on_table, ACTION_ORDER AS action_order"
                    " FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s"
                    " AND TRIGGER_NAME = %s", (database, trigger))
    return row


def _object_fingerprint(cursor, kind: str, database: str, name: str) -> dict[str, Any]:
    if kind == "table":
        return _table_fingerprint(cursor, database, name)
    entry = _show_create(cursor, kind.upper(), f"{quote(database)}.{quote(name)}", database)
    if kind == "trigger":
        entry.update(_trigger_extras(cursor, database, name))
    return entry


def zoo_fingerprint(connection: pymysql.Connection, database: str) -> dict[str, Any]:
    """An independent description of ``database``: ``{"database": {...}, "table": {name:
    {...}}, "view": ..., "procedure": ..., "function": ..., "trigger": ..., "event": ...}``.

    Sets the session time zone to UTC so TIMESTAMP values read the same everywhere.
    """
    with connection.cursor() as cursor:
        cursor.execute("SET time_zone = '+00:00'")
        result: dict[str, Any] = {
            "database": _show_create(cursor, "DATABASE", quote(database), database)}
        for kind, sql in _LISTS.items():
            result[kind] = {name: _object_fingerprint(cursor, kind, database, name)
                            for name in _names(cursor, sql, database)}
    return result


# -- comparing ------------------------------------------------------------------------------

def compare_zoo(source_connection: pymysql.Connection, target_connection: pymysql.Connection,
                databases: Iterable[str] = ZOO_DATABASES,
                rename: Mapping[str, str] | None = None, as_innodb: bool = False) -> list[str]:
    """Human-readable differences between each source database and its copy on the target
    (named ``rename[db]`` there, or the same); empty when the copies match. ``as_innodb``:
    the copy was made for Azure, which has every table (and partition) on InnoDB."""
    rename = rename or {}
    differences: list[str] = []
    folds = _folds_names(target_connection)
    for database in databases:
        copy = rename.get(database, database)
        copy = copy.lower() if folds else copy
        if not _database_exists(target_connection, copy):
            differences.append(f"database {quote(copy)} is missing on the target")
            continue
        expected = zoo_fingerprint(source_connection, database)
        if as_innodb:
            for table in expected["table"].values():
                table["Create Table"] = _MYISAM.sub(r"\1InnoDB", table["Create Table"])
        actual = zoo_fingerprint(target_connection, copy)
        if folds:
            expected, actual = _folded(expected), _folded(actual)
        differences += compare_fingerprints(expected, actual, label=quote(database))
    return differences


def _folds_names(connection: pymysql.Connection) -> bool:
    with connection.cursor() as cursor:
        return _rows(cursor, "SELECT @@lower_case_table_names", ())[0][0] == 1


_IDENTIFIER = re.compile(r"`((?:[^`]|``)+)`")


def _folded(fingerprint: dict[str, Any]) -> dict[str, Any]:
    """Under lower_case_table_names=1 a server keeps table and view names in lower case,
    where they are names and where a CREATE text or trigger names one."""
    names = {name.lower() for kind in ("table", "view") for name in fingerprint[kind]}

    def fold(value: Any) -> Any:
        if isinstance(value, str):
            if value.lower() in names:
                return value.lower()
            return _IDENTIFIER.sub(lambda m: m.group(0).lower()
                                   if m.group(1).lower() in names else m.group(0), value)
        if isinstance(value, dict):
            return {k: fold(v) for k, v in value.items()}
        return value

    return {kind: ({name.lower(): fold(entry) for name, entry in entries.items()}
                   if kind in ("table", "view") else fold(entries))
            for kind, entries in fingerprint.items()}


def _database_exists(connection: pymysql.Connection, database: str) -> bool:
    with connection.cursor() as cursor:
        return bool(_rows(cursor, "SELECT 1 FROM information_schema.SCHEMATA"
                                  " WHERE SCHEMA_NAME = %s", (database,)))


def compare_fingerprints(source: dict[str, Any], target: dict[str, Any],
                         label: str = "") -> list[str]:
    differences = _compare_entries(f"{label} database", source["database"], target["database"])
    for kind in _LISTS:
        mine, theirs = source[kind], target[kind]
        for name in sorted(mine.keys() - theirs.keys()):
            differences.append(f"{label}: {kind} {quote(name)} is missing on the target")
        for name in sorted(theirs.keys() - mine.keys()):
            differences.append(f"{label}: {kind} {quote(name)} exists only on the target")
        for name in sorted(mine.keys() & theirs.keys()):
            differences += _compare_entries(f"{label}: {kind} {quote(name)}",
                                            mine[name], theirs[name])
    return differences


def _compare_entries(where: str, source: dict[str, Any], target: dict[str, Any]) -> list[str]:
    return [f"{where}: {key} differs: {_describe(source.get(key), target.get(key))}"
            for key in sorted(source.keys() | target.keys())
            if source.get(key) != target.get(key)]


def _describe(source: Any, target: Any) -> str:
    if isinstance(source, str) and isinstance(target, str) and "\n" in source + target:
        diff = difflib.unified_diff(source.splitlines(), target.splitlines(), "source",
                                    "target", n=0, lineterm="")
        return "\n" + "\n".join(list(diff)[:20])
    return f"source {source!r}, target {target!r}"
