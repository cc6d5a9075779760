"""What a sandbox service asks of the sandbox it belongs to.

:class:`drkit.sandbox.estate.Sandbox` builds the services and is what they are handed; they
name it by what they use of it, so the services need not import the estate that imports them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from drkit.config import AwsSettings
from drkit.sandbox.tls import SandboxTls


class ServiceHost(Protocol):
    """The sandbox a service belongs to, as the service sees it."""

    directory: Path
    demo_size: int

    @property
    def tls(self) -> SandboxTls: ...

    def port(self, name: str) -> int | None: ...

    def credential(self, key: str) -> str: ...

    def secret(self) -> dict[str, str]: ...

    def azure_secrets(self) -> dict[str, str]: ...

    def aws_settings(self, moto_port: int | None = None) -> AwsSettings: ...

    def write_aws_credentials(self) -> None: ...
