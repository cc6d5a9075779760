"""The Azure adapter: the backup container (blocks, tags, metadata), the catalog of backups in
it, Flexible Server control through Resource Manager, and the maintenance page in ``$web``.

The Azure SDK is used here and nowhere else (but in the sandbox, which stands in for
Azure): everything drkit does with blobs goes through a
:class:`~drkit.azure.blobstore.BackupStore`'s methods (``blocks`` grows the binlog archive's
files, ``lease`` holds its writer lease), and every Storage failure leaves it as a drkit
error translated in one place (``failures``).

It may import drkit's top-level modules and :mod:`drkit.stream`, never another adapter
(:mod:`drkit.mysql`, :mod:`drkit.aws`) or anything above.
"""
