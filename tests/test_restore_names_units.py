"""Which databases a restore loads and under which names; the statements and manifest of the
others left out (no service needed)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from drkit.errors import ParameterError, RestoreBlockedError
from drkit.manifest import Digest, Manifest, TableEntry
from drkit.ops.restorenames import restore_names
from drkit.stream.lexer import SqlLexer
from drkit.stream.rewrite import Rewriter


def _manifest(databases: list[str], definitions: dict[str, str] | None = None) -> Manifest:
    now = datetime(2026, 12, 7, tzinfo=UTC)
    table = TableEntry(rows=1, sha256="0" * 64)
    return Manifest(
        name="backups/backup-20261207-000000.sql.gz", drkit_version="t", started_at=now,
        finished_at=now, duration_seconds=0, source={}, databases=databases, consistency={},
        dump={}, compression={"codec": "gzip"}, compressed=Digest(size=1, sha256=""),
        sql=Digest(size=1, sha256=""),
        tables={f"{db}.t": table for db in databases} | {"a.b.t": table},
        objects={"views": [f"{db}.v" for db in databases],
                 "routines": [f"{db}.procedure p" for db in databases]},
        definitions=definitions or {f"view {db}.v": "CREATE VIEW v AS SELECT 1"
                                    for db in databases})


def test_a_refusal_names_a_few_databases_never_hundreds():
    manifest = _manifest([f"db{n:03}" for n in range(200)])
    with pytest.raises(RestoreBlockedError) as refused:
        restore_names(manifest, "copy")
    assert "db000, db001, db002, db003, db004 and 195 more" in refused.value.message
    assert "db199" not in refused.value.message and "--database" in refused.value.fix
    with pytest.raises(ParameterError) as unknown:
        restore_names(manifest, "copy", ["nope"])
    assert "holds no database nope" in unknown.value.message and "195 more" in \
        unknown.value.message


def test_one_database_of_several_is_renamed_alone():
    manifest = _manifest(["shop", "a", "a.b"])
    assert restore_names(manifest, "copy", ["a"]) == {"a": "copy"}
    assert restore_names(manifest, None, ["a.b"]) == {"a.b": "a.b"}
    assert restore_names(manifest, None) == {"shop": "shop", "a": "a", "a.b": "a.b"}


def test_a_self_naming_object_of_another_database_does_not_block_the_one_restored():
    manifest = _manifest(["shop", "crm"], {
        "view shop.v": "CREATE VIEW v AS SELECT * FROM `<database>`.`t`",
        "view crm.v": "CREATE VIEW v AS SELECT 1"})
    assert restore_names(manifest, "crm_r", ["crm"]) == {"crm": "crm_r"}
    with pytest.raises(RestoreBlockedError):
        restore_names(manifest, "shop_r", ["shop"])


def test_the_manifest_narrowed_to_a_database_keeps_only_its_names():
    """Names holding dots belong to the longest database they start with."""
    narrowed = _manifest(["shop", "a", "a.b"]).only(["a"])
    assert narrowed.databases == ["a"]
    assert list(narrowed.tables) == ["a.t"]  # not a.b's table "a.b.t"
    assert narrowed.objects == {"views": ["a.v"], "routines": ["a.procedure p"]}
    assert list(narrowed.definitions) == ["view a.v"]


DUMP = b"""/*!40101 SET NAMES utf8mb4 */;
CREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop` /*!40100 DEFAULT CHARACTER SET utf8mb4 */;
USE `shop`;
CREATE TABLE `t` (`id` int NOT NULL, PRIMARY KEY (`id`));
INSERT INTO `t` VALUES (1);
CREATE DATABASE /*!32312 IF NOT EXISTS*/ `crm` /*!40100 DEFAULT CHARACTER SET utf8mb4 */;
USE `crm`;
/*!40101 SET @saved_cs_client     = @@character_set_client */;
CREATE TABLE `c` (`id` int NOT NULL, PRIMARY KEY (`id`));
INSERT INTO `c` VALUES (2);
/*!50003 CREATE*/ /*!50017 DEFINER=`admin`@`%`*/ /*!50003 TRIGGER `ct` BEFORE INSERT ON `c`
FOR EACH ROW SET NEW.id = NEW.id */;
/*!40101 SET character_set_client = @saved_cs_client */;
"""


def test_the_statements_of_databases_not_restored_are_skipped_the_sessions_kept():
    lexer = SqlLexer()
    statements = [*lexer.feed(DUMP), *lexer.close()]
    rewriter = Rewriter(azure=True, rename={"crm": "crm_r"}, only=frozenset({"crm"}))
    kept = [s for s in map(rewriter.rewrite, statements) if s is not None]
    sql = b"\n".join(bytes(s.sql) for s in kept)
    assert b"`shop`" not in sql and b"VALUES (1)" not in sql
    assert b"USE `crm_r`" in sql and b"VALUES (2)" in sql and b"TRIGGER `ct`" in sql
    assert b"SET NAMES" in sql and b"@saved_cs_client" in sql
    assert rewriter.changes["skipped statements of databases not restored"] == 4


@pytest.mark.parametrize("name", ["drkit_restore_x", "DRKIT_REPLACED_1"])
def test_as_never_takes_a_name_drkit_gives_its_own_scratch_databases(name):
    with pytest.raises(ParameterError, match="scratch databases"):
        restore_names(_manifest(["shop"]), name)


@pytest.mark.parametrize("name", ["drkit_standby", "DRKIT_Standby"])
def test_as_never_takes_the_standbys_own_schema(name):
    """Restored there (with --replace), it dropped the standby's position: the standby was
    retired without a word."""
    with pytest.raises(ParameterError, match="keeps a standby's position"):
        restore_names(_manifest(["shop"]), name)
