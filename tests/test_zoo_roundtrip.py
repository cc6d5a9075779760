"""The schema zoo (tests/zoo.py) through drkit: backup -> verify -> restore -> proof, then the
independent checker (CHECKSUM TABLE, SHOW CREATE of every object) source against target."""

from __future__ import annotations

import contextlib

import pytest

from drkit.azure.catalog import Catalog
from drkit.config import Settings
from drkit.ops.backup import run_backup
from drkit.ops.restore import RestoreRequest, run_restore
from drkit.ops.restorecheck import check_backup
from drkit.ops.verify import verify_backup
from tests import dbtools
from tests.zoo import MIB, ZOO_DATABASES, ZOO_UNICODE, build_zoo, compare_zoo, drop_zoo

BIG_ROW_BYTES = 4 * MIB
COPY = "zoo copy ü `한글`"


@pytest.fixture(scope="module")
def zoo(sandbox):
    build_zoo(lambda database=None: dbtools.connect(sandbox, "source", database),
              big_row_bytes=BIG_ROW_BYTES)
    yield
    for role in ("source", "target"):
        with contextlib.closing(dbtools.connect(sandbox, role)) as connection:
            drop_zoo(connection, [*ZOO_DATABASES, COPY])


@pytest.fixture
def zoo_settings(backup_settings: Settings, zoo) -> Settings:
    backup_settings.source.databases = list(ZOO_DATABASES)
    return backup_settings


def independent_differences(sandbox, databases, rename=None) -> list[str]:
    """The sandbox's target is an Azure target: drkit puts MyISAM tables on InnoDB."""
    with contextlib.closing(dbtools.connect(sandbox, "source")) as source, \
            contextlib.closing(dbtools.connect(sandbox, "target")) as target:
        return compare_zoo(source, target, databases, rename=rename, as_innodb=True)


def test_the_zoo_round_trips_with_zero_differences(sandbox, zoo_settings, store):
    with contextlib.closing(dbtools.connect(sandbox, "target")) as connection:
        drop_zoo(connection)
    backup = run_backup(zoo_settings)
    manifest = backup.manifest
    assert set(manifest.databases) == set(ZOO_DATABASES)
    assert manifest.tables["Zoo_Mixed.keyless"].unordered_digest is not None
    assert manifest.tables["Zoo_Mixed.nullable_unique"].unordered_digest is not None
    verified = verify_backup(store, Catalog(store).select(backup.name))
    assert verified.rows == sum(t.rows for t in manifest.tables.values())
    assert sorted(Catalog(store).select(backup.name).databases) == sorted(ZOO_DATABASES)

    check = check_backup(zoo_settings, RestoreRequest(backup.name))
    assert check.blockers == []
    result = run_restore(zoo_settings, RestoreRequest(backup.name))
    assert result.proof is not None and result.proof.ok, result.proof
    assert independent_differences(sandbox, ZOO_DATABASES) == []


def test_a_unicode_database_restores_under_another_name(sandbox, backup_settings, zoo):
    backup_settings.source.databases = [ZOO_UNICODE]
    backup = run_backup(backup_settings)
    result = run_restore(backup_settings,
                         RestoreRequest(backup.name, rename_to=COPY, replace=True))
    assert result.proof.ok and result.databases == {ZOO_UNICODE: COPY}
    assert independent_differences(sandbox, [ZOO_UNICODE], rename={ZOO_UNICODE: COPY}) == []


def test_the_proof_names_each_object_whose_definition_differs(sandbox, zoo_settings):
    from drkit.errors import ProofFailedError
    from drkit.ops.restorecheck import prove_backup

    backup = run_backup(zoo_settings)
    run_restore(zoo_settings, RestoreRequest(backup.name, replace=True))
    for sql in ("ALTER TABLE `Zoo_Mixed`.`Texts` COMMENT 'changed after the restore'",
                "ALTER TABLE `Zoo_Mixed`.`keyless` ALTER COLUMN `a` SET DEFAULT 7",
                "CREATE OR REPLACE VIEW `Zoo_Mixed`.`busy orders` AS SELECT 1 AS `one`"):
        dbtools.query(sandbox, "target", sql)
    with pytest.raises(ProofFailedError) as failed:
        prove_backup(zoo_settings, RestoreRequest(backup.name))
    found = {(d.kind, d.name) for d in failed.value.proof.differences}
    assert found == {("table definition", "Zoo_Mixed.Texts"),
                     ("table definition", "Zoo_Mixed.keyless"),
                     ("view definition", "Zoo_Mixed.busy orders")}
    texts = next(d for d in failed.value.proof.differences if d.name == "Zoo_Mixed.Texts")
    assert "COMMENT='changed after the restore'" in texts.actual
