"""Which full backup a point-in-time restore starts from (drkit.ops.pitr.choose_base), over
manifests in a fake container: no service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from drkit.azure.blobstore import BackupStore
from drkit.azure.catalog import BackupEntry
from drkit.manifest import SIDECAR_SUFFIX, Digest, Manifest
from drkit.ops.pitr import choose_base

STARTED = datetime(2026, 12, 7, 11, 41, 12, 300_000, tzinfo=UTC)


def _store(manifests: dict[str, Manifest]) -> BackupStore:
    def download_blob(name: str) -> SimpleNamespace:
        data = manifests[name.removesuffix(SIDECAR_SUFFIX)].model_dump_json().encode()
        return SimpleNamespace(readall=lambda: data, properties=SimpleNamespace(etag='"1"'))

    return BackupStore(SimpleNamespace(container_name="c", url="https://a/c",  # type: ignore
                                       download_blob=download_blob), "p/", "a01")


def _backup(name: str, database: str, finished: datetime) -> tuple[BackupEntry, Manifest]:
    manifest = Manifest(
        name=name, drkit_version="0.3.0", started_at=STARTED, finished_at=finished,
        duration_seconds=0.5, source={}, databases=[database],
        consistency={"binlog_exact": True,
                     "binlog_snapshot": {"file": "binlog.000009", "position": 4}},
        dump={}, compression={"codec": "gzip"}, compressed=Digest(size=1, sha256="c" * 64),
        sql=Digest(size=1, sha256="s" * 64), tables={}, objects={})
    taken = datetime.strptime(name[len("p/backup-"):][:15], "%Y%m%d-%H%M%S").replace(tzinfo=UTC)
    return BackupEntry(name=name, taken_at=taken, size=1, compression="gzip",
                       databases=[database], has_manifest=True, verified="ok"), manifest


def test_a_base_whose_name_took_the_next_second_is_still_a_base_for_its_own_second():
    """Two backups began in one second (shop's, then blsmall's): blsmall's name took the
    next second, 11:41:13, though it finished at 11:41:12.8. A write in that second (binlog
    times are whole seconds: 11:41:12) is reachable from it; the name's time kept it out."""
    shop = _backup("p/backup-20261207-114112.sql.gz", "shop", STARTED + timedelta(seconds=0.2))
    small = _backup("p/backup-20261207-114113.sql.gz", "blsmall",
                    STARTED + timedelta(seconds=0.5))
    store = _store({entry.name: manifest for entry, manifest in (shop, small)})
    moment = STARTED.replace(microsecond=0)
    entry, _ = choose_base(store, moment, ["blsmall"], [shop[0], small[0]])
    assert entry.name == small[0].name
