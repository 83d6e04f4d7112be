"""The operators' console: the back end the terminal UI reads and changes through."""
