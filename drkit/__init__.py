"""drkit: keep a MySQL database recoverable when a whole cloud region dies."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("drkit")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
