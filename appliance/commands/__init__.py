"""Command modules of ``stella``; each registers its commands in ``appliance.cli``."""
