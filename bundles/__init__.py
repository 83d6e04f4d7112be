"""The shared kernel: the contract between the connected side and the appliance.

Digests, canonical JSON, keys, DSSE envelopes, in-toto statements, the OCI image layout,
and the root error type. Both `mirror` and `appliance` import from here; this package imports
neither of them.
"""

__version__ = "0.1.0"
