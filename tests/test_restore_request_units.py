"""The restore's request, without a service; the replay's result keeps the JSON keys records
and --json carry. (An error a restore step adds to is DrkitError.with_context's: tests/
test_errors.py.)"""

from __future__ import annotations

import dataclasses

from drkit.ops.pitr import ReplayResult
from drkit.ops.restore import RestoreRequest, RestoreResult


def test_a_request_asks_for_the_latest_backup_proven_under_its_own_names():
    request = RestoreRequest()
    assert (request.backup, request.until, request.databases, request.rename_to,
            request.replace, request.prove) == ("latest", None, None, None, False, True)


def test_the_replay_result_keeps_the_keys_of_the_restore_json():
    replay = ReplayResult(until="2026-11-27T14:03:00+00:00", reached="2026-11-27T14:02:59+00:00",
                          heartbeat=None, transactions=3, events=12, rows=5, skipped_rows=0,
                          replay_seconds=0.5, archive_end={"file": "mysql-bin.000002",
                                                           "size_bytes": 400},
                          events_per_second=24)
    result = RestoreResult(backup="backups/backup-20261127-140000.sql.gz", target="t:3306",
                           databases={"shop": "shop"}, compressed_bytes=1, sql_bytes=2,
                           statements=3, seconds=1.0, throughput_mib_s=0.0, replay=replay)
    assert list(result.as_dict()["replay"]) == [
        "until", "reached", "heartbeat", "transactions", "events", "rows", "skipped_rows",
        "replay_seconds", "archive_end", "events_per_second", "loaded_rows"]
    assert result.as_dict()["replay"] == dataclasses.asdict(replay)
