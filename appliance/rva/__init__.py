"""The Risk Verdict Attestation: the appliance's primary output (docs/rva.md).

``evaluate`` turns fixed inputs into a verdict and its predicate (pure, in-process OPA);
``sigstore`` writes and reads the signed Sigstore bundle; ``attach`` stores it and its evidence
as OCI referrers of the image; ``gate`` is the service the CLI and the TUI call.
"""
