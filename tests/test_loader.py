"""The parallel loader on the sandbox target: lock waits and deadlocks are retried."""

from __future__ import annotations

import contextlib
import logging
import threading

from drkit.mysql.loader import ParallelLoader
from drkit.stream.lexer import statements
from tests import dbtools


def test_a_lock_wait_timeout_is_retried_then_loads(sandbox, caplog):
    dbtools.query(sandbox, "target", "DROP DATABASE IF EXISTS loader_retry")
    dbtools.query(sandbox, "target", "CREATE DATABASE loader_retry")
    dbtools.query(sandbox, "target", "CREATE TABLE loader_retry.t (id INT PRIMARY KEY)")
    with contextlib.closing(dbtools.connect(sandbox, "target", "loader_retry")) as blocker:
        blocker.autocommit(False)
        with blocker.cursor() as cursor:  # holds the row lock the restore's INSERT needs
            cursor.execute("INSERT INTO t VALUES (1)")
        release = threading.Timer(1.5, blocker.rollback)
        dbtools.as_root(sandbox, "target", "SET GLOBAL innodb_lock_wait_timeout = 1")
        loader = ParallelLoader(dbtools.server(sandbox, "target"), workers=2)
        try:
            release.start()
            with caplog.at_level(logging.WARNING, logger="drkit"):
                for statement in statements(b"USE `loader_retry`;\n"
                                            b"INSERT INTO `t` VALUES (1),(2);\n"):
                    loader.execute(statement)
                loader.finish()
        finally:
            loader.close()
            release.join()
            dbtools.as_root(sandbox, "target", "SET GLOBAL innodb_lock_wait_timeout = 50")
    assert dbtools.query(sandbox, "target", "SELECT COUNT(*) FROM loader_retry.t") == [(2,)]
    assert any("met ERROR 1205" in r.getMessage() and "retrying" in r.getMessage()
               for r in caplog.records)
    dbtools.query(sandbox, "target", "DROP DATABASE loader_retry")
