"""The AWS adapter: boto3 clients from the settings, the ``secret:`` provider (Secrets
Manager), CloudWatch metrics and the backup alarms.

AWS is the region that may be gone, so nothing here may be needed to restore. It may import
drkit's top-level modules and :mod:`drkit.stream`, never another adapter or anything above.
"""
