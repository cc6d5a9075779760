"""The failover, step by step, each change behind an approval gate, safe to rerun.

assess -> decide -> maintenance page on -> DR server up -> restore + prove -> how to connect
-> (maintenance page off). Where the target is a standby fit to be promoted, the restore is
its catch-up to the archive's newest event, the time proven, and its promotion
(:mod:`drkit.ops.failover_standby`); one that is not, or whose catch-up fails, is passed
over, saying why. Each step checks the world before acting, so a rerun after a
failure skips what is done: a Ready server is not started again, and a copy on the target is
kept only where drkit knows it lacks nothing: restored by an earlier run to the end the
archive still has, or proven equal to the base when no archive can take it further. A
proven copy of the base alone is replaced by base + replay; a copy drkit cannot account for
is refused unless replacing it is consented to. The restore uses the binlog archive whenever
it holds events past the base, whatever ``binlog.enabled`` says. Every step lands on a
timeline (and in the run's results, step by step) with its timestamps; the record always
carries the time the data reaches and the seconds lost.
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drkit.azure import maintenance
from drkit.azure.blobstore import BackupStore
from drkit.azure.catalog import BackupEntry, Catalog, load_manifest
from drkit.binlog.position import Position
from drkit.binlog.records import Archive
from drkit.config import Settings, references
from drkit.console import Environment, log_event
from drkit.errors import (
    BackupNotFoundError,
    BinlogError,
    DrkitError,
    LockHeldError,
    NotApprovedError,
    ParameterError,
    ProofFailedError,
    RestoreBlockedError,
)
from drkit.manifest import Manifest
from drkit.mysql.connection import Server, target_server
from drkit.ops.assess import Assessment, assess
from drkit.ops.binlog_verify import refuse_broken
from drkit.ops.failover_standby import (
    StandbyChoice,
    catch_up_and_prove,
    examine,
    mark_promoted,
)
from drkit.ops.pitr import archive_end, reached_by, resolve
from drkit.ops.restore import (
    RestoreRequest,
    RestoreResult,
    azure_rewrites,
    objects_in,
    prove_restore,
    run_restore,
)
from drkit.redact import redact

CONFIRMATION = "FAILOVER"


@dataclass
class Step:
    name: str
    started_at: str
    ended_at: str
    duration_seconds: float | None  # None: skipped
    outcome: str


@dataclass
class PointInTime:
    """How far the failover's restore will take the data: the archive's newest event
    (``until``), or the base backup alone and why."""

    until: datetime | None = None
    why_not: str = ""
    archive_end: dict[str, Any] | None = None  # where the archive ends (pitr.archive_end)

    def describe(self) -> str:
        return (f"then the binlog archive up to {self.until:%H:%M:%S} UTC" if self.until
                else f"base only ({self.why_not})")


class Failover:
    """The failover's steps, in the notebook's order; each a method. ``backup``: the one to
    restore (by default the newest verified, then the binlog archive); ``replace``: consent
    to replace a copy on the target drkit cannot account for."""

    def __init__(self, settings: Settings, *, approve: bool = False, backup: str =
                 "latest-verified", replace: bool = False,
                 results_path: str | None = None) -> None:
        self.settings = settings
        # Consent is exactly True: papermill run by hand passes "-p approve maybe" as a
        # string, which must not approve anything.
        self.approve = _consent("approve", approve)
        self.replace = _consent("replace", replace)
        self.backup = backup
        self.results_path = Path(results_path) if results_path else None
        self.env = Environment()
        self.started = datetime.now(UTC)
        self.timeline: list[Step] = []
        self.gates: list[dict[str, Any]] = []  # every answer, refusals included
        self.status = "in progress"
        self.restored: dict[str, Any] = {}
        self._rto: float | None = None
        self.not_promoted = ""  # why the standby's catch-up failed, if it did
        self._resume()
        # The RTO counts from the incident's start, also across a kernel restart.
        self._clock = time.monotonic() - (datetime.now(UTC) - self.started).total_seconds()

    def _resume(self) -> None:
        """A hand run's results so far (its kernel restarted, the notebook run again from
        the top): the incident's start, timeline and answers carry on, none is lost."""
        if not (self.results_path and self.results_path.exists()):
            return
        with contextlib.suppress(ValueError, KeyError, TypeError):
            earlier = json.loads(self.results_path.read_text())
            self.started = datetime.fromisoformat(earlier["started_at"])
            self.timeline = [Step(**step) for step in earlier.get("timeline", [])]
            self.gates = list(earlier.get("gates", []))

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
            skipped = result["outcome"].startswith("skipped")  # shown as skipped, not timed
            self.timeline.append(Step(name, started.isoformat(timespec="seconds"),
                                      datetime.now(UTC).isoformat(timespec="seconds"),
                                      None if skipped else round(time.monotonic() - clock, 2),
                                      result["outcome"]))
            log_event("failover.step", f"{name}: {result['outcome']}", step=name,
                      outcome=result["outcome"])
            self._save()

    def _save(self) -> None:
        if self.results_path:
            self.results_path.write_text(json.dumps(self.results(), default=str))

    def results(self) -> dict[str, Any]:
        # A run that kept an earlier run's copy restored nothing: its time is no RTO.
        restored = not self.restored.get("reached_by", "").startswith(("kept", "base only, kept"))
        return {"status": self.status, "started_at": self.started.isoformat(),
                "rto_seconds": self._rto if self.status == "failed over" and restored
                else None,
                "timeline": [asdict(s) for s in self.timeline], "gates": self.gates,
                **self.restored}

    def gate(self, action: str) -> str:
        """Approval for a change: a typed confirmation, or approve=True when unattended.
        Every answer goes into the results, a refused one too, with who gave it."""
        if self.approve:
            return self._answered(action, "approved by parameter")
        try:
            answer = input(f"Type {CONFIRMATION} to {action}: ")
        except Exception:  # papermill has no stdin (StdinNotImplementedError), nor cron
            self._answered(action, "not asked: no one at the notebook")
            raise NotApprovedError(
                f"Not approved: {action}. Nothing was changed by this step.",
                "Run it interactively and confirm, or unattended with -p approve=True.",
            ) from None
        if answer.strip() != CONFIRMATION:
            self._answered(action, "refused", answer)
            raise NotApprovedError(f"{action}: not approved: rerun this cell to try again "
                                   f"(type {CONFIRMATION} to confirm). Nothing was changed.")
        return self._answered(action, "confirmed", answer)

    def _answered(self, action: str, answer: str, typed: str | None = None) -> str:
        self.gates.append({"action": action, "answer": answer,
                           "typed": None if typed is None else redact(typed[:80]),
                           "os_user": getpass.getuser(),
                           "at": datetime.now(UTC).isoformat(timespec="seconds")})
        self._save()
        return answer

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
                    "If failing over is still right, rerun with -p override_no_go=true.")
            step["outcome"] = self.gate("start the failover") + (
                " (NO-GO overridden)" if self.assessment.decision != "GO" else "")

    def maintenance_on(self, message: str) -> str:
        with self._step("maintenance page on") as step:
            was_up = maintenance.is_up(self.settings)
            approval = self.gate("put up the maintenance page")
            url = maintenance.publish(self.settings, message, self.started)
            step["outcome"] = f"{'updated' if was_up else 'published'} {url} ({approval})"
        return url

    def bring_up_server(self, firewall_ip: str | None = None) -> str:
        """The Flexible Server Ready (and sized for the restore); ``firewall_ip``: the
        address the restore connects from, let through its firewall."""
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
            if firewall_ip:
                server.allow_ip("drkit-restore-host", firewall_ip)
                notes.append(f"firewall allows {firewall_ip}")
            step["outcome"] = ", ".join(notes)
            return step["outcome"]

    def restore(self) -> dict[str, Any]:
        """The standby caught up and promoted where the target has one fit for it; else the
        base backup (then the binlog archive where it can take the data further) restored
        and proven on the target, unless a copy drkit can account for is there."""
        with self._step("restore and prove") as step:
            store = BackupStore.from_settings(self.settings)
            entry = Catalog(store).select(self.backup)
            manifest = load_manifest(store, entry.name, digests=True)
            server = target_server(self.settings)
            standby = self._standby(server, manifest.databases)
            if standby.at and standby.at.promoted:  # the primary since an earlier run
                step["outcome"] = self._kept_promoted(standby.at)
                return self.restored
            if standby.promotable and (promoted := self._promote(standby, server)):
                step["outcome"] = promoted
                return self.restored
            # A standby that is not promoted is drkit's own copy, known unfit: replaced.
            owned = set(standby.at.databases.values()) if standby.at else set()
            present = [db for db, count in objects_in(server, manifest.databases).items()
                       if count]
            plan = self._point_in_time(manifest.databases)
            replacing = bool(present) and (self.replace or set(present) <= owned)
            if present and not replacing and (
                    done := self._kept(entry, manifest, server, present, plan)):
                step["outcome"] = done
                return self.restored
            approval = self.gate(f"restore {entry.name} into {server.address}, "
                                 f"{plan.describe()}"
                                 + (" replacing what is there" if present else "")
                                 + (" (the standby that is not promoted)"
                                    if replacing and not self.replace else ""))
            # Over the standby's databases, the restore retires it (retire_standby).
            result = self._restore(entry, manifest, plan, replace=bool(present))
            reached = self._restored(result, entry, manifest)
            step["outcome"] = (self._passed_over(standby)
                               + f"restored {result.backup} in {result.seconds:.0f} s and "
                                 "proven"
                               + (f", then the binlog to {reached:%H:%M:%S}" if result.replay
                                  else f" (base only: {plan.why_not})")
                               + f"; data lost: the last "
                                 f"{self.restored['data_loss_seconds']:.0f} s before the "
                                 f"failover began ({approval})")
            return self.restored

    def _standby(self, server: Server, databases: list[str]) -> StandbyChoice:
        """The target's standby, promotable only for the default backup choice (another
        backup asked for is restored as asked)."""
        standby = examine(self.settings, server, databases)
        if standby.promotable and self.backup != "latest-verified":
            return StandbyChoice(standby.at, f"backup {self.backup} was asked for",
                                 standby.lag_seconds)
        return standby

    def _promote(self, standby: StandbyChoice, server: Server) -> str | None:
        """The standby caught up to the archive's newest event, the time reached proven,
        and promoted: the step's outcome. None when its catch-up failed: it is not promoted
        (the restore of the backup and the archive follows, saying why)."""
        assert standby.at is not None
        lag = "-" if standby.lag_seconds is None else f"{standby.lag_seconds:.0f} s"
        approval = self.gate(f"catch up standby {standby.names()} on {server.address} "
                             f"({lag} behind the archive's newest event) and promote it")
        try:
            promotion = catch_up_and_prove(self.settings, server)
        except LockHeldError as error:  # not the standby's fault: a follower is running
            raise error.with_context(
                "The failover cannot catch the standby up while it runs.",
                fix="Stop the follower (its systemd unit or cron entry), then rerun this "
                    "step.") from error
        except DrkitError as error:
            self.not_promoted = f"its catch-up failed: {error.message}"
            log_event("failover.standby_not_promoted", f"Standby {standby.names()} not "
                      f"promoted: {self.not_promoted}", why=self.not_promoted)
            return None
        mark_promoted(server, f"the failover that began at "
                              f"{self.started:%Y-%m-%d %H:%M:%S} UTC")
        done = promotion.caught_up
        self._record(standby.at.base_backup, list(standby.at.databases.values()),
                     promotion.reached,
                     reached_by=f"standby caught up ({done.transactions} transactions) and "
                                f"promoted; time proven by its {promotion.proven_by}",
                     restore_seconds=done.catch_up_seconds,
                     standby={"databases": standby.at.databases, "file": done.file,
                              "offset": done.offset, "lag_seconds": standby.lag_seconds,
                              "transactions": done.transactions, "rows": done.rows})
        return (f"standby {standby.names()} caught up in {done.catch_up_seconds:.0f} s "
                f"({done.transactions} transactions) and promoted; data reaches "
                f"{promotion.reached:%H:%M:%S} by its {promotion.proven_by}; data lost: the "
                f"last {self.restored['data_loss_seconds']:.0f} s before the failover began "
                f"({approval})")

    def _kept_promoted(self, at: Position) -> str:
        """A rerun after the standby was promoted: it is the restored copy, kept."""
        reached = at.heartbeat or at.last_event_at or self.started
        self._record(at.base_backup, list(at.databases.values()), reached,
                     reached_by="kept: the standby promoted by an earlier run")
        return (f"skipped: standby {', '.join(at.databases.values())} was promoted by "
                f"{at.promoted}")

    def _passed_over(self, standby: StandbyChoice) -> str:
        """Why the target's standby was not promoted, for the outcome and the record."""
        why = self.not_promoted or standby.why_not
        if standby.at is None or not why:
            return ""
        self.restored["standby_not_promoted"] = why
        log_event("failover.standby_not_promoted", f"Standby {standby.names()} not promoted: "
                  f"{why}; the backup and the archive are restored instead", why=why)
        return f"standby {standby.names()} not promoted ({why}); "

    def _restore(self, entry: BackupEntry, manifest: Manifest, plan: PointInTime,
                 replace: bool) -> RestoreResult:
        """The restore itself, marked as under way first (a rerun knows partial data there
        is its own)."""
        self._mark({"backup": entry.name, "status": "loading"})
        if plan.until:  # the base the archive's newest event needs, then the archive
            request = RestoreRequest(until="latest", databases=manifest.databases,
                                     replace=replace, retire_standby=True)
        else:  # the target becomes the primary: a standby not promoted there is over
            request = RestoreRequest(backup=entry.name, replace=replace, retire_standby=True)
        return run_restore(self.settings, request, self.env)

    def _restored(self, result: RestoreResult, entry: BackupEntry,
                  manifest: Manifest) -> datetime:
        """Marks and records the restore done; the time its data reaches."""
        replay = result.replay
        reached = datetime.fromisoformat(replay.reached) if replay else entry.taken_at
        self._mark({"backup": result.backup, "status": "proven",
                    "data_reaches": reached.isoformat(),
                    "archive_end": replay.archive_end if replay else None})
        self._record(result.backup, manifest.databases, reached,
                     reached_by=reached_by(replay),
                     rows=result.proof.rows_checked if result.proof else None,
                     restore_seconds=result.seconds,
                     compressed_bytes=result.compressed_bytes,
                     replay=asdict(replay) if replay else None)
        return reached

    def _kept(self, entry: BackupEntry, manifest: Manifest, server: Server, present: list[str],
              plan: PointInTime) -> str | None:
        """The outcome when the target's copy is kept as it is, None when it is to be
        replaced by base + replay; a copy drkit cannot account for is refused. A copy is
        kept only where drkit knows it lacks nothing the archive holds."""
        marker = self._marker()
        proven = marker.get("status") == "proven" and marker.get("data_reaches")
        if proven and (marker.get("archive_end") == plan.archive_end if plan.until
                       else marker.get("backup") == entry.name):
            reached = datetime.fromisoformat(marker["data_reaches"])
            self._record(marker["backup"], manifest.databases, reached,
                         reached_by="kept: restored and proven by an earlier run")
            return (f"skipped: restored by an earlier run up to {reached:%Y-%m-%d %H:%M:%S}, "
                    + ("and the archive holds nothing after it" if plan.until
                       else f"base only ({plan.why_not})"))
        try:
            proof = prove_restore(manifest, server, {db: db for db in manifest.databases},
                                  azure_rewrites(self.settings))
        except ProofFailedError:
            earlier = marker.get("data_reaches") if proven else None
            raise RestoreBlockedError(
                f"The target already holds {', '.join(present)}, "
                + (f"restored by an earlier run up to {earlier}, and the archive holds events "
                   "after it that drkit cannot apply to it in place; "
                   if earlier else f"and it does not match backup {entry.name}; ")
                + "nothing was restored over it.",
                "Check what that data is (anything written to it since would be lost); rerun "
                "with -p replace=True to replace it by the backup and the archive.") from None
        if plan.until:
            return None  # the base exactly: replaced by base + replay, nothing of it lost
        self._record(entry.name, manifest.databases, entry.taken_at, rows=proof.rows_checked,
                     reached_by="base only, kept: already restored and proven")
        return f"skipped: {entry.name} already restored and proven (base only: {plan.why_not})"

    def _record(self, backup: str, databases: list[str], reached: datetime,
                **details: Any) -> None:
        """What the run restored, and always the time its data reaches and the loss."""
        self.restored = {"backup": backup, "databases": databases, "proof": "passed",
                         "data_reaches": reached.isoformat(), "reached_by": "base only",
                         "data_loss_seconds": round((self.started - reached).total_seconds(), 1),
                         "replay": None, **details}

    def _point_in_time(self, databases: list[str]) -> PointInTime:
        """Base + replay to the archive's newest event wherever an archive exists (whatever
        binlog.enabled says), for the default backup choice; else base only, and why."""
        if self.backup != "latest-verified":
            return PointInTime(why_not=f"backup {self.backup} was asked for")
        try:
            listed = functools.cache(Archive(BackupStore.from_settings(  # listed once
                self.settings, prefix=self.settings.binlog.prefix)).listed)
            moment, _, base = resolve(self.settings, "latest", databases, listed)
            # Checked here, before the gate: a broken archive is said there, not after it.
            refuse_broken(self.settings, base, moment, listed())
        except (BinlogError, BackupNotFoundError, RestoreBlockedError) as error:
            return PointInTime(why_not=f"binlog archive not used: {error.message}")
        return PointInTime(until=moment, archive_end=archive_end(listed().files))

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

    def end_incident(self, maintenance_off: bool = False) -> str:
        """The page down once the applications work: unattended, as ``maintenance_off``
        says; by hand, a typed FAILOVER takes it down and Enter leaves it up for now (drkit
        maintenance off --yes later), both recorded."""
        maintenance_off = _consent("maintenance_off", maintenance_off)
        with self._step("maintenance page off") as step:
            if self.approve and not maintenance_off:
                step["outcome"] = "left up (maintenance_off=False)"
            elif not self.approve and not self._asked_to_take_the_page_down():
                step["outcome"] = "left up for now: drkit maintenance off --yes takes it down"
            else:
                removed = maintenance.remove(self.settings)
                step["outcome"] = "removed" if removed else "was not up"
            return step["outcome"]

    def _asked_to_take_the_page_down(self) -> bool:
        """A person's answer: FAILOVER takes the page down, Enter leaves it up, anything
        else is no answer (NotApprovedError: rerun the cell)."""
        action = "take the maintenance page down (Enter leaves it up)"
        try:
            answer = input(f"Type {CONFIRMATION} to {action}: ")
        except Exception:  # no one at the notebook: nothing to take down on their behalf
            self._answered(action, "not asked: no one at the notebook")
            return False
        if not answer.strip():
            self._answered(action, "left up", answer)
            return False
        if answer.strip() != CONFIRMATION:
            self._answered(action, "refused", answer)
            raise NotApprovedError(f"{action}: not understood: rerun this cell and type "
                                   f"{CONFIRMATION}, or press Enter. Nothing was changed.")
        self._answered(action, "confirmed", answer)
        return True

    def headline(self) -> str:
        """The run in one line: its RTO (or that it restored nothing) and the data's time."""
        results = self.results()
        rto = (f"RTO {results['rto_seconds']:.0f} s" if results["rto_seconds"] is not None
               else "nothing restored by this run, so no RTO")
        reach = (f"; data reaches {self.restored['data_reaches']} "
                 f"({self.restored['reached_by']})" if self.restored else "")
        return f"{self.status.capitalize()}: {rto}{reach}"

    def finish(self) -> dict[str, Any]:
        """The failover done: only once a restore was proven on the target (cells run on
        after a refused gate do not make one)."""
        if not self.restored:
            raise NotApprovedError("The failover is not done: nothing was restored and "
                                   "proven on the target (a step before was not approved or "
                                   "failed).", "Rerun the steps from the first that did not "
                                   "complete.")
        self.status = "failed over"
        self._rto = round(time.monotonic() - self._clock, 1)  # the end of the incident after
        self._save()  # it is no part of the RTO
        return self.results()


def _consent(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ParameterError(f"Parameter {name} must be true or false, not {value!r}; "
                             "nothing was changed.", f"Pass -p {name}=true to consent.")
    return value
