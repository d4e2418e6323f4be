"""Image analysis used by flows: not drivers."""
