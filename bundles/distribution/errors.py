"""Errors of the registry client: one family for every way a registry can fail a pull."""

from __future__ import annotations

from bundles.errors import StellaError, UsageError


class RegistryError(StellaError):
    """A registry could not be reached, refused a request, or served something unusable."""


class RegistryAuthError(RegistryError):
    """A registry asked for credentials that are missing, or refused the ones sent."""


class NotFoundError(RegistryError):
    """The registry does not have the requested manifest, tag or blob."""


class ImageReferenceError(UsageError):
    """An image reference is not of the form ``[REGISTRY/]REPOSITORY[:TAG][@DIGEST]``."""
