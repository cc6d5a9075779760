"""boto3 clients built from the settings (endpoint override is how the sandbox is used)."""

from __future__ import annotations

from typing import Any

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config

from drkit.config import AwsSettings

_RETRIES = Config(retries={"max_attempts": 4, "mode": "standard"}, connect_timeout=10)
# One loader for every session: a session of its own parses botocore's endpoint and service
# JSON again, about 0.1 s of CPU per client. The loader keeps only that data, never
# credentials or settings.
_BOTOCORE_DATA = botocore.loaders.create_loader()


def boto_client(settings: AwsSettings, service: str, timeout: float | None = None) -> Any:
    """A client of ``service``. ``timeout``: for calls that must give up within seconds when
    AWS does not answer (secrets, the failover's look at RDS): one retry, short timeouts."""
    core = botocore.session.Session()
    core.register_component("data_loader", _BOTOCORE_DATA)
    if settings.credentials_file is not None:
        core.set_config_variable("credentials_file", str(settings.credentials_file.expanduser()))
    if settings.profile:
        core.set_config_variable("profile", settings.profile)
    session = boto3.Session(botocore_session=core, region_name=settings.region)
    config = _RETRIES if timeout is None else Config(
        retries={"total_max_attempts": 1}, connect_timeout=timeout, read_timeout=timeout)
    return session.client(service, endpoint_url=settings.endpoint_url, config=config)
