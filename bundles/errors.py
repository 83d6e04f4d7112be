"""The root of every error Stella Ops raises on purpose.

Each boundary of the system (digests, canonical JSON, keys, signatures, the OCI layout, bundles,
trust, configuration, feeds, the stores) has its own subclass family, so callers can catch one
boundary's failures without catching everything. Foreign exceptions are wrapped with
``raise ... from e`` so the cause stays visible under ``--debug``.

The command-line front ends turn a :class:`StellaError` into one line on stderr and an exit
code, in exactly one place each (``appliance.cli.main`` and ``mirror.cli.main``).
"""

from __future__ import annotations


class StellaError(Exception):
    """Root error. ``message`` says what went wrong and names the file, field or value;
    ``hint`` says what to do about it."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def diagnostics(self) -> str:
        """One line for a human: what happened, then what to do."""
        text = " ".join(self.message.split())
        if self.hint:
            text = f"{text} ({' '.join(self.hint.split())})"
        return text


def describe(error: BaseException) -> str:
    """One line for any error: a :class:`StellaError`'s diagnostics, else its type and text."""
    if isinstance(error, StellaError):
        return error.diagnostics()
    return f"{error.__class__.__name__}: {' '.join(str(error).split())}"


class UsageError(StellaError):
    """The command line or a configuration value is not usable as given."""

    exit_code = 2


class DigestError(StellaError):
    """A digest string is malformed, or bytes do not match the digest they claim."""


class SizeLimitError(StellaError):
    """More bytes arrived than the declared or configured limit allows."""


class CanonicalJSONError(StellaError):
    """A value cannot be serialized canonically, or a document is not acceptable JSON."""


class KeyError_(StellaError):  # trailing underscore: never shadow the builtin KeyError
    """A key file is missing, malformed, of an unsupported type, or needs a passphrase."""


class SignerError(KeyError_):
    """A signer cannot be named, opened or used."""


class SignatureError(StellaError):
    """A DSSE envelope or signature does not verify."""


class StatementError(StellaError):
    """An in-toto statement is malformed or not what was expected."""


class OCILayoutError(StellaError):
    """An OCI image layout is malformed, or an object is missing from it."""


class BlobNotFoundError(OCILayoutError):
    """A blob named by digest is not in the layout."""


class TrustError(StellaError):
    """A trust root, or a signed object, is not trusted under the current trust root."""


class BundleError(StellaError):
    """A bundle archive is malformed, incomplete, or not acceptable."""


class ConfigError(UsageError):
    """A configuration file is missing, malformed, or has a bad value."""
