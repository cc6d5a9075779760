"""Point-in-time recovery's engine: the binary log from the wire to the target.

- ``protocol``: the replication protocol reader (``COM_BINLOG_DUMP`` over a pymysql
  connection) and the heartbeat it writes on the source;
- ``framing``: a binlog file's events cut from its bytes, in pieces of any size;
- ``events``, ``rowevents``, ``jsonbinary``: the decoders, pure bytes in, values out, and
  ``values``, the readers they share (packed integers, binary DECIMALs);
- ``replay``, ``batch``, ``txgroup``, ``worker``, ``targettable``, ``triggers``,
  ``qualifiers``: the replayer that applies decoded events to the target;
- ``records``, ``writer``, ``archived``: the archive's format in Blob Storage (a file's
  record beside it, the one writer that commits its blocks, a file read back as events).

It may import drkit's top-level modules, :mod:`drkit.stream`, and the adapters
:mod:`drkit.mysql` and :mod:`drkit.azure`; never :mod:`drkit.ops` or anything above: the
operations (``binlog stream``, ``restore --until``) are built on it. Blob Storage only
through :mod:`drkit.azure`'s store; pymysql is the one SDK it uses itself.
"""
