"""Errors of the appliance's registry boundary that are its own: ``stella serve``'s options.

A registry that refuses or fails a request raises the shared client's errors
(``bundles.distribution.errors``: ``RegistryError``, ``RegistryAuthError``).
"""

from __future__ import annotations

from bundles.errors import UsageError


class ServeConfigError(UsageError):
    """``stella serve`` options are inconsistent or unsafe (bind, TLS, credentials)."""
