"""What an Azure SDK transport error says about the network, in words."""

from __future__ import annotations

# What requests/urllib3 and the OS say when an endpoint cannot be reached at all (as
# opposed to an answer refusing the request).
_CAUSES = ("Connection refused", "timed out", "Name or service not known",
           "Temporary failure in name resolution", "Network is unreachable",
           "No route to host", "certificate verify failed", "Connection reset",
           "Failed to establish", "Unable to connect")


def network_cause(exc: BaseException) -> str | None:
    """The network failures ``exc`` names ("Connection refused, timed out"), or None when it
    names none (the endpoint answered)."""
    text = str(exc).lower()
    return ", ".join(cause for cause in _CAUSES if cause.lower() in text) or None
