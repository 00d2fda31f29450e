"""A run directory: its lock, checkpoints, ownership and state."""
