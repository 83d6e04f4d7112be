"""The mirror workspace of the sneakernet flow, for the tenants' own imports."""

from tests.flow.conftest import mirror

__all__ = ["mirror"]
