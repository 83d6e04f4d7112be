# The default policy of the Stella Ops appliance (docs/policy.md). Rego v1.
#
# The image fails when an unwaived finding (VEX does not say not_affected or fixed; a finding
# under investigation is not waived) is in CISA KEV, or is critical/high and reachable from an
# entrypoint, or when unwaived findings exceed the severity thresholds of data.json. A finding
# whose vulnerable code is not linked gets an info reason (RISK.CVE.CODE_NOT_PRESENT). The decision cannot be
# made (INDETERMINATE) without a knowledge snapshot or an SBOM, or when the snapshot is older
# than the allowed age. Waivers and statuses are recorded as info reasons.
package stella.policy

thresholds := data.stella.thresholds

waived(f) if f.status in {"not_affected", "fixed"}

unwaived contains f if {
	some f in input.findings
	not waived(f)
}

deny contains reason if {
	some f in unwaived
	f.kev
	reason := {
		"code": "RISK.CVE.KEV",
		"msg": sprintf("%s in %s is known to be exploited (CISA KEV)", [f.id, f.purl]),
		"vulnerability": f.id,
		"component": f.purl,
	}
}

deny contains reason if {
	some f in unwaived
	f.reachability == "reachable"
	f.severity in {"critical", "high"}
	reason := {
		"code": "RISK.CVE.REACHABLE",
		"msg": sprintf("%s (%s) in %s is reachable from an entrypoint", [f.id, f.severity, f.purl]),
		"vulnerability": f.id,
		"component": f.purl,
	}
}

deny contains reason if {
	some severity, limit in thresholds.max_unwaived
	n := count([f | some f in unwaived; f.severity == severity])
	n > limit
	reason := {
		"code": "RISK.POLICY.THRESHOLD_EXCEEDED",
		"msg": sprintf("%d unwaived %s findings exceed the limit of %d", [n, severity, limit]),
	}
}

indeterminate contains reason if {
	input.knowledge.snapshot == null
	reason := {
		"code": "RISK.UNKNOWN.INPUT_MISSING",
		"msg": "no knowledge snapshot: the findings could not be matched",
	}
}

indeterminate contains reason if {
	input.sbom == null
	reason := {"code": "RISK.UNKNOWN.INPUT_MISSING", "msg": "no SBOM for the image"}
}

indeterminate contains reason if {
	input.knowledge.snapshot != null
	input.knowledge.ageDays == null
	reason := {
		"code": "RISK.KNOWLEDGE.STALE",
		"msg": "the knowledge snapshot's age is unknown",
	}
}

indeterminate contains reason if {
	input.knowledge.ageDays > thresholds.max_snapshot_age_days
	reason := {
		"code": "RISK.KNOWLEDGE.STALE",
		"msg": sprintf(
			"the knowledge snapshot is %d days old (the limit is %d)",
			[input.knowledge.ageDays, thresholds.max_snapshot_age_days],
		),
	}
}

info contains reason if {
	some f in input.findings
	f.status == "not_affected"
	reason := {
		"code": "RISK.VEX.NOT_AFFECTED",
		"msg": sprintf("%s: not affected (%s)", [f.id, object.get(f.vex, "justification", "")]),
		"vulnerability": f.id,
		"component": f.purl,
	}
}

info contains reason if {
	some f in input.findings
	f.status == "fixed"
	reason := {
		"code": "RISK.VEX.FIXED",
		"msg": sprintf("%s: fixed according to VEX", [f.id]),
		"vulnerability": f.id,
		"component": f.purl,
	}
}

info contains reason if {
	some f in input.findings
	f.status == "under_investigation"
	reason := {
		"code": "RISK.VEX.UNDER_INVESTIGATION",
		"msg": sprintf("%s: under investigation", [f.id]),
		"vulnerability": f.id,
		"component": f.purl,
	}
}

# A finding whose vulnerable functions the binary does not link (docs/reachability.md) still
# counts until an operator signs a not_affected statement ('stella vex suggest', 'vex add'):
# a function inlined at every call site has no entry of its own in the function table.
info contains reason if {
	some f in unwaived
	f.reachability == "not-present"
	reason := {
		"code": "RISK.CVE.CODE_NOT_PRESENT",
		"msg": sprintf("%s in %s: the vulnerable code is not linked (%s)", [f.id, f.purl, object.get(f, "reachabilityNote", "")]),
		"vulnerability": f.id,
		"component": f.purl,
	}
}

info contains reason if {
	count(input.unknowns) > 0
	reason := {
		"code": "RISK.UNKNOWN.UNDECIDED",
		"msg": sprintf("%d components or records could not be decided", [count(input.unknowns)]),
	}
}
