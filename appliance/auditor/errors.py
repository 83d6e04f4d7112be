"""The auditor's error family: each failure names what was checked, the file or digest, and
what to do, so a tampered verdict fails with a message that says how it was tampered."""

from __future__ import annotations

from bundles.errors import StellaError


class AuditorError(StellaError):
    """A verdict, bundle or audit package does not prove what it claims."""


class TrustPolicyError(AuditorError):
    """A trust policy file is malformed, or a signer is not allowed by it."""


class SubjectBindingError(AuditorError):
    """The signed statement is about another artifact than the one named."""


class EvidenceError(AuditorError):
    """Evidence the verdict cites is missing, or its bytes do not match the pinned digest."""


class AuditRecordError(AuditorError):
    """The audit record of a verdict is missing, or the audit chain around it is broken."""


class ReplayInputMissingError(AuditorError):
    """An input pinned in the verdict is not in the local stores."""


class AuditPackageError(AuditorError):
    """An audit package is malformed, incomplete or altered."""
