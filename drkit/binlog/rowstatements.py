"""Row events as statements, gathered in a :class:`StatementBatch`.

Consecutive inserts into one table go as one multi-row INSERT (or, where the replay reads
them as LOAD DATA text, :func:`load`, as one LOAD DATA: :mod:`drkit.binlog.batch`), deletes
by primary key as one DELETE ... IN. An UPDATE event's rows, by primary key, go many in one
statement too: a row a statement each costs the target a statement's parse and execution
per row, several times what ``mysqlbinlog | mysql`` takes for a big UPDATE. Rows whose key
stays, in a table with no other unique key and no ON UPDATE column, whose event has whole
before images, go as one INSERT of their keys and new values that updates the rows it
finds::

    INSERT INTO t (`id`, `at`) VALUES (7, 'x'), (8, 'y') ON DUPLICATE KEY UPDATE
    `at` = VALUES(`at`)

(the cheapest for the target to run: bench/binlog_bench.py); where the after images are
whole too, with every stored column of each, as a replica applies a whole image, and no
comparison of the images column by column (a row whose images are the same is passed
over: the source did not change it). Its count of rows
(CLIENT.FOUND_ROWS) says which were not there as the source had them: a row found and
changed counts 2, one the target lacked (now inserted) or already held as changed counts 1,
and such a row stops the restore (``skipped_rows``), which drops the copy. Where another
unique key could take the insert, or the images leave that count open, the rows are joined
with a derived table of their keys and new values instead::

    UPDATE t AS drkit_target JOIN (SELECT NULL AS k0, NULL AS c2 UNION ALL SELECT 7, 'x'
    UNION ALL ...) AS drkit_rows ON drkit_target.`id` = drkit_rows.k0
    SET drkit_target.`at` = drkit_rows.c2

(the first row, all NULL, names the columns and matches nothing; the server gives each column
the type of the values under it); its count of rows found says which were missing, as a
statement per row's does. Both only where that is the same change: an integer key (compared
as numbers, never through a collation), no foreign key to the table itself, no column of a
unique key changed (rows changed together would meet each other's values in an order the
source did not have), and a row changed twice goes in two statements, in order
(:meth:`StatementBatch.multirow`'s keys). Other rows go as a statement each: by primary key
where the table has one, else by every stored column (``<=>``, one row).
"""

from __future__ import annotations

import functools
import itertools
import operator
from collections.abc import Callable
from dataclasses import dataclass, field

from drkit.binlog.batch import LOAD_NAME, LoadStatement, RowsStatement, StatementBatch
from drkit.binlog.rowevents import LOAD_FIELDS, RowsEvent
from drkit.binlog.targettable import TargetTable


def insert(batch: StatementBatch, target: TargetTable, event: RowsEvent) -> None:
    """Rows of consecutive inserts into one table go as one multi-row INSERT: a row event
    holds a few rows (about 8 KB), a round trip each would be the cost."""
    batch.multirow(_insert_statement(target, event), _insert_rows(target, event))


def load(batch: StatementBatch, target: TargetTable, event: RowsEvent,
         numbers: tuple[bool, ...], literal: Callable[[], RowsEvent]) -> None:
    """Rows of consecutive inserts into one table as LOAD DATA text: ``event`` read in the
    "load" form (:data:`drkit.binlog.rowevents.LOAD_FIELDS`), ``numbers`` (of
    :func:`drkit.binlog.rowevents.load_columns`) saying which columns go through a variable
    as numbers; ``literal`` reads the event again as literals, for the INSERT the rows go
    as where they are not loaded (:class:`StatementBatch`)."""
    stored = [c for c in event.present if target.stored[c]]
    # Fields of generated columns are read into a variable left unused.
    fields = b", ".join(b"@drkit_%d" % c if numbers[c] or not target.stored[c] else
                        target.quoted[c] for c in event.present)
    numeric = b", ".join(b"%s = CAST(@drkit_%d AS UNSIGNED)" % (target.quoted[c], c)
                         for c in stored if numbers[c])
    statement = LoadStatement(
        f"LOAD DATA LOCAL INFILE '{LOAD_NAME}' INTO TABLE {target.name} ".encode() +
        LOAD_FIELDS + b" (" + fields + b")" + (b" SET " + numeric if numeric else b""),
        _insert_statement(target, event))
    batch.load(statement, [b"\t".join(image) + b"\n" for image, _ in event.rows],
               lambda: _insert_rows(target, literal()))


def _insert_statement(target: TargetTable, event: RowsEvent) -> RowsStatement:
    names = b", ".join(target.quoted[c] for c in event.present if target.stored[c])
    return RowsStatement(f"INSERT INTO {target.name} (".encode() + names + b") VALUES ")


def _insert_rows(target: TargetTable, event: RowsEvent) -> list[bytes]:
    values = _picker([i for i, c in enumerate(event.present) if target.stored[c]])
    return [b"(" + b", ".join(values(image)) + b")" for image, _ in event.rows]


def delete(batch: StatementBatch, target: TargetTable, event: RowsEvent) -> None:
    """By primary key, consecutive deletes from one table as one DELETE ... IN (in the key's
    order: not where the table refers to itself, as a tree does)."""
    if target.key and not target.self_referencing and \
            all(c in event.present and target.stored[c] for c in target.key):
        at = [event.present.index(c) for c in target.key]
        names = b", ".join(target.quoted[c] for c in target.key)
        batch.multirow(
            RowsStatement(f"DELETE FROM {target.name} WHERE (".encode() + names +
                          b") IN (", b")", found_each=1),
            [b"(" + b", ".join([image[i] for i in at]) + b")" for image, _ in event.rows])
        return
    for image, _ in event.rows:  # no key: one row with every stored value
        before = dict(zip(event.present, image, strict=True))
        batch.add(f"DELETE FROM {target.name} WHERE ".encode() + _where(target, before) +
                  b" LIMIT 1", expected=1)


def update(batch: StatementBatch, target: TargetTable, event: RowsEvent) -> None:
    """Rows by primary key many in one statement where that is the same change (see the
    module's doc), others a statement each."""
    by_key = _UpdateByKey.of(target, event)
    if by_key is not None and by_key.upsert and event.present == event.after_present and \
            any(target.stored[c] and c not in target.key for c in event.present):
        _upsert_whole_images(batch, target, event, by_key)
        return
    # Each stored column of the after image, with its place in the before image (None: not
    # there) and whether the server would change it by itself (ON UPDATE): such a column is
    # given as it was on the source, changed or not.
    at = {c: i for i, c in enumerate(event.present)}
    columns = [(c, at.get(c), target.on_update[c]) for c in event.after_present
               if target.stored[c]]
    stored = [target.stored[c] for c in event.after_present]
    for image, after in event.rows:
        assert after is not None
        changed = [(c, value) for (c, i, always), value in
                   zip(columns, itertools.compress(after, stored), strict=True)
                   if always or i is None or image[i] != value]
        if changed and (by_key is None or not by_key.add(batch, image, changed)):
            _update_alone(batch, target, event, image, changed)
    if by_key is not None:
        by_key.send(batch)


def _upsert_whole_images(batch: StatementBatch, target: TargetTable, event: RowsEvent,
                         by_key: _UpdateByKey) -> None:
    """Rows with whole before and after images, as a replica applies them: each after
    image's stored values as a row of an INSERT ... ON DUPLICATE KEY UPDATE of every stored
    column (the same rows as setting only the changed ones, without comparing the images
    column by column). A row the source left as it was is passed over (found so, it would
    count as missing); one whose key changed goes alone, in order."""
    stored = [i for i, c in enumerate(event.present) if target.stored[c]]
    others = [i for i in stored if event.present[i] not in target.key]
    values, key_of = _picker(others), _picker(list(by_key.key_at))
    statement = _upsert(target, tuple(event.present[i] for i in others))
    for image, after in event.rows:
        assert after is not None
        if image == after:
            continue
        key = key_of(image)
        if key != key_of(after):
            by_key.send(batch)
            _update_alone(batch, target, event, image,
                          [(event.present[i], after[i]) for i in stored if image[i] != after[i]])
            continue
        by_key.gather(batch, statement, b", ".join(key), b", ".join(values(after)))
    by_key.send(batch)


def _picker(places: list[int]) -> Callable[[tuple[bytes, ...]], tuple[bytes, ...]]:
    """The values at ``places`` of an image, as a tuple."""
    return operator.itemgetter(*places) if len(places) > 1 else \
        (lambda image: (image[places[0]],))


def _update_alone(batch: StatementBatch, target: TargetTable, event: RowsEvent,
                  image: tuple[bytes, ...], changed: list[tuple[int, bytes]]) -> None:
    """One row's change as a statement of its own, found by its key (or its whole image)."""
    before = dict(zip(event.present, image, strict=True))
    changes = b", ".join(target.quoted[c] + b" = " + value for c, value in changed)
    batch.add(f"UPDATE {target.name} SET ".encode() + changes + b" WHERE " +
              _where(target, before) + b" LIMIT 1", expected=1)


def _where(target: TargetTable, before: dict[int, bytes]) -> bytes:
    columns = [c for c in (target.key or before) if target.stored[c] and c in before]
    return b" AND ".join(target.quoted[c] + b" <=> " + before[c] for c in columns)


# Rows in one UPDATE ... JOIN at most: one SELECT each for the server to parse, nested as
# deep in MySQL's parse tree.
ROWS_A_STATEMENT = 1000


@dataclass
class _UpdateByKey:
    """An UPDATE event's rows that go many in one statement, gathered in runs of the same
    change (the same columns changed) for :meth:`StatementBatch.multirow`."""

    target: TargetTable
    key_at: tuple[int, ...]  # the key's places in the before image
    apart: frozenset[int]  # columns whose change sends a row alone: the key's, a unique key's
    upsert: bool  # as INSERT ... ON DUPLICATE KEY UPDATE, not UPDATE ... JOIN (module doc)
    _statement: RowsStatement | None = None  # of the run gathered
    _rows: list[bytes] = field(default_factory=list)
    _keys: list[bytes] = field(default_factory=list)
    _statements: dict[tuple[int, ...], RowsStatement] = field(default_factory=dict)

    @classmethod
    def of(cls, target: TargetTable, event: RowsEvent) -> _UpdateByKey | None:
        """For ``event``'s rows, or None where each must go as a statement of its own."""
        if not target.integer_key or target.self_referencing or \
                not all(c in event.present and target.stored[c] for c in target.key):
            return None
        apart = frozenset(c for c, unique in enumerate(target.unique)
                          if unique or c in target.key)
        # Each row's listed values then all differ from its before image: found as the
        # source had it, the row counts 2.
        upsert = not any(target.unique) and not any(target.on_update) and \
            all(c in event.present for c, stored in enumerate(target.stored) if stored)
        return cls(target, tuple(event.present.index(c) for c in target.key), apart, upsert)

    def add(self, batch: StatementBatch, image: tuple[bytes, ...],
            changed: list[tuple[int, bytes]]) -> bool:
        """Gathers a row changing ``changed`` (column, new value), found by its before
        ``image``'s key; False (what was gathered sent first) where it must go alone."""
        columns, values = zip(*changed, strict=True)
        if not self.apart.isdisjoint(columns):
            self.send(batch)
            return False
        statement = self._statements.get(columns)
        if statement is None:
            statement = self._statements[columns] = (_upsert if self.upsert else _join)(
                self.target, columns)
        self.gather(batch, statement, b", ".join([image[i] for i in self.key_at]),
                    b", ".join(values))
        return True

    def gather(self, batch: StatementBatch, statement: RowsStatement, key: bytes,
               values: bytes) -> None:
        """A row of ``statement``: its ``key`` and new ``values``, as their literals."""
        if statement is not self._statement:
            self.send(batch)
            self._statement = statement
        self._rows.append(key + b", " + values)
        self._keys.append(key)

    def send(self, batch: StatementBatch) -> None:
        """What was gathered, to the batch (after what went there before)."""
        if self._rows:
            assert self._statement is not None
            batch.multirow(self._statement, self._rows, keys=self._keys)
        self._statement, self._rows, self._keys = None, [], []


# Made once per table and set of columns: the rows of one statement are gathered as long as
# the statement is the same object.
@functools.lru_cache(maxsize=256)
def _upsert(target: TargetTable, columns: tuple[int, ...]) -> RowsStatement:
    names = b", ".join(target.quoted[c] for c in (*target.key, *columns))
    changes = b", ".join(b"%s = VALUES(%s)" % (target.quoted[c], target.quoted[c])
                         for c in columns)
    return RowsStatement(
        f"INSERT INTO {target.name} (".encode() + names + b") VALUES (",
        b") ON DUPLICATE KEY UPDATE " + changes, separator=b"), (", found_each=2)


@functools.lru_cache(maxsize=256)
def _join(target: TargetTable, columns: tuple[int, ...]) -> RowsStatement:
    names = [b"NULL AS k%d" % i for i in range(len(target.key))] + \
        [b"NULL AS c%d" % c for c in columns]
    on = b" AND ".join(b"drkit_target.%s = drkit_rows.k%d" % (target.quoted[c], i)
                       for i, c in enumerate(target.key))
    changes = b", ".join(b"drkit_target.%s = drkit_rows.c%d" % (target.quoted[c], c)
                         for c in columns)
    return RowsStatement(
        f"UPDATE {target.name} AS drkit_target JOIN (SELECT ".encode() +
        b", ".join(names) + b" UNION ALL SELECT ",
        b") AS drkit_rows ON " + on + b" SET " + changes,
        separator=b" UNION ALL SELECT ", found_each=1, most=ROWS_A_STATEMENT)
