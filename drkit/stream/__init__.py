"""Pure byte processing of dump streams: scanning a dump for its tables, rows and digests,
compression codecs, splitting SQL into statements, and the rewrites Azure needs.

Nothing here touches a network, a server or a cloud SDK: it may import only drkit's
top-level modules (errors, units, ...), the standard library and the compression libraries,
so every stage can be tested and benchmarked on bytes alone.
"""
