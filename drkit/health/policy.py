"""``drkit doctor --print-policy``: the least privilege drkit needs (IAM policy, Azure roles)."""

from __future__ import annotations

import json

from drkit.azure.credentials import BACKUP_SIDE_PERMISSIONS
from drkit.config import Settings, is_reference, references
from drkit.errors import DrkitError
from drkit.runbooks.runbook import all_runbooks, runbook_dirs
from drkit.secrets import resolver_for


def policy(settings: Settings) -> dict:
    """The least-privilege grants the configured runbooks need: each cloud's documents as its
    console or CLI takes them (the IAM policy, each Azure role definition), and the rest."""
    secret = settings.aws.secret_id or "backup-credentials-*"
    statements = [
        {"Sid": "ReadBackupCredentials", "Effect": "Allow",
         "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
         "Resource": secret if secret.startswith("arn:") else
         f"arn:aws:secretsmanager:{settings.aws.region}:*:secret:{secret}-*"},
        {"Sid": "PublishBackupMetrics", "Effect": "Allow", "Action": ["cloudwatch:PutMetricData"],
         "Resource": "*", "Condition": {"StringEquals": {
             "cloudwatch:namespace": settings.metrics.namespace}}},
        {"Sid": "ManageBackupAlarms", "Effect": "Allow",
         "Action": ["cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms"],
         "Resource": f"arn:aws:cloudwatch:{settings.aws.region}:*:alarm:drkit-*"},
    ]
    if settings.source.rds_instance_id:
        statements.append({"Sid": "AssessPrimary", "Effect": "Allow",
                           "Action": ["rds:DescribeDBInstances"],
                           "Resource": f"arn:aws:rds:{settings.aws.region}:*:db:"
                                       f"{settings.source.rds_instance_id}"})
    account = _account_name(settings)
    containers = sorted({settings.storage.container, "$web",
                         *(r.audit.container for r in all_runbooks(runbook_dirs(settings)))})
    # Contributor does not cover blob index tags, which hold the verify outcome (Microsoft:
    # tags need .../blobs/tags/read and /write): a role of drkit's own adds them.
    azure_roles = [{"role": "drkit-blob-operator", "scope":
                    f"storage account {account} / container {c}"} for c in containers]
    blob_operator = {
        "Name": "drkit-blob-operator",
        "Description": "Read, write and delete backup blobs, their metadata and index tags.",
        "DataActions": [
            "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read",
            "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write",
            "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete",
            "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/add/action",
            "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/tags/read",
            "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/tags/write",
            "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/filter/action",
            "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/"
            "deleteBlobVersion/action",
        ],
        "Actions": ["Microsoft.Storage/storageAccounts/blobServices/containers/read"],
        "AssignableScopes": [f"/subscriptions/<subscription>/resourceGroups/"
                             f"{settings.azure.resource_group or '<resource-group>'}"],
    }
    # The backup side's own role: everything it writes, nothing it could delete with.
    backup_containers = [c for c in containers if c != "$web"]
    azure_roles += [{"role": BACKUP_WRITER, "scope": f"storage account {account} / container "
                     f"{c}", "side": "backup"} for c in backup_containers]
    backup_writer = {
        "Name": BACKUP_WRITER,
        "Description": "The backup host's: create, write and tag backup blobs and the binlog "
                       "archive; no delete.",
        "DataActions": [action for action in blob_operator["DataActions"]
                        if not action.endswith(("/delete", "/deleteBlobVersion/action"))],
        "Actions": blob_operator["Actions"],
        "AssignableScopes": blob_operator["AssignableScopes"],
    }
    if settings.azure.flexible_server:
        azure_roles.append({"role": "drkit-flexible-server-operator",
                            "scope": f"Flexible Server {settings.azure.flexible_server}"})
    if settings.azure.key_vault_url:  # the failover's credentials when AWS is down
        azure_roles.append({"role": "Key Vault Secrets User",
                            "scope": f"Key Vault {settings.azure.key_vault_url}"})
    if settings.storage.auth == "key":
        azure_roles = [{"note": "storage.auth is key: the account key grants storage access; "
                                "with auth aad these role assignments replace it"}, *azure_roles]
    operator = {
        "Name": "drkit-flexible-server-operator",
        "Description": "Start, stop, scale the DR Flexible Server; add firewall rules and "
                       "databases.",
        "Actions": ["Microsoft.DBforMySQL/flexibleServers/read",
                    "Microsoft.DBforMySQL/flexibleServers/start/action",
                    "Microsoft.DBforMySQL/flexibleServers/stop/action",
                    "Microsoft.DBforMySQL/flexibleServers/write",
                    "Microsoft.DBforMySQL/flexibleServers/firewallRules/write",
                    "Microsoft.DBforMySQL/flexibleServers/databases/write",
                    "Microsoft.DBforMySQL/locations/azureAsyncOperation/read",
                    "Microsoft.DBforMySQL/locations/operationResults/read"],
        "AssignableScopes": [f"/subscriptions/<subscription>/resourceGroups/"
                             f"{settings.azure.resource_group or '<resource-group>'}"],
    }
    user = f"'{settings.source.user}'@'%'"
    grants = [f"GRANT SELECT, SHOW VIEW, TRIGGER, EVENT, LOCK TABLES ON *.* TO {user};"]
    if settings.binlog.enabled:  # the streamer reads the binary log as a replica
        grants.append(f"GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO {user};")
        grants.append("CALL mysql.rds_set_configuration('binlog retention hours', 48);  "
                      "-- RDS: keep binlogs for a stopped streamer to catch up")
    if settings.binlog.heartbeat:
        grants.append(f"GRANT CREATE, INSERT, UPDATE, DELETE, SELECT ON drkit_heartbeat.* "
                      f"TO {user};")
    return {"aws_iam_policy": {"Version": "2012-10-17", "Statement": statements},
            "mysql_source_grants": grants,
            "sides": sides(settings),
            "azure_role_assignments": azure_roles,
            "azure_role_definitions": [blob_operator, backup_writer,
                                       *([operator] if settings.azure.flexible_server
                                         else [])]}


BACKUP_WRITER = "drkit-backup-writer"


def sides(settings: Settings) -> dict[str, dict[str, str]]:
    """The two roles drkit runs in (the config's ``side`` says which one it is)."""
    return {
        "backup": {"runs": "drkit backup, drkit binlog stream (on the backup host, in AWS)",
                   "storage": f"a SAS without delete (storage.auth: sas, sp="
                              f"{BACKUP_SIDE_PERMISSIONS}) or Entra ID with {BACKUP_WRITER}; "
                              "never the account key",
                   "encryption": "recipients only, no identity"},
        "azure": {"runs": "prune, verify, restore, drills, the failover, the maintenance page "
                          "(in Azure)",
                  "storage": "the account key or Entra ID with drkit-blob-operator",
                  "encryption": "the identity (keyvault:)"},
        "this_config": {"side": settings.side},
    }


def _account_name(settings: Settings) -> str:
    """The storage account's name, looked up where the config refers to it (a name, not a
    secret: a scope to paste must name the account, not the reference)."""
    account = settings.storage.account
    if not is_reference(account):
        return account
    try:
        return resolver_for(settings).value(account)
    except DrkitError:  # the store is out of reach: the reference says where the name is
        return f"<the name in {' or '.join(references(account))}>"


def policy_text(documents: dict) -> str:
    """``--print-policy`` for a person: each document under what to do with it, indented so
    it reads and pastes as is."""
    def pasted(document: dict) -> str:
        return json.dumps(document, indent=2)

    parts = ["AWS IAM policy for drkit's user or role (aws iam create-policy --policy-name "
             "drkit --policy-document file://policy.json):", pasted(documents["aws_iam_policy"]),
             "", "MySQL grants on the source, run as its admin:",
             *documents["mysql_source_grants"], "",
             f"Sides (this config: {documents['sides']['this_config']['side']}):"]
    for side in ("backup", "azure"):
        role = documents["sides"][side]
        parts += [f"  {side} side runs {role['runs']}", f"    storage: {role['storage']}",
                  f"    encryption: {role['encryption']}"]
    parts += ["", "Azure role assignments:"]
    for assignment in documents["azure_role_assignments"]:
        side = " (backup side)" if assignment.get("side") == "backup" else ""
        parts.append(f"  {assignment['role']} on {assignment['scope']}{side}"
                     if "role" in assignment else f"  ({assignment['note']})")
    for definition in documents["azure_role_definitions"]:
        parts += ["", f"Azure custom role {definition['Name']} (az role definition create "
                      "--role-definition @role.json):", pasted(definition)]
    return "\n".join(parts)
