package stella.exceptions

import rego.v1

waived contains id if {
	some id in data.exceptions.cves
}
