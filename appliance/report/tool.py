"""The producing tool's name and version, as the report formats record them."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

NAME = "stella"


def tool_version() -> str:
    """The installed project version; ``0`` when running from an uninstalled tree."""
    try:
        return version("stella-ops")
    except PackageNotFoundError:
        return "0"
