"""boto3 clients built from the settings (endpoint override is how the sandbox is used)."""

from __future__ import annotations

from typing import Any

import boto3
import botocore.session
from botocore.config import Config

from drkit.config import AwsSettings

_RETRIES = Config(retries={"max_attempts": 4, "mode": "standard"}, connect_timeout=10)


def boto_client(settings: AwsSettings, service: str) -> Any:
    core = botocore.session.Session()
    if settings.credentials_file is not None:
        core.set_config_variable("credentials_file", str(settings.credentials_file.expanduser()))
    if settings.profile:
        core.set_config_variable("profile", settings.profile)
    session = boto3.Session(botocore_session=core, region_name=settings.region)
    return session.client(service, endpoint_url=settings.endpoint_url, config=_RETRIES)
