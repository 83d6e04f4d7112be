"""VEX: OpenVEX statements from bundles, files and operators, matched to an image's findings.

``openvex`` reads and writes OpenVEX v0.2.0 documents (``cyclonedx`` and ``csaf`` convert
CycloneDX VEX and CSAF VEX into them), ``products`` decides whether a
statement's product names an image or component, ``merge`` folds the winning statement into
each finding (docs/vex.md), and ``service`` authors, revokes and imports signed statements.
"""
