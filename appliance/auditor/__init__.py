"""The auditor's journey: prove offline why an artifact was blocked or allowed.

``verify`` checks a signed RVA against a trust policy (signature, which key may sign which
predicate type, subject binding, schema, evidence digests, the audit record);
``sigstore_verify`` checks standard Sigstore bundles (keys or keyless, with transparency-log
proofs) against a shipped or given trusted root; ``explain`` renders a verified verdict for
people; ``replay`` re-runs the evaluation from the pinned inputs; ``package`` writes and checks
the self-contained audit package.
"""
