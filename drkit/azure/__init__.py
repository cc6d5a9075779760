"""The Azure adapter: the backup container (blocks, tags, metadata), the catalog of backups in
it, Flexible Server control through Resource Manager, and the maintenance page in ``$web``.

It may import drkit's top-level modules and :mod:`drkit.stream`, never another adapter
(:mod:`drkit.mysql`, :mod:`drkit.aws`) or anything above.
"""
