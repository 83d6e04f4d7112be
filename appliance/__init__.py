"""The disconnected appliance: import, scan, match, VEX, gate, attest, verify, audit."""
