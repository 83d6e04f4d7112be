"""The appliance's registry side: ``stella push`` (the shared distribution client configured
for pushing) and ``stella serve`` (an OCI distribution endpoint over the home's OCI store).
See docs/registry.md.

With ``bundles.distribution``, these are the only appliance modules that speak HTTP
(``scripts/check_layers.py``); they serve or reach the enclave's own network and are never
used by import, scan, match or gate.
"""
