"""The restore's request and its errors, without a service: an error a restore step adds to
is a new error of the same class (the raised one never changes), its text redacted; the
replay's result keeps the JSON keys records and --json carry."""

from __future__ import annotations

import dataclasses

from drkit.errors import ProofFailedError, SwapFailedError
from drkit.ops.pitr import ReplayResult
from drkit.ops.restore import RestoreRequest, RestoreResult, _with_text
from drkit.redact import MASK, register_secret


def test_an_amended_error_is_a_new_one_of_the_same_class_with_its_details():
    proof = object()
    raised = ProofFailedError("The restore differs.", "Restore again.", proof=proof)
    amended = _with_text(raised, message=f"{raised.message} The restored copy (pit) was dropped.")
    assert amended is not raised and type(amended) is ProofFailedError
    assert amended.proof is proof and amended.exit_code == ProofFailedError.exit_code
    assert str(amended) == "The restore differs. The restored copy (pit) was dropped. " \
                           "Restore again."
    assert (raised.message, raised.fix, str(raised)) == \
        ("The restore differs.", "Restore again.", "The restore differs. Restore again.")


def test_an_amended_errors_new_text_is_redacted():
    register_secret("hunter2-restore-secret")
    raised = SwapFailedError("The swap failed.")
    amended = _with_text(raised, fix="Database hunter2-restore-secret on the target is unchanged.")
    assert amended.fix == f"Database {MASK} on the target is unchanged."
    assert amended.message == "The swap failed." and raised.fix is None


def test_a_request_asks_for_the_latest_backup_proven_under_its_own_names():
    request = RestoreRequest()
    assert (request.backup, request.until, request.databases, request.rename_to,
            request.replace, request.prove) == ("latest", None, None, None, False, True)


def test_the_replay_result_keeps_the_keys_of_the_restore_json():
    replay = ReplayResult(until="2026-11-27T14:03:00+00:00", reached="2026-11-27T14:02:59+00:00",
                          heartbeat=None, transactions=3, events=12, rows=5, skipped_rows=0,
                          replay_seconds=0.5, archive_end={"file": "mysql-bin.000002",
                                                           "size": 400},
                          events_per_second=24)
    result = RestoreResult(backup="backups/backup-20261127-140000.sql.gz", target="t:3306",
                           databases={"shop": "shop"}, compressed_bytes=1, sql_bytes=2,
                           statements=3, seconds=1.0, throughput_mib_s=0.0, replay=replay)
    assert list(result.as_dict()["replay"]) == [
        "until", "reached", "heartbeat", "transactions", "events", "rows", "skipped_rows",
        "replay_seconds", "archive_end", "events_per_second"]
    assert result.as_dict()["replay"] == dataclasses.asdict(replay)
