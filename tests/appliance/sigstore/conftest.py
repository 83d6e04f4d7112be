"""The verifier's tests check the appliance's own gated verdicts too: the same homes as the
auditor's tests."""

from tests.appliance.auditor.conftest import gated, home, rva_file

__all__ = ["gated", "home", "rva_file"]
