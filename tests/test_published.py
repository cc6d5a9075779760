"""What drkit publishes is scrubbed and private: the maintenance page, the audit records."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime

import pytest

from drkit.azure import maintenance
from drkit.azure.blobstore import BackupStore
from drkit.errors import AuditRefusedError, ContainerPublicError
from drkit.runbooks.audit import RUN, AuditRecord


def test_a_secret_shaped_message_never_reaches_the_public_page(settings):
    planted = base64.b64encode(b"k" * 64).decode()  # the shape of a storage account key
    store = BackupStore.from_settings(settings, container="$web", prefix="")
    before = maintenance.is_up(settings)
    with pytest.raises(AuditRefusedError, match="an Azure storage account key"):
        maintenance.publish(settings, f"Back soon. key={planted}", datetime.now(UTC))
    assert maintenance.is_up(settings) == before
    if before:
        page = store.container.download_blob(maintenance.PAGE).readall().decode()
        assert planted not in page


def test_audit_records_go_only_into_a_private_container(settings, tmp_path):
    name = f"pub-{uuid.uuid4().hex[:8]}"
    store = BackupStore.from_settings(settings, container=name, prefix="")
    store.container.create_container(public_access="blob")
    try:
        (tmp_path / RUN).write_text(json.dumps({"run_id": "x"}))
        with pytest.raises(ContainerPublicError, match="allows public read access"):
            AuditRecord(tmp_path, "r/").publish(store)
        assert list(store.container.list_blobs()) == []
    finally:
        store.container.delete_container()
