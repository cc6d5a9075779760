"""The manifest of a backup: what it contains and how it was made, to prove restores against.

Stored twice: in full as a JSON sidecar ``<blob>.manifest.json`` beside the backup, and as a
summary in the blob's metadata (Azure caps metadata at 8 KiB, too small for every table).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote, unquote

from pydantic import BaseModel, field_validator

FORMAT = "drkit-manifest/1"
SIDECAR_SUFFIX = ".manifest.json"


class TableEntry(BaseModel):
    rows: int
    sha256: str  # the rows in dump order (drkit.stream.dumpscan)
    # Tables without a reproducible row order: the order-free digest a proof compares.
    unordered_digest: str | None = None
    engine: str | None = None


class Digest(BaseModel):
    size: int
    sha256: str


class Manifest(BaseModel):
    format: Literal["drkit-manifest/1"] = FORMAT
    name: str
    drkit_version: str
    started_at: datetime
    finished_at: datetime
    duration_seconds: float
    source: dict[str, Any]
    databases: list[str]
    consistency: dict[str, Any]
    dump: dict[str, Any]
    compression: dict[str, Any]
    compressed: Digest
    sql: Digest
    tables: dict[str, TableEntry]
    objects: dict[str, list[str]]
    # "table db.t" / "view db.v" / ... -> its CREATE text (drkit.stream.schema); empty in
    # manifests of drkit before 0.2, whose proofs compare rows and object names only.
    definitions: dict[str, str] = {}
    # Named time zones the dump sets (events and routines keep the zone they were made in);
    # a target must have them in its time-zone tables before a restore runs them.
    time_zones: list[str] = []
    # An encrypted backup (its name ends in .age): {"format": "age", "recipients": [...]},
    # the public keys it opens with; "compressed" is then the age file's size and sha256.
    encryption: dict[str, Any] = {}

    @field_validator("consistency")
    @classmethod
    def _binlog_coordinates(cls, consistency: dict[str, Any]) -> dict[str, Any]:
        # Untyped but for the coordinates a point-in-time restore, the standby and prune
        # start from: a manifest rewritten without them (the backup host's SAS can write it)
        # is damaged (33), not an internal error where they are read.
        for key in ("binlog_before", "binlog_after", "binlog_snapshot"):
            at = consistency.get(key)
            unavailable = isinstance(at, dict) and at.get("file") is at.get("position") is None
            if at is not None and not unavailable and not _coordinates(at):
                raise ValueError(f"consistency.{key} is not binlog coordinates")
        if consistency.get("binlog_exact") and not _coordinates(
                consistency.get("binlog_snapshot")):
            raise ValueError("consistency.binlog_exact without binlog_snapshot coordinates")
        return consistency

    def only(self, databases: list[str]) -> Manifest:
        """This manifest narrowed to ``databases``: what a restore of them is proven against."""
        if set(databases) >= set(self.databases):
            return self

        def kept(qualified: str) -> bool:  # "db.t", "db.procedure p"
            # The longest database the name starts with: names may hold dots.
            owner = max((d for d in self.databases if qualified.startswith(f"{d}.")),
                        key=len, default=None)
            return owner in databases

        return self.model_copy(update={
            "databases": [d for d in self.databases if d in databases],
            "tables": {k: v for k, v in self.tables.items() if kept(k)},
            "objects": {kind: [n for n in names if kept(n)]
                        for kind, names in self.objects.items()},
            # "view db.v": the kind, a space, the qualified name
            "definitions": {k: v for k, v in self.definitions.items()
                            if kept(k.partition(" ")[2])}})

    @property
    def sidecar_name(self) -> str:
        return self.name + SIDECAR_SUFFIX

    def metadata(self) -> dict[str, str]:
        """The summary kept on the blob itself (metadata travels in HTTP headers: ASCII)."""
        return {
            "drkit_manifest": self.sidecar_name.rsplit("/", 1)[-1],
            "drkit_version": self.drkit_version,
            "databases": encode_names(self.databases),
            "compression": self.compression["codec"],
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "size": str(self.compressed.size),
            "sha256": self.compressed.sha256,
            "sql_size": str(self.sql.size),
            "sql_sha256": self.sql.sha256,
            "tables": str(len(self.tables)),
            "rows": str(sum(t.rows for t in self.tables.values())),
        }


def _coordinates(at: Any) -> bool:
    """Whether ``at`` is a position in a binary log as a backup records it."""
    return isinstance(at, dict) and isinstance(at.get("file"), str) and \
        type(at.get("position")) is int


def encode_names(names: list[str]) -> str:
    """Database names for blob metadata: UTF-8, percent-encoded, comma-separated."""
    return ",".join(quote(name, safe="") for name in names)


def decode_names(value: str) -> list[str]:
    return [unquote(name) for name in value.split(",") if name]


def binlog_coordinates(snapshot: dict[str, Any]) -> str:
    """``binlog.000001:1234``: where in the source's binary log a backup's snapshot is, as
    a person reads it (the GTID set, long, stays in the manifest)."""
    return f"{snapshot['file']}:{snapshot['position']}"
