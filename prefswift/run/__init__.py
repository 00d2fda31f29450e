"""A run directory: its lock, checkpoints, log, ownership and state (state.py: the one reader for every command)."""
