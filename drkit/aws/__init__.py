"""The AWS adapter: boto3 clients from the settings, the ``secret:`` provider (Secrets
Manager), CloudWatch metrics, the backup alarms and the source's RDS status. boto3 and
botocore are used here and nowhere else (but in the sandbox, which stands in for AWS).

AWS is the region that may be gone: a restore needs AWS only where the config's credential
references point at Secrets Manager (``secret:``). It may import drkit's top-level modules and
:mod:`drkit.stream`, never another adapter or anything above.
"""
