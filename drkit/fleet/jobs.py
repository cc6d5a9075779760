"""``drkit fleet run``: a fleet job in this process (Dagster's ``execute_in_process``), one
run per member, ``global_concurrency`` of them at once; the per-source slots
(:mod:`drkit.fleet.limits`) hold each source to its limit whatever runs beside them."""

from __future__ import annotations

import queue
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import dagster as dg

from drkit.fleet.definitions import build_definitions
from drkit.fleet.description import Fleet


@dataclass
class PartitionResult:
    member: str
    ok: bool
    attempts: int
    message: str
    exit_code: int | None = None  # drkit's, of the last attempt (None: a drkit bug)
    run_id: str | None = None  # the audit record of the last attempt
    record_url: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def run_fleet_job(fleet: Fleet, kind: str, members: list[str] | None = None,
                  definitions: dg.Definitions | None = None) -> list[PartitionResult]:
    """Run ``kind``'s job for ``members`` (default: all), in name order of the result.
    Without ``definitions``, only those members' are built (one member's: not 500's)."""
    names = sorted(members or fleet.members)
    job = (definitions or build_definitions(fleet.subset(names))).resolve_job_def(
        f"{kind}_job")
    pending: queue.SimpleQueue[str] = queue.SimpleQueue()
    for name in names:
        pending.put(name)
    results: dict[str, PartitionResult] = {}

    def worker() -> None:
        # An instance per worker thread, made and closed in it (its in-memory SQLite
        # storage belongs to that thread), for every run the thread takes: made once per
        # thread, not once per member.
        with dg.DagsterInstance.ephemeral() as instance:
            while True:
                try:
                    name = pending.get_nowait()
                except queue.Empty:
                    return
                results[name] = _run_partition(job, name, instance)

    workers = min(fleet.fleet.global_concurrency, len(names))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="drkit-fleet") as pool:
        for started in [pool.submit(worker) for _ in range(workers)]:
            started.result()
    return [results[name] for name in names]


def _run_partition(job: dg.JobDefinition, member: str,
                   instance: dg.DagsterInstance) -> PartitionResult:
    result = job.execute_in_process(partition_key=member, raise_on_error=False,
                                    instance=instance)
    events, success = result.all_events, result.success
    attempts = 1 + sum(e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY for e in events)
    metadata = {}
    for event in events:
        if event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            metadata = event.step_materialization_data.materialization.metadata
        elif event.event_type == dg.DagsterEventType.STEP_FAILURE:
            failure = event.step_failure_data.user_failure_data
            metadata = failure.metadata if failure else {}
    message = _text(metadata.get("message")) or ("" if success else _failure(events))
    return PartitionResult(member=member, ok=success, attempts=attempts,
                           message=message, exit_code=_number(metadata.get("exit_code")),
                           run_id=_text(metadata.get("run_id")),
                           record_url=_text(metadata.get("record_url")))


def _text(value: dg.MetadataValue | None) -> str | None:
    return None if value is None else str(value.value)


def _number(value: dg.MetadataValue | None) -> int | None:
    return None if value is None else int(value.value)


def _failure(events: list[dg.DagsterEvent]) -> str:
    """A step's error when it failed without drkit's metadata (a drkit bug)."""
    for event in events:
        if event.event_type == dg.DagsterEventType.STEP_FAILURE and event.step_failure_data:
            error = event.step_failure_data.error
            return error.message.strip() if error else "failed"
    return "failed"
