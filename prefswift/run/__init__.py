"""The run directory: what a training run is and writes, read by every command (see state.py)."""
