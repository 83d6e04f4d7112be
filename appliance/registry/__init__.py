"""The appliance's registry side: ``stella push`` (a small push client) and ``stella serve``
(an OCI distribution endpoint over the home's OCI store). See docs/registry.md.

These are the only appliance modules that speak HTTP (``scripts/check_layers.py``); they serve
or reach the enclave's own network and are never used by import, scan, match or gate.
"""

from __future__ import annotations

from appliance.registry.errors import RegistryAuthError, RegistryError

__all__ = ["RegistryAuthError", "RegistryError"]
