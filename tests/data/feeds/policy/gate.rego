# A site policy delivered inside the knowledge snapshot (docs/policy.md describes the input).
# Fail on unwaived findings that are critical, or high and reachable from an entrypoint.
# Waived: VEX says not_affected or fixed, or the CVE is an accepted risk of this site
# (data.exceptions.cves, collected by stella.exceptions).
package stella.policy

import rego.v1

waived(f) if f.status in {"not_affected", "fixed"}

waived(f) if f.id in data.stella.exceptions.waived

deny contains reason if {
	some f in input.findings
	not waived(f)
	f.severity == "critical"
	reason := {
		"code": "RISK.POLICY.THRESHOLD_EXCEEDED",
		"msg": sprintf("%s is critical in %s", [f.id, f.purl]),
		"vulnerability": f.id,
		"component": f.purl,
	}
}

deny contains reason if {
	some f in input.findings
	not waived(f)
	f.severity == "high"
	f.reachability == "reachable"
	reason := {
		"code": "RISK.CVE.REACHABLE",
		"msg": sprintf("%s (high) in %s is reachable from an entrypoint", [f.id, f.purl]),
		"vulnerability": f.id,
		"component": f.purl,
	}
}
