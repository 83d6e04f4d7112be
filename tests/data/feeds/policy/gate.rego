package stella.policy

import rego.v1

default allow := false

allow if count(deny) == 0

deny contains msg if {
	some f in input.findings
	f.severity == "CRITICAL"
	not f.vex_status == "not_affected"
	msg := sprintf("%s is critical in %s", [f.id, f.package])
}
