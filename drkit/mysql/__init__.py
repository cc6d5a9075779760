"""The MySQL adapter: connections and private option files, what a server holds (inventory),
the dump client (which one is installed: ``clients``; running it: ``dump``), the parallel
loader, and the proof that a restored
database matches its manifest, and the swap that puts a proven copy in place.
The binary log's engine lives in :mod:`drkit.binlog`.

It may import drkit's top-level modules and :mod:`drkit.stream`, never another adapter
(:mod:`drkit.azure`, :mod:`drkit.aws`) or anything above. pymysql stays in here and in
:mod:`drkit.binlog`.
"""
