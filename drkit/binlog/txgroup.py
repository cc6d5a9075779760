"""Source transactions committed on the target several at a time, and never half of one.

A commit is an fsync on the target, and the copy stands at no point in time before the
replay ends (a failed replay drops it): so whole source transactions are committed
together, up to ``GROUP_BYTES`` of statements. A savepoint after each marks where the next
one begins; one the archive holds only in part is undone alone, back to it. The source's
own savepoints are renamed for the transaction they belong to: never drkit's, nor one of
an earlier transaction of the group. Statements, savepoints and commits all go through the
replay's :class:`StatementBatch`, in order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from drkit.binlog.batch import StatementBatch
from drkit.binlog.worker import ConnectionWorker
from drkit.failpoints import failpoint

# Source transactions are committed together until this much was sent: fewer fsyncs.
GROUP_BYTES = 16 * 1024 * 1024
_SAVEPOINT = b"drkit_transaction_end"


class TransactionGroup:
    def __init__(self, batch: StatementBatch, worker: ConnectionWorker,
                 mark: Callable[[], bytes] | None = None) -> None:
        self._batch, self._worker = batch, worker
        # A statement run at each source transaction's end, before its SAVEPOINT or COMMIT:
        # committed with it, never without it (a standby's position, drkit.ops.standby).
        self._mark = mark
        self._open = False  # a source transaction has begun and not ended
        self._begun_at = 0  # bytes gathered when it began
        self._savepoint = False  # _SAVEPOINT marks the last one ended, in the open group
        self._group_start = 0  # bytes gathered when the open group began
        self._number = 0  # of the source transaction, for its savepoints' names

    def begin(self) -> None:
        """A source transaction begins; one the archive did not end is undone first (a
        second begin with nothing gathered, as MySQL's GTID event then BEGIN, is none)."""
        if self._open and self._batch.gathered > self._begun_at:
            self.undo_open()
        self._open, self._begun_at = True, self._batch.gathered
        self._number += 1

    def source_savepoint(self, verb: bytes, name: str) -> bytes:
        """The source transaction's SAVEPOINT / RELEASE SAVEPOINT / ROLLBACK TO ``name``,
        under a name of this transaction's own (of fixed length: a source name may already
        be as long as an identifier can be)."""
        digest = hashlib.sha256(name.lower().encode()).hexdigest()[:16]  # case as the server
        return b" ".join(verb.split()) + f" drkit_source_{self._number}_{digest}".encode()

    def end(self) -> None:
        """A source transaction ends: the group is committed once large enough, else the
        savepoint marks where the next one begins; in the same round trip as its rows."""
        self._open = False
        if self._mark:
            self._batch.add(self._mark(), expected=1)
        self._savepoint = self._batch.gathered - self._group_start < GROUP_BYTES
        self._batch.add(b"SAVEPOINT " + _SAVEPOINT if self._savepoint else b"COMMIT",
                        expected=0)
        self._batch.flush()
        if not self._savepoint:
            self._group_start = self._batch.gathered
            failpoint("replay.group_commit")  # the COMMIT sent, perhaps not yet done

    def ended_by_statement(self) -> None:
        """A statement that commits by itself (DDL) came, replayed or passed over: the
        source transaction before it, if any, has ended."""
        self._open = False

    def before_ddl(self) -> None:
        """DDL is about to run (and commit, implicitly, what was sent before it)."""
        self._open = False
        self._batch.flush()
        self._savepoint, self._group_start = False, self._batch.gathered

    def undo_open(self) -> None:
        """Undoes the open source transaction alone: what of it was gathered is dropped,
        what was sent rolled back to where the one before it ended."""
        self._batch.discard()
        self._open = False
        undo = b"ROLLBACK TO SAVEPOINT " + _SAVEPOINT if self._savepoint else b"ROLLBACK"
        self._worker.submit(lambda cursor: cursor.execute(undo))

    def finish(self) -> None:
        """The replay ends: a transaction the archive did not end is undone, the rest
        committed."""
        if self._open:
            self.undo_open()
        self._worker.submit(lambda cursor: cursor.connection.commit())
