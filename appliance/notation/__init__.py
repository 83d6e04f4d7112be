"""Notary Project signatures for the risk verdict, as a second signing backend (docs/keys.md).

- :mod:`appliance.notation.envelope`: the JWS signature envelope (``application/jose+json``,
  flattened JWS JSON serialization, certificate chain in ``x5c``): built, parsed strictly and
  checked for integrity and the specification's certificate requirements. Pure: no home, no I/O.
- :mod:`appliance.notation.trust`: Notation's trust store (``x509/ca/NAME/*.pem``) and trust
  policy (``trustpolicy.json`` v1.0), and signature verification against them at the levels
  the specification defines (strict, permissive, audit, skip).
- :mod:`appliance.notation.ca`: the appliance as its own small CA: a root kept in the home, and
  a code-signing leaf certificate for each appliance signing key.
- :mod:`appliance.notation.oci`: the signature as an OCI referrer
  (``artifactType application/vnd.cncf.notary.signature``) of the verdict's own referrer
  manifest, and finding it again.
"""
