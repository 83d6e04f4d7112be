"""The screens of the terminal UI: each declares its widgets and bindings and asks the
service (in workers) for what it shows."""
