"""Sweeps: one module each, with ``PROFILES`` and ``configs(profile) -> list[RunConfig]``."""
