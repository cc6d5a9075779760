"""drkit: keep a MySQL database recoverable when a whole cloud region dies.

The package is layered; each layer imports only the ones above it in this list
(``tests/test_layering.py`` checks it from the imports):

- top-level modules, used by everything: ``exitstatus`` (every exit code by name),
  ``errors``, ``config``, ``secrets``, ``console``, ``redact``, ``units``, ``programs``,
  ``manifest`` (the backup's format), ``checks``, ``interrupts`` (SIGTERM/SIGINT as
  exceptions);
- ``stream``: pure byte stages (scanning, codecs, statements, rewrites);
- ``mysql``, ``azure``, ``aws``: one adapter per outside system, none importing another;
- ``binlog``: the binary log's engine (protocol reader, decoders, replayer, archive format);
- ``ops``: the operations (backup, verify, restore, prune, drill, assess, failover);
- ``runbooks``: definitions, notebooks, runner, audit records, schedule, report;
- ``health``: ``drkit doctor`` and the policy printer;
- ``fleet``: many configs as one fleet on Dagster (the only layer importing dagster, and
  only in ``fleet.definitions`` and ``fleet.jobs``);
- ``sandbox``: the local estate (beside ``ops``, for tests and demos);
- ``cli``: the command line, imported by nothing.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("drkit")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
