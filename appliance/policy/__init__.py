"""Rego v1 policy: bundles (``bundle``), the deterministic input document (``inputs``) and
in-process evaluation by OPA itself (``engine``). The contract a policy implements is in
docs/policy.md; the default policy ships in ``default/``, tested examples in ``examples/``.
"""
