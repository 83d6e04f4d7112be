# Example 2 of the product vision, in Rego v1: every attestation attached to the image must
# carry a transparency-log inclusion proof, and there must be at least one attestation.
package stella.policy

deny contains reason if {
	count(input.attestations) == 0
	reason := {
		"code": "RISK.ATTESTATION.MISSING",
		"msg": "the image has no attestations",
	}
}

deny contains reason if {
	some a in input.attestations
	not a.transparency.inclusionProof
	reason := {
		"code": "RISK.ATTESTATION.NO_INCLUSION_PROOF",
		"msg": sprintf("attestation %s (%s) has no transparency inclusion proof", [a.digest, a.predicateType]),
	}
}
