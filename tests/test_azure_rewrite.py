"""The Azure Flexible Server rewrites on a dump as MySQL 8's mysqldump writes it."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import SecretStr

from drkit.errors import RestoreFailedError
from drkit.mysql.connection import Server
from drkit.mysql.loader import ParallelLoader
from drkit.stream.lexer import SqlLexer
from drkit.stream.rewrite import Rewriter
from tests import dbtools

FIXTURE = (Path(__file__).parent / "fixtures" / "mysql8_dump.sql").read_bytes()


def rewrite(chunk_size: int = 97, **options) -> tuple[list, Rewriter]:
    splitter, rewriter = SqlLexer(), Rewriter(**options)
    out = []
    for start in range(0, len(FIXTURE), chunk_size):
        for statement in splitter.feed(FIXTURE[start:start + chunk_size]):
            if (rewritten := rewriter.rewrite(statement)) is not None:
                out.append(rewritten)
    out += [s for s in map(rewriter.rewrite, splitter.close()) if s is not None]
    return out, rewriter


def test_splitter_honours_delimiters_and_keeps_rows_whole():
    statements, _ = rewrite(azure=False)
    kinds = [s.kind for s in statements]
    assert kinds.count("insert") == 3
    procedure = next(s.sql for s in statements if b"PROCEDURE `credit`" in s.sql)
    assert procedure.rstrip().endswith(b"END")  # the ;; delimiter is gone, the body whole
    assert b"INSERT INTO ledger VALUES (p_id, p_amount);" in procedure
    accounts = next(s.sql for s in statements if s.kind == "insert" and s.table == "accounts")
    assert b"'\xea\xb9\x80\xeb\xaf\xbc\xec\xa4\x80),(\xf0\x9f\x98\x80'" in accounts


def test_azure_rewrites_what_flexible_server_rejects():
    statements, rewriter = rewrite()
    sql = b"\n".join(s.sql for s in statements)
    assert sql.count(b"DEFINER=") == 1  # only in the row data, which is never changed
    assert b"SQL_LOG_BIN" not in sql.replace(b"ENGINE=MyISAM; SQL_LOG_BIN", b"")
    assert b"GTID_PURGED" not in sql
    assert b") ENGINE=MyISAM" not in sql and b") ENGINE=InnoDB AUTO_INCREMENT=4" in sql
    assert b"intruder" not in sql and "mysql" not in {s.database for s in statements}
    assert b"SQL SECURITY DEFINER" in sql  # only the DEFINER clause goes
    assert dict(rewriter.changes) == {
        "removed SQL_LOG_BIN statements": 3,
        "removed GTID_PURGED statements": 1,
        "converted MyISAM tables to InnoDB": 1,
        "removed DEFINER clauses": 4,
        "skipped statements of system schema mysql": 5,
    }
    # Row data is never touched, even where it looks like a clause.
    rows = next(s.sql for s in statements if s.kind == "insert" and s.table == "accounts")
    assert rows == FIXTURE[FIXTURE.index(b"INSERT INTO `accounts`"):].split(b";\n")[0]


def test_definer_can_become_the_target_admin():
    statements, rewriter = rewrite(definer="admin", admin_user="drkitadmin")
    sql = b"\n".join(s.sql for s in statements if s.kind != "insert")
    assert sql.count(b"DEFINER=`drkitadmin`@`%`") == 4
    assert rewriter.changes["replaced DEFINER clauses"] == 4


def test_rename_changes_only_database_references():
    statements, _ = rewrite(rename={"legacy": "legacy_drill"})
    sql = b"\n".join(s.sql for s in statements)
    assert b"USE `legacy_drill`" in sql and b"`legacy_drill` /*!40100" in sql
    assert b"`legacy`" not in sql
    assert {s.database for s in statements if s.kind == "insert"} == {"legacy_drill"}


@pytest.mark.parametrize("chunk_size", [1, 13, 4096])
def test_chunking_does_not_change_the_statements(chunk_size):
    reference, _ = rewrite(chunk_size=len(FIXTURE))
    statements, _ = rewrite(chunk_size=chunk_size)
    assert [s.sql for s in statements] == [s.sql for s in reference]


def test_case_collisions_are_blockers():
    splitter, rewriter = SqlLexer(), Rewriter()
    dump = (b"USE `app`;\nCREATE TABLE `Orders` (id int);\nCREATE TABLE `orders` (id int);\n")
    for statement in splitter.feed(dump):
        rewriter.rewrite(statement)
    assert rewriter.blockers == ["tables app.Orders and app.orders collide under "
                                 "lower_case_table_names=1 (Azure's setting)"]


def test_rewritten_fixture_loads_into_a_server_without_super(sandbox):
    """The rewritten MySQL 8 dump loads, through drkit's loader, as a user without SUPER."""
    dbtools.query(sandbox, "target", "DROP DATABASE IF EXISTS legacy")
    dbtools.as_root(sandbox, "target", "CREATE OR REPLACE USER 'azureadmin'@'%' IDENTIFIED BY "
                  "'Az-Pass-123'")
    dbtools.as_root(sandbox, "target", "GRANT ALL PRIVILEGES ON `legacy`.* TO 'azureadmin'@'%'")
    statements, _ = rewrite()
    server = dbtools.server(sandbox, "target")
    limited = Server(role="target", host=server.host, port=server.port, user="azureadmin",
                     password=SecretStr("Az-Pass-123"), ssl_ca=server.ssl_ca)
    loader = ParallelLoader(limited, workers=2)
    try:
        for statement in statements:
            # The sandbox's MariaDB stands in for MySQL 8 but lacks its default collation.
            statement.sql = statement.sql.replace(b"utf8mb4_0900_ai_ci", b"utf8mb4_unicode_ci")
            loader.execute(statement)
        loader.finish()
    finally:
        loader.close()
    assert dbtools.query(sandbox, "target", "SELECT COUNT(*), SUM(balance) FROM legacy.accounts") \
        == [(3, Decimal("30.50"))]
    engine = dbtools.query(sandbox, "target", "SELECT ENGINE FROM information_schema.TABLES "
                           "WHERE TABLE_SCHEMA = 'legacy' AND TABLE_NAME = 'accounts'")
    assert engine == [("InnoDB",)]
    assert dbtools.query(sandbox, "target", "SELECT COUNT(*) FROM legacy.ledger") == [(3,)]
    routines = dbtools.query(sandbox, "target", "SELECT DEFINER FROM information_schema.ROUTINES "
                             "WHERE ROUTINE_SCHEMA = 'legacy'")
    assert routines == [("azureadmin@%",)]


def test_without_the_rewrites_the_same_dump_is_rejected(sandbox):
    dbtools.query(sandbox, "target", "DROP DATABASE IF EXISTS legacy")
    dbtools.as_root(sandbox, "target", "CREATE OR REPLACE USER 'azureadmin'@'%' IDENTIFIED BY "
                  "'Az-Pass-123'")
    dbtools.as_root(sandbox, "target", "GRANT ALL PRIVILEGES ON `legacy`.* TO 'azureadmin'@'%'")
    statements, _ = rewrite(azure=False)
    server = dbtools.server(sandbox, "target")
    loader = ParallelLoader(Server(role="target", host=server.host, port=server.port,
                                   user="azureadmin", password=SecretStr("Az-Pass-123"),
                                   ssl_ca=server.ssl_ca), 2)
    with pytest.raises(RestoreFailedError, match="rejected a session statement"):
        try:
            for statement in statements:
                loader.execute(statement)
            loader.finish()
        finally:
            loader.close()
