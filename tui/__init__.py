"""The operators' terminal UI; talks to the appliance's service layer only."""
