"""Package analyzers: one module per package manager, all listed in :mod:`.registry`."""
