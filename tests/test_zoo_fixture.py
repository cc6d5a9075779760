"""The schema zoo (tests/zoo.py) on the sandbox: it holds every feature it promises, a copy
made with the system mysqldump | mysql compares equal, and the checker notices a change."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator

import pymysql
import pytest

from drkit.mysql.connection import option_file
from drkit.programs import find_program
from tests import dbtools
from tests.zoo import (
    BIG_TABLE,
    DB_PLACEHOLDER,
    MIB,
    ZOO_DATABASES,
    ZOO_MIXED,
    ZOO_UNICODE,
    build_zoo,
    compare_zoo,
    drop_zoo,
    normalise_sql,
    quote,
    zoo_fingerprint,
)

BIG_ROW_BYTES = 2 * MIB
RENAMED = {ZOO_UNICODE: "zoo copy ü `한글`"}  # a backtick too, for the quoting
DUMP_OPTIONS = ["--single-transaction", "--routines", "--triggers", "--events", "--hex-blob",
                "--default-character-set=utf8mb4", "--max-allowed-packet=1G"]
# The client strips comments from what it sends unless told not to: without --comments a
# procedure's "-- ..." lines vanish from its body, and the zoo checker says so.
LOAD_OPTIONS = ["--comments", "--max-allowed-packet=1G"]


@contextlib.contextmanager
def connected(sandbox, role: str) -> Iterator[pymysql.Connection]:
    with contextlib.closing(dbtools.connect(sandbox, role)) as connection:
        yield connection


@pytest.fixture(scope="module")
def zoo(sandbox) -> Iterator[None]:
    """The zoo on the source; afterwards no zoo database is left on either server."""
    build_zoo(lambda database=None: dbtools.connect(sandbox, "source", database),
              big_row_bytes=BIG_ROW_BYTES)
    yield
    for role in ("source", "target"):
        with connected(sandbox, role) as connection:
            drop_zoo(connection, [*ZOO_DATABASES, *RENAMED.values()])


def client_copy(sandbox, databases: list[str], as_name: str | None = None) -> None:
    """``mysqldump | mysql`` from source to target; ``as_name`` loads one database under
    another name (dumped without --databases, so the dump names no database)."""
    names = databases if as_name else ["--databases", *databases]
    with option_file(dbtools.server(sandbox, "source")) as source, \
            dbtools.root_options(sandbox, "target") as target:
        dump = subprocess.Popen([find_program("mysqldump"), f"--defaults-file={source}",
                                 *DUMP_OPTIONS, *names], stdout=subprocess.PIPE,
                                pass_fds=(source.fd,))
        load = subprocess.run([find_program("mysql"), f"--defaults-file={target}",
                               *LOAD_OPTIONS, *([as_name] if as_name else [])],
                              stdin=dump.stdout, capture_output=True, text=True,
                              pass_fds=(target.fd,))
        dump.stdout.close()
        assert dump.wait() == 0
        assert load.returncode == 0, load.stderr


@pytest.fixture
def copied(sandbox, zoo) -> None:
    """A fresh copy of the whole zoo on the target."""
    with connected(sandbox, "target") as connection:
        drop_zoo(connection)
    client_copy(sandbox, list(ZOO_DATABASES))


def differences(sandbox, rename: dict[str, str] | None = None,
                databases=ZOO_DATABASES) -> list[str]:
    with connected(sandbox, "source") as source, connected(sandbox, "target") as target:
        return compare_zoo(source, target, databases, rename=rename)


def create_texts(fingerprint: dict) -> str:
    return "\n".join(t["Create Table"] for t in fingerprint["table"].values())


def test_the_zoo_holds_every_feature(sandbox, zoo):
    with connected(sandbox, "source") as connection:
        prints = {db: zoo_fingerprint(connection, db) for db in ZOO_DATABASES}
    for database, fingerprint in prints.items():
        tables = create_texts(fingerprint)
        for feature in ("VIRTUAL", "STORED", "INVISIBLE", "PARTITION BY RANGE",
                        "PARTITION BY HASH", "ENGINE=MyISAM", "SPATIAL KEY", "point NOT NULL",
                        "CHECK (json_valid(", "bit(10)", "enum('sad','ok','happy')",
                        "set('red','green','blue')", "decimal(65,30)", "datetime(6)",
                        "timestamp(6)", "binary(8)", "varbinary(64)", "`sql_log_bin_off`",
                        "`odd``name`", "REFERENCES `employee`", "REFERENCES `fk_b`",
                        "REFERENCES `fk_a`", "REFERENCES `order`", "CHARACTER SET latin1"):
            assert feature in tables, (database, feature)
        assert {"order", "order items", "keyless", "nullable_unique", "Texts"} \
            <= fingerprint["table"].keys()
        assert fingerprint["table"]["keyless"]["rows"] == 6
        assert "KEY" not in fingerprint["table"]["keyless"]["Create Table"]
        assert {t["on_table"] for t in fingerprint["trigger"].values()} == {"order items"}
        assert fingerprint["trigger"]["order items bi2"]["action_order"] == 2
        assert set(fingerprint["view"]) == {"order_lines", "busy orders"}
        assert "`order_lines`" in fingerprint["view"]["busy orders"]["Create View"]
        body = fingerprint["procedure"]["count items"]["Create Procedure"]
        assert "-- a line comment with ;;" in body and "'DEFINER=`x`@`y`'" in body
        assert body.startswith("CREATE PROCEDURE")  # the header's DEFINER normalised away
        assert set(fingerprint["function"]) == {"order total"}
        assert set(fingerprint["event"]) == {"zoo purge"}
        assert DB_PLACEHOLDER in fingerprint["database"]["Create Database"]
    assert BIG_TABLE in prints[ZOO_MIXED]["table"] and BIG_TABLE not in prints[ZOO_UNICODE]["table"]


def test_the_zoo_data_is_awkward(sandbox, zoo):
    def one(sql: str, database: str = ZOO_MIXED):
        return dbtools.query(sandbox, "source", sql, database)[0]

    assert one(f"SELECT LENGTH(b), LOCATE(0x000A, b) FROM {BIG_TABLE}") == (BIG_ROW_BYTES, 1)
    assert one("SELECT COUNT(*) FROM nullable_unique WHERE code IS NULL") == (4,)
    assert one("SELECT COUNT(*) FROM keyless WHERE a = 1 AND b = 'dup'") == (3,)
    assert one("SELECT HEX(vbin) FROM types WHERE id = 1")[0].startswith("000A0D")
    assert one("SELECT qty, sku FROM `order items` WHERE order_id = 1 ORDER BY id LIMIT 1, 1") \
        == (1, "CD-2")  # both BEFORE INSERT triggers fired, in order
    assert one("SELECT COUNT(*) FROM Texts WHERE s IN ('a),(b', '한글 텍스트', '')"
               " OR s IS NULL OR s LIKE 'emoji %'") == (5,)
    assert one("SELECT `order total`(1)", ZOO_UNICODE) == (3,)


def test_a_client_copy_compares_equal(sandbox, copied):
    assert differences(sandbox) == []


def test_the_checker_reports_changes(sandbox, copied):
    target = f"{quote(ZOO_MIXED)}."
    dbtools.query(sandbox, "target", f"UPDATE {target}Texts SET s = 'changed' WHERE id = 1")
    dbtools.query(sandbox, "target", f"DROP TRIGGER {target}`order items ai`")
    dbtools.query(sandbox, "target", f"ALTER TABLE {target}generated_cols ALTER secret"
                  " SET DEFAULT 'other'")
    found = differences(sandbox)
    # the target folds table names (lower_case_table_names=1, as Flexible Server)
    assert any("table `texts`: checksum differs" in d for d in found), found
    assert any("table `texts`: digest differs" in d for d in found), found
    assert any("trigger `order items ai` is missing on the target" in d for d in found), found
    assert any("table `generated_cols`: Create Table differs" in d for d in found), found
    assert all(d.startswith(quote(ZOO_MIXED)) for d in found), found


def test_a_copy_under_another_name_compares_equal(sandbox, zoo):
    copy = RENAMED[ZOO_UNICODE]
    dbtools.query(sandbox, "target", f"DROP DATABASE IF EXISTS {quote(copy)}")
    dbtools.query(sandbox, "target", f"CREATE DATABASE {quote(copy)} "
                  "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    client_copy(sandbox, [ZOO_UNICODE], as_name=copy)
    assert differences(sandbox, rename=RENAMED, databases=[ZOO_UNICODE]) == []
    assert differences(sandbox, databases=["zoo missing"]) == \
        ["database `zoo missing` is missing on the target"]


def test_normalising_keeps_bodies_and_drops_what_a_restore_may_change():
    source = ("CREATE DEFINER=`ad``min`@`%` PROCEDURE `p`()\n"
              "BEGIN SELECT 'DEFINER=`x`@`y`' FROM `Zoo``db`.t; END")
    assert normalise_sql(source, "Zoo`db") == (
        "CREATE PROCEDURE `p`()\nBEGIN SELECT 'DEFINER=`x`@`y`' FROM `<database>`.t; END")
    view = "CREATE ALGORITHM=UNDEFINED DEFINER=`a`@`b` SQL SECURITY DEFINER VIEW `v` AS x"
    assert normalise_sql(view, "d") == \
        "CREATE ALGORITHM=UNDEFINED SQL SECURITY DEFINER VIEW `v` AS x"
    table = "CREATE TABLE `t` (\n  `id` int NOT NULL AUTO_INCREMENT\n) ENGINE=InnoDB" \
            " AUTO_INCREMENT=42 DEFAULT CHARSET=utf8mb4"
    assert normalise_sql(table, "d") == table.replace(" AUTO_INCREMENT=42", "")
