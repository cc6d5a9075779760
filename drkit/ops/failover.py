"""The failover, step by step, each change behind an approval gate, safe to rerun.

assess -> decide -> maintenance page on -> DR server up -> restore + prove -> how to connect
-> (maintenance page off). Each step checks the world before acting, so a rerun after a
failure skips what is done: a Ready server is not started again, and a database that is
already restored and proven against the manifest is not restored twice. Every step lands on
a timeline (and in the run's results, step by step) with its timestamps.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drkit.azure import maintenance
from drkit.azure.blobstore import BackupStore
from drkit.azure.catalog import Catalog, load_manifest
from drkit.config import Settings, references
from drkit.console import Environment, log_event
from drkit.errors import (
    BackupNotFoundError,
    BinlogArchiveError,
    BinlogGapError,
    NotApprovedError,
    ParameterError,
    ProofFailedError,
    RestoreBlockedError,
)
from drkit.mysql.connection import target_server
from drkit.ops.assess import Assessment, assess
from drkit.ops.pitr import resolve, restore_until
from drkit.ops.restore import azure_rewrites, objects_in, prove_restore, restore_backup

CONFIRMATION = "FAILOVER"


@dataclass
class Step:
    name: str
    started_at: str
    ended_at: str
    duration_seconds: float
    outcome: str


class Failover:
    def __init__(self, settings: Settings, *, approve: bool = False, backup: str =
                 "latest-verified", firewall_ip: str | None = None, replace: bool = False,
                 results_path: str | None = None, env: Environment | None = None) -> None:
        self.settings = settings
        # Consent is exactly True: papermill run by hand passes "-p approve maybe" as a
        # string, which must not approve anything.
        self.approve = _consent("approve", approve)
        self.replace = _consent("replace", replace)
        self.backup = backup
        self.firewall_ip = firewall_ip
        self.results_path = Path(results_path) if results_path else None
        self.env = env or Environment()
        self.started = datetime.now(UTC)
        self._clock = time.monotonic()
        self.timeline: list[Step] = []
        self.status = "in progress"
        self.restored: dict[str, Any] = {}

    # -- bookkeeping -------------------------------------------------------------------------
    @contextlib.contextmanager
    def _step(self, name: str) -> Iterator[dict[str, str]]:
        started, clock = datetime.now(UTC), time.monotonic()
        result = {"outcome": "done"}
        try:
            yield result
        except NotApprovedError:
            result["outcome"] = "not approved"
            self.status = "not approved"
            raise
        except BaseException as exc:
            result["outcome"] = f"failed: {exc}"
            self.status = f"failed at {name}"
            raise
        finally:
            self.timeline.append(Step(name, started.isoformat(timespec="seconds"),
                                      datetime.now(UTC).isoformat(timespec="seconds"),
                                      round(time.monotonic() - clock, 2), result["outcome"]))
            log_event("failover.step", f"{name}: {result['outcome']}", step=name,
                      outcome=result["outcome"])
            self._save()

    def _save(self) -> None:
        if self.results_path:
            self.results_path.write_text(json.dumps(self.results(), default=str))

    def results(self) -> dict[str, Any]:
        return {"status": self.status, "started_at": self.started.isoformat(),
                "rto_seconds": round(time.monotonic() - self._clock, 1)
                if self.status == "failed over" else None,
                "timeline": [asdict(s) for s in self.timeline], **self.restored}

    def gate(self, action: str) -> str:
        """Approval for a change: a typed confirmation, or approve=True when unattended."""
        if self.approve:
            return "approved by parameter"
        try:
            answer = input(f"Type {CONFIRMATION} to {action}: ")
        except Exception:  # papermill has no stdin (StdinNotImplementedError), nor cron
            raise NotApprovedError(
                f"Not approved: {action}. Nothing was changed by this step.",
                "Run it interactively and confirm, or unattended with -p approve=True.",
            ) from None
        if answer.strip() != CONFIRMATION:
            raise NotApprovedError(f"{action}: not approved: rerun this cell to try again "
                                   f"(type {CONFIRMATION} to confirm). Nothing was changed.")
        return "confirmed"

    # -- steps -------------------------------------------------------------------------------
    def assess(self) -> Assessment:
        with self._step("assess") as step:
            assessment = assess(self.settings)
            step["outcome"] = f"{assessment.decision}: {assessment.reason}"
        self.assessment = assessment
        return assessment

    def decide(self, override_no_go: bool = False) -> None:
        override_no_go = _consent("override_no_go", override_no_go)
        with self._step("decide") as step:
            if self.assessment.decision != "GO" and not override_no_go:
                raise NotApprovedError(
                    f"The assessment says NO-GO ({self.assessment.reason}); nothing was changed.",
                    "If failing over is still right, rerun with -p override_no_go=True.")
            step["outcome"] = self.gate("start the failover") + (
                " (NO-GO overridden)" if self.assessment.decision != "GO" else "")

    def maintenance_on(self, message: str) -> str:
        with self._step("maintenance page on") as step:
            was_up = maintenance.is_up(self.settings)
            approval = self.gate("put up the maintenance page")
            url = maintenance.publish(self.settings, message, self.started)
            step["outcome"] = f"{'updated' if was_up else 'published'} {url} ({approval})"
        return url

    def bring_up_server(self) -> str:
        with self._step("DR server up") as step:
            if not self.settings.azure.flexible_server:
                step["outcome"] = "skipped: no Flexible Server configured; the target is used as is"
                return step["outcome"]
            from drkit.azure.flexserver import FlexibleServer

            server = FlexibleServer(self.settings)
            state = server.state()
            notes = []
            if state != "Ready":
                notes.append(self.gate(f"start Flexible Server {server.name} (now {state})"))
                server.start()
                notes.append("started")
            else:
                notes.append("already Ready")
            if self.settings.azure.restore_sku or self.settings.azure.restore_storage_gb:
                notes.append("scaled up" if server.scale_for_restore() else "size already set")
            if self.firewall_ip:
                server.allow_ip("drkit-restore-host", self.firewall_ip)
                notes.append(f"firewall allows {self.firewall_ip}")
            step["outcome"] = ", ".join(notes)
            return step["outcome"]

    def restore(self) -> dict[str, Any]:
        with self._step("restore and prove") as step:
            store = BackupStore.from_settings(self.settings)
            entry = Catalog(store).select(self.backup)
            manifest = load_manifest(store, entry.name)
            server = target_server(self.settings)
            renames = {db: db for db in manifest.databases}
            present = [db for db, count in objects_in(server, manifest.databases).items()
                       if count]
            ours = self._marker().get("status") == "loading"  # our own interrupted restore
            marker = self._marker()
            if present and marker.get("status") == "proven" and marker.get("data_reaches") \
                    and not self.replace:
                # A point-in-time restore of an earlier run: its data no longer equals the
                # base's manifest, so its own record says it is done.
                step["outcome"] = (f"skipped: restored by an earlier run up to "
                                   f"{marker['data_reaches']}")
                self.restored = {**marker, "databases": manifest.databases, "proof": "passed"}
                return self.restored
            if present and not (self.replace or ours):
                try:
                    proof = prove_restore(manifest, server, renames,
                                          azure_rewrites(self.settings))
                except ProofFailedError:
                    raise RestoreBlockedError(
                        f"The target already holds {', '.join(present)}, and it does not match "
                        f"backup {entry.name}; nothing was restored over it.",
                        "Check what that data is; rerun with -p replace=True to replace it.",
                    ) from None
                step["outcome"] = f"skipped: {entry.name} already restored and proven"
                self.restored = {"backup": entry.name, "databases": manifest.databases,
                                 "proof": "passed", "rows": proof.rows_checked}
                return self.restored
            until, why_not = self._point_in_time()
            approval = self.gate(f"restore {entry.name} into {server.address}"
                                 + (" and the binlog archive up to its newest event"
                                    if until else "")
                                 + (" replacing what is there" if present else ""))
            self._mark({"backup": entry.name, "status": "loading"})
            if until:
                result = restore_until(self.settings, "latest", self.env, replace=bool(present))
            else:
                result = restore_backup(self.settings, entry.name, self.env,
                                        replace=bool(present))
            reached = datetime.fromisoformat(result.replay["reached"]) if result.replay \
                else entry.taken_at
            self._mark({"backup": result.backup, "status": "proven",
                        "data_reaches": reached.isoformat() if result.replay else None})
            self.restored = {"backup": result.backup, "databases": manifest.databases,
                             "proof": "passed",
                             "rows": result.proof.rows_checked if result.proof else None,
                             "restore_seconds": result.seconds,
                             "compressed_bytes": result.compressed_bytes,
                             "data_reaches": reached.isoformat(),
                             "data_loss_seconds": round(
                                 (self.started - reached).total_seconds(), 1),
                             "replay": result.replay}
            step["outcome"] = (f"restored {result.backup} in {result.seconds:.0f} s and proven"
                               + (f", then the binlog to {reached:%H:%M:%S}" if until else
                                  f" ({why_not})" if why_not else "")
                               + f"; data lost: the last "
                                 f"{self.restored['data_loss_seconds']:.0f} s before the "
                                 f"failover began"
                               + (", replacing an interrupted restore" if ours and present
                                  else "") + f" ({approval})")
            return self.restored

    def _point_in_time(self) -> tuple[bool, str]:
        """Whether to restore to the binlog archive's newest event, and why not if not: the
        default backup choice and an archive that can take the restore that far."""
        if self.backup != "latest-verified" or not self.settings.binlog.enabled:
            return False, ""
        try:
            resolve(self.settings, "latest")
        except (BinlogArchiveError, BinlogGapError, BackupNotFoundError) as error:
            return False, f"binlog archive not used: {error.message}"
        return True, ""

    def _marker_path(self) -> Path:
        target = self.settings.target
        return (self.settings.backup.state_dir.expanduser() / "failover" /
                f"restore-{target.host}-{target.port}.json")

    def _marker(self) -> dict[str, Any]:
        path = self._marker_path()
        return json.loads(path.read_text()) if path.exists() else {}

    def _mark(self, state: dict[str, Any]) -> None:
        """Remember a restore in progress, so a rerun knows partial data there is its own."""
        path = self._marker_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**state, "at": datetime.now(UTC).isoformat()}))

    def connection_info(self) -> dict[str, Any]:
        target = self.settings.target
        return {"host": target.host, "port": target.port,
                "databases": ", ".join(self.restored.get("databases", [])) or "-",
                "user": target.user,
                "password": "from " + " or ".join(references(target.password)),
                "tls": "required (Azure Flexible Server)" if target.kind == "azure" else "-"}

    def maintenance_off(self) -> None:
        with self._step("maintenance page off") as step:
            approval = self.gate("take the maintenance page down")
            removed = maintenance.remove(self.settings)
            step["outcome"] = f"{'removed' if removed else 'was not up'} ({approval})"

    def finish(self) -> dict[str, Any]:
        self.status = "failed over"
        self._save()
        return self.results()


def _consent(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ParameterError(f"Parameter {name} must be true or false, not {value!r}; "
                             "nothing was changed.", f"Pass -p {name}=true to consent.")
    return value
