"""The operations a person (or cron) runs: backup, verify, restore, prove, prune, the restore
drill, the failover assessment and the failover itself, and the backup-age metrics.

Each composes the adapters (:mod:`drkit.mysql`, :mod:`drkit.azure`, :mod:`drkit.aws`) and
the stream stages. It never imports :mod:`drkit.runbooks`, :mod:`drkit.health`,
:mod:`drkit.sandbox` or :mod:`drkit.cli`: those are built on the operations, not the reverse.
"""
