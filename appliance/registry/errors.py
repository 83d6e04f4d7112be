"""Errors of the appliance's registry boundary (push client and serve endpoint)."""

from __future__ import annotations

from bundles.errors import StellaError, UsageError


class RegistryError(StellaError):
    """A registry refused or failed a request, or answered something unusable."""


class RegistryAuthError(RegistryError):
    """Credentials are missing, wrong, or not allowed to do what was asked."""


class ServeConfigError(UsageError):
    """``stella serve`` options are inconsistent or unsafe (bind, TLS, credentials)."""
